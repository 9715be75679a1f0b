// The backup library's public surface, for the controller and the operator CLI.
// Formats and rules: FORMAT.md beside this file.
export { BackupNamer, formatBackupName, parseBackupName, type NamerDeps, type ParsedBackupName } from './names.js';
export { DATA_FILE, META_FILE, SIDECAR_FILE, checkBackupName } from './layout.js';
export { formatBackupMeta, parseBackupMeta, type BackupMeta, type ClusterSpec } from './meta.js';
export { parseSidecar, type BackupSidecar, type SidecarEncryption, type SidecarEtcd } from './sidecar.js';
export { BackupKeyError, KEY_SECRET_PATH, formatKeySecret, keyIdOf, loadKeyFile, loadKeySecret, parseKeyMaterial, type BackupKey } from './encryption.js';
export { etcdSnapshotSource, type OpenedSnapshot, type SnapshotOrigin, type SnapshotSource } from './snapshot-stream.js';
export { BackupError, takeBackup, type TakeBackupOptions, type TakenBackup } from './take.js';
export { takeV2Backup, type TakeV2BackupOptions, type TakenV2Backup } from './v2-take.js';
export {
  BackupFormatError, BackupNotFoundError, listBackups, loadBackupInfo, newestBackup, sortListing,
  type BackupInfo, type BackupListing, type IncompleteBackup, type ListedBackup,
} from './list.js';
export { BackupVerifyError, readBackup, verifyBackup, type ReadBackupOptions, type ReadBackupResult, type VerifyBackupOptions, type VerifyCheck, type VerifyReport } from './verify.js';
export { SYSTEM_ETCDCTL, SnapshotToolError, snapshotRestore, snapshotStatus, type RestoreTarget, type SnapshotStatus, type SnapshotTool } from './etcdctl.js';
export { RestoreError, restoreMemberData, type RestoreMemberOptions, type RestoredMember } from './restore.js';
export { TRASH_DIR, emptyTrash, expiredTrash, moveToTrash, trashedAt, type TrashEntry, type TrashPolicy } from './trash.js';
export {
  DEFAULT_INCOMPLETE_AFTER_MS, DEFAULT_RETENTION, checkPolicy, cleanupBackups, planRetention, staleIncomplete,
  type CleanupOptions, type CleanupResult, type RetentionPlan, type RetentionPolicy, type RetentionReason,
} from './retention.js';
