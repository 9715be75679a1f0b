// What verify-backup and restore-backup share: finding the key an encrypted
// backup needs, the snapshot tool, a work dir, and one verification with a
// progress line. The key is never printed: messages name only its source and
// its key id.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ExitCode, UserError } from '../../../shared/errors.js';
import { BackupKeyError, loadKeyFile, loadKeySecret, type BackupKey } from '../backup/encryption.js';
import type { SnapshotTool } from '../backup/etcdctl.js';
import { BackupNotFoundError, loadBackupInfo, type BackupInfo } from '../backup/list.js';
import { checkBackupName, DATA_FILE, META_FILE } from '../backup/layout.js';
import type { StateStore } from '../../../shared/store/types.js';
import { flagGiven, flagString, flagWhere, usage } from './context.js';
import { formatBytes } from './output.js';
import { ProgressLine } from './progress.js';
import type { CommandContext, CommandStores } from './types.js';

/** A backup name from the command line: one path segment of kOps' store (exit 2 otherwise). */
export function backupNameArg(ctx: CommandContext, name: string): string {
  try {
    checkBackupName(name);
  } catch (err) {
    throw usage(`${ctx.name}: ${(err as Error).message} (list-backups shows the names)`);
  }
  return name;
}

/**
 * The backup's meta and sidecar; exit 4 naming the store when it is missing,
 * telling an incomplete backup (objects but no meta) from no backup at all.
 */
export async function loadBackupOrExplain(store: StateStore, name: string): Promise<BackupInfo> {
  try {
    return await loadBackupInfo(store, name);
  } catch (err) {
    if (!(err instanceof BackupNotFoundError)) throw err;
    const objects = await store.list(name);
    const why = objects.length > 0
      ? `backup ${name} in ${store.baseURL} is incomplete: it has no ${META_FILE} (cut off, or still being written), so it cannot be verified or restored`
      : `no backup ${name} in ${store.baseURL} (etcd-manager list-backups shows the backups)`;
    throw new UserError(why, ExitCode.NotFound, { cause: err });
  }
}

/** A backup that lists a meta but no data object cannot be restored: exit 4. */
export async function requireData(store: StateStore, name: string): Promise<void> {
  if (!(await store.exists(`${name}/${DATA_FILE}`))) throw new UserError(`backup ${name} in ${store.baseURL} has a meta but no ${DATA_FILE}`, ExitCode.NotFound);
}

/**
 * The key for this backup: --backup-encryption-key-file when given (a bad
 * file is exit 2 naming the flag), else, only for an encrypted backup, the
 * state store's secret when there is a state store above the backup store.
 */
export async function keyFor(ctx: CommandContext, stores: CommandStores, info: BackupInfo): Promise<BackupKey | undefined> {
  const file = flagString(ctx, 'backup-encryption-key-file');
  if (file !== '') {
    try {
      return await loadKeyFile(file);
    } catch (err) {
      if (err instanceof BackupKeyError) throw usage(`${flagWhere(ctx, 'backup-encryption-key-file')}: ${err.message}`);
      throw err;
    }
  }
  if (!info.sidecar?.encryption || !stores.state) return undefined;
  try {
    return await loadKeySecret(stores.state);
  } catch (err) {
    if (err instanceof BackupKeyError) throw new UserError(err.message, ExitCode.Failure, { cause: err });
    throw err;
  }
}

export interface ToolChoice {
  tool?: SnapshotTool;
  /** Why the snapshot-status check will not run. */
  skipped?: string;
}

/** --etcdctl: a missing default is a skipped check (said so); a missing path the user named is exit 2. */
export function snapshotTool(ctx: CommandContext): ToolChoice {
  const path = flagString(ctx, 'etcdctl');
  if (!ctx.deps.fileExists(path)) {
    if (flagGiven(ctx, 'etcdctl')) throw usage(`--etcdctl ${path}: no such file`);
    return { skipped: `snapshot-status skipped: ${path} is not installed (--etcdctl names etcdctl 3.4 or etcdutl 3.5+)` };
  }
  return { tool: { binary: path, kind: basename(path).startsWith('etcdutl') ? 'etcdutl' : 'etcdctl' } };
}

/** Runs fn with a work dir for the snapshot: --work-dir, or a fresh one in the system temp dir removed afterwards. */
export async function withWorkDir<T>(ctx: CommandContext, fn: (dir: string) => Promise<T>): Promise<T> {
  const given = flagString(ctx, 'work-dir');
  if (given !== '') return fn(given);
  const dir = await mkdtemp(join(tmpdir(), 'etcd-manager-verify-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The progress callback of a download, as a line: `verifying NAME: 12.3 MiB of 45.6 MiB (27%)`. */
export function downloadProgress(progress: ProgressLine, verb: string, name: string) {
  return (p: { storedBytes: number; totalStoredBytes?: number }) => {
    const total = p.totalStoredBytes;
    progress.update(`${verb} ${name}: ${formatBytes(p.storedBytes)}${total ? ` of ${formatBytes(total)} (${Math.floor((100 * p.storedBytes) / Math.max(total, 1))}%)` : ''}`);
  };
}
