// Verifying an etcd 2 backup (kOps' layout: a gzipped tar of the data
// directory `etcdctl backup` wrote, no sidecar, never encrypted): the object
// is downloaded and unpacked into a private directory below the work dir, and
// the directory is read the way migrate-v2 reads it (migrate/v2-data-dir.ts:
// the snapshot's and every used WAL record's CRC-32C, the snapshot's record in
// the WAL, the committed entries applied), then every key is walked. Checks,
// in order: meta, gzip (the stream is whole), tar (a tar of a data directory,
// no path leaving it), v2-data (the directory reads exactly). The unpacked
// copy is always removed; nothing in the store changes.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { getHeapStatistics } from 'node:v8';
import type { StateStore } from '../../../shared/store/types.js';
import { extractTarGz, TarError } from '../migrate/tar.js';
import { MAX_UNPACKED_BYTES } from '../migrate/v2-backup.js';
import { CannotReadDirectly, readV2DataDir } from '../migrate/v2-data-dir.js';
import { walkV2 } from '../migrate/v2-source.js';
import type { BackupInfo } from './list.js';
import { BackupVerifyError, openBackupData, type VerifyCheck } from './verify.js';

export interface V2VerifyReport {
  info: BackupInfo;
  storedBytes: number;
  storedSha256: string;
  passed: VerifyCheck[];
  v2: {
    /** Leaf keys (hidden ones left out, as the v2 API and the migration do). */
    keys: number;
    /** Of those, keys with a TTL. */
    withTTL: number;
    /** Bytes of the unpacked data directory. */
    unpackedBytes: number;
    snapshotIndex: string;
    entriesApplied: number;
  };
}

export interface VerifyV2Options {
  store: StateStore;
  name: string;
  info: BackupInfo;
  /** Where the backup is unpacked (a private directory below it, removed afterwards). */
  workDir: string;
  onProgress?: (progress: { storedBytes: number }) => void;
  signal?: AbortSignal;
}

export async function verifyV2Backup(o: VerifyV2Options): Promise<V2VerifyReport> {
  const { store, name } = o;
  const passed: VerifyCheck[] = ['meta'];
  const { object, raw } = await openBackupData(store, name);
  const hash = createHash('sha256');
  let storedBytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      storedBytes += chunk.length;
      o.onProgress?.({ storedBytes });
      done(null, chunk);
    },
  });
  raw.on('error', (err) => counted.destroy(err));
  raw.pipe(counted);
  const abort = () => raw.destroy(new Error('aborted'));
  o.signal?.addEventListener('abort', abort, { once: true });
  const dir = await mkdtemp(join(o.workDir, 'verify-v2-'));
  try {
    let unpacked;
    try {
      unpacked = await extractTarGz(counted, join(dir, 'data'), MAX_UNPACKED_BYTES);
    } catch (err) {
      if (err instanceof TarError && err.layer === 'gzip') throw new BackupVerifyError(name, 'gzip', `${object}: is not a whole gzip stream (${err.message})`, { cause: err });
      if (err instanceof TarError && err.layer === 'tar') throw new BackupVerifyError(name, 'tar', `${object}: ${err.message}`, { cause: err });
      throw new BackupVerifyError(name, 'read', `reading ${object} failed: ${(err as Error).message}`, { cause: err });
    }
    passed.push('gzip', 'tar');
    let read;
    try {
      read = await readV2DataDir(join(dir, 'data'), { maxSnapshotBytes: Math.floor(getHeapStatistics().heap_size_limit / 6) });
    } catch (err) {
      if (err instanceof CannotReadDirectly) throw new BackupVerifyError(name, 'v2-data', `${object}: the etcd 2 data inside does not read back: ${err.message}`, { cause: err });
      throw err;
    }
    let keys = 0;
    let withTTL = 0;
    for await (const page of walkV2(read.store, 2)) {
      keys += page.leaves.length;
      withTTL += page.leaves.filter((l) => l.expiresAt !== undefined).length;
    }
    passed.push('v2-data');
    return {
      info: o.info, storedBytes, storedSha256: hash.digest('hex'), passed,
      v2: { keys, withTTL, unpackedBytes: unpacked.bytes, snapshotIndex: String(read.snapshotIndex), entriesApplied: read.entriesApplied },
    };
  } finally {
    o.signal?.removeEventListener('abort', abort);
    await rm(dir, { recursive: true, force: true });
  }
}
