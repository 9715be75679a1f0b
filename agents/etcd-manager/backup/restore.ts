// A member's part of a restore: the verified snapshot, streamed to a file on
// the member's own volume, then `etcdctl snapshot restore` into a fresh data
// dir named for a NEW cluster token. etcd's own restore keeps every revision
// and lease (kOps copies keys one by one and loses both). Nothing live is
// touched: the new dir is built beside the live one under a staging name and
// renamed into place only when complete; swapping etcd over to it (stop, move
// the old data to the trash, start on the new dir) is the caller's step.
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { StateStore } from '../../../shared/store/types.js';
import type { BackupKey } from './encryption.js';
import { snapshotRestore, SnapshotToolError, type RestoreTarget, type SnapshotTool } from './etcdctl.js';
import { readBackup, BackupVerifyError, type ReadBackupResult } from './verify.js';

export interface RestoreMemberOptions {
  store: StateStore;
  name: string;
  key?: BackupKey;
  tool: SnapshotTool;
  /** Folder on the member's volume for the downloaded snapshot (same filesystem as dataRoot is best). */
  workDir: string;
  /** Where data dirs live (`<volume>/data`); the new one is `<dataRoot>/<clusterToken>`. */
  dataRoot: string;
  member: { name: string; peerURLs: string[] };
  /** Every member of the restored cluster → its peer URLs (this member included). */
  initialCluster: Record<string, string[]>;
  /** A fresh token for the restored cluster (never the live one's). */
  clusterToken: string;
  onProgress?: (progress: { storedBytes: number; totalStoredBytes?: number }) => void;
  signal?: AbortSignal;
}

export interface RestoredMember {
  /** The complete new data dir: `<dataRoot>/<clusterToken>`. Start etcd on it with initial-cluster-state "new". */
  dataDir: string;
  verified: ReadBackupResult;
}

export class RestoreError extends Error {}

/**
 * Download + verify into `<workDir>`, restore into `<dataRoot>/.restoring-<token>-<random>`,
 * rename to `<dataRoot>/<token>`. Refuses when that dir already exists. The
 * snapshot file and the staging dir are removed whatever happens.
 * Throws BackupVerifyError for a bad backup (nothing created), RestoreError otherwise.
 */
export async function restoreMemberData(options: RestoreMemberOptions): Promise<RestoredMember> {
  const { name, clusterToken, dataRoot } = options;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(clusterToken)) throw new RestoreError(`restore of ${name}: cluster token ${JSON.stringify(clusterToken)} cannot be a folder name`);
  if (!(options.member.name in options.initialCluster)) throw new RestoreError(`restore of ${name}: member ${options.member.name} is not in the initial cluster (${Object.keys(options.initialCluster).join(', ')})`);
  const dataDir = join(dataRoot, clusterToken);
  if (await exists(dataDir)) throw new RestoreError(`restore of ${name}: ${dataDir} already exists; refusing to overwrite it`);
  await mkdir(options.workDir, { recursive: true, mode: 0o700 });
  await mkdir(dataRoot, { recursive: true, mode: 0o700 });
  const suffix = randomBytes(4).toString('hex');
  const file = join(options.workDir, `restore-${clusterToken}-${suffix}.db`);
  const staging = join(dataRoot, `.restoring-${clusterToken}-${suffix}`);
  try {
    const verified = await readBackup({ store: options.store, name, key: options.key, toFile: file, onProgress: options.onProgress, signal: options.signal });
    const target: RestoreTarget = {
      dataDir: staging,
      memberName: options.member.name,
      peerURLs: options.member.peerURLs,
      initialCluster: options.initialCluster,
      clusterToken,
    };
    try {
      // readBackup checked etcd's trailing hash over exactly the bytes it wrote to `file`.
      await snapshotRestore(options.tool, file, target, { trailingHashChecked: true });
    } catch (err) {
      if (err instanceof SnapshotToolError) throw new RestoreError(`restore of ${name}: ${err.message}`, { cause: err });
      throw err;
    }
    await rename(staging, dataDir);
    await syncDir(dataRoot);
    return { dataDir, verified };
  } catch (err) {
    if (err instanceof BackupVerifyError || err instanceof RestoreError) throw err;
    throw new RestoreError(`restore of ${name}: ${(err as Error).message}`, { cause: err });
  } finally {
    await rm(file, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes a rename inside dir durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
