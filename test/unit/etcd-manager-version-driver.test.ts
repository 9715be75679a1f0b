// The version-change pass (versions/driver.ts) over a simulated three-member
// cluster and a real memfs store holding control/etcd-version-change:
//  - in place (3.4.23 → 3.5.17) and backup + restore (3.5.17 → 3.4.23), run to
//    the end with a crash injected at every point where one can happen (before and
//    after each effect, before and after each store write), one crash per run:
//    every run ends with every member on the new version, each member restarted
//    exactly once (in place), one member at a time while the others are healthy
//    and caught up, never while it leads raft, the driving manager's member last,
//    the steps of a restore never out of order: nothing half-applied, because the
//    record is the only state and a pass is asked again after any stop;
//  - an unhealthy member stops the change with a status stored in the record
//    (counted once), and it resumes when the member is back; a step that throws is
//    recorded with its attempts and tried again;
//  - a newer leader takes the record over and the older one can no longer act;
//  - refusals (no rule, no binary, an unreadable record) start nothing; members
//    that change make a new plan that keeps the backup; a spec that moved on is
//    reported when the change finishes.
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { clearMemfs, MemfsStore } from '../../shared/store/memfs.js';
import type { StateStore } from '../../shared/store/types.js';
import { backupOf, restoreSourceOf, describeVersionChange, versionChangePass, type StepEffects, type VersionChangeEffects, type VersionPassInput, type VersionPassResult } from '../../agents/etcd-manager/versions/driver.js';
import type { ClusterObservation } from '../../agents/etcd-manager/versions/plan.js';
import { readVersionChange, VERSION_CHANGE_PATH } from '../../agents/etcd-manager/versions/record.js';
import { VersionError } from '../../agents/etcd-manager/versions/version.js';

configureLogging({ level: 'error', format: 'json' });
const log = logger('test');
t.teardown(() => clearMemfs());

/**
 * Counts the points where a process could die, and dies at the chosen one: the
 * pass in progress never goes on (its promise never settles, as if the process
 * were gone) and `died` resolves, so the test starts the next pass afresh.
 */
class Crasher {
  count = 0;
  private onDeath: () => void = () => undefined;
  readonly died = new Promise<void>((resolve) => (this.onDeath = resolve));
  constructor(private readonly at: number | undefined) {}
  async point(): Promise<void> {
    this.count++;
    if (this.count !== this.at) return;
    this.onDeath();
    await new Promise<never>(() => undefined);
  }
}

/** The store, with a crash point before and after every write. */
function crashingStore(store: StateStore, crasher: Crasher): StateStore {
  const writes = new Set(['createIfAbsent', 'replaceIfVersion', 'deleteIfVersion', 'write', 'delete']);
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || !writes.has(prop) || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        await crasher.point();
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        await crasher.point();
        return result;
      };
    },
  });
}

interface SimMember {
  version: string;
  running: boolean;
  /** Observations left before it answers again / catches up after a restart. */
  downFor: number;
  behindFor: number;
  /** Held down by the test (a member that is out). */
  out: boolean;
}

/** Three members, etcd's raft leader, and what happened, with every rule an effect must keep checked. */
class SimCluster {
  members = new Map<string, SimMember>();
  raftLeader = 'b';
  clusterVersion: string;
  events: string[] = [];
  violations: string[] = [];
  restarts = new Map<string, number>();
  backups = 0;
  /** v2 backups converted into v3 ones (the etcd2 → etcd3 change). */
  conversions = 0;
  /** The restore a restore-based change queued (it runs on its own, as controller/restore.ts does): observations left until it completes. */
  restore?: { to: string; left: number; done: boolean };
  failNext = new Map<string, number>();

  constructor(readonly from: string, names = ['a', 'b', 'c']) {
    this.clusterVersion = from;
    for (const n of names) this.members.set(n, { version: from, running: true, downFor: 0, behindFor: 0, out: false });
  }

  observe(): ClusterObservation {
    const leaderIndex = 10_000;
    if (this.restore && !this.restore.done && this.restore.left-- <= 0) {
      // The restore completed: every member runs the new version on the restored data.
      for (const m of this.members.values()) Object.assign(m, { version: this.restore.to, running: true });
      this.restore.done = true;
    }
    const members = [...this.members].map(([name, m]) => {
      const down = !m.running || m.out || m.downFor > 0;
      const behind = !down && m.behindFor > 0;
      if (m.downFor > 0) m.downFor--;
      else if (m.behindFor > 0) m.behindFor--;
      return { name, version: down ? undefined : m.version, healthy: !down, appliedIndex: down ? undefined : behind ? leaderIndex - 5_000 : leaderIndex, isRaftLeader: !down && name === this.raftLeader };
    });
    return { members, leaderIndex: members.some((m) => m.isRaftLeader) ? leaderIndex : undefined, managerLeader: 'a' };
  }

