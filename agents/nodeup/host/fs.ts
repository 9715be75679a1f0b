// Every path nodeup touches goes through here: a node path ("/etc/hosts", as
// on the machine) becomes a host path below --root, resolved component by
// component the way the kernel would, except that it can never leave the root.
//
// Under a root other than /:
// - a relative symlink is followed while it stays inside the root (Debian's
//   /etc/os-release -> ../usr/lib/os-release works);
// - a relative symlink whose `..` climbs above the root is refused, even if it
//   would come back down: on the booted machine it would mean something else;
// - an absolute symlink is refused: nodeup cannot tell whether it was meant
//   for the booted machine or for the host it runs on (openat2's
//   RESOLVE_BENEATH makes the same choice). Make such links relative.
// Each refusal names the link, its target and the root. A symlink as the last
// component of a file nodeup replaces is not followed: the rename replaces
// the link itself, and Find never reads through a link that leads out.
// Under / (a real machine) the walk keeps the kernel's own rules (an absolute
// link restarts at /, `..` stops there): links are the operator's business
// there, and nothing is outside /.
//
// Writes are atomic (temp file created with O_EXCL in the resolved folder,
// then renamed within it), and chmod/chown act on a handle opened with
// O_NOFOLLOW, so a link swapped in after resolution is never written through.
// What remains is the window between resolving a folder and using it, which
// only a process already writing inside the root can use.
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readlink, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ExitCode, UserError } from '../../../shared/errors.js';

/**
 * A path under --root that nodeup must not use: a symlink out of the root, or
 * a path that is not clean. Invalid input (exit 3) before the run; inside a
 * task, a permanent failure of that task.
 */
export class RootPathError extends UserError {
  constructor(message: string) {
    super(message, ExitCode.InvalidSpec);
    this.name = 'RootPathError';
  }
}

/** Linux's own limit on symlinks followed in one lookup. */
const MAX_LINKS = 40;

/** The components of a clean absolute node path; `..`, `.` and relative paths are refused. */
export function nodePathComponents(path: string): string[] {
  if (!path.startsWith('/')) throw new RootPathError(`path ${JSON.stringify(path)} is not absolute`);
  const parts = path.split('/').filter((part) => part !== '');
  const bad = parts.find((part) => part === '.' || part === '..' || part.includes('\0'));
  if (bad !== undefined) throw new RootPathError(`path ${JSON.stringify(path)} has a ${JSON.stringify(bad)} component`);
  return parts;
}

interface Pending {
  name: string;
  /** The link whose target this component came from (for the error message). */
  from?: { link: string; target: string };
}

