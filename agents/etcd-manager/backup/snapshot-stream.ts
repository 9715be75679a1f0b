// etcd's snapshot byte stream, as `etcdctl snapshot save` writes it: the bolt
// database, then 32 bytes of sha256 over the database (etcd's Maintenance/Snapshot
// sends the hash as its last message). `etcdctl snapshot restore` checks that
// hash whenever the file size is ≡ 32 (mod 512), which a db (whole 4 KiB pages)
// plus the hash always is.
//
// SnapshotSource is where such a stream comes from (an etcd member, or a test
// double); SnapshotCheck is a pass-through that hashes the stream and checks the
// trailing hash as the bytes go by, holding back only the last 32 bytes.
import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { Etcd3, ISnapshotResponse } from 'etcd3';

export const HASH_BYTES = 32;

/**
 * Size of the chunks a snapshot is passed on in. etcd sends 32 KiB messages; each
 * chunk written to gzip is one trip to libuv's thread pool, so joining them into
 * 256 KiB costs a copy and saves most of those trips (with ZLIB_STEP_BYTES below,
 * a 1.2 GB snapshot went through gzip in 20.0 s instead of 27.5 s on the binary's Node 24).
 */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

/**
 * zlib's output step (`chunkSize`) for the backup's gzip and gunzip. Each step is
 * a trip to the thread pool; zlib's default of 16 KiB made ~80,000 of them per
 * GB. 128 KiB: a 1.2 GB snapshot file gzipped in 15.6 s instead of 19.2 s (Node 20).
 */
export const ZLIB_STEP_BYTES = 128 * 1024;

/** What the serving member said about itself just before the snapshot began. */
export interface SnapshotOrigin {
  clusterId: string;
  memberId: string;
  endpoint: string;
  /** Store revision just before the snapshot (the snapshot holds this or later). */
  revision: string;
  /** The member's etcd version, e.g. "3.4.23". */
  version: string;
}

export interface OpenedSnapshot {
  origin: SnapshotOrigin;
  /** Byte chunks; honours backpressure (etcd is only asked for more as it is read). */
  data: Readable;
}

export interface SnapshotSource {
  open(signal?: AbortSignal): Promise<OpenedSnapshot>;
}

/**
 * A snapshot from the one member `client` talks to: pass a client opened on a
 * single endpoint. The snapshot call is a server stream: the client must not put
 * a deadline on streams (agents/etcd-manager/etcd/client.ts does not), or a
 * large snapshot is cut off. The caller closes the client.
 */
export function etcdSnapshotSource(client: Etcd3, endpoint: string): SnapshotSource {
  return {
    async open(signal?: AbortSignal) {
      const status = await client.maintenance.status();
      const stream: unknown = await client.maintenance.snapshot();
      // etcd3 types it as an event emitter; it is grpc-js's object-mode Readable, which pauses the call when not read.
      if (!(stream instanceof Readable)) throw new Error('etcd3 returned a snapshot stream that is not a Readable');
      const messages = stream;
      const data = messages.pipe(new BlobCoalescer(SNAPSHOT_CHUNK_BYTES));
      messages.once('error', (err) => data.destroy(err));
      // Stopping early (abort, stall, a store failure) cancels the call, so etcd stops sending.
      data.once('close', () => {
        (messages as Readable & { cancel?: () => void }).cancel?.();
        messages.destroy();
      });
      if (signal) {
        const abort = () => data.destroy(signal.reason instanceof Error ? signal.reason : new Error('snapshot aborted'));
        if (signal.aborted) abort();
        else signal.addEventListener('abort', abort, { once: true });
      }
      return {
        origin: {
          clusterId: status.header.cluster_id,
          memberId: status.header.member_id,
          endpoint,
          revision: status.header.revision,
          version: status.version,
        },
        data,
      };
    },
  };
}

/** etcd's snapshot messages in, their blobs out, joined into chunks of about `size` bytes. */
class BlobCoalescer extends Transform {
  private parts: Buffer[] = [];
  private held = 0;

  constructor(private readonly size: number) {
    super({ readableObjectMode: false, writableObjectMode: true });
  }

  override _transform(message: ISnapshotResponse, _enc: BufferEncoding, done: TransformCallback): void {
    this.parts.push(message.blob);
    this.held += message.blob.length;
    if (this.held >= this.size) done(null, this.joinHeld());
    else done();
  }

  override _flush(done: TransformCallback): void {
    done(null, this.held > 0 ? this.joinHeld() : undefined);
  }

  private joinHeld(): Buffer {
    const joined = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.held);
    this.parts = [];
    this.held = 0;
    return joined;
  }
}

export interface SnapshotFacts {
  /** Every byte of the stream (db + trailing hash). */
  bytes: number;
  sha256: string;
  /** True when the stream ended in the sha256 of what came before it. */
  integrityHashOK: boolean;
  /** Why not, when not. */
  problem?: string;
}

/** Pass-through that measures the stream and checks etcd's trailing sha256 as it goes. */
export class SnapshotCheck extends Transform {
  /** Over all but the last 32 bytes seen; the whole stream's hash is a copy of it fed the tail at the end. */
  private readonly body: Hash = createHash('sha256');
  private tail = Buffer.alloc(0);
  private count = 0;
  private result?: SnapshotFacts;

  /** onChunk sees the running byte count after each chunk. */
  constructor(private readonly onChunk?: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.count += chunk.length;
    this.onChunk?.(this.count);
    // Everything but the last 32 bytes seen so far goes into the body hash. A chunk of at least
    // 32 bytes is hashed in place (no copy of it: a 1 GB snapshot would churn 1 GB of buffers).
    if (chunk.length >= HASH_BYTES) {
      if (this.tail.length > 0) this.body.update(this.tail);
      this.body.update(chunk.subarray(0, chunk.length - HASH_BYTES));
      this.tail = Buffer.from(chunk.subarray(chunk.length - HASH_BYTES));
    } else {
      const joined = Buffer.concat([this.tail, chunk]);
      const cut = Math.max(0, joined.length - HASH_BYTES);
      if (cut > 0) this.body.update(joined.subarray(0, cut));
      this.tail = Buffer.from(joined.subarray(cut));
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    // One pass over the data gives both hashes (a second one cost ~1 s of CPU per GB).
    const sha256 = this.body.copy().update(this.tail).digest('hex');
    let problem: string | undefined;
    if (this.count < HASH_BYTES + 512) problem = `only ${this.count} bytes: not an etcd snapshot`;
    else if (this.count % 512 !== HASH_BYTES) problem = `size ${this.count} is not a database plus etcd's 32-byte sha256 (a copy of a data directory's db, not a snapshot?)`;
    else if (!this.body.digest().equals(this.tail)) problem = "etcd's trailing sha256 does not match the database";
    this.result = { bytes: this.count, sha256, integrityHashOK: problem === undefined, ...(problem ? { problem } : {}) };
    done();
  }

  /** Available once the stream has ended. */
  facts(): SnapshotFacts {
    if (!this.result) throw new Error('snapshot stream has not ended');
    return this.result;
  }
}

/** Pass-through that counts and hashes bytes (the stored object), calling onBytes as they go. */
export class Measure extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  constructor(private readonly onBytes?: (total: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    this.onBytes?.(this.bytes);
    done(null, chunk);
  }

  private digest?: string;
  sha256(): string {
    this.digest ??= this.hash.digest('hex');
    return this.digest;
  }
}
