// An etcd snapshot file (member/snap/*.snap) read for its v2 store:
// snappb.Snapshot{crc (1), data (2)}, crc the CRC-32C of data, data a
// raftpb.Snapshot{data (1): the store as JSON, metadata (2): {index (2), term (3)}}.
// The file is read whole, its CRC computed chunk by chunk while the next
// chunk is read (the page faults of a fresh 37 MB buffer cost as much as the CRC).
import { isAscii } from 'node:buffer';
import { open } from 'node:fs/promises';
import { crc32c } from './crc32c.js';
import { WireError, WireReader } from './kv-wire.js';
import { fail } from './v2-read-error.js';
import type { StoreSnapshot } from './v2-store.js';

/** A snapshot file read whole, with the CRC-32C of its body (snappb field 2) computed chunk by chunk while the next chunk is read. */
export interface SnapshotFile {
  file: Buffer;
  /** The CRC of the body, when the body began where etcd writes it (right after the crc field). */
  bodyCrc?: { start: number; crc: number };
}

const SNAPSHOT_CHUNK = 4 * 1024 * 1024;

export async function readSnapshotFile(path: string): Promise<SnapshotFile> {
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
    const start = bodyStart(buf, at);
    if (start === undefined) return { file: buf };
    if (summed < 0) summed = start;
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

export function decodeSnapshotFile({ file, bodyCrc }: SnapshotFile, name: string): { index: bigint; term: bigint; data: Buffer } {
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

export function parseStoreJSON(data: Buffer, name: string): StoreSnapshot {
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
