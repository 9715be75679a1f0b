// A v2 backup as a migration source. kOps' etcd-manager keeps an etcd2 backup
// as `<backup-store>/<name>/etcd.backup.gz`: a gzipped tar of the data
// directory `etcdctl backup` wrote (member/snap, member/wal), with
// `_etcd_backup.meta` beside it naming the etcd version. To read one, it is
// unpacked into a private temporary directory and read in this process
// (v2-data-dir.ts: its snapshot and the WAL after it). Where that cannot be
// done exactly, or with --backup-reader=etcd, it is served by a throwaway etcd
// (throwaway-etcd.ts) that speaks the v2 API (`--force-new-cluster`, as `etcdctl backup` output
// needs), on 127.0.0.1 with kernel-chosen ports and mutual TLS from a CA made
// for it and thrown away with it. That etcd is started through
// `setpriv --pdeathsig KILL`, so it dies with this process even on kill -9,
// and is otherwise stopped by its PID; the directory is deleted when done, or
// by the next run when this one was killed (its name carries the PID).
//
// Accepted forms of `--from`: a backup folder in a store (file://, s3://:
// `<backup-store>/<name>`, holding etcd.backup.gz), that .gz object itself, a
// local path to either, or a local etcd v2 data directory (read in place and
// never written; copied for an etcd to serve).
import { createReadStream } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ExitCode, UserError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import { openStore, StoreError, type StateStore } from '../../../shared/store/index.js';
import type { EtcdTLSFiles } from '../etcd/process.js';
import { findV2CapableEtcd } from '../versions/binaries.js';
import { parseEtcdVersion, VersionError } from '../versions/version.js';
import { extractTarGz, TarError } from './tar.js';
import { CannotReadDirectly, readV2DataDir } from './v2-data-dir.js';
import { V2Source, type V2Reader } from './v2-source.js';
import { makeThrowawayPKI, startThrowawayEtcd, type ThrowawayEtcd, type ThrowawayPKI } from './throwaway-etcd.js';

export const BACKUP_OBJECT = 'etcd.backup.gz';
export const META_OBJECT = '_etcd_backup.meta';
/** A v2 backup larger than this once unpacked is refused (etcd2 data is small; this bounds a hostile archive). */
export const MAX_UNPACKED_BYTES = 64 * 1024 * 1024 * 1024;

export interface BackupSource {
  /** What the migration reads. */
  reader: V2Reader;
  description: string;
  /** Read in this process, or served by a throwaway etcd (stopped by close()). */
  servedBy: { kind: 'process' } | { kind: 'etcd'; pid: number; version: string };
  close(): Promise<void>;
}

export interface OpenBackupOptions {
  log: Logger;
  binaryDir?: string;
  /** Where the private working directory is made (default: the OS temp dir). */
  workRoot?: string;
  storeTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** auto (the default): read in this process where that is exact, else etcd; etcd: always a throwaway etcd. */
  reader?: 'auto' | 'etcd';
}

export type Located =
  | { kind: 'tar'; open: () => Promise<Readable>; meta?: () => Promise<Buffer | undefined>; where: string }
  | { kind: 'data-dir'; path: string; where: string };

function storeError(err: unknown): never {
  if (err instanceof StoreError) {
    const code = err.kind === 'NotFound' ? ExitCode.NotFound : err.kind === 'InvalidURL' ? ExitCode.Usage : err.kind === 'AccessDenied' || err.kind === 'Unreachable' ? ExitCode.StoreUnavailable : ExitCode.Failure;
    throw new UserError(`--from ${err.message}`, code);
  }
  throw err;
}

async function locateLocal(path: string): Promise<Located> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new UserError(`--from ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`, ExitCode.NotFound);
  }
  if (info.isFile()) return { kind: 'tar', open: async () => createReadStream(path), where: path };
  if (!info.isDirectory()) throw new UserError(`--from ${path}: neither a file nor a directory`, ExitCode.Usage);
  const backup = join(path, BACKUP_OBJECT);
  if (await stat(backup).then((s) => s.isFile(), () => false)) {
    return { kind: 'tar', open: async () => createReadStream(backup), meta: () => readFile(join(path, META_OBJECT)).catch(() => undefined), where: path };
  }
  if (await stat(join(path, 'member', 'wal')).then((s) => s.isDirectory(), () => false)) return { kind: 'data-dir', path, where: path };
  throw new UserError(`--from ${path}: holds neither ${BACKUP_OBJECT} (a kOps backup folder) nor member/wal (an etcd data directory)`, ExitCode.NotFound);
}