export interface Ownership {
  mode: number;
  uid: number;
  gid: number;
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** Opens without following a final symlink and without blocking on a FIFO; undefined when absent or a link. */
async function openNoFollow(path: string, flags: number): Promise<FileHandle | undefined> {
  try {
    return await open(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    throw err;
  }
}

/** The bytes of a regular file, read without following a final link; undefined when absent or (unless `strict`) not a regular file. */
async function readRegular(path: string, strict = false): Promise<Buffer | undefined> {
  const handle = await openNoFollow(path, constants.O_RDONLY);
  if (!handle) {
    if (strict && (await lstatOrUndefined(path))) throw new UserError(`${path} is not a regular file`);
    return undefined;
  }
  try {
    if ((await handle.stat()).isFile()) return await handle.readFile();
    if (strict) throw new UserError(`${path} is not a regular file`);
    return undefined;
  } finally {
    await handle.close();
  }
}

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.nodeup-${randomBytes(4).toString('hex')}`);
}

/** The machine nodeup configures, as seen from where it runs. */
export class NodeRoot {
  /** `root`: absolute; '/' on a real machine. */
  constructor(readonly root: string) {}

  private hostPath(parts: readonly string[]): string {
    return parts.length === 0 ? this.root : join(this.root, ...parts);
  }

  /**
   * The host path of `nodePath`, every folder on the way resolved inside the
   * root. The last component is followed when `followLast` (or the path ends
   * in '/', as POSIX has it), else left as it is. With `createMode`, missing
   * folders are made with that mode as the walk meets them.
   */
  private async walk(nodePath: string, followLast: boolean, createMode?: number): Promise<string> {
    const wanted = nodePathComponents(nodePath);
    const follow = followLast || nodePath.endsWith('/');
    // Under / the same walk runs with the kernel's rules: absolute links restart at /, and `..` stops there.
    const confined = this.root !== '/';
    const done: string[] = [];
    const todo: Pending[] = wanted.map((name) => ({ name }));
    let links = 0;
    /** Length of `done` when the walk first met a missing component. */
    let missingFrom: number | undefined;
    while (todo.length > 0) {
      const { name, from } = todo.shift() as Pending;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        // Only a link's target brings `..` here: clean node paths have none.
        if (done.length === 0) {
          if (!confined) continue;
          throw new RootPathError(`${from?.link ?? this.root} is a symlink to ${from?.target ?? '..'}, which leads out of --root ${this.root}`);
        }
        done.pop();
        if (missingFrom !== undefined && done.length <= missingFrom) missingFrom = undefined;
        continue;
      }
      const isLast = todo.length === 0;
      const host = this.hostPath([...done, name]);
      if (missingFrom !== undefined || (isLast && !follow)) {
        done.push(name);
        continue;
      }
      let st = await lstatOrUndefined(host);
      if (!st && createMode !== undefined) {
        try {
          await mkdir(host, { mode: createMode });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        st = await lstat(host); // what is there now, made by us or by someone faster
      }
      if (!st) {
        // Nothing below a missing folder exists yet: the rest is taken as written.
        missingFrom = done.length;
        done.push(name);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new RootPathError(`${host}: too many levels of symbolic links`);
        const target = await readlink(host);
        if (target.startsWith('/')) {
          if (confined) {
            throw new RootPathError(`${host} is a symlink to ${target}, an absolute path; under --root ${this.root} nodeup follows only relative links`);
          }
          done.length = 0;
        }
        const origin = { link: host, target };
        todo.unshift(...target.split('/').map((part) => ({ name: part, from: origin })));
        continue;
      }
      if (createMode !== undefined && !st.isDirectory()) throw new UserError(`${host} exists and is not a directory`);
      done.push(name);
    }
    return this.hostPath(done);
  }

  /** Host path of an input nodeup reads (os-release, passwd): every link followed, inside the root. */
  resolve(nodePath: string): Promise<string> {
    return this.walk(nodePath, true);
  }

  /** Host path of an entry nodeup creates or replaces: its folders resolved inside the root, the entry itself not followed. */
  entry(nodePath: string): Promise<string> {
    return this.walk(nodePath, false);
  }

  /** Makes the folder and every missing one above it (inside the root) and returns its host path. */
  mkdirs(nodePath: string, mode = 0o755): Promise<string> {
    return this.walk(nodePath, true, mode);
  }

  /** Host path for (re)placing an entry: its folders made and resolved inside the root; the entry itself not followed. */
  async placeFor(nodePath: string): Promise<string> {
    const parts = nodePathComponents(nodePath);
    if (parts.length === 0) throw new RootPathError('cannot replace the root itself');
    const folder = await this.mkdirs(`/${parts.slice(0, -1).join('/')}`);
    return join(folder, parts[parts.length - 1]);
  }

  /**
   * Checks, before anything runs, that paths resolve inside the root. A path
   * ending in '/' is a folder (its last link is followed); any other is an
   * entry nodeup replaces (only its folders are). Throws the first problem.
   */
  async check(nodePaths: Iterable<string>): Promise<void> {
    for (const path of new Set(nodePaths)) {
      try {
        await this.walk(path, false);
      } catch (err) {
        if (err instanceof RootPathError) throw new RootPathError(`${path.replace(/(.)\/$/, '$1')}: ${err.message}`);
        throw err;
      }
    }
  }

  /** Contents of an input (os-release, passwd): links followed inside the root; undefined when absent. */
  async read(nodePath: string): Promise<Buffer | undefined> {
    return readRegular(await this.resolve(nodePath), true);
  }

  /**
   * What the node reads today at a file nodeup owns (and may replace): a link
   * there is read through only while it stays inside the root; one that leads
   * out reads as absent (the write will replace the link). Undefined when
   * absent or not a regular file.
   */
  async readCurrent(nodePath: string): Promise<Buffer | undefined> {
    const path = await this.entry(nodePath);
    const st = await lstatOrUndefined(path);
    if (!st) return undefined;
    if (!st.isSymbolicLink()) return readRegular(path);
    try {
      return await readRegular(await this.resolve(nodePath));
    } catch (err) {
      if (err instanceof RootPathError) return undefined;
      throw err;
    }
  }

  /** lstat of the entry itself (a final link is not followed); undefined when absent. */
  async lstat(nodePath: string): Promise<Stats | undefined> {
    return lstatOrUndefined(await this.entry(nodePath));
  }

  /** Writes data at nodePath atomically with the given mode and owner; missing folders are made 0755. */
  async writeFileAtomic(nodePath: string, data: Buffer | string, own: Ownership): Promise<void> {
    const path = await this.placeFor(nodePath);
    const temp = tempPathFor(path);
    try {
      // Created exclusively with the final mode: never written through a planted link, and a secret is never world-readable, even briefly.
      const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, own.mode);
      try {
        await handle.writeFile(data);
        await handle.chmod(own.mode); // umask may have cut the mode above
        await handle.chown(own.uid, own.gid);
      } finally {
        await handle.close();
      }
      await rename(temp, path); // replaces a link at path, never its target
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /**
   * chmod and (when given) chown. `follow`: of what a final link leads to
   * (inside the root), as for a folder; else of the entry itself, refused when
   * it is a symlink.
   */
  async setOwnership(nodePath: string, mode: number, owner?: { uid: number; gid: number }, follow = false): Promise<void> {
    const path = follow ? await this.resolve(nodePath) : await this.entry(nodePath);
    const handle = await openNoFollow(path, constants.O_RDONLY);
    if (!handle) {
      if (await lstatOrUndefined(path)) throw new UserError(`${path} is a symlink; refusing to change the mode or owner of its target`);
      throw new UserError(`${path} does not exist`);
    }
    try {
      await handle.chmod(mode);
      if (owner) await handle.chown(owner.uid, owner.gid);
    } finally {
      await handle.close();
    }
  }
}

/** Octal mode as text, e.g. 0644. */
export function formatMode(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}

function idFromDatabase(text: string | undefined, name: string, field: number): number | undefined {
  for (const line of (text ?? '').split('\n')) {
    const parts = line.split(':');
    if (parts[0] === name && parts[field] !== undefined) return Number(parts[field]);
  }
  return undefined;
}

/** uid of a user name in <root>/etc/passwd (numbers pass through); undefined when unknown. */
export async function lookupUid(fs: NodeRoot, user: string): Promise<number | undefined> {
  if (/^\d+$/.test(user)) return Number(user);
  if (user === 'root') return 0;
  return idFromDatabase((await fs.read('/etc/passwd'))?.toString('utf8'), user, 2);
}

export async function lookupGid(fs: NodeRoot, group: string): Promise<number | undefined> {
  if (/^\d+$/.test(group)) return Number(group);
  if (group === 'root') return 0;
  return idFromDatabase((await fs.read('/etc/group'))?.toString('utf8'), group, 2);
}

/** lstat of a host path; undefined when absent. For paths nodeup already resolved (the asset cache). */
export async function lstatIfExists(path: string): Promise<Stats | undefined> {
  return lstatOrUndefined(path);
}
