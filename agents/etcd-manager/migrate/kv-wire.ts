// The protobuf wire form of the etcd v3 messages on the migration's hot path
// (etcd's rpc.proto and kv.proto): a TxnRequest of puts, a RangeRequest, and
// the key-values of a RangeResponse. etcd3's generic codec builds an object per
// put and turns every 64-bit field of every answer into a string (four per put
// answered, four per key read back); in a profile of the command on 20,000 keys
// that was about an eighth of its CPU. These write straight into one buffer,
// read keys and values as views of the answer, and a Txn's answer is not read
// at all (an unconditional transaction either succeeds or fails as a whole).
// test/unit/etcd-manager-kv-wire.test.ts checks both directions against
// protobufjs reading etcd3's own .proto files.

const LENGTH_DELIMITED = 2;
const VARINT = 0;

function tag(field: number, wireType: number): number {
  return (field << 3) | wireType;
}

/** Bytes a varint of `n` (0 ≤ n < 2^53) takes. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[at++] = n;
  return at;
}

/** The varint bytes of a non-negative int64 (lease IDs and revisions go past 2^53). */
export function int64Varint(value: bigint | string): Buffer {
  let n = BigInt(value);
  if (n < 0n || n >= 1n << 63n) throw new RangeError(`int64 out of range for a non-negative varint: ${value}`);
  const bytes: number[] = [];
  while (n >= 0x80n) {
    bytes.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  bytes.push(Number(n));
  return Buffer.from(bytes);
}

/** Bytes a length-delimited field of `length` bytes takes: its tag, its length, its bytes (fields 1–15: a one-byte tag). */
function fieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** Writes the tag and length of a length-delimited field (its bytes follow); returns where they go. */
function writeFieldHeader(buf: Buffer, at: number, field: number, length: number): number {
  buf[at++] = tag(field, LENGTH_DELIMITED);
  return writeVarint(buf, at, length);
}

function writeBytesField(buf: Buffer, at: number, field: number, bytes: Buffer): number {
  at = writeFieldHeader(buf, at, field, bytes.length);
  return at + bytes.copy(buf, at);
}

export interface WirePut {
  key: Buffer;
  value: Buffer;
  /** int64Varint of the lease ID, or undefined for none. */
  lease?: Buffer;
}

function putSize(p: WirePut): number {
  return fieldSize(p.key.length) + fieldSize(p.value.length) + (p.lease ? 1 + p.lease.length : 0);
}

/** TxnRequest{success: [RequestOp{request_put: PutRequest{key, value, lease}}…]}, no compares. */
export function encodePutTxn(puts: WirePut[]): Buffer {
  const putSizes = puts.map(putSize);
  const opSizes = putSizes.map(fieldSize); // RequestOp: the PutRequest as field 2
  const buf = Buffer.allocUnsafe(opSizes.reduce((total, op) => total + fieldSize(op), 0));
  let at = 0;
  puts.forEach((p, i) => {
    at = writeFieldHeader(buf, at, 2, opSizes[i]); // TxnRequest.success
    at = writeFieldHeader(buf, at, 2, putSizes[i]); // RequestOp.request_put
    at = writeBytesField(buf, at, 1, p.key); // PutRequest.key
    at = writeBytesField(buf, at, 2, p.value); // PutRequest.value
    if (p.lease) {
      buf[at++] = tag(3, VARINT); // PutRequest.lease
      at += p.lease.copy(buf, at);
    }
  });
  if (at !== buf.length) throw new Error(`encodePutTxn: wrote ${at} of ${buf.length} bytes`);
  return buf;
}

export interface WireRange {
  key: Buffer;
  rangeEnd: Buffer;
  limit: number;
  /** The revision to read at (a decimal string), or undefined for the newest. */
  revision?: string;
}

/** RangeRequest{key, range_end, limit, revision}. */
export function encodeRange(r: WireRange): Buffer {
  const revision = r.revision !== undefined && r.revision !== '0' ? int64Varint(r.revision) : undefined;
  const size = fieldSize(r.key.length) + fieldSize(r.rangeEnd.length) + (r.limit > 0 ? 1 + varintSize(r.limit) : 0) + (revision ? 1 + revision.length : 0);
  const buf = Buffer.allocUnsafe(size);
  let at = writeBytesField(buf, 0, 1, r.key);
  at = writeBytesField(buf, at, 2, r.rangeEnd);
  if (r.limit > 0) {
    buf[at++] = tag(3, VARINT);
    at = writeVarint(buf, at, r.limit);
  }
  if (revision) {
    buf[at++] = tag(4, VARINT);
    at += revision.copy(buf, at);
  }
  if (at !== size) throw new Error(`encodeRange: wrote ${at} of ${size} bytes`);
  return buf;
}

export class WireError extends Error {
  override name = 'WireError';
}

/** A protobuf reader over `buf[start, end)` (also reads etcd's WAL and snapshot files: v2-data-dir.ts). */
export class WireReader {
  constructor(private readonly buf: Buffer, public at: number, private readonly end: number) {}

  get done(): boolean {
    return this.at >= this.end;
  }

  /** A varint that fits in 2^53 (lengths, tags, small numbers). */
  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.at >= this.end) throw new WireError('varint runs past the end');
      const b = this.buf[this.at++];
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
    throw new WireError('varint too long for a length');
  }

  /** The next field's number and wire type. */
  tag(): { field: number; wireType: number } {
    const t = this.varint();
    return { field: Math.floor(t / 8), wireType: t & 7 };
  }

  /** A 64-bit varint as an unsigned bigint (raft indexes, IDs). */
  uint64(): bigint {
    let n = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw new WireError('varint runs past the end');
      const b = this.buf[this.at++];
      n |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, n);
      shift += 7n;
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** A 64-bit varint as a signed decimal string (lease IDs, revisions). */
  int64(): string {
    return BigInt.asIntN(64, this.uint64()).toString();
  }

  /** A length-delimited field, as a view of the buffer (no copy). */
  bytes(): Buffer {
    const length = this.varint();
    if (this.at + length > this.end) throw new WireError('a field runs past the end');
    const view = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    return view;
  }

  /** A sub-reader over the next length-delimited field. */
  message(): WireReader {
    const length = this.varint();
    if (this.at + length > this.end) throw new WireError('a message runs past the end');
    const sub = new WireReader(this.buf, this.at, this.at + length);
    this.at += length;
    return sub;
  }

  skip(wireType: number): void {
    if (wireType === VARINT) this.varintSkip();
    else if (wireType === LENGTH_DELIMITED) {
      const length = this.varint(); // read first: `this.at += this.varint()` would add to the position before the length
      this.at += length;
    }
    else if (wireType === 1) this.at += 8;
    else if (wireType === 5) this.at += 4;
    else throw new WireError(`wire type ${wireType} is not used by etcd's messages`);
    if (this.at > this.end) throw new WireError('a field runs past the end');
  }

  private varintSkip(): void {
    while (this.at < this.end && this.buf[this.at++] >= 0x80);
  }
}

