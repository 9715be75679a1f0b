// An etcd v2 data directory read in this process, without an etcd: the
// newest snapshot (member/snap/*.snap: the v2 store as JSON) and the WAL's
// committed entries after it (member/wal/*.wal), applied the way etcd applies
// them (v2-store.ts). The result answers the v2 API's GET like a live member,
// so the migration walks it as it walks one (v2-source.ts: V2Reader).
//
// It replaces starting a throwaway etcd on a copy of the directory (about a
// second for 50,000 keys: etcd loads the same snapshot, replays the same WAL
// and elects itself before it answers, and then encodes every key as JSON again
// for the migration to parse): bench/migrate-v2.ts. The directory is only read.
//
// Anything it cannot read exactly (a checksum that does not match, a WAL
// without a record of the snapshot, a snapshot too large to hold in memory,
// an entry not modelled) raises CannotReadDirectly, and the caller serves
// the directory with etcd instead (v2-backup.ts); nothing is guessed.
//
// Formats (etcd 2.x and 3.x write them alike):
//   .snap  snappb.Snapshot{crc (1), data (2)}; crc is CRC-32C of data;
//          data is raftpb.Snapshot{data (1): the store's JSON, metadata (2): {index (2), term (3)}}
//   .wal   frames: a little-endian uint64 (low 56 bits: record length; top
//          bit set: the low 3 bits of the top byte are padding), the record,
//          padding. walpb.Record{type (1), crc (2), data (3)}; each record's crc
//          is CRC-32C of its data continuing from the previous record's crc.
//          Types: 1 metadata {node ID (1), cluster ID (2)}, 2 raftpb.Entry
//          {type (1), term (2), index (3), data (4)}, 3 raftpb.HardState
//          {term (1), vote (2), commit (3)}, 4 crc (carries the crc across
//          files), 5 snapshot {index (1), term (2)}.
//   entry data: an etcdserverpb.Request (a v2 write), or an
//          InternalRaftRequest (etcd 3) with the v2 request in field 2.
import { isAscii } from 'node:buffer';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from './crc32c.js';
import { WireError, WireReader } from './kv-wire.js';
import { UnmodeledEntry, V2Store, goString, type StoreSnapshot, type V2Request } from './v2-store.js';

export class CannotReadDirectly extends Error {}

export interface DataDirRead {
  store: V2Store;
  /** The cluster ID the WAL names, in hex (as etcd's X-Etcd-Cluster-Id). */
  clusterId?: string;
  snapshotFile?: string;
  snapshotIndex: bigint;
  /** Committed entries after the snapshot, applied. */
  entriesApplied: number;
}

export interface ReadDataDirOptions {
  /** A snapshot larger than this is not read in memory. */
  maxSnapshotBytes: number;
}

const RECORD = { metadata: 1, entry: 2, state: 3, crc: 4, snapshot: 5 } as const;
const ENTRY_NORMAL = 0;
const ENTRY_CONF_CHANGE = 1;
/** raftpb.ConfChangeType: AddNode, RemoveNode, UpdateNode, AddLearnerNode. */
const CONF_CHANGE_KINDS = ['add', 'remove', 'update', 'add'] as const;
const EMPTY: Buffer = Buffer.alloc(0);
const V2_METHODS = new Set(['PUT', 'POST', 'DELETE', 'QGET', 'GET', 'HEAD', 'SYNC']);
/** InternalRaftRequest fields of etcd 3.5+ that write to the v2 store's /0 (cluster version, member attributes, downgrade). */
const V3_FIELDS_WRITING_V2 = new Set([1300, 1301, 1302]);

interface WalEntry {
  index: bigint;
  type: number;
  data: Buffer;
}

function fail(reason: string): never {
  throw new CannotReadDirectly(reason);
}

/** A snapshot file read whole, with the CRC-32C of its body (snappb field 2) computed chunk by chunk while the next chunk is read. */
interface SnapshotFile {
  file: Buffer;
  /** The CRC of the body, when the body began where etcd writes it (right after the crc field). */
  bodyCrc?: { start: number; crc: number };
}

const SNAPSHOT_CHUNK = 4 * 1024 * 1024;

async function readSnapshotFile(path: string): Promise<SnapshotFile> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const file = Buffer.allocUnsafe(size);
    let at = 0;
    let crc = 0;
    let summed = -1; // where the CRC has got to; -1 until the body's start is known
    let reading = handle.read(file, 0, Math.min(SNAPSHOT_CHUNK, size), 0);
    for (;;) {
      const { bytesRead } = await reading;
      at += bytesRead;
      if (bytesRead === 0 || at >= size) break;
      reading = handle.read(file, at, Math.min(SNAPSHOT_CHUNK, size - at), at);
      if (summed < 0) summed = bodyStart(file, at) ?? -1;
      if (summed >= 0 && summed < at) {
        crc = crc32c(file.subarray(summed, at), crc);
        summed = at;
      }
    }
    const buf = at === size ? file : file.subarray(0, at);
    if (summed < 0) summed = bodyStart(buf, at) ?? -1;
    if (summed < 0) return { file: buf };
    const start = bodyStart(buf, at) as number;
    crc = crc32c(buf.subarray(summed), crc);
    return { file: buf, bodyCrc: { start, crc } };
  } finally {
    await handle.close();
  }
}

