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
      const data = messages.pipe(
        new Transform({
          readableObjectMode: false,
          writableObjectMode: true,
          transform(message: ISnapshotResponse, _enc, done) {
            done(null, message.blob);
          },
        }),
      );
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
  private readonly whole: Hash = createHash('sha256');
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
    this.whole.update(chunk);
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
    const sha256 = this.whole.digest('hex');
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
