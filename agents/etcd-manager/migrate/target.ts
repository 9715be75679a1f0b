// The v3 side of the migration: the state record and per-transaction progress
// records kept in the target itself, lease grants with our own IDs, batched
// write transactions that stay within the target's limits, and the scan the
// verification reads back.
//
// Records, all under MIGRATION_PREFIX (etcd-manager's own prefix, which the
// source may not use and the verification leaves out):
//   state          JSON MigrationState: id, source, T0, state copying|done
//   done/<run>-<n> JSON {first, last, count}: the walk-order range one
//                  transaction wrote, put in that same transaction
// The done/ records are deleted, in the transaction that marks the state done.
import { readFile } from 'node:fs/promises';
import type { Etcd3 } from 'etcd3';
import type { EtcdTLSFiles } from '../etcd/process.js';
import { decodeRangeResponse, encodePutTxn, encodeRange, int64Varint, type WireKeyValue, type WirePut } from './kv-wire.js';
import type { LeafRange } from './order.js';

export const RESERVED_PREFIX = '/mooring/etcd-manager/';
export const MIGRATION_PREFIX = `${RESERVED_PREFIX}migrate-v2/`;
const STATE_KEY = `${MIGRATION_PREFIX}state`;
const DONE_PREFIX = `${MIGRATION_PREFIX}done/`;

/** etcd 3.4's defaults (--max-txn-ops, --max-request-bytes); lowered on the fly when the target says so. */
export const DEFAULT_MAX_TXN_OPS = 128;
export const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** Room in a request for what is not keys and values (headers, the progress record, protobuf framing). */
const REQUEST_OVERHEAD = 8 * 1024;
/** Per put: its protobuf framing, a lease ID. */
const PUT_OVERHEAD = 24;

export interface MigrationState {
  format: 1;
  id: string;
  state: 'copying' | 'done';
  /** Where the data came from, as the operator named it (no credentials). */
  source: string;
  /** The source's X-Etcd-Cluster-Id, when it sent one. */
  sourceClusterId?: string;
  /** The migration's start, ms since the epoch: lease buckets are measured from it. */
  t0: number;
  leaseRule: string;
  startedAt: string;
  /** How many runs have worked on it (1 for a migration that was never interrupted). */
  runs: number;
  finishedAt?: string;
  summary?: unknown;
}

export class TargetError extends Error {}

export class LimitError extends Error {
  constructor(readonly limit: 'ops' | 'bytes', message: string) {
    super(message);
  }
}

/** The gRPC answers that mean a transaction was too big for this target. */
export function classifyLimit(err: unknown): LimitError | undefined {
  const message = (err as Error).message ?? '';
  if (/too many operations in txn request/.test(message)) return new LimitError('ops', message);
  if (/request is too large|larger than max|message larger than/i.test(message)) return new LimitError('bytes', message);
  return undefined;
}

export interface PutItem {
  key: Buffer;
  value: Buffer;
  /** Our lease ID, or undefined for a key without TTL. */
  lease?: string;
}

/** Bytes one put costs in a request. */
export function putCost(key: Buffer, value: Buffer): number {
  return key.length + value.length + PUT_OVERHEAD;
}

/** How many bytes of puts fit in one request under a --max-request-bytes of `maxRequestBytes`. */
export function putBudget(maxRequestBytes: number): number {
  return Math.max(1024, maxRequestBytes - REQUEST_OVERHEAD);
}

/** An etcd3 client that can also make a KV call whose request is already in wire form and whose answer is left undecoded (kv-wire.ts). */
export type TargetClient = Etcd3 & { kvCall(method: 'Range' | 'Txn', request: Buffer): Promise<Buffer> };