/** Where snappb.Snapshot's data (field 2) begins when the file starts `0x08 <crc> 0x12 <length>`, as etcd writes it. */
function bodyStart(file: Buffer, available: number): number | undefined {
  if (available < 2 || file[0] !== 0x08) return undefined;
  let at = 1;
  while (at < available && file[at] >= 0x80) at++;
  at++;
  if (at >= available || file[at] !== 0x12) return undefined;
  at++;
  while (at < available && file[at] >= 0x80) at++;
  at++;
  return at <= available ? at : undefined;
}

/** Reads `dir` (an etcd data directory: member/snap, member/wal) into a store. */
export async function readV2DataDir(dir: string, options: ReadDataDirOptions): Promise<DataDirRead> {
  const snapDir = join(dir, 'member', 'snap');
  const walDir = join(dir, 'member', 'wal');
  const snapFiles = (await readdir(snapDir).catch(() => [] as string[])).filter((n) => n.endsWith('.snap')).sort();
  const walNames = (await readdir(walDir).catch(() => fail(`no ${walDir}`))).filter((n) => n.endsWith('.wal')).sort();
  if (walNames.length === 0) fail(`no WAL file in ${walDir}`);
  let store = V2Store.empty();
  let snapshotIndex = 0n;
  let snapshotTerm = 0n;
  const newest = snapFiles.at(-1);
  if (newest !== undefined) {
    const path = join(snapDir, newest);
    const size = (await stat(path)).size;
    if (size > options.maxSnapshotBytes) fail(`its snapshot ${newest} is ${Math.round(size / 2 ** 20)} MiB, more than this process reads in memory (${Math.round(options.maxSnapshotBytes / 2 ** 20)} MiB)`);
    const snap = decodeSnapshotFile(await readSnapshotFile(path), newest);
    ({ index: snapshotIndex, term: snapshotTerm } = snap);
    store = V2Store.fromSnapshot(parseStoreJSON(snap.data, newest));
  }

  const wal = await readWal(walNames.map((name) => ({ name, path: join(walDir, name) })), snapshotIndex);
  if (snapshotIndex > 0n && wal.snapshots.get(snapshotIndex) !== snapshotTerm) fail(`the WAL holds no record of snapshot ${newest} (index ${snapshotIndex}, term ${snapshotTerm})`);
  if (wal.commit === undefined) fail('the WAL holds no raft state (commit index)');
  let applied = 0;
  for (const entry of wal.entries) {
    if (entry.index > wal.commit) break;
    applyEntry(store, entry);
    applied++;
  }
  store.clusterId = wal.clusterId;
  return { store, clusterId: wal.clusterId, snapshotFile: newest, snapshotIndex, entriesApplied: applied };
}

function decodeSnapshotFile({ file, bodyCrc }: SnapshotFile, name: string): { index: bigint; term: bigint; data: Buffer } {
  try {
    const r = new WireReader(file, 0, file.length);
    let crc: number | undefined;
    let body: Buffer | undefined;
    while (!r.done) {
      const { field, wireType } = r.tag();
      if (field === 1 && wireType === 0) crc = r.varint();
      else if (field === 2 && wireType === 2) body = r.bytes();
      else r.skip(wireType);
    }
    if (crc === undefined || body === undefined) fail(`snapshot ${name} has no checksum or no data`);
    const bodyStartsAt = body.byteOffset - file.byteOffset;
    const sum = bodyCrc && bodyCrc.start === bodyStartsAt && body.length === file.length - bodyStartsAt ? bodyCrc.crc : crc32c(body);
    if (sum !== crc) fail(`snapshot ${name}: its checksum does not match its data`);
    const s = new WireReader(body, 0, body.length);
    let data: Buffer | undefined;
    let index = 0n;
    let term = 0n;
    while (!s.done) {
      const { field, wireType } = s.tag();
      if (field === 1 && wireType === 2) data = s.bytes();
      else if (field === 2 && wireType === 2) {
        const m = s.message();
        while (!m.done) {
          const t = m.tag();
          if (t.field === 2 && t.wireType === 0) index = m.uint64();
          else if (t.field === 3 && t.wireType === 0) term = m.uint64();
          else m.skip(t.wireType);
        }
      } else s.skip(wireType);
    }
    if (data === undefined) fail(`snapshot ${name} holds no store`);
    return { index, term, data };
  } catch (err) {
    if (err instanceof WireError) fail(`snapshot ${name}: ${err.message}`);
    throw err;
  }
}

