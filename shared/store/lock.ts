// A writer lock (a lease) kept as one object in the state store, so that two
// writers of one cluster, on any machines, never write at the same time.
//
// Semantics:
// - The lock object holds a LockRecord (JSON): its owner (a random id that is
//   new for every acquisition, host, pid, command) and when it was acquired,
//   last renewed and when it expires.
// - Acquire: create the object only if absent (StateStore.createIfAbsent:
//   link(2) on file://, If-None-Match: * on S3). If it exists and has expired
//   (its holder crashed or hung), take it over by replacing exactly the version
//   that was read (replaceIfVersion: If-Match on S3); of several writers that
//   try at once exactly one wins. The winner learns whose lock it took over.
// - Renew: the holder replaces its own version with a later expiry, every
//   ttl/3. If the version changed, someone took the lock over: the holder has
//   lost it and must stop writing (HeldLock.check throws from then on).
// - The holder writes only while its lease is good by its own clock, less a
//   margin (ttl/4) for clock drift between machines and for a write in flight.
//   Expiry is judged by each machine's clock: clocks must agree to well within
//   that margin.
// - Release: delete exactly the holder's version (deleteIfVersion: If-Match on
//   S3 DELETE). Anyone else's release is refused: the version is not theirs. On
//   a store that ignores If-Match on DELETE, release instead marks the record
//   released (a conditional PUT), and the object stays, free for the next writer.
// - A store whose server ignores conditional writes cannot give any of this;
//   probeConditionalWrites finds out, and the caller decides what to do.
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreError, type StateStore } from './types.js';
import { randomHex } from '../lazy-crypto.js';

export interface LockOwner {
  /** Random, new for every acquisition: what tells two holders apart. */
  id: string;
  host: string;
  pid: number;
  /** The command that holds the lock, for the operator who finds it. */
  command: string;
}

export interface LockRecord {
  owner: LockOwner;
  /** ISO 8601 times. */
  acquiredAt: string;
  renewedAt: string;
  expiresAt: string;
  /** Set when the holder released it by expiring the record (stores without conditional deletes). */
  releasedAt?: string;
  /**
   * Set when the holder was stopped (Ctrl-C, SIGTERM) part way through its writes: the lock is free at
   * once, and whoever takes it next is told that the cluster may be partly updated.
   */
  interruptedAt?: string;
}

/** Time as the lock sees it; tests inject one. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

export const DEFAULT_LOCK_TTL_MS = 60_000;
const LOCK_KIND = 'MooringWriterLock';

/** The holder no longer holds the lock (taken over, released, or its lease ran out before a renewal). */
export class LockLostError extends Error {
  constructor(readonly url: string, reason: string) {
    super(`${url}: ${reason}`);
    this.name = 'LockLostError';
  }
}

export interface StoreLockOptions {
  /** Who is asking; the id is made per acquisition. */
  owner: Omit<LockOwner, 'id'>;
  /** Lease length; the holder should renew every ttl/3. Default DEFAULT_LOCK_TTL_MS. */
  ttlMs?: number;
  clock?: Clock;
  /** False when the store ignores If-Match on DELETE (see probeConditionalWrites): release then expires the record instead. */
  conditionalDelete?: boolean;
}

export type AcquireAttempt =
  | { acquired: true; lock: HeldLock; tookOverFrom?: LockRecord }
  | { acquired: false; holder: LockRecord }
  | { acquired: false; unreadable: string };

export function serializeLockRecord(record: LockRecord): string {
  return `${JSON.stringify({ kind: LOCK_KIND, apiVersion: 1, ...record }, null, 2)}\n`;
}