export interface WireKeyValue {
  /** Views of the answer's buffer. */
  key: Buffer;
  value: Buffer;
  /** The lease ID as a decimal string; "0" for none. */
  lease: string;
}

export interface WireRangeResponse {
  /** header.revision, a decimal string. */
  revision: string;
  kvs: WireKeyValue[];
  more: boolean;
}

const EMPTY = Buffer.alloc(0);

function decodeKeyValue(r: WireReader): WireKeyValue {
  const kv: WireKeyValue = { key: EMPTY, value: EMPTY, lease: '0' };
  while (!r.done) {
    const t = r.varint();
    const field = Math.floor(t / 8);
    const wireType = t & 7;
    if (field === 1 && wireType === LENGTH_DELIMITED) kv.key = r.bytes();
    else if (field === 5 && wireType === LENGTH_DELIMITED) kv.value = r.bytes();
    else if (field === 6 && wireType === VARINT) kv.lease = r.int64();
    else r.skip(wireType);
  }
  return kv;
}

/** RangeResponse: header.revision, kvs (key, value, lease), more. */
export function decodeRangeResponse(buf: Buffer): WireRangeResponse {
  const r = new WireReader(buf, 0, buf.length);
  const out: WireRangeResponse = { revision: '0', kvs: [], more: false };
  while (!r.done) {
    const t = r.varint();
    const field = Math.floor(t / 8);
    const wireType = t & 7;
    if (field === 1 && wireType === LENGTH_DELIMITED) {
      const header = r.message();
      while (!header.done) {
        const ht = header.varint();
        if (Math.floor(ht / 8) === 3 && (ht & 7) === VARINT) out.revision = header.int64();
        else header.skip(ht & 7);
      }
    } else if (field === 2 && wireType === LENGTH_DELIMITED) out.kvs.push(decodeKeyValue(r.message()));
    else if (field === 3 && wireType === VARINT) out.more = r.varint() !== 0;
    else r.skip(wireType);
  }
  return out;
}