export async function openTarget(endpoints: string[], tls: Partial<EtcdTLSFiles> = {}, callTimeoutMs = 60_000): Promise<TargetClient> {
  const { Etcd3: Client } = await import('etcd3');
  // The wire-form calls go through etcd3's own connection pool (its TLS, host
  // choice and fault handling), with pass-through (de)serializers.
  class WithWireCalls extends Client {
    kvCall(method: 'Range' | 'Txn', request: Buffer): Promise<Buffer> {
      return this.pool.withConnection('KV', ({ client, metadata }) => new Promise<Buffer>((resolve, reject) => {
        client.makeUnaryRequest<Buffer, Buffer>(`/etcdserverpb.KV/${method}`, (b) => b, (b) => b, request, metadata, { deadline: Date.now() + callTimeoutMs }, (err, answer) => {
          if (err) reject(err);
          else if (!answer) reject(new TargetError(`${method}: no answer`));
          else resolve(answer);
        });
      }));
    }
  }
  const read = async (path: string | undefined) => (path ? readFile(path) : undefined);
  const ca = await read(tls.caFile);
  const credentials = ca ? { rootCertificate: ca, privateKey: await read(tls.keyFile), certChain: await read(tls.certFile) } : undefined;
  return new WithWireCalls({
    hosts: endpoints,
    credentials,
    dialTimeout: callTimeoutMs,
    // Range pages of large values can exceed gRPC's default 4 MiB receive limit.
    grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 256 * 1024 * 1024 },
    // Every unary call has a deadline: an etcd that accepts and never answers must not hang the migration.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  });
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');
/** The key right after every key starting with prefix. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix, 'utf8');
  end[end.length - 1]++;
  return end;
}

export class Target {
  /** int64Varint of each lease ID, made once. */
  private readonly leaseVarints = new Map<string, Buffer>();

  constructor(readonly client: TargetClient) {}

  private leaseVarint(id: string): Buffer {
    let v = this.leaseVarints.get(id);
    if (!v) {
      v = int64Varint(id);
      this.leaseVarints.set(id, v);
    }
    return v;
  }

  async readState(): Promise<MigrationState | undefined> {
    const res = await this.client.kv.range({ key: utf8(STATE_KEY) });
    const kv = res.kvs[0];
    if (!kv) return undefined;
    try {
      const state = JSON.parse(kv.value.toString('utf8')) as MigrationState;
      if (state.format !== 1 || typeof state.id !== 'string' || typeof state.t0 !== 'number') throw new Error('not a format-1 record');
      return state;
    } catch (err) {
      throw new TargetError(`the target's ${STATE_KEY} is unreadable: ${(err as Error).message}`);
    }
  }

  /** Keys outside etcd-manager's own prefix. */
  async foreignKeyCount(): Promise<number> {
    const below = await this.client.kv.range({ key: Buffer.from([0]), range_end: utf8(RESERVED_PREFIX), count_only: true });
    const above = await this.client.kv.range({ key: prefixEnd(RESERVED_PREFIX), range_end: Buffer.from([0]), count_only: true });
    return Number(below.count) + Number(above.count);
  }

  /** Creates the state record if there is none; false when one appeared meanwhile. */
  async createState(state: MigrationState): Promise<boolean> {
    const res = await this.client.kv.txn({
      compare: [{ key: utf8(STATE_KEY), target: 'Version', result: 'Equal', version: 0 }],
      success: [{ request_put: { key: utf8(STATE_KEY), value: utf8(JSON.stringify(state)) } }],
    });
    return res.succeeded;
  }

  async writeState(state: MigrationState): Promise<void> {
    await this.client.kv.put({ key: utf8(STATE_KEY), value: utf8(JSON.stringify(state)) });
  }

  /** The ranges earlier runs wrote. */
  async doneRanges(): Promise<LeafRange[]> {
    const ranges: LeafRange[] = [];
    for await (const kv of this.scan(utf8(DONE_PREFIX), prefixEnd(DONE_PREFIX))) {
      const r = JSON.parse(kv.value.toString('utf8')) as { first: string; last: string };
      ranges.push({ first: r.first, last: r.last });
    }
    return ranges;
  }

  /** Grants lease `id`; a lease of that ID already there (an earlier run's) is ours and kept. */
  async grantLease(id: string, ttlSeconds: number): Promise<'granted' | 'exists'> {
    try {
      const res = await this.client.leaseClient.leaseGrant({ ID: id, TTL: ttlSeconds });
      if ((res as { error?: string }).error) throw new TargetError(`lease grant ${id}: ${(res as { error?: string }).error}`);
      return 'granted';
    } catch (err) {
      if (/lease already exists/.test((err as Error).message)) return 'exists';
      throw err;
    }
  }

  /** One transaction: the puts and the progress record of their range, all or nothing. */
  async writeBatch(items: PutItem[], record: { name: string; range: LeafRange }): Promise<void> {
    const puts: WirePut[] = items.map((i) => ({ key: i.key, value: i.value, lease: i.lease ? this.leaseVarint(i.lease) : undefined }));
    puts.push({ key: utf8(`${DONE_PREFIX}${record.name}`), value: utf8(JSON.stringify({ ...record.range, count: items.length })) });
    await this.client.kvCall('Txn', encodePutTxn(puts));
  }

  /** Marks the migration done and drops the progress records, in one transaction. */
  async finish(state: MigrationState): Promise<void> {
    await this.client.kv.txn({
      success: [
        { request_delete_range: { key: utf8(DONE_PREFIX), range_end: prefixEnd(DONE_PREFIX) } },
        { request_put: { key: utf8(STATE_KEY), value: utf8(JSON.stringify(state)) } },
      ],
    });
  }

  /**
   * Every key in [from, to) (to = [0]: to the end), page by page, all at one
   * revision: `at.revision`, or the first page's, which is left in `at`.
   */
  async *scan(from: Buffer, to: Buffer, at: { revision?: string } = {}, pageSize = 2000): AsyncGenerator<WireKeyValue> {
    let start = from;
    let limit = pageSize;
    for (;;) {
      let res;
      try {
        res = decodeRangeResponse(await this.client.kvCall('Range', encodeRange({ key: start, rangeEnd: to, limit, revision: at.revision })));
      } catch (err) {
        if (classifyLimit(err) && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 2));
          continue;
        }
        throw err;
      }
      at.revision ??= res.revision;
      for (const kv of res.kvs) yield kv;
      if (!res.more || res.kvs.length === 0) return;
      start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
  }

  /**
   * Every key outside etcd-manager's prefix, all at one revision, read by up to
   * `concurrency` range scans at once: the keyspace is cut at `splits` (any
   * keys; the source's subtree roots make even pieces), and the pieces together
   * cover every key exactly once, so a stray key anywhere is still seen.
   */
  async scanMigrated(splits: Buffer[], concurrency: number, onKey: (kv: WireKeyValue) => void): Promise<void> {
    const revision = (await this.client.kv.range({ key: Buffer.from([0]) })).header.revision;
    const reserved = [utf8(RESERVED_PREFIX), prefixEnd(RESERVED_PREFIX)];
    const points = [Buffer.from([0]), ...splits, ...reserved]
      .filter((b) => b.length > 0)
      .sort(Buffer.compare)
      .filter((b, i, all) => i === 0 || !b.equals(all[i - 1]));
    const pieces: Array<[Buffer, Buffer]> = points
      .map((from, i): [Buffer, Buffer] => [from, points[i + 1] ?? Buffer.from([0])])
      // the reserved prefix is a piece of its own (its bounds are points): leave it out
      .filter(([from]) => !(Buffer.compare(from, reserved[0]) >= 0 && Buffer.compare(from, reserved[1]) < 0));
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(concurrency, pieces.length) }, async () => {
      while (next < pieces.length) {
        const [from, to] = pieces[next++];
        for await (const kv of this.scan(from, to, { revision })) onKey(kv);
      }
    }));
  }

  close(): void {
    this.client.close();
  }
}
