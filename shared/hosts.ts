// Guarded blocks in /etc/hosts, shared by every agent that keeps names there
// (etcd-manager: its members; protokube: the API server's internal name).
// Each writer owns the blocks between its own begin/end markers and nothing
// else: every block it ever wrote is replaced by exactly one (kOps could leave
// duplicates, kops#6376), and every line outside its blocks is kept byte for
// byte, other agents' blocks included.
//
// A write is atomic: a temp file in the same directory, renamed over the file,
// so a resolver never reads half a file. Several agents write the same file,
// and a rename has no compare-and-swap, so a write is guarded twice: just
// before the rename the file must still hold what the new content was
// rendered from (else it is rendered again from the newer content), and after
// the rename the file is read back to confirm the block is there, once (a
// writer that renamed over it in between is answered by writing again). What
// no rename can prevent, an append to the old file in the instant between the
// check and the rename, is repaired by the next pass of whichever agent lost
// its lines; each agent re-renders its block on every pass.
//
// When the file is a mount point (containers bind-mount /etc/hosts) rename
// fails with EBUSY and the content is written in place instead.
import { randomBytes } from 'node:crypto';
import { chown, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';

export interface HostEntry {
  address: string;
  names: string[];
}

export interface BlockMarkers {
  begin: string;
  end: string;
}

/** What an update did, for the caller's log line. */
export interface HostsUpdate {
  changed: boolean;
  /** Blocks of ours found in the file before the write (more than 1: duplicates collapsed). */
  blocksFound: number;
  /** An unterminated block (a begin marker with no end) or a stray end marker was cleaned up. */
  repaired: boolean;
  /** Writes that had to be redone because another writer changed the file meanwhile. */
  retries: number;
}

/** Where our blocks are in the file, and whether any was broken by hand. */
interface Scan {
  kept: string[];
  blocks: string[][];
  /** Index in `kept` where the first block stood (undefined: none). */
  firstAt?: number;
  repaired: boolean;
}

/** A hosts line whose names are all among `owned` (blank-separated: address, then names). */
function isOwnedEntry(line: string, owned: ReadonlySet<string>): boolean {
  const fields = line.replace(/#.*/, '').trim().split(/\s+/);
  if (fields.length < 2 || isIP(fields[0]) === 0) return false;
  return fields.slice(1).every((name) => owned.has(name));
}

/**
 * Splits the file into the lines we keep and our blocks. A begin marker with no
 * end marker (a torn hand edit) takes only the lines after it that map names we
 * own, up to the first other line: a line someone added below it is kept. An
 * end marker with no begin is dropped (it was ours).
 */
function scan(lines: string[], markers: BlockMarkers, owned: ReadonlySet<string>): Scan {
  const kept: string[] = [];
  const blocks: string[][] = [];
  let repaired = false;
  let firstAt: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === markers.end) {
      repaired = true;
      continue;
    }
    if (line.trim() !== markers.begin) {
      kept.push(line);
      continue;
    }
    if (blocks.length === 0) firstAt = kept.length;
    const end = lines.findIndex((l, j) => j > i && l.trim() === markers.end);
    if (end !== -1) {
      blocks.push(lines.slice(i + 1, end));
      i = end;
      continue;
    }
    repaired = true;
    let j = i + 1;
    while (j < lines.length && isOwnedEntry(lines[j], owned)) j++;
    blocks.push(lines.slice(i + 1, j));
    i = j - 1;
  }
  return { kept, blocks, firstAt, repaired };
}

function splitLines(text: string): string[] {
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

/** The entry lines of a block, in the order written. */
export function blockLines(entries: HostEntry[]): string[] {
  // Code-unit order, the same on every machine, and not localeCompare (which loads ICU's collation data into a long-running agent).
  const byCodeUnit = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  const sorted = [...entries].sort((a, b) => byCodeUnit(a.names[0] ?? '', b.names[0] ?? '') || byCodeUnit(a.address, b.address));
  return sorted.map((e) => `${e.address}\t${e.names.join(' ')}`);
}

/**
 * The new file content: the old one with exactly one block of ours (none when
 * entries is empty). The block stays where the first one stood, and is added
 * at the end only when there was none: two agents that each moved their block
 * to the end would take turns rewriting the file forever.
 */
export function renderHostsBlock(current: string, markers: BlockMarkers, entries: HostEntry[]): string {
  const owned = new Set(entries.flatMap((e) => e.names));
  const { kept, firstAt } = scan(splitLines(current), markers, owned);
  if (entries.length > 0) kept.splice(firstAt ?? kept.length, 0, markers.begin, ...blockLines(entries), markers.end);
  return kept.length === 0 ? '' : kept.join('\n') + '\n';
}

/** The entry lines of each of our blocks in `text` (for checks: exactly one, with what we wrote). */
export function findBlocks(text: string, markers: BlockMarkers, ownedNames: Iterable<string> = []): string[][] {
  return scan(splitLines(text), markers, new Set(ownedNames)).blocks;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function readCurrent(path: string): Promise<{ text: string; mode: number; uid: number; gid: number } | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { text, mode: info.mode & 0o777, uid: info.uid, gid: info.gid };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes a temp file beside path with the file's mode and owner; returns its name. */
async function writeTemp(path: string, content: string, mode: number, owner: { uid: number; gid: number } | undefined): Promise<string> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.chmod(mode);
    if (owner && process.getuid?.() === 0) await chown(temp, owner.uid, owner.gid).catch(() => undefined);
    await handle.writeFile(content);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  return temp;
}

const MAX_ATTEMPTS = 5;

export interface UpdateHostsOptions {
  /** Called when the file is a mount point and is written in place (containers). */
  onInPlace?: () => void;
}

/**
 * Makes the file hold exactly one block of ours with these entries (none when
 * empty) and every other line as it was. Returns what it did; throws when the
 * file kept changing under it for every attempt.
 */
export async function updateHostsBlock(path: string, markers: BlockMarkers, entries: HostEntry[], options: UpdateHostsOptions = {}): Promise<HostsUpdate> {
  const owned = new Set(entries.flatMap((e) => e.names));
  const wanted = blockLines(entries);
  let retries = 0;
  let result: HostsUpdate | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const current = await readCurrent(path);
    const text = current?.text ?? '';
    const found = scan(splitLines(text), markers, owned);
    const next = renderHostsBlock(text, markers, entries);
    if (next === text) return result ? { ...result, retries } : { changed: false, blocksFound: found.blocks.length, repaired: false, retries };
    result = { changed: true, blocksFound: found.blocks.length, repaired: found.repaired, retries };
    const temp = await writeTemp(path, next, current?.mode ?? 0o644, current);
    try {
      // Still what we rendered from? Else another writer got in first: render again from theirs.
      const now = await readCurrent(path);
      if ((now?.text ?? '') !== text) {
        retries++;
        continue;
      }
      try {
        await rename(temp, path);
      } catch (err) {
        if (errnoCode(err) !== 'EBUSY') throw err;
        options.onInPlace?.();
        await writeFile(path, next);
      }
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    // Read back: exactly one block of ours, holding what we wrote (a rename after ours would have lost it).
    const written = findBlocks((await readCurrent(path))?.text ?? '', markers, owned);
    const confirmed = entries.length === 0 ? written.length === 0 : written.length === 1 && written[0].join('\n') === wanted.join('\n');
    if (confirmed) return { ...result, retries };
    retries++;
  }
  throw new Error(`${path}: another writer kept changing the file; the block was not confirmed after ${MAX_ATTEMPTS} attempts`);
}