/** The record, or why the bytes are not one. */
export function parseLockRecord(data: Buffer): LockRecord | string {
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (!isRecord(doc) || doc.kind !== LOCK_KIND) return `not a ${LOCK_KIND}`;
  const owner = doc.owner;
  if (!isRecord(owner) || typeof owner.id !== 'string' || typeof owner.host !== 'string' || typeof owner.pid !== 'number' || typeof owner.command !== 'string') {
    return 'owner is missing or malformed';
  }
  for (const field of ['acquiredAt', 'renewedAt', 'expiresAt'] as const) {
    if (typeof doc[field] !== 'string' || Number.isNaN(Date.parse(doc[field]))) return `${field} is not a time`;
  }
  return {
    owner: { id: owner.id, host: owner.host, pid: owner.pid, command: owner.command },
    acquiredAt: doc.acquiredAt as string,
    renewedAt: doc.renewedAt as string,
    expiresAt: doc.expiresAt as string,
    ...(typeof doc.releasedAt === 'string' ? { releasedAt: doc.releasedAt } : {}),
    ...(typeof doc.interruptedAt === 'string' ? { interruptedAt: doc.interruptedAt } : {}),
  };
}

/** "pid 123 on host (mooring update cluster x --yes)" */
export function describeOwner(owner: LockOwner): string {
  return `pid ${owner.pid} on ${owner.host} (${owner.command})`;
}

export class StoreLock {
  readonly ttlMs: number;
  readonly clock: Clock;
  readonly conditionalDelete: boolean;

  constructor(
    readonly store: StateStore,
    readonly path: string,
    private readonly options: StoreLockOptions,
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_LOCK_TTL_MS;
    if (!(this.ttlMs > 0)) throw new RangeError('lock ttlMs must be positive');
    this.clock = options.clock ?? systemClock;
    this.conditionalDelete = options.conditionalDelete ?? true;
  }

  get url(): string {
    return this.store.urlOf(this.path);
  }

  /** The current record, or undefined when nobody holds the lock (or the object is unreadable). */
  async inspect(): Promise<LockRecord | undefined> {
    const current = await this.store.readVersioned(this.path);
    if (!current) return undefined;
    const parsed = parseLockRecord(current.data);
    return typeof parsed === 'string' || parsed.releasedAt !== undefined ? undefined : parsed;
  }

  /** One attempt: take the lock if it is free or expired; never waits. */
  async tryAcquire(): Promise<AcquireAttempt> {
    // The object can change between our calls (released, renewed, taken over): look again a few times.
    for (let round = 0; round < 5; round++) {
      const now = this.clock.now();
      const record = this.newRecord(now);
      const text = serializeLockRecord(record);
      const created = await this.store.createIfAbsent(this.path, text, { mode: 0o644 });
      if (created !== undefined) return { acquired: true, lock: new HeldLock(this, record, created) };
      const current = await this.store.readVersioned(this.path);
      if (current === undefined) continue; // released between the two calls
      const held = parseLockRecord(current.data);
      if (typeof held === 'string') {
        // On a file system without hard links a lock is written in place: give a writer a moment to finish it.
        if (round < 2) {
          await this.clock.sleep(100);
          continue;
        }
        return { acquired: false, unreadable: held };
      }
      // An interrupted holder gave the lock up, whatever the clocks say about its expiry.
      if (held.releasedAt === undefined && held.interruptedAt === undefined && Date.parse(held.expiresAt) > now) return { acquired: false, holder: held };
      const taken = await this.store.replaceIfVersion(this.path, text, current.version);
      if (taken !== undefined) {
        // A released record is free; an expired or interrupted one was left by a writer that did not finish.
        return { acquired: true, lock: new HeldLock(this, record, taken), ...(held.releasedAt === undefined ? { tookOverFrom: held } : {}) };
      }
    }
    throw new StoreError('Other', this.url, 'the lock object changed on every attempt to take it; try again');
  }

  private newRecord(now: number): LockRecord {
    const at = new Date(now).toISOString();
    return {
      owner: { id: randomHex(16), ...this.options.owner },
      acquiredAt: at,
      renewedAt: at,
      expiresAt: new Date(now + this.ttlMs).toISOString(),
    };
  }
}

export class HeldLock {
  private lostReason?: string;

  constructor(
    private readonly lock: StoreLock,
    private current: LockRecord,
    private version: string,
  ) {}

  get record(): LockRecord {
    return this.current;
  }

  get url(): string {
    return this.lock.url;
  }

  /** Why the lock is no longer held (lost, or released), or undefined while it is. */
  get lost(): string | undefined {
    return this.lostReason;
  }

