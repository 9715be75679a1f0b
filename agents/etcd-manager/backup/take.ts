// Taking a backup: etcd's snapshot stream → (hash + check) → gzip → (AES-256-GCM)
// → (hash + count) → the store's writeStream (multipart on S3). Every stage is a
// Node stream in one pipeline, so backpressure reaches etcd's gRPC stream and the
// database is never held in memory; only a few buffers per stage are.
//
// Write order: data, sidecar, meta. The meta's presence is what makes a backup
// complete (list.ts); a run cut off anywhere before it leaves an incomplete
// folder that is never listed, restored or counted, and that retention removes
// once it is older than its bound (retention.ts).
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import type { Readable, Transform } from 'node:stream';
import type { StateStore } from '../../../shared/store/types.js';
import { ALGORITHM, encryptor, newIV, type BackupKey } from './encryption.js';
import { dataPath, metaPath, sidecarPath, checkBackupName } from './layout.js';
import { formatBackupMeta, type ClusterSpec } from './meta.js';
import { formatSidecar, SIDECAR_FORMAT, type BackupSidecar } from './sidecar.js';
import { Measure, SnapshotCheck, ZLIB_STEP_BYTES, type SnapshotSource } from './snapshot-stream.js';

export interface TakeBackupOptions {
  /** The backup store (`…/backups/etcd/<main|events>`). */
  store: StateStore;
  /** A fresh name from a BackupNamer. */
  name: string;
  snapshot: SnapshotSource;
  /** Written into the meta (kOps' restore reads it); usually the control spec. */
  clusterSpec: ClusterSpec;
  /** Encrypt with this key; plain gzip (kOps-readable) without. */
  key?: BackupKey;
  /** Free text kept in the sidecar ("scheduled", "on-demand", …). */
  reason?: string;
  /** Bytes of snapshot read so far; called often (throttle on the caller's side). */
  onProgress?: (progress: { snapshotBytes: number; storedBytes: number }) => void;
  /** Stops the backup: the upload is abandoned (and aborted on S3), nothing is listed. */
  signal?: AbortSignal;
  /** gzip level 1..9; zlib's default (6, like Go's and kOps') when absent. */
  gzipLevel?: number;
  /**
   * No byte moving at either end (etcd's stream or the store's upload) for this
   * long fails the backup. Default 5 min: with backpressure a slow store also
   * pauses etcd's stream, so this must exceed the slowest S3 part upload.
   */
  stallTimeoutMs?: number;
  /** Milliseconds since the epoch; injected for tests. */
  now?: () => number;
}

export interface TakenBackup {
  name: string;
  sidecar: BackupSidecar;
  /** Bytes in the store. */
  storedBytes: number;
  durationMs: number;
}

export class BackupError extends Error {}

/** A snapshot holds every secret in the cluster: 0600 where the store has modes (file://). */
const PRIVATE = { mode: 0o600 };

/** Fails the stream when no chunk passes for `ms` (etcd alive but silent). */
function stallGuard(ms: number, onStall: () => void): { touch: () => void; stop: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const touch = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(onStall, ms);
  };
  return { touch, stop: () => timer && clearTimeout(timer) };
}

/**
 * Streams one snapshot into `<name>/etcd.backup.gz`, then writes the sidecar and
 * the meta. On failure the objects it wrote are deleted (best effort: what is
 * left has no meta, so it never counts) and the error names the backup and step.
 */
