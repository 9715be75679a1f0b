// Where things live in a backup store (`<state-store>/<cluster>/backups/etcd/<main|events>/`):
//   <name>/etcd.backup.gz        the snapshot, gzip (then AES-256-GCM when encrypted)
//   <name>/_mooring_backup.json  our sidecar: hashes, sizes, revision, encryption (sidecar.ts)
//   <name>/_etcd_backup.meta     kOps' BackupInfo, written LAST: its presence makes the backup complete
//   control/…                    cluster spec, created marker, commands, requests (../control/)
//   discovery/…                  the managers' peer records (../discovery.ts)

/** kOps' data object (pkg/backup/store.go DataFilename). */
export const DATA_FILE = 'etcd.backup.gz';
/** kOps' meta object (pkg/backup/store.go MetaFilename). */
export const META_FILE = '_etcd_backup.meta';
/** Ours; kOps ignores it when listing and deletes it with the folder (RemoveBackup removes the whole tree). */
export const SIDECAR_FILE = '_mooring_backup.json';

/** Top-level folders of a backup store that are not backups. */
export const NOT_BACKUPS: ReadonlySet<string> = new Set(['control', 'discovery']);

export function dataPath(name: string): string {
  return `${name}/${DATA_FILE}`;
}
export function metaPath(name: string): string {
  return `${name}/${META_FILE}`;
}
export function sidecarPath(name: string): string {
  return `${name}/${SIDECAR_FILE}`;
}

/** A backup name must be a single path segment that cannot reach outside the store or into control/. */
export function checkBackupName(name: string): void {
  if (name === '' || name.includes('/') || name.includes('\\') || name === '.' || name === '..' || name.startsWith('.') || NOT_BACKUPS.has(name)) {
    throw new Error(`${JSON.stringify(name)} is not a backup name`);
  }
}
