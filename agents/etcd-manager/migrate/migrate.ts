// The etcd2 → etcd3 migration: walk a v2 keyspace (v2-source.ts), write every
// leaf to a v3 cluster under the same path with the same bytes (target.ts),
// directories dropped, TTL keys on shared leases carrying their remaining TTL
// (leases.ts), in transactions of many puts, several in flight; then verify by
// reading the target back (count and content hash per lease bucket, both sides).
//
// Resumable: the target holds the migration's state (its id and T0) and, in
// every write transaction, a record of the walk-order range that transaction
// wrote. A run killed at any point and started again reads the source anew,
// skips the leaves inside recorded ranges, writes the rest with the same lease
// IDs, and ends with the same keys, values and leases as a run never stopped.
// A migration that is done is never written again (the cluster may be in use).
import { randomBytes } from 'node:crypto';
import { ExitCode, UserError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import type { EtcdTLSFiles } from '../etcd/process.js';
import { ContentSums, sumHex } from './content-hash.js';
import { bucketOf, bucketStartMs, grantTTLSeconds, LEASE_BOUND, LEASE_RULE, leaseBound, leaseIdFor } from './leases.js';
import { DoneRanges } from './order.js';
import { classifyLimit, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, type MigrationState, openTarget, putBudget, putCost, RESERVED_PREFIX, Target } from './target.js';
import { walkV2, type V2Page, type V2Reader, type WalkInfo } from './v2-source.js';

export interface MigrateOptions {
  /**
   * The v2 source: how the operator named it, and how to read it (a live v2
   * member, or a backup read from its files: v2-backup.ts). Opened only when
   * there is something to do (not for a migration already done).
   */
  source: { description: string; open(): Promise<V2Reader> };
  target: { endpoints: string[]; tls?: Partial<EtcdTLSFiles> };
  /** Directories shallower than this are listed a level at a time; those at it are fetched whole. */
  pageDepth?: number;
  maxTxnOps?: number;
  maxRequestBytes?: number;
  /** Write transactions in flight at once. */
  concurrency?: number;
  log: Logger;
  onProgress?: (p: Progress) => void;
}

export interface Progress {
  phase: 'copy' | 'verify';
  /** Source leaves dealt with: written, skipped as done by an earlier run, or expired. */
  done: number;
  /** Every source leaf, once the whole source has been read. */
  total?: number;
  written: number;
  /** Leaves an earlier run already wrote. */
  skipped: number;
  /** Target keys read back so far (verify phase). */
  verified: number;
  elapsedMs: number;
}

export interface MigrationSummary {
  source: string;
  target: string[];
  migrationId: string;
  /** Runs that have worked on this migration, this one included. */
  runs: number;
  resumed: boolean;
  /** The target says this migration finished before: nothing was read or written. */
  alreadyDone: boolean;
  keys: {
    /** Leaves in the source that had not expired when read. */
    source: number;
    written: number;
    /** Written by an earlier run (resumed). */
    skippedDone: number;
    expiredBeforeCopy: number;
    withTTL: number;
  };
  leases: {
    /** Distinct leases the source's TTL keys map to. */
    used: number;
    /** Granted by this run (the rest were there from an earlier run). */
    granted: number;
    /** The most this data could need (by its longest TTL), and the most any data can. */
    bound: number;
    absoluteBound: number;
    rule: string;
  };
  verify: {
    equal: boolean;
    sourceKeys: number;
    sourceHash: string;
    targetKeys: number;
    targetHash: string;
    /** Keys left out on both sides because their lease ends within seconds of the check. */
    expiringNotCompared: { source: number; target: number };
    /** Buckets that differ (at most 5), for the error message. */
    differences: string[];
  };
  /** This run's write transactions: how many, the most puts in one, and the limits they kept to (lowered if the target refused). */
  transactions: { count: number; largest: number; maxTxnOps: number; maxPutBytes: number };
  durationMs: number;
  keysPerSecond: number;
}

/** Source pages read ahead of the writes: enough to keep the writers busy, small enough not to make the GC's work large. */
const READ_AHEAD_BYTES = 16 * 1024 * 1024;
/** Buckets whose keys may expire this soon after the check starts are left out of it. */
const SETTLE_SLACK_MS = 2_000;
/** A bucket index that is none of ours: a target key on a lease this migration did not grant. */
const FOREIGN = -1;
const MAX_ATTEMPTS = 4;
/** Range scans of the verification in flight at once. */
const VERIFY_CONCURRENCY = 4;
/** Points the verification cuts the keyspace at, at most (from the source's subtree roots). */
const MAX_SPLITS = 256;

/** Pages from `pages`, read ahead up to `maxBytes` while the consumer writes. */
async function* readAhead(pages: AsyncGenerator<V2Page>, maxBytes: number, onRead: (leaves: number, finished: boolean) => void): AsyncGenerator<V2Page> {
  const queue: V2Page[] = [];
  let buffered = 0;
  let finished = false;
  let failed: { err: unknown } | undefined;
  let wakeConsumer: (() => void) | undefined;
  let wakeProducer: (() => void) | undefined;
  const wake = (which: 'consumer' | 'producer') => {
    const fn = which === 'consumer' ? wakeConsumer : wakeProducer;
    if (which === 'consumer') wakeConsumer = undefined;
    else wakeProducer = undefined;
    fn?.();
  };
  let leaves = 0;
  const producer = (async () => {
    try {
      for await (const page of pages) {
        queue.push(page);
        buffered += page.bytes;
        leaves += page.leaves.length;
        onRead(leaves, false);
        wake('consumer');
        while (buffered > maxBytes && !failed) await new Promise<void>((resolve) => (wakeProducer = resolve));
      }
    } catch (err) {
      failed = { err };
    } finally {
      finished = true;
      if (!failed) onRead(leaves, true);
      wake('consumer');
    }
  })();
  try {
    for (;;) {
      const page = queue.shift();
      if (page) {
        buffered -= page.bytes;
        wake('producer');
        yield page;
        continue;
      }
      if (failed) throw failed.err;
      if (finished) return;
      await new Promise<void>((resolve) => (wakeConsumer = resolve));
    }
  } finally {
    // A consumer that stops early (an error) lets the producer finish; its pages are dropped.
    failed ??= { err: new Error('stopped') };
    wake('producer');
    await producer.catch(() => undefined);
  }
}

function sameSource(state: MigrationState, description: string, clusterId: string | undefined): boolean {
  if (state.sourceClusterId && clusterId) return state.sourceClusterId === clusterId;
  return state.source === description;
}

export async function migrateV2(o: MigrateOptions): Promise<MigrationSummary> {
  const started = Date.now();
  const pageDepth = o.pageDepth ?? 2;
  const concurrency = o.concurrency ?? 8;
  const limits = { ops: o.maxTxnOps ?? DEFAULT_MAX_TXN_OPS, bytes: putBudget(o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES) };
  const targetName = o.target.endpoints.join(',');
  const target = new Target(await openTarget(o.target.endpoints, o.target.tls));
  let source: V2Reader | undefined;
  try {
    let state: MigrationState | undefined;
    try {
      state = await target.readState();
    } catch (err) {
      throw new UserError(`target ${targetName}: ${(err as Error).message}`, ExitCode.Failure);
    }
    const alreadyDone = (s: MigrationState): MigrationSummary => {
      o.log.info('migration already done', { event: 'migrate-v2.already-done', migrationId: s.id, finishedAt: s.finishedAt });
      return { ...(s.summary as MigrationSummary), alreadyDone: true };
    };
    // Done from this very source: nothing to read (a backup need not even be unpacked).
    if (state?.state === 'done' && state.source === o.source.description) return alreadyDone(state);

    // The source answers the v2 API, and says which cluster it is.
    source = await o.source.open();
    let clusterId: string | undefined;
    try {
      clusterId = (await source.get('/', false)).clusterId;
    } catch (err) {
      throw new UserError(`source ${o.source.description}: ${(err as Error).message}`, ExitCode.Failure);
    }
    if (state?.state === 'done') {
      if (!sameSource(state, o.source.description, clusterId)) {
        throw new UserError(`target ${targetName} already holds a finished migration from ${state.source}, not from ${o.source.description}`, ExitCode.Conflict);
      }
      return alreadyDone(state);
    }
    const v2 = source;
    let resumed = false;
    if (!state) {
      const foreign = await target.foreignKeyCount();
      if (foreign > 0) {
        throw new UserError(`target ${targetName} already holds ${foreign} keys (outside ${RESERVED_PREFIX}) and no migration was started there: migrate into an empty cluster`, ExitCode.Conflict);
      }
      const fresh: MigrationState = { format: 1, id: randomBytes(8).toString('hex'), state: 'copying', source: o.source.description, sourceClusterId: clusterId, t0: started, leaseRule: LEASE_RULE, startedAt: new Date(started).toISOString(), runs: 1 };
      if (await target.createState(fresh)) state = fresh;
      else state = await target.readState(); // another run began at the same moment: join it
    }
    if (!state) throw new UserError(`target ${targetName}: the migration state vanished while starting`, ExitCode.Failure);
    if (state.runs > 1 || state.t0 !== started) {
      if (!sameSource(state, o.source.description, clusterId)) {
        throw new UserError(`target ${targetName} holds a migration from ${state.source}${state.sourceClusterId ? ` (cluster ${state.sourceClusterId})` : ''} that is not finished; finish it with --from ${state.source}, or use an empty cluster`, ExitCode.Conflict);
      }
      if (state.leaseRule !== LEASE_RULE) throw new UserError(`target ${targetName}: the migration under way groups leases by ${state.leaseRule}, which this build does not (${LEASE_RULE})`, ExitCode.Failure);
      resumed = true;
      state = { ...state, runs: state.runs + 1 };
      await target.writeState(state);
    }
    const current: MigrationState = state;
    const run = String(current.runs).padStart(4, '0');
    const done = new DoneRanges(await target.doneRanges());
    o.log.info(resumed ? 'resuming migration' : 'starting migration', { event: resumed ? 'migrate-v2.resume' : 'migrate-v2.start', migrationId: current.id, run: current.runs, source: o.source.description, target: targetName, doneRanges: done.size });

    // Copy.
    const counters = { read: 0, written: 0, skipped: 0, expired: 0, withTTL: 0, granted: 0, verified: 0, transactions: 0, largest: 0 };
    const sourceSums = new ContentSums();
    const buckets = new Set<number>();
    let maxRemaining = 0;
    let total: number | undefined;
    const progress = (phase: Progress['phase']) => o.onProgress?.({ phase, done: counters.written + counters.skipped + counters.expired, total, written: counters.written, skipped: counters.skipped, verified: counters.verified, elapsedMs: Date.now() - started });

    const leases = new Map<number, Promise<void>>();
    const ensureLease = (bucket: number): Promise<void> => {
      let p = leases.get(bucket);
      if (!p) {
        p = target.grantLease(leaseIdFor(current.id, bucket), grantTTLSeconds(current.t0, bucket, Date.now())).then((r) => {
          if (r === 'granted') counters.granted++;
        });
        leases.set(bucket, p);
      }
      return p;
    };

    interface Item { path: string; key: Buffer; value: Buffer; bucket: number }
    let seq = 0;
    const send = async (items: Item[]): Promise<void> => {
      await Promise.all([...new Set(items.map((i) => i.bucket).filter((b) => b > 0))].map(ensureLease));
      const name = `${run}-${String(seq++).padStart(8, '0')}`;
      for (let attempt = 1; ; attempt++) {
        try {
          await target.writeBatch(items.map((i) => ({ key: i.key, value: i.value, lease: i.bucket > 0 ? leaseIdFor(current.id, i.bucket) : undefined })), { name, range: { first: items[0].path, last: items[items.length - 1].path } });
          counters.written += items.length;
          counters.transactions++;
          counters.largest = Math.max(counters.largest, items.length);
          progress('copy');
          return;
        } catch (err) {
          const limit = classifyLimit(err);
          if (limit) {
            const bytes = items.reduce((n, i) => n + putCost(i.key, i.value), 0);
            if (items.length === 1) {
              throw new UserError(`v2 key ${items[0].path} (${bytes} bytes) does not fit in one request to the target (${limit.message}); raise the target's --max-request-bytes`, ExitCode.Failure);
            }
            // The target's limits are lower than assumed: halve, and send the batch as two.
            if (limit.limit === 'ops') limits.ops = Math.max(2, Math.min(limits.ops, Math.floor((items.length + 1) / 2)));
            else limits.bytes = Math.max(1024, Math.min(limits.bytes, Math.floor(bytes / 2)));
            o.log.info('target limit lowered', { event: 'migrate-v2.limit', limit: limit.limit, ops: limits.ops, bytes: limits.bytes, reason: limit.message });
            const mid = items.length >> 1;
            await send(items.slice(0, mid));
            await send(items.slice(mid));
            return;
          }
          // A transaction that failed in transit may have been applied; sending it again writes the same.
          if (attempt >= MAX_ATTEMPTS) throw new UserError(`target ${targetName}: writing ${items.length} keys from ${items[0].path} failed ${attempt} times: ${(err as Error).message}`, ExitCode.Failure);
          await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
        }
      }
    };

    const inflight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    const dispatch = async (items: Item[]) => {
      while (inflight.size >= concurrency) await Promise.race(inflight);
      if (failure) throw failure.err;
      const p: Promise<void> = send(items)
        .catch((err: unknown) => void (failure ??= { err }))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    };

    const walkInfo: WalkInfo = { clockSkewMs: 0 };
    /** Subtree roots seen ("/registry/pods/"): where the verification cuts the keyspace for parallel scans. */
    const splits = new Set<string>();
    let batch: Item[] = [];
    let batchBytes = 0;
    try {
      for await (const page of readAhead(walkV2(v2, pageDepth, walkInfo), READ_AHEAD_BYTES, (leaves, finished) => (total = finished ? leaves : undefined))) {
        const now = Date.now();
        for (const leaf of page.leaves) {
          if (leaf.key.startsWith(RESERVED_PREFIX)) {
            throw new UserError(`source ${o.source.description}: key ${leaf.key} is under ${RESERVED_PREFIX}, which etcd-manager keeps for itself`, ExitCode.Failure);
          }
          if (leaf.expiresAt !== undefined && leaf.expiresAt <= now) {
            counters.expired++;
            continue;
          }
          counters.read++;
          const key = Buffer.from(leaf.key, 'utf8');
          const value = Buffer.from(leaf.value, 'utf8');
          let bucket = 0;
          if (leaf.expiresAt !== undefined) {
            const remaining = leaf.expiresAt - current.t0;
            bucket = bucketOf(remaining);
            buckets.add(bucket);
            maxRemaining = Math.max(maxRemaining, remaining);
            counters.withTTL++;
          }
          sourceSums.add(bucket, key, value);
          if (done.size > 0 && done.has(leaf.key)) {
            counters.skipped++;
            continue;
          }
          const cost = putCost(key, value);
          if (batch.length > 0 && (batch.length >= limits.ops - 1 || batchBytes + cost > limits.bytes)) {
            await dispatch(batch);
            batch = [];
            batchBytes = 0;
          }
          batch.push({ path: leaf.key, key, value, bucket });
          batchBytes += cost;
        }
        if (splits.size < MAX_SPLITS) splits.add(`${page.root === '/' ? '' : page.root}/`);
        progress('copy');
      }
      if (batch.length > 0) await dispatch(batch);
      await Promise.all(inflight);
    } catch (err) {
      await Promise.all(inflight);
      throw err;
    }
    if (failure) throw failure.err;
    if (walkInfo.clockSkewMs > 2_000) {
      o.log.warn('source clock differs from this one', { event: 'migrate-v2.clock-skew', skewMs: walkInfo.clockSkewMs, note: 'remaining TTLs come from the source\'s absolute expiration times' });
    }

    // Verify: read the target back at one revision, sum per lease bucket.
    const verifyStart = Date.now();
    o.log.info('copy done, verifying', { event: 'migrate-v2.copied', migrationId: current.id, copied: counters.written, transactions: counters.transactions, copyMs: verifyStart - started });
    const leaseBucket = new Map<string, number>();
    for (let b = 1; b <= LEASE_BOUND; b++) leaseBucket.set(leaseIdFor(current.id, b), b);
    const targetSums = new ContentSums();
    await target.scanMigrated([...splits].map((s) => Buffer.from(s, 'utf8')), VERIFY_CONCURRENCY, (kv) => {
      const bucket = kv.lease === '0' ? 0 : (leaseBucket.get(kv.lease) ?? FOREIGN);
      targetSums.add(bucket, kv.key, kv.value);
      if (++counters.verified % 5000 === 0) progress('verify');
    });
    progress('verify');
    const settled = (b: number) => b <= 0 || current.t0 + bucketStartMs(b) >= verifyStart + SETTLE_SLACK_MS;
    const differences: string[] = [];
    for (const b of [...new Set([...sourceSums.buckets.keys(), ...targetSums.buckets.keys()])].filter(settled).sort((x, y) => x - y)) {
      const zero = { count: 0, sum: [0, 0, 0, 0, 0, 0, 0, 0] };
      const s = sourceSums.buckets.get(b) ?? zero;
      const t = targetSums.buckets.get(b) ?? zero;
      if (s.count === t.count && sumHex(s.sum) === sumHex(t.sum)) continue;
      const what = b === 0 ? 'keys without a TTL' : b === FOREIGN ? 'keys on leases this migration did not grant' : `keys on lease bucket ${b}`;
      differences.push(`${what}: source ${s.count}, target ${t.count}${s.count === t.count ? ' (same count, different content)' : ''}`);
    }
    const sourceTotal = sourceSums.total(settled);
    const targetTotal = targetSums.total(settled);
    const durationMs = Date.now() - started;
    const summary: MigrationSummary = {
      source: o.source.description,
      target: o.target.endpoints,
      migrationId: current.id,
      runs: current.runs,
      resumed,
      alreadyDone: false,
      keys: { source: counters.read, written: counters.written, skippedDone: counters.skipped, expiredBeforeCopy: counters.expired, withTTL: counters.withTTL },
      leases: { used: buckets.size, granted: counters.granted, bound: leaseBound(Math.max(maxRemaining, 1)), absoluteBound: LEASE_BOUND, rule: LEASE_RULE },
      verify: {
        equal: differences.length === 0,
        sourceKeys: sourceTotal.count,
        sourceHash: sourceTotal.hash,
        targetKeys: targetTotal.count,
        targetHash: targetTotal.hash,
        expiringNotCompared: { source: sourceSums.total((b) => !settled(b)).count, target: targetSums.total((b) => !settled(b)).count },
        differences: differences.slice(0, 5),
      },
      transactions: { count: counters.transactions, largest: counters.largest, maxTxnOps: limits.ops, maxPutBytes: limits.bytes },
      durationMs,
      keysPerSecond: Math.round(counters.read / Math.max(durationMs / 1000, 0.001)),
    };
    if (!summary.verify.equal) {
      o.log.error('verification failed', { event: 'migrate-v2.verify-failed', migrationId: current.id, differences: summary.verify.differences });
      return summary;
    }
    await target.finish({ ...current, state: 'done', finishedAt: new Date().toISOString(), summary });
    o.log.info('migration done', { event: 'migrate-v2.done', migrationId: current.id, copied: counters.written, skippedDone: counters.skipped, durationMs });
    return summary;
  } finally {
    source?.close();
    target.close();
  }
}