  /** Until when (clock ms) the holder may write: the lease's expiry less a quarter of its length. */
  writableUntil(): number {
    return Date.parse(this.current.expiresAt) - this.lock.ttlMs / 4;
  }

  /** Throws LockLostError unless the holder may write now. */
  check(): void {
    if (this.lostReason !== undefined) throw new LockLostError(this.url, this.lostReason);
    if (this.lock.clock.now() >= this.writableUntil()) {
      throw new LockLostError(this.url, `the lease ran out at ${this.current.expiresAt} before it could be renewed`);
    }
  }

  /** Extends the lease by ttl from now; throws LockLostError if the lock is no longer ours. */
  async renew(): Promise<void> {
    if (this.lostReason !== undefined) throw new LockLostError(this.url, this.lostReason);
    const now = this.lock.clock.now();
    const next: LockRecord = { ...this.current, renewedAt: new Date(now).toISOString(), expiresAt: new Date(now + this.lock.ttlMs).toISOString() };
    let version = await this.lock.store.replaceIfVersion(this.lock.path, serializeLockRecord(next), this.version);
    // A renewal whose reply was lost may have been written all the same: the record is then still ours.
    if (version === undefined && (await this.adoptOwnVersion())) {
      version = await this.lock.store.replaceIfVersion(this.lock.path, serializeLockRecord(next), this.version);
    }
    if (version === undefined) throw this.lose(`lost: ${await this.whoHoldsIt()}`);
    this.current = next;
    this.version = version;
  }

  /** True (and our version updated) when the stored record carries our owner id under another version. */
  private async adoptOwnVersion(): Promise<boolean> {
    const stored = await this.lock.store.readVersioned(this.lock.path);
    if (!stored || stored.version === this.version) return false;
    const record = parseLockRecord(stored.data);
    if (typeof record === 'string' || record.owner.id !== this.current.owner.id) return false;
    this.current = record;
    this.version = stored.version;
    return true;
  }

  /** Gives the lock up; refused (LockLostError) when it is no longer ours. */
  async release(): Promise<void> {
    if (this.lostReason !== undefined) throw new LockLostError(this.url, this.lostReason);
    let released: boolean;
    if (this.lock.conditionalDelete) {
      released = await this.lock.store.deleteIfVersion(this.lock.path, this.version);
    } else {
      const now = new Date(this.lock.clock.now()).toISOString();
      const expired: LockRecord = { ...this.current, expiresAt: now, releasedAt: now };
      released = (await this.lock.store.replaceIfVersion(this.lock.path, serializeLockRecord(expired), this.version)) !== undefined;
    }
    if (!released) throw this.lose(`not released, it is no longer ours: ${await this.whoHoldsIt()}`);
    this.lostReason = 'released';
  }

  /**
   * Gives the lock up part way through the holder's writes (the holder was stopped): the record stays,
   * expired now and marked interrupted, so the next writer takes it at once and is told why.
   */
  async interrupt(): Promise<void> {
    if (this.lostReason !== undefined) throw new LockLostError(this.url, this.lostReason);
    const now = new Date(this.lock.clock.now()).toISOString();
    const interrupted: LockRecord = { ...this.current, expiresAt: now, interruptedAt: now };
    const version = await this.lock.store.replaceIfVersion(this.lock.path, serializeLockRecord(interrupted), this.version);
    if (version === undefined) throw this.lose(`not given up, it is no longer ours: ${await this.whoHoldsIt()}`);
    this.current = interrupted;
    this.lostReason = 'interrupted';
  }

  private lose(reason: string): LockLostError {
    this.lostReason = reason;
    return new LockLostError(this.url, reason);
  }

  private async whoHoldsIt(): Promise<string> {
    const now = await this.lock.inspect().catch(() => undefined);
    return now ? `now held by ${describeOwner(now.owner)} until ${now.expiresAt}` : 'it is gone or unreadable';
  }
}

export interface WaitOptions {
  /** Give up after this long (0: one attempt). */
  timeoutMs: number;
  /** Time between attempts (default 1 s, with jitter). */
  pollMs?: number;
  /** Called once per holder seen while waiting (a new holder, or a renewal past the old expiry, calls again). */
  onWait?(holder: LockRecord): void;
  /** Stops the wait (the caller was interrupted): the result is then { acquired: false, aborted: true }. */
  signal?: AbortSignal;
}

