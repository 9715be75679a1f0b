// A backup of an etcd 2.x cluster, as kOps' etcd-manager takes one: etcd2 has
// no snapshot call, so `etcdctl backup` (v2 API mode) copies this member's data
// directory (member/snap, member/wal, with the cluster's identity stripped) into
// a private temporary directory, and a gzipped tar of it is streamed into
// `<name>/etcd.backup.gz`; the meta is written last, as for a v3 backup, so a
// run cut off anywhere is never listed. The migration's reader
// (migrate/v2-backup.ts) reads such a backup in process (migrate/v2-data-dir.ts),
// as verify-backup does (backup/verify-v2.ts).
// Not encrypted: kOps' v2 backups are plain, and nothing in etcd2 can read an
// encrypted one; with a backup key configured it is refused, never stored in
// the clear. No sidecar (it describes a v3 snapshot).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { StateStore } from '../../../shared/store/types.js';
import { dataPath, metaPath, checkBackupName } from './layout.js';
import { formatBackupMeta, type ClusterSpec } from './meta.js';
import { BackupError } from './take.js';

export interface TakeV2BackupOptions {
  store: StateStore;
  /** A fresh name from a BackupNamer. */
  name: string;
  /** This member's etcd data directory (etcd may be running on it: `etcdctl backup` reads a consistent copy). */
  dataDir: string;
  /** The cluster's etcdctl (its 2.x version's, or any that has `backup` in v2 API mode). */
  etcdctl: string;
  /** The etcd version the cluster runs, for the meta. */
  etcdVersion: string;
  clusterSpec: ClusterSpec;
  /** Where the copy is made (default: the OS temp dir); the copy is deleted when done. */
  workRoot?: string;
  now?: () => number;
  signal?: AbortSignal;
}

export interface TakenV2Backup {
  name: string;
  storedBytes: number;
  durationMs: number;
}

const PRIVATE = { mode: 0o600 };
const COPY_TIMEOUT_MS = 30 * 60_000;

export async function takeV2Backup(options: TakeV2BackupOptions): Promise<TakenV2Backup> {
  const { store, name } = options;
  checkBackupName(name);
  const now = options.now ?? Date.now;
  const started = now();
  const fail = (step: string, err: unknown): BackupError =>
    new BackupError(`v2 backup ${name} (${store.urlOf(name)}): ${step}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  if ((await store.exists(metaPath(name))) || (await store.exists(dataPath(name)))) {
    throw new BackupError(`backup ${name} (${store.urlOf(name)}) already exists; refusing to overwrite it`);
  }
  const work = await mkdtemp(join(options.workRoot ?? tmpdir(), 'etcd-manager-v2-backup-'));
  try {
    const copy = join(work, 'backup');
    // etcd reads ETCD_* and etcdctl ETCDCTL_* variables as settings: only the API version is ours to set.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ETCDCTL_API: '2' };
    const copied = await execa(options.etcdctl, ['backup', '--data-dir', options.dataDir, '--backup-dir', copy], {
      env, extendEnv: false, reject: false, timeout: COPY_TIMEOUT_MS, cancelSignal: options.signal, stdin: 'ignore',
    });
    if (copied.exitCode !== 0) throw fail('etcdctl backup failed', new Error(`exit ${copied.exitCode ?? copied.signal}: ${String(copied.stderr).trim().split('\n').slice(-2).join(' | ')}`));

    const tar = execa('tar', ['-czf', '-', '-C', copy, 'member'], { env, extendEnv: false, reject: false, timeout: COPY_TIMEOUT_MS, cancelSignal: options.signal, stdin: 'ignore', buffer: { stdout: false } });
    let storedBytes: number;
    try {
      const [written, packed] = await Promise.all([store.writeStream(dataPath(name), tar.stdout, PRIVATE), tar]);
      if (packed.exitCode !== 0) throw new Error(`tar exit ${packed.exitCode ?? packed.signal}: ${String(packed.stderr).trim()}`);
      storedBytes = written;
    } catch (err) {
      tar.kill('SIGKILL');
      await store.delete(dataPath(name)).catch(() => undefined);
      throw fail(`streaming the copy to ${dataPath(name)} failed`, err);
    }
    try {
      // Last: from here on the backup exists for kOps and for us.
      await store.write(metaPath(name), formatBackupMeta({ etcdVersion: options.etcdVersion, timestamp: Math.floor(started / 1000), clusterSpec: options.clusterSpec }), PRIVATE);
    } catch (err) {
      await store.delete(metaPath(name)).catch(() => undefined);
      await store.delete(dataPath(name)).catch(() => undefined);
      throw fail('writing the meta failed', err);
    }
    return { name, storedBytes, durationMs: now() - started };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
