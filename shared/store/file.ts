// file:// state store. A write goes to a temp file in the same directory,
// is fsynced, renamed over the target and the directory fsynced: after a crash
// the path holds the old content or the new, never a mix.
//
// Conditional operations: createIfAbsent links a complete temp file into place
// (link(2) fails with EEXIST when the path exists, atomically, also on NFS);
// replaceIfVersion and deleteIfVersion compare and act while holding a guard
// file beside the object (created with O_EXCL), so two of them never
// interleave, and a replacement is a rename over the object, so the path is
// never absent or half written while they run. A guard left by a crashed
// process is broken once it is GUARD_STALE_MS old.
import { randomBytes } from 'node:crypto';
import { statSync, type Dirent } from 'node:fs';
import { link, mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { contentVersion } from './content-version.js';
import { checkObjectPath, comparePaths, guardNameFor, isTempName, joinPath, normalizePrefix, tempNameFor } from './paths.js';
import { StoreError, type ConditionalRead, type ListedObject, type StateStore, type VersionedObject, type WriteOptions } from './types.js';

const DEFAULT_FILE_MODE = 0o644;
/** A guard is held for one read, compare and rename (milliseconds); one this old was left by a crash. */
const GUARD_STALE_MS = 10_000;
/** How long a conditional operation waits for another one's guard before it gives up. */
const GUARD_WAIT_MS = 30_000;
/** Errors of file systems without hard links: createIfAbsent falls back to O_EXCL. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function toStoreError(err: unknown, url: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = errnoCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EISDIR':
      return new StoreError('NotFound', url, 'not found', { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new StoreError('AccessDenied', url, `permission denied (${detail})`, { cause: err });
    default:
      return new StoreError('Other', url, detail, { cause: err });
  }
}

function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/** Turns `file:///abs/dir` or `/abs/dir` into an absolute directory path. */
export function fileStoreDir(url: string): string {
  let dir: string;
  if (url.startsWith('file:')) {
    // `file:s1` and `file:/s1` would quietly mean /s1: only the unambiguous form is taken.
    if (!/^file:\/\/(localhost)?\//.test(url)) {
      throw new StoreError('InvalidURL', url, 'not a file state store URL (want file:///absolute/dir, three slashes)');
    }
    try {
      dir = fileURLToPath(url);
    } catch (err) {
      throw new StoreError('InvalidURL', url, `not a local file URL (want file:///absolute/dir): ${(err as Error).message}`);
    }
  } else if (isAbsolute(url)) {
    dir = url;
  } else {
    throw new StoreError('InvalidURL', url, 'a file state store needs an absolute path');
  }
  return resolve(dir);
}

/** A store directory that is a regular file would list as empty ("no clusters"): refuse it by name. */
export function checkFileStoreDir(url: string, dir: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch {
    return; // missing (created on first write) or unreadable (reported by the operation)
  }
  if (!isDirectory) throw new StoreError('InvalidURL', url, 'not a directory (a file:// state store names a directory)');
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class FileStore implements StateStore {
  readonly baseURL: string;
  readonly conditionalWrites = 'atomic';
  private readonly dir: string;
  /** delete prunes empty folders up to here: the directory the user named, even in a sub store. */
  private readonly pruneRoot: string;

  constructor(url: string, pruneRoot?: string) {
    this.dir = fileStoreDir(url);
    this.pruneRoot = pruneRoot ?? this.dir;
    this.baseURL = pathToFileURL(this.dir).href.replace(/\/$/, '');
  }

  urlOf(path: string): string {
    return path === '' ? this.baseURL : `${this.baseURL}/${path.split('/').map(encodeURIComponent).join('/')}`;
  }

  sub(prefix: string): StateStore {
    const folder = normalizePrefix(this.baseURL, prefix);
    return new FileStore(join(this.dir, folder), this.pruneRoot);
  }

  private fileOf(path: string): string {
    return join(this.dir, checkObjectPath(this.baseURL, path));
  }

  async read(path: string): Promise<Buffer> {
    const file = this.fileOf(path);
    try {
      const handle = await open(file, 'r');
      try {
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      throw toStoreError(err, this.urlOf(path));
    }
  }

  async readIfExists(path: string): Promise<Buffer | undefined> {
    try {
      return await this.read(path);
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'NotFound') return undefined;
      throw err;
    }
  }

  async exists(path: string): Promise<boolean> {
    const file = this.fileOf(path);
    try {
      return (await stat(file)).isFile();
    } catch (err) {
      if (isMissing(err)) return false;
      throw toStoreError(err, this.urlOf(path));
    }
  }

  async write(path: string, data: Buffer | string, options?: WriteOptions): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    await this.atomicWrite(path, options, async (handle) => {
      await handle.writeFile(bytes);
      return bytes.length;
    });
  }

  async writeStream(path: string, source: Readable, options?: WriteOptions): Promise<number> {
    return this.atomicWrite(path, options, async (handle) => {
      let written = 0;
      for await (const chunk of source) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
        await handle.writeFile(bytes); // unlike write(), loops until every byte is written
        written += bytes.length;
      }
      return written;
    });
  }

  /** Fills a fresh temp file via fill, then renames it over path. */
  private async atomicWrite(
    path: string,
    options: WriteOptions | undefined,
    fill: (handle: FileHandle) => Promise<number>,
  ): Promise<number> {
    const file = this.fileOf(path);
    const url = this.urlOf(path);
    const folder = dirname(file);
    const temp = this.tempFor(file);
    try {
      const written = await this.writeTemp(folder, temp, options?.mode ?? (await this.modeToKeep(file)), fill);
      await rename(temp, file);
      await syncDir(folder);
      return written;
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw toStoreError(err, url);
    }
  }

  private tempFor(file: string): string {
    const folder = dirname(file);
    return join(folder, tempNameFor(file.slice(folder.length + 1), randomBytes(8).toString('hex')));
  }

  /** Creates temp with exactly mode, fills it and syncs it to disk. */
  private async writeTemp(folder: string, temp: string, mode: number, fill: (handle: FileHandle) => Promise<number>): Promise<number> {
    const handle = await this.createTemp(folder, temp, mode);
    try {
      // The umask may have narrowed the mode at open; set it exactly, still before any data is in the file.
      await handle.chmod(mode);
      const written = await fill(handle);
      await handle.sync();
      return written;
    } finally {
      await handle.close();
    }
  }

  /** Replacing a file without a mode keeps its mode, so rewriting a private key never widens it. */
  private async modeToKeep(file: string): Promise<number> {
    try {
      return (await stat(file)).mode & 0o7777;
    } catch (err) {
      if (isMissing(err)) return DEFAULT_FILE_MODE;
      throw err;
    }
  }

  private async createTemp(folder: string, temp: string, mode: number): Promise<FileHandle> {
    // A concurrent delete may prune the folder between mkdir and open: retry a few times.
    for (let attempt = 1; ; attempt++) {
      await mkdir(folder, { recursive: true });
      try {
        return await open(temp, 'wx', mode);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
  }

  async readVersioned(path: string): Promise<VersionedObject | undefined> {
    const data = await this.readIfExists(path);
    return data === undefined ? undefined : { data, version: contentVersion(data) };
  }

  /** The version is a hash of the bytes, so the file is read either way: locally that is the cheap part. */
  async readIfChanged(path: string, version: string | undefined): Promise<ConditionalRead> {
    const object = await this.readVersioned(path);
    if (object === undefined) return { status: 'missing' };
    return object.version === version ? { status: 'unchanged' } : { status: 'changed', object };
  }

  async createIfAbsent(path: string, data: Buffer | string, options?: WriteOptions): Promise<string | undefined> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const file = this.fileOf(path);
    const folder = dirname(file);
    const temp = this.tempFor(file);
    try {
      await this.writeTemp(folder, temp, options?.mode ?? DEFAULT_FILE_MODE, async (handle) => {
        await handle.writeFile(bytes);
        return bytes.length;
      });
      try {
        // The object appears whole, with its content, or not at all.
        await link(temp, file);
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EEXIST') return undefined;
        if (code === undefined || !NO_HARD_LINKS.has(code)) throw err;
        if (!(await this.createExclusive(file, bytes, options?.mode ?? DEFAULT_FILE_MODE))) return undefined;
      }
      await syncDir(folder);
      return contentVersion(bytes);
    } catch (err) {
      throw toStoreError(err, this.urlOf(path));
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  /** For file systems without hard links: O_EXCL, then the bytes (a reader may see the file short-lived empty). */
  private async createExclusive(file: string, bytes: Buffer, mode: number): Promise<boolean> {
    let handle: FileHandle;
    try {
      handle = await open(file, 'wx', mode);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return false;
      throw err;
    }
    try {
      await handle.chmod(mode);
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return true;
  }

  async replaceIfVersion(path: string, data: Buffer | string, version: string, options?: WriteOptions): Promise<string | undefined> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    return this.withGuard(path, async () => {
      const current = await this.readIfExists(path);
      if (current === undefined || contentVersion(current) !== version) return undefined;
      await this.write(path, bytes, options); // a rename over the object: never absent, never half
      return contentVersion(bytes);
    });
  }

  async deleteIfVersion(path: string, version: string): Promise<boolean> {
    const file = this.fileOf(path);
    const deleted = await this.withGuard(path, async () => {
      const current = await this.readIfExists(path);
      if (current === undefined || contentVersion(current) !== version) return false;
      try {
        await unlink(file);
      } catch (err) {
        if (isMissing(err)) return false;
        throw toStoreError(err, this.urlOf(path));
      }
      return true;
    });
    if (deleted) await this.pruneEmptyFolders(dirname(file)); // the guard is gone now, so the folder may be empty
    return deleted;
  }

  /** Runs fn while holding path's guard file, so conditional operations on one object never interleave. */
  private async withGuard<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const file = this.fileOf(path);
    const folder = dirname(file);
    const guard = join(folder, guardNameFor(basename(file)));
    const url = this.urlOf(path);
    const deadline = Date.now() + GUARD_WAIT_MS;
    for (;;) {
      try {
        await mkdir(folder, { recursive: true });
        await (await open(guard, 'wx', 0o600)).close();
        break;
      } catch (err) {
        const code = errnoCode(err);
        // ENOENT: a concurrent delete pruned the folder between mkdir and open; go again.
        if (code !== 'EEXIST' && code !== 'ENOENT') throw toStoreError(err, url);
      }
      await breakStaleGuard(guard);
      if (Date.now() > deadline) {
        throw new StoreError('Other', url, `another writer has held ${guard} for over ${GUARD_WAIT_MS / 1000} s; if no mooring is running, delete that file`);
      }
      await sleep(5 + Math.floor(Math.random() * 20));
    }
    try {
      return await fn();
    } finally {
      await unlink(guard).catch(() => undefined);
    }
  }

  async list(prefix?: string): Promise<string[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const found: string[] = [];
    try {
      await this.walk(folder, found);
    } catch (err) {
      throw toStoreError(err, this.urlOf(folder));
    }
    return found.sort(comparePaths);
  }

  async listChildren(prefix?: string): Promise<string[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const names: string[] = [];
    try {
      for (const entry of await this.entriesOf(folder)) {
        if (isTempName(entry.name)) continue;
        // Folders left with no objects (say, only a crashed writer's temp file) do not exist on S3 either.
        if (entry.isFile() || (entry.isDirectory() && (await this.holdsObject(joinPath(folder, entry.name))))) {
          names.push(entry.name);
        }
      }
    } catch (err) {
      throw toStoreError(err, this.urlOf(folder));
    }
    return names.sort(comparePaths);
  }

  async listObjects(prefix?: string): Promise<ListedObject[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const found: ListedObject[] = [];
    try {
      for (const entry of await this.entriesOf(folder)) {
        if (isTempName(entry.name) || !entry.isFile()) continue;
        const path = joinPath(folder, entry.name);
        try {
          const info = await stat(join(this.dir, path));
          found.push({ name: entry.name, path, modified: info.mtime, size: info.size });
        } catch (err) {
          if (!isMissing(err)) throw err; // deleted since readdir: not listed, as on S3
        }
      }
    } catch (err) {
      throw toStoreError(err, this.urlOf(folder));
    }
    return found.sort((a, b) => comparePaths(a.name, b.name));
  }

  private async holdsObject(folder: string): Promise<boolean> {
    for (const entry of await this.entriesOf(folder)) {
      if (isTempName(entry.name)) continue;
      if (entry.isFile() || (entry.isDirectory() && (await this.holdsObject(joinPath(folder, entry.name))))) return true;
    }
    return false;
  }

  /** A folder's entries; none when it does not exist. */
  private async entriesOf(folder: string): Promise<Dirent[]> {
    try {
      return await readdir(join(this.dir, folder), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
  }

  private async walk(folder: string, found: string[]): Promise<void> {
    for (const entry of await this.entriesOf(folder)) {
      if (isTempName(entry.name)) continue;
      const path = joinPath(folder, entry.name);
      if (entry.isDirectory()) await this.walk(path, found);
      else if (entry.isFile()) found.push(path);
    }
  }

  async delete(path: string): Promise<void> {
    const file = this.fileOf(path);
    try {
      await unlink(file);
    } catch (err) {
      if (isMissing(err)) return;
      throw toStoreError(err, this.urlOf(path));
    }
    await this.pruneEmptyFolders(dirname(file));
  }

  private async pruneEmptyFolders(folder: string): Promise<void> {
    while (folder !== this.pruneRoot && isInside(this.pruneRoot, folder)) {
      try {
        await rmdir(folder);
      } catch {
        return; // not empty (or already gone): the folders above are not empty either
      }
      folder = dirname(folder);
    }
  }

  async openReadStream(path: string): Promise<Readable> {
    const file = this.fileOf(path);
    let handle: FileHandle | undefined;
    try {
      handle = await open(file, 'r');
      // Opening a folder succeeds on Linux; it is still not an object.
      if (!(await handle.stat()).isFile()) throw new StoreError('NotFound', this.urlOf(path), 'not found');
      return handle.createReadStream(); // closes the handle when done
    } catch (err) {
      await handle?.close();
      throw toStoreError(err, this.urlOf(path));
    }
  }
}

/**
 * Removes a guard left by a crashed process. It is moved aside first (only one of
 * several breakers can move it) and removed only if what was moved is the file
 * judged stale; a fresh guard moved by mistake is put back.
 */
async function breakStaleGuard(guard: string): Promise<void> {
  let judged;
  try {
    judged = await stat(guard);
  } catch {
    return;
  }
  if (Date.now() - judged.mtimeMs < GUARD_STALE_MS) return;
  const aside = join(dirname(guard), tempNameFor(basename(guard), randomBytes(8).toString('hex')));
  try {
    await rename(guard, aside);
  } catch {
    return; // another breaker moved it, or its owner finished
  }
  const moved = await stat(aside).catch(() => undefined);
  if (moved && moved.ino !== judged.ino) await link(aside, guard).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