  private fail(step: string): void {
    const left = this.failNext.get(step) ?? 0;
    if (left > 0) {
      this.failNext.set(step, left - 1);
      throw new Error(`${step} failed (simulated)`);
    }
  }

  /** Every member healthy and caught up right now (not counting observation lag). */
  private allReady(except?: string): boolean {
    return [...this.members].every(([n, m]) => n === except || (m.running && !m.out && m.downFor === 0 && m.behindFor === 0));
  }

  effects(crasher: Crasher): VersionChangeEffects {
    const around = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
      await crasher.point();
      const out = await fn();
      this.events.push(name);
      await crasher.point();
      return out;
    };
    const steps: StepEffects = {
      backup: (step) => around('backup', () => {
        this.fail('backup');
        if (this.restore || !this.allReady()) this.violations.push('backup while not every member is ready');
        this.backups++;
        return { name: `backup-${step.version}-${this.backups}` };
      }),
      'upgrade-member': (step) => around(`restart ${step.member}`, () => {
        const m = this.members.get(step.member)!;
        if (step.member === this.raftLeader) this.violations.push(`restarted ${step.member} while it leads raft`);
        if (!this.allReady(step.member)) this.violations.push(`restarted ${step.member} while another member is not ready`);
        if (this.backups === 0) this.violations.push(`restarted ${step.member} before any backup`);
        if (m.version === step.to) this.violations.push(`restarted ${step.member} twice`);
        m.version = step.to;
        m.downFor = 1;
        m.behindFor = 1;
        this.restarts.set(step.member, (this.restarts.get(step.member) ?? 0) + 1);
      }),
      'restore-snapshot': (step, change) => around('restore', () => {
        this.fail('restore');
        const source = restoreSourceOf(change);
        if (!source) this.violations.push('restored without a backup name');
        if (change.transition === 'migrate-v2' && !source?.startsWith('converted-')) this.violations.push(`restored ${source ?? 'nothing'}, not the converted backup`);
        if (!this.restore) {
          if (this.backups === 0) this.violations.push('restore queued before a backup');
          if (!this.allReady()) this.violations.push('restore queued while not every member is ready');
          // Queued: the restore stops every member's etcd, and completes a few observations later.
          this.restore = { to: step.to, left: 3, done: false };
          for (const m of this.members.values()) m.running = false;
          this.events.push('restore queued');
        }
        return this.restore.done ? {} : { pending: 'the restore' };
      }),
      'convert-v2': (step, change) => around('convert', () => {
        this.fail('convert');
        if (!backupOf(change)) this.violations.push('converted without a v2 backup');
        if (this.restore) this.violations.push('converted after the restore was queued');
        this.conversions++;
        return { name: `converted-${step.to}-${this.conversions}` };
      }),
    };
    return {
      observe: async () => this.observe(),
      steps,
      moveRaftLeader: (from, to) => around(`move ${from}→${to}`, () => {
        if (this.raftLeader !== from) this.violations.push(`moved leadership from ${from}, which does not lead`);
        this.raftLeader = to;
      }),
      finished: (record) => around('finished', () => {
        if ([...this.members.values()].some((m) => m.version !== record.to)) this.violations.push('finished before every member runs the new version');
        this.clusterVersion = record.to;
      }),
    };
  }
}

let storeSeq = 0;
function freshStore(): StateStore {
  return new MemfsStore(`memfs://driver-${process.pid}-${storeSeq++}/backups/etcd/main`);
}

const noBinaryCheck = async () => undefined;

/** Passes until the cluster is on `wanted` and no change is stored; a crash just ends that pass. */
async function runToEnd(sim: SimCluster, store: StateStore, wanted: string, crasher: Crasher, term = 5): Promise<{ passes: number; crashes: number; results: VersionPassResult[] }> {
  const results: VersionPassResult[] = [];
  let crashes = 0;
  const effects = sim.effects(crasher);
  const guarded = crashingStore(store, crasher);
  for (let pass = 1; pass <= 300; pass++) {
    const running = versionChangePass({ store: guarded, term, current: sim.clusterVersion, wanted, members: [...sim.members.keys()], effects, log, checkBinaries: noBinaryCheck });
    // One crash per run: until it has happened, a pass may be the one that dies.
    const r = crashes === 0 ? await Promise.race([running, crasher.died.then(() => undefined)]) : await running;
    if (r === undefined) {
      // The process died in this pass: a new one starts from the store.
      crashes++;
      continue;
    }
    results.push(r);
    if (r.kind === 'idle') return { passes: pass, crashes, results };
    if (r.kind === 'refused' || r.kind === 'fenced' || r.kind === 'failed') throw new Error(`unexpected ${r.kind}: ${r.message}`);
  }
  throw new Error(`no end after 300 passes: ${sim.events.join(', ')}`);
}

