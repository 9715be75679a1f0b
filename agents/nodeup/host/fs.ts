// File helpers that every task uses: paths under --root, reads that tolerate
// absence, and atomic writes (temp file in the same folder + rename) so a
// crash never leaves half a file for the next boot to trip over.
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** `path` (absolute, as on the node) below `root`. */
export function under(root: string, path: string): string {
  return root === '/' ? path : join(root, path);
}

export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function lstatIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.nodeup-${randomBytes(4).toString('hex')}`);
}

export interface Ownership {
  mode: number;
  uid: number;
  gid: number;
}

/** Writes data to path atomically with the given mode and owner; parents are made 0755. */
export async function writeFileAtomic(path: string, data: Buffer | string, own: Ownership): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const temp = tempPathFor(path);
  try {
    // The temp file gets the final mode at creation: a secret is never world-readable, even briefly.
    await writeFile(temp, data, { mode: own.mode, flag: 'wx' });
    await chmod(temp, own.mode); // umask may have cut the mode above
    await chown(temp, own.uid, own.gid);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
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
export async function lookupUid(root: string, user: string): Promise<number | undefined> {
  if (/^\d+$/.test(user)) return Number(user);
  if (user === 'root') return 0;
  return idFromDatabase((await readIfExists(under(root, '/etc/passwd')))?.toString('utf8'), user, 2);
}

export async function lookupGid(root: string, group: string): Promise<number | undefined> {
  if (/^\d+$/.test(group)) return Number(group);
  if (group === 'root') return 0;
  return idFromDatabase((await readIfExists(under(root, '/etc/group')))?.toString('utf8'), group, 2);
}