export type WaitResult =
  | { acquired: true; lock: HeldLock; tookOverFrom?: LockRecord }
  | { acquired: false; holder?: LockRecord; unreadable?: string; aborted?: true };

/** Tries to take the lock until it is ours or timeoutMs has passed; never writes unless it takes the lock. */
export async function acquireWithin(lock: StoreLock, options: WaitOptions): Promise<WaitResult> {
  const deadline = lock.clock.now() + options.timeoutMs;
  const pollMs = options.pollMs ?? 1000;
  let shown: string | undefined;
  for (;;) {
    if (options.signal?.aborted) return { acquired: false, aborted: true };
    const attempt = await lock.tryAcquire();
    if (attempt.acquired) return attempt;
    if ('unreadable' in attempt) return { acquired: false, unreadable: attempt.unreadable };
    const { holder } = attempt;
    const now = lock.clock.now();
    if (now >= deadline) return { acquired: false, holder };
    const seen = `${holder.owner.id} ${holder.expiresAt}`;
    if (seen !== shown) {
      shown = seen;
      options.onWait?.(holder);
    }
    // Poll, but look again right when the holder's lease would run out, and never past the deadline.
    const untilExpiry = Math.max(0, Date.parse(holder.expiresAt) - now) + 50;
    const jittered = pollMs / 2 + Math.random() * pollMs;
    await abortable(lock.clock.sleep(Math.max(1, Math.min(jittered, untilExpiry, deadline - now))), options.signal);
  }
}

/** Resolves when `wait` does, or at once when `signal` is aborted. */
function abortable(wait: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return wait;
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', done, { once: true });
    void wait.then(done, done);
  });
}

/** Which conditional operations a store's server really honours. */
export interface ConditionalWriteSupport {
  createIfAbsent: boolean;
  replaceIfVersion: boolean;
  deleteIfVersion: boolean;
  /** What showed a condition was ignored, one phrase each. */
  evidence: string[];
}

/**
 * Finds out whether the store honours conditional writes, with a probe object
 * at probePath (created, then removed): a second create-if-absent must be
 * refused, as must a replace or delete naming a version the object does not
 * have. Backends that guarantee them themselves are not probed. Errors that
 * mean the store cannot be used at all (unreachable, access denied) are thrown.
 */
export async function probeConditionalWrites(store: StateStore, probePath: string): Promise<ConditionalWriteSupport> {
  if (store.conditionalWrites === 'atomic') return { createIfAbsent: true, replaceIfVersion: true, deleteIfVersion: true, evidence: [] };
  const evidence: string[] = [];
  const honoured = async (what: string, op: () => Promise<boolean>): Promise<boolean> => {
    try {
      if (await op()) return true;
      evidence.push(what);
      return false;
    } catch (err) {
      if (err instanceof StoreError && (err.kind === 'Unreachable' || err.kind === 'AccessDenied' || err.kind === 'InvalidURL')) throw err;
      evidence.push(`${what} (${err instanceof Error ? err.message : String(err)})`);
      return false;
    }
  };
  const token = randomHex(8);
  const first = await store.createIfAbsent(probePath, `probe ${token} 1\n`);
  if (first === undefined) throw new StoreError('Other', store.urlOf(probePath), 'a fresh probe object already exists; is another mooring probing with the same name?');
  try {
    const createIfAbsent = await honoured('it overwrote an existing object on a create with If-None-Match: *', async () => (await store.createIfAbsent(probePath, `probe ${token} 2\n`)) === undefined);
    const replaceIfVersion = await honoured('it replaced an object whose ETag did not match If-Match', async () => (await store.replaceIfVersion(probePath, `probe ${token} 3\n`, '"mooring-probe-no-such-etag"')) === undefined);
    const deleteIfVersion = await honoured('it deleted an object whose ETag did not match If-Match', async () => !(await store.deleteIfVersion(probePath, '"mooring-probe-no-such-etag"')));
    return { createIfAbsent, replaceIfVersion, deleteIfVersion, evidence };
  } finally {
    await store.delete(probePath);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