t.test('in place, 3.4.23 → 3.5.17: a crash at any point, and it still ends right', async (t) => {
  // A run with no crash: what happens, and how many crash points there are.
  const clean = new SimCluster('3.4.23');
  const counter = new Crasher(undefined);
  const cleanStore = freshStore();
  const run = await runToEnd(clean, cleanStore, '3.5.17', counter);
  t.same(clean.violations, []);
  t.same(clean.events, ['backup', 'restart c', 'move b→c', 'restart b', 'restart a', 'finished'], 'backup, then c (neither the driving manager\'s nor the raft leader), leadership handed to c, b, and a (the driver\'s) last');
  t.same(run.results.map((r) => r.kind).filter((k) => k !== 'waiting'), ['started', 'ran', 'ran', 'moved-leader', 'ran', 'ran', 'finished', 'idle'], 'a step is marked done as soon as its effect returned');
  t.ok(run.results.some((r) => r.kind === 'waiting' && r.reason === 'member-unhealthy'), 'a restarted member is waited for');
  t.ok(run.results.some((r) => r.kind === 'waiting' && r.reason === 'member-behind'), 'and waited for until it has caught up');
  t.equal(await cleanStore.exists(VERSION_CHANGE_PATH), false, 'the record is gone once finished');
  const points = counter.count;
  t.ok(points > 20, `${points} crash points`);

  for (let at = 1; at <= points; at++) {
    const sim = new SimCluster('3.4.23');
    const store = freshStore();
    const r = await runToEnd(sim, store, '3.5.17', new Crasher(at));
    const where = `crash at point ${at} of ${points}`;
    t.same(sim.violations, [], `${where}: no rule broken`);
    t.same([...sim.members.values()].map((m) => m.version), ['3.5.17', '3.5.17', '3.5.17'], `${where}: every member on 3.5.17`);
    t.same(Object.fromEntries(sim.restarts), { a: 1, b: 1, c: 1 }, `${where}: each member restarted exactly once`);
    t.equal(sim.events.filter((e) => e.startsWith('restart')).at(-1), 'restart a', `${where}: the driving manager's member last`);
    t.equal(sim.clusterVersion, '3.5.17');
    t.equal(r.crashes, 1, `${where}: it crashed once`);
    t.equal(await store.exists(VERSION_CHANGE_PATH), false, `${where}: record cleared`);
  }
});

t.test('backup + restore, 3.5.17 → 3.4.23: a crash at any point, and the steps never run out of order', async (t) => {
  const counter = new Crasher(undefined);
  const clean = new SimCluster('3.5.17');
  const run = await runToEnd(clean, freshStore(), '3.4.23', counter);
  t.same(clean.violations, []);
  t.same(clean.events.filter((e, i, all) => all.indexOf(e) === i), ['backup', 'restore queued', 'restore', 'finished']);
  t.equal(clean.events.filter((e) => e === 'restore queued').length, 1, 'the restore is queued once');
  t.ok(run.results.some((r) => r.kind === 'in-progress'), 'the step stays pending while the restore runs');
  t.equal(run.results.filter((r) => r.kind === 'ran').length, 2, 'each step marked done once');
  const points = counter.count;
  for (let at = 1; at <= points; at++) {
    const sim = new SimCluster('3.5.17');
    await runToEnd(sim, freshStore(), '3.4.23', new Crasher(at));
    const where = `crash at point ${at} of ${points}`;
    t.same(sim.violations, [], `${where}: no rule broken`);
    t.same([...sim.members.values()].map((m) => `${m.version}/${m.running}`), ['3.4.23/true', '3.4.23/true', '3.4.23/true'], `${where}: every member running 3.4.23`);
    t.equal(sim.events.filter((e) => e === 'restore queued').length, 1, `${where}: the restore queued once`);
    const firsts = ['backup', 'restore queued', 'finished'].map((e) => sim.events.indexOf(e));
    t.same([...firsts].sort((x, y) => x - y), firsts, `${where}: in order (${sim.events.join(', ')})`);
  }
});