export async function takeBackup(options: TakeBackupOptions): Promise<TakenBackup> {
  const { store, name, key } = options;
  checkBackupName(name);
  const now = options.now ?? Date.now;
  const started = now();
  const fail = (step: string, err: unknown): BackupError =>
    new BackupError(`backup ${name} (${store.urlOf(name)}): ${step}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });

  // Names come from a BackupNamer and should never collide; if one does, never touch the other backup.
  if ((await store.exists(metaPath(name))) || (await store.exists(dataPath(name)))) {
    throw new BackupError(`backup ${name} (${store.urlOf(name)}) already exists; refusing to overwrite it`);
  }
  let opened;
  try {
    opened = await options.snapshot.open(options.signal);
  } catch (err) {
    throw fail('cannot start the etcd snapshot', err);
  }
  const { origin, data } = opened;
  const stallMs = options.stallTimeoutMs ?? 5 * 60_000;
  const guard = stallGuard(stallMs, () => data.destroy(new Error(`no snapshot data moved for ${Math.round(stallMs / 1000)} s`)));
  let snapshotBytes = 0;
  const check = new SnapshotCheck((bytes) => {
    snapshotBytes = bytes;
    guard.touch();
  });
  const iv = key ? newIV() : undefined;
  const cipher = key && iv ? encryptor(key, iv) : undefined;
  const stored = new Measure((storedBytes) => {
    guard.touch();
    options.onProgress?.({ snapshotBytes, storedBytes });
  });
  const abort = () => data.destroy(new Error('backup aborted'));
  if (options.signal?.aborted) abort();
  options.signal?.addEventListener('abort', abort, { once: true });
  guard.touch();
  const gzip = createGzip({ chunkSize: ZLIB_STEP_BYTES, ...(options.gzipLevel !== undefined ? { level: options.gzipLevel } : {}) });
  const stages: Array<Readable | Transform> = [data, check, gzip, ...(cipher ? [cipher] : []), stored];
  // writeStream consumes `stored`; the pipeline carries an error in any stage to every other one.
  const results = await Promise.allSettled([pipeline(stages as [Readable, ...Transform[]]), store.writeStream(dataPath(name), stored, PRIVATE)]);
  guard.stop();
  options.signal?.removeEventListener('abort', abort);
  const failure = rootCause(results);
  if (failure !== undefined) {
    await cleanup(store, name, false);
    throw fail(`streaming the snapshot to ${dataPath(name)} failed`, failure);
  }
  const storedBytes = (results[1] as PromiseFulfilledResult<number>).value;

  const facts = check.facts();
  if (!facts.integrityHashOK) {
    await cleanup(store, name, false);
    throw fail('the snapshot etcd sent is not intact', new Error(facts.problem));
  }
  const durationMs = now() - started;
  const sidecar: BackupSidecar = {
    format: SIDECAR_FORMAT,
    name,
    startedAt: new Date(started).toISOString(),
    durationMs,
    ...(options.reason ? { reason: options.reason } : {}),
    stored: { bytes: storedBytes, sha256: stored.sha256() },
    snapshot: { bytes: facts.bytes, sha256: facts.sha256 },
    compression: 'gzip',
    ...(cipher && key && iv ? { encryption: { algorithm: ALGORITHM, keyId: key.id, iv: iv.toString('base64'), authTag: cipher.getAuthTag().toString('base64') } } : {}),
    etcd: origin,
  };
  try {
    await store.write(sidecarPath(name), formatSidecar(sidecar), PRIVATE);
    // Last: from here on the backup exists for kOps and for us.
    await store.write(metaPath(name), formatBackupMeta({ etcdVersion: origin.version, timestamp: Math.floor(started / 1000), clusterSpec: options.clusterSpec }), PRIVATE);
  } catch (err) {
    await cleanup(store, name, true);
    throw fail('writing the sidecar or meta failed', err);
  }
  return { name, sidecar, storedBytes, durationMs };
}

/** The first failure that is a cause, not the echo of another stage closing early. */
function rootCause(results: PromiseSettledResult<unknown>[]): unknown {
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  const echo = (e: unknown) => e instanceof Error && 'code' in e && e.code === 'ERR_STREAM_PREMATURE_CLOSE';
  return errors.find((e) => !echo(e)) ?? errors[0];
}

/** Removes what a failed run wrote; never throws (leftovers have no meta and age out). */
async function cleanup(store: StateStore, name: string, withMeta: boolean): Promise<void> {
  const paths = [...(withMeta ? [metaPath(name)] : []), sidecarPath(name), dataPath(name)];
  for (const path of paths) await store.delete(path).catch(() => undefined);
}