function parseStoreJSON(data: Buffer, name: string): StoreSnapshot {
  let parsed: unknown;
  try {
    // Go's encoder writes ASCII unless a key or value holds more; latin1 decodes that a third faster.
    parsed = JSON.parse(isAscii(data) ? data.toString('latin1') : data.toString('utf8'));
  } catch (err) {
    fail(`snapshot ${name}: the store is not JSON (${(err as Error).message})`);
  }
  const s = parsed as Partial<StoreSnapshot> | null;
  if (!s || typeof s !== 'object' || !s.Root || typeof s.Root !== 'object' || s.Root.Children === null || typeof s.CurrentIndex !== 'number') {
    fail(`snapshot ${name}: not a v2 store (Root, CurrentIndex)`);
  }
  return s as StoreSnapshot;
}

interface WalRead {
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

async function readWal(files: { name: string; path: string }[], after: bigint): Promise<WalRead> {
  const out: WalRead = { snapshots: new Map(), entries: [] };
  let previousCrc = 0;
  // Entries up to the snapshot are skipped by their index read in place, as a number (an index past 2^53: none skipped).
  const skipUpTo = after <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(after) : -1;
  for (const [i, { name, path }] of files.entries()) {
    const last = i === files.length - 1;
    const handle = await open(path, 'r');
    try {
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
        if (!w.holds(8 + length + padding) && !(await w.ensure(8 + length + padding))) {
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

function applyEntry(store: V2Store, entry: WalEntry): void {
  if (entry.type === ENTRY_CONF_CHANGE) {
    const change = decodeConfChange(entry.data);
    if (change) store.applyMembershipChange(change.kind, change.memberId);
    else store.markIndexInexact();
    return;
  }
  if (entry.type !== ENTRY_NORMAL) {
    // etcd 3.5's joint-consensus changes: membership written under /0 in ways not followed here.
    store.markIndexInexact();
    return;
  }
  if (entry.data.length === 0) return; // a new leader's empty entry
  let request: V2Request | undefined;
  try {
    request = decodeRequest(entry.data);
    if (!request) {
      const inner = v2OfInternalRequest(entry.data, store);
      if (inner) request = decodeRequest(inner);
    }
  } catch (err) {
    if (err instanceof WireError) fail(`entry ${entry.index}: not a request etcd writes (${err.message})`);
    throw err;
  }
  if (!request) return; // an etcd 3 request that does not touch the v2 store
  try {
    store.apply(request);
  } catch (err) {
    if (err instanceof UnmodeledEntry) fail(`entry ${entry.index}: ${err.message}`);
    throw err;
  }
}

/** raftpb.ConfChange{type (2), node_id (3)}: what it does to which member (hex ID, as etcd names it under /0/members). */
function decodeConfChange(data: Buffer): { kind: 'add' | 'remove' | 'update'; memberId: string } | undefined {
  const r = new WireReader(data, 0, data.length);
  let type = 0;
  let nodeId = 0n;
  try {
    while (!r.done) {
      const { field, wireType } = r.tag();
      if (field === 2 && wireType === 0) type = r.varint();
      else if (field === 3 && wireType === 0) nodeId = r.uint64();
      else r.skip(wireType);
    }
  } catch {
    return undefined;
  }
  const kind = CONF_CHANGE_KINDS[type];
  return kind === undefined || nodeId === 0n ? undefined : { kind, memberId: nodeId.toString(16) };
}

/** etcdserverpb.Request, when `data` is one (its method a v2 method); undefined for anything else. */
function decodeRequest(data: Buffer): V2Request | undefined {
  const r = new WireReader(data, 0, data.length);
  const req: V2Request = { method: '', path: '', val: '', dir: false, prevValue: '', prevIndex: 0, expirationNs: 0n, recursive: false, timeNs: 0n, refresh: false };
  try {
    while (!r.done) {
      const { field, wireType } = r.tag();
      if (wireType === 2 && (field === 2 || field === 3 || field === 4 || field === 6)) {
        const text = goString(r.bytes());
        if (field === 2) req.method = text;
        else if (field === 3) req.path = text;
        else if (field === 4) req.val = text;
        else req.prevValue = text;
      } else if (wireType === 0) {
        const n = r.uint64();
        if (field === 5) req.dir = n !== 0n;
        else if (field === 7) req.prevIndex = Number(n);
        else if (field === 8) req.prevExist = n !== 0n;
        else if (field === 9) req.expirationNs = BigInt.asIntN(64, n);
        else if (field === 12) req.recursive = n !== 0n;
        else if (field === 15) req.timeNs = BigInt.asIntN(64, n);
        else if (field === 17) req.refresh = n !== 0n;
      } else r.skip(wireType);
    }
  } catch {
    return undefined; // not a Request (an InternalRaftRequest decodes differently)
  }
  return V2_METHODS.has(req.method) ? req : undefined;
}

/** The v2 request inside an InternalRaftRequest (field 2); marks the index inexact for etcd 3.5's requests that write /0. */
function v2OfInternalRequest(data: Buffer, store: V2Store): Buffer | undefined {
  const r = new WireReader(data, 0, data.length);
  let v2: Buffer | undefined;
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (field === 2 && wireType === 2) v2 = r.bytes();
    else {
      if (V3_FIELDS_WRITING_V2.has(field)) store.markIndexInexact();
      r.skip(wireType);
    }
  }
  return v2;
}
