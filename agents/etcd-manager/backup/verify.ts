// Reading a backup back: download → sha256 of the stored object → decrypt →
// gunzip → sha256 of the snapshot and etcd's trailing hash → a file (or
// nowhere). Nothing is trusted before every check has passed; a file written
// along the way is removed when one fails.
//
// Checks, in the order a failure is reported (the first one that fails names
// what is wrong):
//   meta             the meta parses and names an etcd version
//   key              an encrypted backup needs the key whose id the sidecar names
//   stored-sha256    the object's size and sha256 are the sidecar's (ours only)
//   decrypt          the GCM tag authenticates every byte (encrypted only)
//   gzip             the gzip stream is whole and its CRC matches
//   snapshot-sha256  the snapshot's size and sha256 are the sidecar's (ours only)
//   snapshot-integrity  the snapshot ends in the sha256 of its database (kOps' too)
//   snapshot-status  `etcdctl snapshot status` opens the database (verifyBackup, when given a tool)
// An etcd 2 backup (a tar of a data directory) is verified by verify-v2.ts
// instead: meta, gzip, tar, v2-data. It is never written out as a snapshot.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import type { StateStore } from '../../../shared/store/types.js';
import { decryptor, type BackupKey } from './encryption.js';
import { snapshotStatus, type SnapshotStatus, type SnapshotTool } from './etcdctl.js';
import { dataPath } from './layout.js';
import { isV2BackupMeta } from './meta.js';
import { loadBackupInfo, BackupFormatError, BackupNotFoundError, type BackupInfo } from './list.js';
import { SnapshotCheck, ZLIB_STEP_BYTES } from './snapshot-stream.js';
import type { V2VerifyReport } from './verify-v2.js';

export type VerifyCheck =
  | 'meta'
  | 'key'
  | 'read'
  | 'stored-sha256'
  | 'decrypt'
  | 'gzip'
  | 'snapshot-sha256'
  | 'snapshot-integrity'
  | 'snapshot-status'
  | 'tar'
  | 'v2-data'
  | 'write';

/** A backup that failed a check: `check` says which, the message names the backup and the object. */
export class BackupVerifyError extends Error {
  constructor(readonly backup: string, readonly check: VerifyCheck, message: string, options?: { cause?: unknown }) {
    super(`backup ${backup}: ${message}`, options);
    this.name = 'BackupVerifyError';
  }
}

export interface ReadBackupOptions {
  store: StateStore;
  name: string;
  /** Needed for encrypted backups; ignored for plain ones. */
  key?: BackupKey;
  /** Write the verified snapshot here (created 0600, must not exist; removed again if a check fails). */
  toFile?: string;
  /** Stored bytes read so far, and the total when the sidecar knows it. */
  onProgress?: (progress: { storedBytes: number; totalStoredBytes?: number }) => void;
  signal?: AbortSignal;
  /** The backup's meta, when the caller has already loaded and checked it (verifyAnyBackup): not read again. */
  info?: BackupInfo;
}

export interface ReadBackupResult {
  info: BackupInfo;
  storedBytes: number;
  storedSha256: string;
  snapshotBytes: number;
  snapshotSha256: string;
  /** The checks that ran and passed, in order. */
  passed: VerifyCheck[];
}

function zlibOrCipherCheck(err: unknown, encrypted: boolean): VerifyCheck {
  const code = err instanceof Error && 'code' in err ? String(err.code) : '';
  if (code.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED' || /unexpected end of file|incorrect header check|invalid|CRC/i.test((err as Error)?.message ?? '')) {
    // A bad GCM tag surfaces at the decipher's end; garbage from a wrong or damaged ciphertext first trips gunzip.
    return encrypted ? 'decrypt' : 'gzip';
  }
  if (/unable to authenticate|Unsupported state/i.test((err as Error)?.message ?? '')) return 'decrypt';
  return 'write';
}

/**
 * Downloads and checks one backup, optionally into a file. Throws
 * BackupVerifyError naming the backup and the failed check; StoreError when
 * the store cannot be read at all.
 */
