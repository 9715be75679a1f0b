// The writer lock (shared/store/lock.ts) with an injected clock, on memfs://
// and on a real file:// directory: acquire, expiry and takeover, renewal,
// release (and a release by someone who no longer holds it, refused), the
// lease fence, waiting with a timeout, and an unreadable lock object.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../shared/store/file.js';
import { clearMemfs, MemfsStore } from '../../shared/store/memfs.js';
import {
  acquireWithin,
  HeldLock,
  LockLostError,
  parseLockRecord,
  probeConditionalWrites,
  StoreLock,
  type Clock,
  type LockRecord,
} from '../../shared/store/lock.js';
import type { StateStore } from '../../shared/store/types.js';

const TTL = 60_000;
const PATH = 'cluster.example.com/mooring.lock';

/** A clock that only moves when told to (or when the lock sleeps). */
function fakeClock(start = Date.parse('2026-01-01T00:00:00Z')): Clock & { advance(ms: number): void; slept: number[] } {
  let now = start;
  const slept: number[] = [];
  return {
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms);
      now += ms;
    },
    advance: (ms) => void (now += ms),
    slept,
  };
}

const stores: Record<string, (t: Test) => StateStore> = {
  'memfs://': (t) => {
    const name = `lock-${Math.random().toString(16).slice(2)}`;
    t.teardown(() => clearMemfs(name));
    return new MemfsStore(`memfs://${name}`);
  },
  'file://': (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mooring-lock-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    return new FileStore(`file://${dir}`);
  },
};

function lockFor(store: StateStore, clock: Clock, who: string, options: { conditionalDelete?: boolean } = {}): StoreLock {
  return new StoreLock(store, PATH, { owner: { host: `host-${who}`, pid: who.length, command: `mooring as ${who}` }, ttlMs: TTL, clock, ...options });
}

async function mustAcquire(t: Test, lock: StoreLock): Promise<{ held: HeldLock; tookOverFrom?: LockRecord }> {
  const attempt = await lock.tryAcquire();
  if (!attempt.acquired) throw new Error(`expected to acquire, got ${JSON.stringify(attempt)}`);
  t.pass(`${attempt.lock.record.owner.host} acquired`);
  return { held: attempt.lock, tookOverFrom: attempt.tookOverFrom };
}

async function rejectsLost(t: Test, p: Promise<unknown>, what: string): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof LockLostError, `${what}: LockLostError (got ${String(err)})`);
}

