// An etcd WAL (member/wal/*.wal) read for the entries after a snapshot.
// Frames: a little-endian uint64 (low 56 bits: the record's length; top bit
// set: the low 3 bits of the top byte are padding), the record, the padding.
// walpb.Record{type (1), crc (2), data (3)}; each record's crc is CRC-32C of its
// data continuing from the previous record's crc. Types: 1 metadata {node ID
// (1), cluster ID (2)}, 2 raftpb.Entry {type (1), term (2), index (3), data (4)},
// 3 raftpb.HardState {term (1), vote (2), commit (3)}, 4 crc (carries the crc
// across files), 5 snapshot {index (1), term (2)}.
import { open, type FileHandle } from 'node:fs/promises';
import { crc32c } from './crc32c.js';
import { WireError, WireReader } from './kv-wire.js';
import { fail } from './v2-read-error.js';

const RECORD = { metadata: 1, entry: 2, state: 3, crc: 4, snapshot: 5 } as const;
const ENTRY_NORMAL = 0;
const EMPTY: Buffer = Buffer.alloc(0);

export interface WalEntry {
  index: bigint;
  type: number;
  data: Buffer;
}

export interface WalRead {
  clusterId?: string;
  /** Snapshot records: index → term. */
  snapshots: Map<bigint, bigint>;
  /** The last hard state's commit index. */
  commit?: bigint;
  /** Entries after `after`, in index order, later ones replacing earlier ones at the same index (a new leader's). */
  entries: WalEntry[];
}

/**
 * A file read front to back through one reused buffer: a WAL file is
 * preallocated (64 MB) and mostly entries before the snapshot, and a fresh
 * buffer of its size costs more in page faults than reading it does.
 */
class FileWindow {
  buf = Buffer.allocUnsafe(WINDOW_BYTES);
  /** The window holds file bytes [offset, offset + (end - start)) at buf[start, end). */
  start = 0;
  end = 0;
  private eof = false;

  constructor(private readonly handle: FileHandle, private position = 0) {}

  /** The file offset of buf[start]. */
  get fileOffset(): number {
    return this.position - (this.end - this.start);
  }

  holds(n: number): boolean {
    return this.end - this.start >= n;
  }

  /** Makes `n` bytes from `start` available; false when the file ends first. */
  async ensure(n: number): Promise<boolean> {
    while (this.end - this.start < n) {
      if (this.eof) return false;
      if (this.start + n > this.buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(this.buf.length, n));
        this.buf.copy(bigger, 0, this.start, this.end);
        this.buf = bigger;
        this.end -= this.start;
        this.start = 0;
      }
      const { bytesRead } = await this.handle.read(this.buf, this.end, this.buf.length - this.end, this.position);
      if (bytesRead === 0) this.eof = true;
      this.end += bytesRead;
      this.position += bytesRead;
    }
    return true;
  }

  advance(n: number): void {
    this.start += n;
  }
}

const WINDOW_BYTES = 4 * 1024 * 1024;

export async function readWal(files: { name: string; path: string }[], after: bigint): Promise<WalRead> {
  const out: WalRead = { snapshots: new Map(), entries: [] };
  let previousCrc = 0;
  // Entries up to the snapshot are skipped by their index read in place, as a number (an index past 2^53: none skipped).
  const skipUpTo = after <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(after) : -1;
  for (const [i, { name, path }] of files.entries()) {
    const last = i === files.length - 1;
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const w = new FileWindow(handle);
      // (ensure() is awaited only when the window runs short: an await per record cost more than the records.)
      while (w.holds(8) || (await w.ensure(8))) {
        const b = w.buf;
        const h = w.start;
        const low = (b[h] | (b[h + 1] << 8) | (b[h + 2] << 16) | (b[h + 3] << 24)) >>> 0;
        const high = (b[h + 4] | (b[h + 5] << 8) | (b[h + 6] << 16) | (b[h + 7] << 24)) >>> 0;
        if (low === 0 && high === 0) break; // the preallocated, never written rest of the file
        const length = low + (high & 0xffffff) * 2 ** 32;
        const padding = high & 0x80000000 ? (high >>> 24) & 0x7 : 0;
        // A length past the file's end (a damaged header, or a record torn at the end) is not read, let alone allocated for.
        if (w.fileOffset + 8 + length + padding > size || (!w.holds(8 + length + padding) && !(await w.ensure(8 + length + padding)))) {
          if (last) break; // a record torn by a crash at the end of the last file: etcd drops it too
          fail(`WAL ${name}: a record runs past the end of the file`);
        }
        const start = w.start + 8;
        const file = w.buf;
        // etcd's rule for the last file: a record that does not decode or check, with a whole disk sector of
        // zeros in it, was torn by a crash mid-write; the WAL ends before it. Anything else is corruption.
        const recordOffset = w.fileOffset + 8;
        const torn = () => last && isTornRecord(file.subarray(start, start + length + padding), recordOffset);
        w.advance(8 + length + padding);
        // Most records are entries before the snapshot: their index is read without decoding the rest.
        const head = recordHead(file, start, start + length);
        if (head === undefined) {
          if (torn()) break;
          fail(`WAL ${name}: a malformed record`);
        }
        if (head.type === RECORD.crc) {
          previousCrc = head.crc;
          continue;
        }
        if (head.type === RECORD.entry && head.entryIndex >= 0 && head.entryIndex <= skipUpTo) {
          previousCrc = head.crc;
          continue;
        }
        let record: { type: number; crc: number; data: Buffer };
        try {
          record = decodeRecord(file, start, start + length, name);
        } catch (err) {
          if (torn()) break;
          throw err;
        }
        if (crc32c(record.data, previousCrc) !== record.crc) {
          if (torn()) break;
          fail(`WAL ${name}: a record's checksum does not match`);
        }
        previousCrc = record.crc;
        switch (record.type) {
          case RECORD.metadata:
            out.clusterId = clusterIdOf(record.data);
            break;
          case RECORD.entry: {
            // A copy: the window's buffer is reused.
            const entry = decodeEntry(Buffer.from(record.data), name);
            if (entry.index <= after) break; // before the snapshot (its index was not where the fast path looks)
            const position = Number(entry.index - after - 1n);
            if (position > out.entries.length) fail(`WAL ${name}: entry ${entry.index} follows a gap`);
            out.entries.length = position;
            out.entries.push(entry);
            break;
          }
          case RECORD.state:
            out.commit = commitOf(record.data);
            break;
          case RECORD.snapshot: {
            const s = snapshotRecord(record.data);
            out.snapshots.set(s.index, s.term);
            break;
          }
          default:
            fail(`WAL ${name}: a record of unknown type ${record.type}`);
        }
      }
    } finally {
      await handle.close();
    }
  }
  return out;
}