t.test('etcd2 → etcd3, 2.2.1 → 3.4.23: the v2 backup, its conversion, the restore of the converted backup; a crash at any point', async (t) => {
  const counter = new Crasher(undefined);
  const clean = new SimCluster('2.2.1');
  const run = await runToEnd(clean, freshStore(), '3.4.23', counter);
  t.same(clean.violations, []);
  t.same(clean.events.filter((e, i, all) => all.indexOf(e) === i), ['backup', 'convert', 'restore queued', 'restore', 'finished']);
  t.equal(run.results.filter((r) => r.kind === 'ran').length, 3, 'each step marked done once');
  const points = counter.count;
  for (let at = 1; at <= points; at++) {
    const sim = new SimCluster('2.2.1');
    await runToEnd(sim, freshStore(), '3.4.23', new Crasher(at));
    const where = `crash at point ${at} of ${points}`;
    t.same(sim.violations, [], `${where}: no rule broken`);
    t.same([...sim.members.values()].map((m) => `${m.version}/${m.running}`), ['3.4.23/true', '3.4.23/true', '3.4.23/true'], `${where}: every member running 3.4.23`);
    t.equal(sim.events.filter((e) => e === 'restore queued').length, 1, `${where}: the restore queued once`);
    const firsts = ['backup', 'convert', 'restore queued', 'finished'].map((e) => sim.events.indexOf(e));
    t.same([...firsts].sort((x, y) => x - y), firsts, `${where}: in order (${sim.events.join(', ')})`);
  }
});

t.test('an unhealthy member stops the change with a stored status, counted once; it resumes when the member is back', async (t) => {
  const sim = new SimCluster('3.4.23');
  const store = freshStore();
  const effects = sim.effects(new Crasher(undefined));
  const input = (): VersionPassInput => ({ store, term: 5, current: sim.clusterVersion, wanted: '3.5.17', members: ['a', 'b', 'c'], effects, log, checkBinaries: noBinaryCheck });
  t.match(await versionChangePass(input()), { kind: 'started', description: /3\.4\.23 → 3\.5\.17: in place/ });
  sim.members.get('c')!.out = true;
  const first = await versionChangePass(input());
  t.match(first, { kind: 'waiting', reason: 'member-unhealthy', member: 'c', newlyBlocked: true });
  const second = await versionChangePass(input());
  t.match(second, { kind: 'waiting', reason: 'member-unhealthy', member: 'c', newlyBlocked: false }, 'the same block is not counted again');
  const stored = await readVersionChange(store);
  t.match(stored?.record.blocked, { reason: 'member-unhealthy', member: 'c', message: 'member c is not healthy' }, 'the record says why (get shows it)');
  t.match(describeVersionChange(stored!.record), [/^version change \w+: etcd 3\.4\.23 → 3\.5\.17 \(in-place, next-minor\), 0 of 4 steps done, next: backup$/, /waiting since .*: member c is not healthy/]);
  t.same(sim.events, [], 'nothing moved, not even the backup');

  // Back: it moves again, and a step that throws is recorded and retried.
  sim.members.get('c')!.out = false;
  sim.failNext.set('backup', 2);
  t.match(await versionChangePass(input()), { kind: 'failed', step: { id: 'backup' }, message: 'backup failed (simulated)' });
  t.equal((await readVersionChange(store))?.record.blocked, undefined, 'the block is cleared once the change moves again');
  t.match(await versionChangePass(input()), { kind: 'failed', record: { lastError: { step: 'backup', attempts: 2 } } });
  t.match((await readVersionChange(store))?.record.lastError, { step: 'backup', attempts: 2, message: 'backup failed (simulated)' }, 'the failure is stored for get');
  t.match(await versionChangePass(input()), { kind: 'ran', step: { id: 'backup' }, record: { blocked: undefined, lastError: undefined } });
  t.match((await readVersionChange(store))?.record.steps[0], { state: 'done', name: 'backup-3.4.23-1' });

  // Out again half way: stops before the next member, says who.
  sim.members.get('a')!.out = true;
  t.match(await versionChangePass(input()), { kind: 'waiting', member: 'a', newlyBlocked: true });
  sim.members.get('a')!.out = false;
  let last: VersionPassResult | undefined;
  for (let i = 0; i < 30 && last?.kind !== 'idle'; i++) last = await versionChangePass(input());
  t.equal(last?.kind, 'idle');
  t.same(sim.violations, []);
  t.equal(sim.clusterVersion, '3.5.17');
});