for (const [scheme, open] of Object.entries(stores)) {
  t.test(`lock on ${scheme}`, async (t) => {
    t.test('a free lock is taken; a held one is refused and names its holder', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a, tookOverFrom } = await mustAcquire(t, lockFor(store, clock, 'a'));
      t.equal(tookOverFrom, undefined, 'nothing taken over');
      t.equal(a.record.expiresAt, new Date(clock.now() + TTL).toISOString(), 'expires one ttl from now');
      t.match(a.record.owner, { host: 'host-a', pid: 1, command: 'mooring as a' });
      t.match(a.record.owner.id, /^[0-9a-f]{32}$/, 'a random owner id');

      const before = await store.read(PATH);
      clock.advance(TTL - 1);
      const b = await lockFor(store, clock, 'b').tryAcquire();
      t.notOk(b.acquired, 'b is refused while a holds it');
      t.same('holder' in b ? b.holder.owner : undefined, a.record.owner, 'and told who holds it');
      t.same(await store.read(PATH), before, 'a refused acquire writes nothing');
    });

    t.test('an expired lock is taken over, naming the old owner', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      clock.advance(TTL);
      const { held: b, tookOverFrom } = await mustAcquire(t, lockFor(store, clock, 'b'));
      t.same(tookOverFrom, a.record, 'the takeover reports the crashed owner');
      t.not(b.record.owner.id, a.record.owner.id);
      const c = await lockFor(store, clock, 'c').tryAcquire();
      t.notOk(c.acquired, 'the new holder holds it');
    });

    t.test('renewal keeps the lock past its first expiry', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      const firstExpiry = a.record.expiresAt;
      clock.advance(TTL / 3);
      await a.renew();
      t.equal(a.record.expiresAt, new Date(clock.now() + TTL).toISOString(), 'expiry moved to one ttl after the renewal');
      clock.advance(Date.parse(firstExpiry) - clock.now() + 1);
      const b = await lockFor(store, clock, 'b').tryAcquire();
      t.notOk(b.acquired, 'past the first expiry, the renewed lock is still held');
      a.check();
      t.pass('and its holder may still write');
    });

    t.test('a holder whose lock was taken over loses it: renew, check and release refuse', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      clock.advance(TTL + 1);
      const { held: b } = await mustAcquire(t, lockFor(store, clock, 'b'));
      const bVersion = await store.read(PATH);

      await rejectsLost(t, a.renew(), 'renew by the old owner');
      t.throws(() => a.check(), LockLostError, 'the old owner may not write');
      await rejectsLost(t, a.release(), 'release by the old owner');
      t.same(await store.read(PATH), bVersion, "the new owner's lock is untouched");
      const seen = await lockFor(store, clock, 'x').inspect();
      t.equal(seen?.owner.id, b.record.owner.id, 'still held by the new owner');
      await b.release();
      t.equal(await store.readIfExists(PATH), undefined, 'the owner releases it');
    });

    t.test('a stale handle cannot release a lock someone else now holds', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      await a.release();
      const { held: b, tookOverFrom } = await mustAcquire(t, lockFor(store, clock, 'b'));
      t.equal(tookOverFrom, undefined, 'a released lock is taken without a takeover');
      await rejectsLost(t, a.release(), 'a second release by a');
      const mallory = { ...b.record, owner: { ...b.record.owner, id: 'f'.repeat(32), host: 'mallory' } };
      await rejectsLost(t, new HeldLock(lockFor(store, clock, 'mallory'), mallory, 'sha256:0000').release(), 'a release by another owner, naming a version that is not the stored one');
      await rejectsLost(t, new HeldLock(lockFor(store, clock, 'mallory'), mallory, 'sha256:0000').renew(), 'a renewal likewise');
      t.equal((await lockFor(store, clock, 'x').inspect())?.owner.id, b.record.owner.id, 'b still holds it');
    });

    t.test('a renewal that was stored but whose reply was lost is recognised as our own', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      // The same holder, one renewal behind: the store has a version this handle never heard of.
      const behind = new HeldLock(lockFor(store, clock, 'a'), a.record, 'sha256:0000');
      clock.advance(TTL / 3);
      await a.renew();
      clock.advance(TTL / 3);
      await behind.renew();
      t.equal(behind.record.expiresAt, new Date(clock.now() + TTL).toISOString(), 'renewed');
    });

    t.test('the fence: no writing once the lease is too close to its expiry', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      clock.advance(TTL - TTL / 4 - 1);
      a.check();
      t.pass('writable until a quarter of the ttl before expiry');
      clock.advance(1);
      t.throws(() => a.check(), LockLostError, 'not after');
      await a.renew();
      a.check();
      t.pass('a renewal (nobody took it meanwhile) makes it writable again');
    });

    t.test('release without conditional deletes marks the record released; the next writer takes it quietly', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a', { conditionalDelete: false }));
      await a.release();
      const left = parseLockRecord((await store.read(PATH)) ?? Buffer.alloc(0));
      t.ok(typeof left !== 'string' && left.releasedAt !== undefined, 'the object stays, marked released');
      t.equal(await lockFor(store, clock, 'x').inspect(), undefined, 'nobody holds it');
      const { tookOverFrom } = await mustAcquire(t, lockFor(store, clock, 'b'));
      t.equal(tookOverFrom, undefined, 'not reported as a crashed writer');
    });

    t.test('waiting: one progress call per holder, then a timeout that writes nothing', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      const before = await store.read(PATH);
      const seen: LockRecord[] = [];
      const waited = await acquireWithin(lockFor(store, clock, 'b'), { timeoutMs: 10_000, onWait: (h) => seen.push(h) });
      t.notOk(waited.acquired, 'gave up');
      t.same(waited.acquired ? undefined : waited.holder?.owner, a.record.owner, 'names the holder');
      t.equal(seen.length, 1, 'one progress call for one holder');
      t.ok(clock.slept.length > 1 && clock.slept.every((ms) => ms > 0 && ms <= 10_000), `polled: ${clock.slept.join(', ')}`);
      t.ok(clock.now() - Date.parse(a.record.acquiredAt) >= 10_000, 'waited the whole timeout');
      t.same(await store.read(PATH), before, 'the loser wrote nothing');

      const zero = await acquireWithin(lockFor(store, clock, 'c'), { timeoutMs: 0 });
      t.notOk(zero.acquired, 'timeout 0: one attempt');
    });

    t.test('waiting: a lock whose holder crashed is taken when it expires', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      const waited = await acquireWithin(lockFor(store, clock, 'b'), { timeoutMs: 5 * TTL });
      t.ok(waited.acquired, 'acquired');
      t.same(waited.acquired ? waited.tookOverFrom?.owner : undefined, a.record.owner, 'took it over from a');
      t.ok(clock.now() >= Date.parse(a.record.expiresAt), 'not before it expired');
      t.ok(clock.now() < Date.parse(a.record.expiresAt) + 2000, 'and soon after');
    });

    t.test('an interrupted holder gives the lock up marked so: the next one takes it at once, even if its clock is behind', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      await a.interrupt();
      t.equal(a.lost, 'interrupted');
      await rejectsLost(t, a.interrupt(), 'a second interrupt');
      const stored = parseLockRecord(await store.read(PATH));
      t.match(stored, { interruptedAt: new Date(clock.now()).toISOString(), expiresAt: new Date(clock.now()).toISOString() });
      const behind = fakeClock(clock.now() - 30_000); // b's clock is half a lease behind: the expiry alone would make it wait
      const { held: b, tookOverFrom } = await mustAcquire(t, lockFor(store, behind, 'b'));
      t.equal(tookOverFrom?.interruptedAt, new Date(clock.now()).toISOString(), 'b is told the last writer was interrupted');
      t.equal(tookOverFrom?.owner.id, a.record.owner.id);
      await b.release();
    });

    t.test('an interrupt by a holder that lost the lock is refused', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      clock.advance(TTL + 1);
      const { held: b } = await mustAcquire(t, lockFor(store, clock, 'b'));
      await rejectsLost(t, a.interrupt(), "a's interrupt after b took over");
      t.equal((parseLockRecord(await store.read(PATH)) as LockRecord).owner.id, b.record.owner.id, "b's record untouched");
    });

    t.test('waiting stops at once when its signal is aborted, having written nothing', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      const { held: a } = await mustAcquire(t, lockFor(store, clock, 'a'));
      const controller = new AbortController();
      let waits = 0;
      const waited = await acquireWithin(lockFor(store, clock, 'b'), { timeoutMs: 10 * TTL, signal: controller.signal, onWait: () => { waits++; controller.abort(); } });
      t.same(waited, { acquired: false, aborted: true });
      t.equal(waits, 1);
      t.equal((parseLockRecord(await store.read(PATH)) as LockRecord).owner.id, a.record.owner.id, "a's lock untouched");
    });

    t.test('an object that is not a lock is refused, never overwritten', async (t) => {
      const store = open(t);
      const clock = fakeClock();
      await store.write(PATH, 'hello\n');
      const attempt = await lockFor(store, clock, 'a').tryAcquire();
      t.same(attempt, { acquired: false, unreadable: 'not JSON' });
      t.equal((await store.read(PATH)).toString(), 'hello\n', 'left as it was');
    });

    t.test('this backend guarantees conditional writes itself: no probe object', async (t) => {
      const store = open(t);
      const support = await probeConditionalWrites(store, 'probe');
      t.same(support, { createIfAbsent: true, replaceIfVersion: true, deleteIfVersion: true, evidence: [] });
      t.same(await store.list(), [], 'nothing written');
    });
  });
}