/** The backup's meta, which must name an etcd version (the `meta` check). */
async function loadCheckedInfo(store: StateStore, name: string): Promise<BackupInfo> {
  let info: BackupInfo;
  try {
    info = await loadBackupInfo(store, name);
  } catch (err) {
    if (err instanceof BackupNotFoundError || err instanceof BackupFormatError) throw new BackupVerifyError(name, 'meta', (err as Error).message, { cause: err });
    throw err;
  }
  if (!info.meta.etcdVersion) throw new BackupVerifyError(name, 'meta', `${store.urlOf(`${name}/_etcd_backup.meta`)} names no etcdVersion`);
  return info;
}

/** The backup's data object, opened for reading (the `read` check), and its URL for messages. */
export async function openBackupData(store: StateStore, name: string): Promise<{ object: string; raw: Readable }> {
  const object = store.urlOf(dataPath(name));
  try {
    return { object, raw: await store.openReadStream(dataPath(name)) };
  } catch (err) {
    throw new BackupVerifyError(name, 'read', `cannot read ${object}: ${(err as Error).message}`, { cause: err });
  }
}

const isV2Backup = (info: BackupInfo): boolean => isV2BackupMeta(info.meta);

export async function readBackup(options: ReadBackupOptions): Promise<ReadBackupResult> {
  const { store, name, key } = options;
  const passed: VerifyCheck[] = [];
  const info = options.info ?? (await loadCheckedInfo(store, name));
  if (isV2Backup(info)) {
    throw new BackupVerifyError(name, 'meta', `is a backup of etcd ${info.meta.etcdVersion}: an etcd 2 data directory, not a v3 snapshot, so it is not restored as one; etcd 2 data moves to etcd 3 through migrate-v2, or configure-cluster --etcd-version 3.x (which converts it)`);
  }
  passed.push('meta');
  const { sidecar } = info;
  const encryption = sidecar?.encryption;
  if (encryption) {
    if (!key) throw new BackupVerifyError(name, 'key', `is encrypted (AES-256-GCM, key id ${encryption.keyId}); pass its key (--backup-encryption-key-file, or the state store secret)`);
    if (key.id !== encryption.keyId) throw new BackupVerifyError(name, 'key', `is encrypted with key id ${encryption.keyId}, but the key from ${key.source} has id ${key.id} (wrong key)`);
    passed.push('key');
  }

  const { object, raw } = await openBackupData(store, name);

  const storedHash = createHash('sha256');
  let storedBytes = 0;
  const input = new PassThrough();
  const check = new SnapshotCheck();
  const stages: Transform[] = [
    ...(encryption ? [decryptor(key!, Buffer.from(encryption.iv, 'base64'), Buffer.from(encryption.authTag, 'base64'))] : []),
    createGunzip({ chunkSize: ZLIB_STEP_BYTES }),
    check,
  ];
  let sink: Writable;
  if (options.toFile) sink = createWriteStream(options.toFile, { flags: 'wx', mode: 0o600 });
  else sink = new Writable({ write: (_chunk, _enc, done) => done() });
  let downstreamError: unknown;
  const decoded = pipeline([input, ...stages, sink]).catch((err: unknown) => {
    downstreamError ??= err;
  });

  const abort = () => raw.destroy(new Error('aborted'));
  options.signal?.addEventListener('abort', abort, { once: true });
  const total = sidecar?.stored.bytes;
  try {
    // Read the stored object to its end even when decoding fails: its sha256 tells a damaged object from a wrong key or a bad writer.
    for await (const chunk of raw as AsyncIterable<Buffer>) {
      storedHash.update(chunk);
      storedBytes += chunk.length;
      options.onProgress?.({ storedBytes, ...(total !== undefined ? { totalStoredBytes: total } : {}) });
      if (downstreamError === undefined && !input.write(chunk)) {
        await Promise.race([once(input, 'drain'), decoded]);
      }
    }
  } catch (err) {
    input.destroy();
    await decoded;
    await removeFile(options.toFile);
    throw new BackupVerifyError(name, 'read', `reading ${object} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
  input.end();
  await decoded;

  const storedSha256 = storedHash.digest('hex');
  const failWith = async (check: VerifyCheck, message: string, cause?: unknown): Promise<never> => {
    await removeFile(options.toFile);
    throw new BackupVerifyError(name, check, message, cause === undefined ? undefined : { cause });
  };
  if (sidecar) {
    if (storedBytes !== sidecar.stored.bytes || storedSha256 !== sidecar.stored.sha256) {
      await failWith('stored-sha256', `${object} is ${storedBytes} bytes with sha256 ${storedSha256}, the sidecar says ${sidecar.stored.bytes} bytes with sha256 ${sidecar.stored.sha256}: the stored object is damaged or was changed`);
    }
    passed.push('stored-sha256');
  }
  if (downstreamError !== undefined) {
    const which = zlibOrCipherCheck(downstreamError, encryption !== undefined);
    const what =
      which === 'decrypt'
        ? 'decryption failed: the data does not authenticate under its key (damaged, or changed)'
        : which === 'gzip'
        ? 'is not a whole gzip stream'
        : `writing ${options.toFile ?? 'the snapshot'} failed`;
    await failWith(which, `${object}: ${what} (${(downstreamError as Error).message})`, downstreamError);
  }
  if (encryption) passed.push('decrypt');
  passed.push('gzip');
  const facts = check.facts();
  if (sidecar) {
    if (facts.bytes !== sidecar.snapshot.bytes || facts.sha256 !== sidecar.snapshot.sha256) {
      await failWith('snapshot-sha256', `the snapshot in ${object} is ${facts.bytes} bytes with sha256 ${facts.sha256}, the sidecar says ${sidecar.snapshot.bytes} bytes with sha256 ${sidecar.snapshot.sha256}`);
    }
    passed.push('snapshot-sha256');
  }
  if (!facts.integrityHashOK) await failWith('snapshot-integrity', `the snapshot in ${object} is not intact: ${facts.problem}`);
  passed.push('snapshot-integrity');
  // No fsync of toFile: it is an intermediate (etcdctl reads it next, through the page cache, and it is
  // deleted after), and a crash restarts the step that wrote it. Flushing 1.2 GB to the volume put
  // a disk's worth of waiting on every member's restore.
  return { info, storedBytes, storedSha256, snapshotBytes: facts.bytes, snapshotSha256: facts.sha256, passed };
}

async function removeFile(path: string | undefined): Promise<void> {
  if (path) await rm(path, { force: true });
}

export interface VerifyBackupOptions extends Omit<ReadBackupOptions, 'toFile'> {
  /** Also open the database with `snapshot status`: needs a directory with room for the snapshot. */
  statusCheck?: { tool: SnapshotTool; workDir: string };
  /** Where an etcd 2 backup is unpacked to be read (default: the statusCheck's, else the system temp dir). */
  workDir?: string;
}

export interface VerifyReport extends ReadBackupResult {
  /** From `snapshot status`, when it ran: the exact revision and key count of the backup. */
  status?: SnapshotStatus;
}

/** verifyBackup for a v3 backup, verify-v2.ts's checks for an etcd 2 one (what `verify-backup` runs). */
export async function verifyAnyBackup(options: VerifyBackupOptions): Promise<VerifyReport | V2VerifyReport> {
  const info = await loadCheckedInfo(options.store, options.name);
  if (!isV2Backup(info)) return verifyBackup({ ...options, info });
  const { verifyV2Backup } = await import('./verify-v2.js');
  return verifyV2Backup({ ...options, info, workDir: options.workDir ?? options.statusCheck?.workDir ?? tmpdir() });
}

/** Every check of readBackup (a v3 backup), plus `snapshot status` on a temp copy when asked. The temp copy is always removed. */
export async function verifyBackup(options: VerifyBackupOptions): Promise<VerifyReport> {
  if (!options.statusCheck) return readBackup(options);
  const { tool, workDir } = options.statusCheck;
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const file = join(workDir, `verify-${options.name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${randomBytes(4).toString('hex')}.db`);
  try {
    const result = await readBackup({ ...options, toFile: file });
    let status: SnapshotStatus;
    try {
      status = await snapshotStatus(tool, file);
    } catch (err) {
      throw new BackupVerifyError(options.name, 'snapshot-status', `etcd cannot open the snapshot's database: ${(err as Error).message}`, { cause: err });
    }
    return { ...result, passed: [...result.passed, 'snapshot-status'], status };
  } finally {
    await rm(file, { force: true });
  }
}