t.test('a newer leader takes the record over; the older one can no longer act on it', async (t) => {
  const sim = new SimCluster('3.4.23');
  const store = freshStore();
  const effects = sim.effects(new Crasher(undefined));
  const pass = (term: number) => versionChangePass({ store, term, current: sim.clusterVersion, wanted: '3.5.17', members: ['a', 'b', 'c'], effects, log, checkBinaries: noBinaryCheck });
  t.match(await pass(3), { kind: 'started', record: { term: 3 } });
  t.match(await pass(3), { kind: 'ran', step: { id: 'backup' } });
  t.match(await pass(4), { kind: 'ran', step: { id: 'member/c' }, record: { term: 4 } }, 'the new leader carries on where the record stands');
  const before = sim.events.length;
  t.match(await pass(3), { kind: 'fenced', message: /term 4, above this manager's 3/ });
  t.equal(sim.events.length, before, 'the deposed leader did nothing');
  t.equal((await readVersionChange(store))?.record.term, 4);
});

t.test('refusals start nothing; changed members make a new plan that keeps the backup; a spec that moved on is reported', async (t) => {
  const sim = new SimCluster('3.4.23');
  const store = freshStore();
  const effects = sim.effects(new Crasher(undefined));
  const base = { store, term: 5, members: ['a', 'b', 'c'], effects, log, checkBinaries: noBinaryCheck };
  t.same(await versionChangePass({ ...base, current: '3.4.23', wanted: '3.4.23' }), { kind: 'idle' });
  t.same(await versionChangePass({ ...base, current: undefined, wanted: '3.5.17' }), { kind: 'idle' }, 'an unknown current version starts nothing');
  t.match(await versionChangePass({ ...base, current: '3.4.23', wanted: '2.2.1' }), { kind: 'refused', message: /etcd 2 cannot read etcd 3 data/ });
  t.match(await versionChangePass({ ...base, current: '3.4.23', wanted: 'latest' }), { kind: 'refused', message: /"latest" is not a version/ });
  const noBinary = async () => {
    throw new VersionError('no-binary', 'no etcd 3.5.17: /opt/etcd/3.5.17/etcd is missing');
  };
  t.match(await versionChangePass({ ...base, current: '3.4.23', wanted: '3.5.17', checkBinaries: noBinary }), { kind: 'refused', message: 'no etcd 3.5.17: /opt/etcd/3.5.17/etcd is missing' });
  t.equal(await store.exists(VERSION_CHANGE_PATH), false, 'no record written by a refusal');
  t.same(sim.events, []);

  // An unreadable record: refused, and nothing moves until it is fixed.
  await store.write(VERSION_CHANGE_PATH, '{"format": 9}');
  t.match(await versionChangePass({ ...base, current: '3.4.23', wanted: '3.5.17' }), { kind: 'refused', message: /format: unknown format 9.*fix or remove it/ });
  await store.delete(VERSION_CHANGE_PATH);

  // Members change after the backup: a new plan for the members there are, the backup kept.
  t.match(await versionChangePass({ ...base, current: '3.4.23', wanted: '3.5.17' }), { kind: 'started' });
  t.match(await versionChangePass({ ...base, current: '3.4.23', wanted: '3.5.17' }), { kind: 'ran', step: { id: 'backup' } });
  sim.members.set('d', { version: '3.4.23', running: true, downFor: 0, behindFor: 0, out: false });
  const replanned = await versionChangePass({ ...base, current: '3.4.23', wanted: '3.5.17' });
  t.match(replanned, { kind: 'replanned', message: /\+d/ });
  if (replanned.kind === 'replanned') {
    t.same(replanned.record.steps.map((s) => `${s.id}:${s.state}`), ['backup:done', 'member/a:pending', 'member/b:pending', 'member/c:pending', 'member/d:pending']);
  }
  // The spec asks for 3.6.4 meanwhile: this change finishes first, and says what comes next.
  let last: VersionPassResult | undefined;
  for (let i = 0; i < 40 && last?.kind !== 'finished'; i++) last = await versionChangePass({ ...base, current: sim.clusterVersion, wanted: '3.6.4' });
  t.match(last, { kind: 'finished', record: { to: '3.5.17' }, next: '3.6.4' });
  t.same(sim.violations, []);
  t.match(await versionChangePass({ ...base, current: sim.clusterVersion, wanted: '3.6.4' }), { kind: 'started', record: { from: '3.5.17', to: '3.6.4', transition: 'in-place', reason: 'next-minor' } });
});