function locateInStore(url: string, options: OpenBackupOptions): Located {
  let store: StateStore;
  let object: string;
  let metaPath: string | undefined;
  try {
    if (/\.(gz|tgz)$/.test(url)) {
      const cut = url.lastIndexOf('/');
      store = openStore(url.slice(0, cut), { env: options.env, timeoutMs: options.storeTimeoutMs });
      object = url.slice(cut + 1);
      metaPath = object === BACKUP_OBJECT ? META_OBJECT : undefined;
    } else {
      store = openStore(url, { env: options.env, timeoutMs: options.storeTimeoutMs });
      object = BACKUP_OBJECT;
      metaPath = META_OBJECT;
    }
  } catch (err) {
    return storeError(err);
  }
  return {
    kind: 'tar',
    where: url,
    open: () => store.openReadStream(object).catch(storeError),
    meta: metaPath ? () => store.readIfExists(metaPath).catch(storeError) : undefined,
  };
}

/** Where `--from` points, without reading it yet. */
export async function locateBackup(from: string, options: OpenBackupOptions): Promise<Located> {
  if (/^file:\/\//i.test(from)) return locateLocal(fileURLToPath(from));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(from)) return locateInStore(from, options);
  return locateLocal(resolve(from));
}

/** kOps' meta says which etcd wrote the backup: a v3 one is a snapshot, not for this command. */
function checkMeta(data: Buffer | undefined, where: string): void {
  if (!data) return;
  let version: unknown;
  try {
    version = (JSON.parse(data.toString('utf8')) as { etcdVersion?: unknown }).etcdVersion;
  } catch {
    throw new UserError(`--from ${where}: ${META_OBJECT} is not JSON`, ExitCode.Failure);
  }
  if (typeof version !== 'string') return;
  let parsed;
  try {
    parsed = parseEtcdVersion(version);
  } catch (err) {
    throw new UserError(`--from ${where}: ${META_OBJECT}: ${(err as Error).message}`, ExitCode.Failure);
  }
  if (parsed.major !== 2) throw new UserError(`--from ${where}: a backup of etcd ${version} (a v3 snapshot); this command reads etcd 2 backups, and a v3 backup is restored with restore-backup`, ExitCode.Usage);
}

/** Working directories are named <prefix><pid>-<random>: the pid says whose it is. */
export const WORK_PREFIX = 'etcd-manager-migrate-v2-';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes the working directories of earlier runs that died without cleaning up
 * (kill -9): each holds a full copy of the cluster's data and a private key.
 * A directory whose process still runs (or whose pid was reused) is left alone.
 */
export async function removeStaleWorkDirs(root: string, log: Logger): Promise<void> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^${WORK_PREFIX}(\\d+)-[^/]+$`).exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    await rm(join(root, name), { recursive: true, force: true });
    log.info('removed the working directory of a run that died', { event: 'migrate-v2.stale-removed', path: join(root, name), pid: Number(m[1]) });
  }
}


/** Unpacks (or copies) the backup and serves it with a throwaway etcd; close() stops it and deletes everything. */
export async function openV2Backup(from: string, options: OpenBackupOptions): Promise<BackupSource> {
  return openLocatedBackup(await locateBackup(from, options), options);
}

/** The same, for a backup already located (so a missing one is reported before anything else is asked). */
export async function openLocatedBackup(located: Located, options: OpenBackupOptions): Promise<BackupSource> {
  if (located.kind === 'tar' && located.meta) checkMeta(await located.meta(), located.where);
  return serveBackup(located, options);
}

async function serveBackup(located: Located, options: OpenBackupOptions): Promise<BackupSource> {
  // A data directory is read where it is: never written, so no copy.
  if (located.kind === 'data-dir' && options.reader !== 'etcd') {
    const read = await readInProcess(located.path, located.where, options.log);
    if (read) return { ...read, close: async () => undefined };
  }
  const workRoot = options.workRoot ?? tmpdir();
  await removeStaleWorkDirs(workRoot, options.log);
  const work = await mkdtemp(join(workRoot, `${WORK_PREFIX}${process.pid}-`));
  let etcd: (ThrowawayEtcd & { tls: EtcdTLSFiles; version: string }) | undefined;
  // The throwaway etcd's keys, made while the data is copied or unpacked where an etcd will surely serve it;
  // settled before anything is deleted, so no key is written after.
  let pkiMade: Promise<ThrowawayPKI> | undefined;
  const pki = () => {
    pkiMade ??= makeThrowawayPKI(join(work, 'pki'), 'migrate-v2-source');
    pkiMade.catch(() => undefined);
    return pkiMade;
  };
  if (located.kind === 'data-dir' || options.reader === 'etcd') pki();
  const close = async () => {
    await pkiMade?.catch(() => undefined);
    await etcd?.stop();
    await rm(work, { recursive: true, force: true });
  };
  try {
    const dataDir = join(work, 'data');
    if (located.kind === 'tar') {
      try {
        const result = await extractTarGz(await located.open(), dataDir, MAX_UNPACKED_BYTES);
        options.log.info('backup unpacked', { event: 'migrate-v2.backup-unpacked', from: located.where, files: result.files, bytes: result.bytes });
      } catch (err) {
        if (err instanceof TarError) throw new UserError(`--from ${located.where}: ${err.message}`, ExitCode.Failure);
        throw err;
      }
      if (!(await stat(join(dataDir, 'member', 'wal')).then((s) => s.isDirectory(), () => false))) {
        throw new UserError(`--from ${located.where}: no member/wal inside: not an etcd v2 backup`, ExitCode.Failure);
      }
      if (options.reader !== 'etcd') {
        const read = await readInProcess(dataDir, located.where, options.log);
        if (read) return { ...read, close };
      }
    } else {
      // etcd writes to the directory it serves (its WAL, a new snapshot): it serves a copy.
      await cp(located.path, dataDir, { recursive: true });
    }
    etcd = await serveWithEtcd(dataDir, located.where, await pki(), options);
    const served = etcd;
    return { reader: await V2Source.open(served.url, served.tls), description: located.where, servedBy: { kind: 'etcd', pid: served.pid, version: served.version }, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The data directory read in this process (v2-data-dir.ts), or undefined when it cannot be read exactly (logged: etcd serves it then). */
async function readInProcess(dataDir: string, where: string, log: Logger): Promise<Omit<BackupSource, 'close'> | undefined> {
  const started = Date.now();
  try {
    // The snapshot's JSON costs about 2.5 times its size once parsed: leave room for the migration's own buffers.
    const read = await readV2DataDir(dataDir, { maxSnapshotBytes: Math.floor(getHeapStatistics().heap_size_limit / 6) });
    log.info('read the v2 data in this process', {
      event: 'migrate-v2.backup-read', from: where, snapshot: read.snapshotFile ?? null, snapshotIndex: String(read.snapshotIndex),
      entriesApplied: read.entriesApplied, clusterId: read.clusterId ?? null, ms: Date.now() - started,
    });
    return { reader: read.store, description: where, servedBy: { kind: 'process' } };
  } catch (err) {
    if (!(err instanceof CannotReadDirectly)) throw err;
    log.info('the v2 data cannot be read in this process exactly; serving it with etcd', { event: 'migrate-v2.read-fallback', from: where, reason: err.message });
    return undefined;
  }
}

/** A throwaway etcd (v2 API on) serving `dataDir` with the PKI made for it. */
async function serveWithEtcd(dataDir: string, where: string, pki: ThrowawayPKI, options: OpenBackupOptions): Promise<ThrowawayEtcd & { tls: EtcdTLSFiles; version: string }> {
  let binaries;
  try {
    binaries = await findV2CapableEtcd(options.binaryDir);
  } catch (err) {
    if (err instanceof VersionError) throw new UserError(`reading a v2 backup needs ${err.message.replace(/^no /, 'an ')}`, ExitCode.NotFound);
    throw err;
  }
  // Store backends that keep no empty directories lose member/snap; etcd needs it.
  await mkdir(join(dataDir, 'member', 'snap'), { recursive: true, mode: 0o700 });
  const version = parseEtcdVersion(binaries.version);
  const etcd = await startThrowawayEtcd({
    etcd: binaries.etcd, version: binaries.version, name: 'migrate-v2-source', dataDir, pki, serving: where, log: options.log, env: options.env,
    // `etcdctl backup` output is a member without its cluster: it starts only as a new one-member cluster.
    extraArgs: ['--force-new-cluster', ...(version.major >= 3 ? ['--enable-v2=true'] : [])],
    probe: async (url) => {
      const probe = await V2Source.open(url, pki.client, 5_000);
      try {
        await probe.get('/', false);
      } finally {
        probe.close();
      }
    },
  });
  options.log.info('serving the v2 backup', { event: 'migrate-v2.backup-served', pid: etcd.pid, etcd: binaries.etcd, version: binaries.version, url: etcd.url });
  return { ...etcd, tls: pki.client, version: binaries.version };
}

/** How a backup is named in the migration's record: a store URL as given, a local path made absolute. */
export async function describeBackup(from: string): Promise<string> {
  if (/^file:\/\//i.test(from)) return fileURLToPath(from);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(from)) return from.replace(/\/+$/, '');
  return resolve(from);
}

/** Whether `--from` names a live cluster (http(s)://) rather than a backup. */
export function isLiveSource(from: string): boolean {
  return /^https?:\/\//i.test(from);
}