const SECTOR = 512;

/** etcd's isTornEntry: some disk sector's part of the record (cut at 512-byte file offsets) is all zeros. */
function isTornRecord(frame: Buffer, fileOffset: number): boolean {
  let at = 0;
  let offset = fileOffset;
  while (at < frame.length) {
    const length = Math.min(SECTOR - (offset % SECTOR), frame.length - at);
    let zero = true;
    for (let i = at; i < at + length; i++) {
      if (frame[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) return true;
    at += length;
    offset += length;
  }
  return false;
}

/** Reads a varint at `at` (< 2^53); sets `varintEnd`. -1 when malformed. */
let varintEnd = 0;
function varintAt(buf: Buffer, at: number, end: number): number {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 8 && at < end; i++) {
    const b = buf[at++];
    n += (b & 0x7f) * scale;
    if (b < 0x80) {
      varintEnd = at;
      return n;
    }
    scale *= 0x80;
  }
  return -1;
}

/**
 * A record's type and crc and, for an entry, its index, read in place: the
 * fields as etcd's encoder writes them (type 0x08, crc 0x10, data 0x1a; in the
 * entry, type 0x08, term 0x10, index 0x18). Anything else: the full decoder.
 */
function recordHead(file: Buffer, start: number, end: number): { type: number; crc: number; entryIndex: number } | undefined {
  let at = start;
  let type = 0;
  let crc = 0;
  let entryIndex = -1;
  while (at < end) {
    const tag = file[at++];
    if (tag === 0x08 || tag === 0x10) {
      const v = varintAt(file, at, end);
      if (v < 0) return undefined;
      at = varintEnd;
      if (tag === 0x08) type = v;
      else crc = v;
    } else if (tag === 0x1a) {
      const length = varintAt(file, at, end);
      if (length < 0 || varintEnd + length > end) return undefined;
      at = varintEnd;
      if (type === RECORD.entry) entryIndex = entryIndexAt(file, at, at + length);
      at += length;
    } else {
      return { type, crc, entryIndex: -1 }; // an unexpected field: let the full decoder read it
    }
  }
  return { type, crc, entryIndex };
}

/** The entry's index as a number, or -1 (not where etcd writes it, or past 2^53: the full decoder then). */
function entryIndexAt(buf: Buffer, at: number, end: number): number {
  while (at < end) {
    const tag = buf[at++];
    if (tag !== 0x08 && tag !== 0x10 && tag !== 0x18) return -1;
    const v = varintAt(buf, at, end);
    if (v < 0) return -1;
    at = varintEnd;
    if (tag === 0x18) return v;
  }
  return -1;
}

function decodeRecord(file: Buffer, start: number, end: number, name: string): { type: number; crc: number; data: Buffer } {
  try {
    const r = new WireReader(file, start, end);
    let type = 0;
    let crc = 0;
    let data: Buffer = Buffer.alloc(0);
    while (!r.done) {
      const { field, wireType } = r.tag();
      if (field === 1 && wireType === 0) type = r.varint();
      else if (field === 2 && wireType === 0) crc = r.varint();
      else if (field === 3 && wireType === 2) data = r.bytes();
      else r.skip(wireType);
    }
    return { type, crc, data };
  } catch (err) {
    if (err instanceof WireError) fail(`WAL ${name}: a malformed record (${err.message})`);
    throw err;
  }
}

function decodeEntry(data: Buffer, name: string): WalEntry {
  const r = new WireReader(data, 0, data.length);
  const entry: WalEntry = { index: 0n, type: ENTRY_NORMAL, data: EMPTY };
  try {
    while (!r.done) {
      const { field, wireType } = r.tag();
      if (field === 1 && wireType === 0) entry.type = r.varint();
      else if (field === 3 && wireType === 0) entry.index = r.uint64();
      else if (field === 4 && wireType === 2) entry.data = r.bytes();
      else r.skip(wireType);
    }
  } catch (err) {
    if (err instanceof WireError) fail(`WAL ${name}: a malformed entry (${err.message})`);
    throw err;
  }
  return entry;
}

function uint64Field(data: Buffer, wanted: number): bigint | undefined {
  const r = new WireReader(data, 0, data.length);
  let value: bigint | undefined;
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (field === wanted && wireType === 0) value = r.uint64();
    else r.skip(wireType);
  }
  return value;
}

function clusterIdOf(data: Buffer): string | undefined {
  return uint64Field(data, 2)?.toString(16);
}

function commitOf(data: Buffer): bigint {
  return uint64Field(data, 3) ?? 0n;
}

function snapshotRecord(data: Buffer): { index: bigint; term: bigint } {
  return { index: uint64Field(data, 1) ?? 0n, term: uint64Field(data, 2) ?? 0n };
}
