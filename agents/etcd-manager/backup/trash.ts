// The trash on a member's volume: data a restore (or a removal) replaced is
// moved here, never deleted on the spot, and emptied once older than a
// retention period (kOps' data-trashcan is never emptied). The time an entry
// was trashed is in its name, `<YYYYMMDDTHHMMSSZ>-<original name>`, because a
// rename keeps the folder's own mtime; entries whose name carries no such time
// were not put there by us and are left alone.
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { syncDir } from './restore.js';

export interface TrashPolicy {
  /** Entries trashed longer ago than this are deleted. */
  keepForMs: number;
}

/** kOps' folder name on the volume. */
export const TRASH_DIR = 'data-trashcan';

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-(.+)$/;

export function trashName(original: string, nowMs: number): string {
  const stamp = new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return `${stamp}-${original}`;
}

/** When an entry was trashed, from its name; undefined for names not ours. */
export function trashedAt(entry: string): Date | undefined {
  const m = STAMP.exec(entry);
  if (!m) return undefined;
  const t = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  return Number.isNaN(t.getTime()) ? undefined : t;
}

/**
 * Moves `path` (a data dir) into `<trashRoot>/<stamp>-<basename>` with a rename
 * (same filesystem: instant, nothing copied). Returns where it went, or
 * undefined when `path` does not exist.
 */
export async function moveToTrash(path: string, trashRoot: string, nowMs: number): Promise<string | undefined> {
  await mkdir(trashRoot, { recursive: true, mode: 0o700 });
  let target = join(trashRoot, trashName(basename(path), nowMs));
  for (let n = 2; ; n++) {
    try {
      await rename(path, target);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      // Same name trashed in the same second: keep both.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && n < 100) target = join(trashRoot, trashName(`${basename(path)}.${n}`, nowMs));
      else throw err;
    }
  }
  await syncDir(trashRoot);
  return target;
}

export interface TrashEntry {
  path: string;
  trashedAt: Date;
}

/** The trash entries older than the policy allows, oldest first (pure over the listing). */
export function expiredTrash(entries: string[], trashRoot: string, nowMs: number, policy: TrashPolicy): TrashEntry[] {
  const expired: TrashEntry[] = [];
  for (const entry of entries) {
    const at = trashedAt(entry);
    if (at && nowMs - at.getTime() > policy.keepForMs) expired.push({ path: join(trashRoot, entry), trashedAt: at });
  }
  return expired.sort((a, b) => a.trashedAt.getTime() - b.trashedAt.getTime());
}

/** Deletes expired entries; returns what it deleted. A missing trash folder is empty. */
export async function emptyTrash(trashRoot: string, nowMs: number, policy: TrashPolicy): Promise<TrashEntry[]> {
  let entries: string[];
  try {
    entries = await readdir(trashRoot);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const expired = expiredTrash(entries, trashRoot, nowMs, policy);
  for (const entry of expired) await rm(entry.path, { recursive: true, force: true });
  return expired;
}
