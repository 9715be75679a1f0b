// Extracts a .tar.gz stream into a directory: what kOps' etcd-manager writes for
// an etcd2 backup (a gzipped tar of an `etcdctl backup` data directory, files
// only, names relative: member/snap/…, member/wal/…). A backup is data from a
// store, so it is read as untrusted: only regular files and directories, names
// that stay inside the directory (no absolute paths, no `..`), headers whose
// checksums are right, and a bound on the total size. ustar, PAX (`path`,
// `size`) and GNU long names are understood; links and devices are refused.
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

export class TarError extends Error {
  /** Where it went wrong: the gzip stream (damaged or cut off), reading the input, or the tar inside. */
  constructor(message: string, readonly layer: 'gzip' | 'read' | 'tar' = 'tar') {
    super(message);
  }
}

const BLOCK = 512;

function cstring(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

function octal(buf: Buffer, start: number, length: number, what: string): number {
  const field = buf.subarray(start, start + length);
  if (field[0] & 0x80) {
    // base-256 (GNU) for sizes of 8 GiB and more
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = cstring(buf, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`corrupt tar header: ${what} ${JSON.stringify(text)} is not octal`);
  return parseInt(text, 8);
}

function checksumOK(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  return sum === octal(header, 148, 8, 'checksum');
}

/** A member name made safe: relative, no `..`, no empty name; undefined for "." itself. */
export function safeMemberPath(name: string): string | undefined {
  if (name.includes('\0')) throw new TarError(`tar member ${JSON.stringify(name)}: NUL in the name`);
  if (name.startsWith('/')) throw new TarError(`tar member ${JSON.stringify(name)}: absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new TarError(`tar member ${JSON.stringify(name)}: leaves the directory (..)`);
  return parts.length === 0 ? undefined : parts.join('/');
}

function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const len = Number(data.subarray(at, space).toString('ascii'));
    if (!Number.isSafeInteger(len) || len <= 0 || at + len > data.length) throw new TarError('corrupt PAX header');
    const record = data.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
  }
  return out;
}

export interface ExtractResult {
  files: number;
  bytes: number;
}

/** Gunzips and extracts `input` below `dest` (created 0700; files 0600). */
export async function extractTarGz(input: Readable, dest: string, maxBytes: number): Promise<ExtractResult> {
  await mkdir(dest, { recursive: true, mode: 0o700 });
  const gunzip = createGunzip();
  input.on('error', (err) => gunzip.destroy(err));
  input.pipe(gunzip);

  let pending: Buffer = Buffer.alloc(0);
  let total = 0;
  let files = 0;
  let zeros = 0;
  // The entry being read: its data still to come, and where it goes.
  let remaining = 0;
  let padding = 0;
  let sink: FileHandle | undefined;
  let meta: 'pax' | 'gnu-name' | 'skip' | undefined;
  let metaChunks: Buffer[] = [];
  let nextName: string | undefined;
  let nextSize: number | undefined;
  let ended = false;

  const startEntry = async (header: Buffer) => {
    if (!checksumOK(header)) throw new TarError('corrupt tar header (checksum mismatch): not a tar.gz of an etcd data directory?');
    const type = String.fromCharCode(header[156] || 0x30);
    const magic = cstring(header, 257, 6);
    const prefix = magic.startsWith('ustar') ? cstring(header, 345, 155) : '';
    const rawName = nextName ?? (prefix ? `${prefix}/${cstring(header, 0, 100)}` : cstring(header, 0, 100));
    const size = nextSize ?? octal(header, 124, 12, 'size');
    nextName = undefined;
    nextSize = undefined;
    remaining = size;
    padding = (BLOCK - (size % BLOCK)) % BLOCK;
    meta = undefined;
    switch (type) {
      case 'x':
        meta = 'pax';
        metaChunks = [];
        return;
      case 'L':
        meta = 'gnu-name';
        metaChunks = [];
        return;
      case 'g':
      case 'K':
        meta = 'skip';
        return;
      case '5': {
        const path = safeMemberPath(rawName);
        if (path) await mkdir(join(dest, path), { recursive: true, mode: 0o700 });
        return;
      }
      case '0':
      case '7': {
        const path = safeMemberPath(rawName);
        if (!path) throw new TarError(`tar member ${JSON.stringify(rawName)}: a file without a name`);
        total += size;
        if (total > maxBytes) throw new TarError(`the backup expands to more than ${maxBytes} bytes`);
        await mkdir(dirname(join(dest, path)), { recursive: true, mode: 0o700 });
        sink = await open(join(dest, path), 'wx', 0o600);
        files++;
        return;
      }
      default:
        throw new TarError(`tar member ${JSON.stringify(rawName)}: type ${JSON.stringify(type)} (links and devices) is not part of an etcd backup`);
    }
  };

  const endEntry = async () => {
    if (sink) {
      await sink.close();
      sink = undefined;
    }
    if (meta === 'pax') {
      const pax = parsePax(Buffer.concat(metaChunks));
      if (pax.has('path')) nextName = pax.get('path');
      if (pax.has('size')) nextSize = Number(pax.get('size'));
    } else if (meta === 'gnu-name') {
      nextName = Buffer.concat(metaChunks).toString('utf8').replace(/\0+$/, '');
    }
    meta = undefined;
  };

  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      if (ended) continue; // the zero blocks may be followed by padding
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      while (!ended) {
        if (remaining > 0) {
          const take = Math.min(remaining, pending.length - at);
          if (take === 0) break;
          const data = pending.subarray(at, at + take);
          if (sink) await sink.write(data);
          else if (meta === 'pax' || meta === 'gnu-name') metaChunks.push(Buffer.from(data));
          remaining -= take;
          at += take;
          if (remaining === 0 && padding === 0) await endEntry();
          continue;
        }
        if (padding > 0) {
          const take = Math.min(padding, pending.length - at);
          if (take === 0) break;
          padding -= take;
          at += take;
          if (padding === 0) await endEntry();
          continue;
        }
        if (pending.length - at < BLOCK) break;
        const header = pending.subarray(at, at + BLOCK);
        at += BLOCK;
        if (header.every((b) => b === 0)) {
          if (++zeros === 2) ended = true;
          continue;
        }
        zeros = 0;
        await startEntry(header);
        if (remaining === 0 && padding === 0) await endEntry();
      }
      pending = pending.subarray(at);
    }
  } catch (err) {
    if (err instanceof TarError) throw err;
    const zlib = ((err as NodeJS.ErrnoException).code ?? '').startsWith('Z_');
    throw new TarError(`not a readable tar.gz: ${(err as Error).message}`, zlib ? 'gzip' : 'read');
  } finally {
    await sink?.close();
  }
  if (remaining > 0 || padding > 0) throw new TarError('the tar.gz ends in the middle of a file (truncated?)');
  return { files, bytes: total };
}
