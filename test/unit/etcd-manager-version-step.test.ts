// The acting manager's version step (controller/version.ts) over a simulated
// three-member cluster and a real memfs store, no process: a spec that asks
// for the next minor drives the change in place through the real driver: a
// backup first, then one member at a time through the member's manager, raft
// leadership moved off a member before it restarts, this manager's member last,
// the record removed at the end; a member that is down stops the change
// (counted once, shown in the status) and it resumes once the member is back;
// a downgrade goes by a backup and a restore command for it with the new
// version, the step pending until the restore's outcome (a failed one fails the
// step with its reason); etcd2 → etcd3 goes by a v2 backup, its conversion
// into a v3 backup, and a restore command for the converted one; bad versions
// are refused with a status and nothing is started; no spec, no cluster or a
// restore under way: the step does nothing.
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { clearMemfs, MemfsStore } from '../../shared/store/memfs.js';
import { VersionStep, versionChangeCommandId, type VersionStepDeps } from '../../agents/etcd-manager/controller/version.js';
import { listCommands } from '../../agents/etcd-manager/control/commands.js';
import { DOORBELL_PATH } from '../../agents/etcd-manager/control/requests.js';
import { OUTCOME_FORMAT, outcomePath, writeOutcome, type CommandOutcome } from '../../agents/etcd-manager/control/restore-plan.js';
import type { Pass, StepResult } from '../../agents/etcd-manager/controller/types.js';
import type { ClusterObservation } from '../../agents/etcd-manager/versions/plan.js';
import { readVersionChange, VERSION_CHANGE_PATH } from '../../agents/etcd-manager/versions/record.js';

configureLogging({ level: 'error', format: 'json' });
const log = logger('test');
t.teardown(() => clearMemfs());

let stores = 0;
const SELF = 'etcd-a';

/** Three members, their versions, health and raft leader, changed only through the step's dependencies. */
class FakeCluster {
  versions = new Map<string, string>();
  down = new Set<string>();
  raftLeader = SELF;
  events: string[] = [];
  blocked: string[] = [];
  refused = 0;
  /** The fake monotonic clock (ms); sleep advances it. */
  ms = 0;
  /** Looks at a restarted member before it is back on its new version (0: at once). */
  restartLooks = 0;
  pending = new Map<string, { version: string; looks: number }>();
  constructor(version: string) {
    for (const m of ['etcd-a', 'etcd-b', 'etcd-c']) this.versions.set(m, version);
  }

  observation(): ClusterObservation {
    for (const [member, p] of this.pending) {
      if (p.looks-- > 0) continue;
      this.versions.set(member, p.version);
      this.pending.delete(member);
    }
    return {
      managerLeader: SELF,
      leaderIndex: 100,
      members: [...this.versions].map(([name, version]) => ({
        name,
        healthy: !this.down.has(name),
        isRaftLeader: name === this.raftLeader,
        ...(this.down.has(name) || this.pending.has(name) ? {} : { version, appliedIndex: 100 }),
      })),
    };
  }

  deps(store: MemfsStore, current: () => string | undefined): VersionStepDeps {
    return {
      store,
      self: SELF,
      term: () => 7,
      currentVersion: current,
      observe: async () => this.observation(),
      backupNow: async (detail) => {
        this.events.push(`backup: ${detail}`);
        return { name: `backup-${this.events.length}` };
      },
      convertV2: async (from, to) => {
        this.events.push(`convert ${from} into ${to}`);
        return { name: `converted-${this.events.length}` };
      },
      setMemberVersion: async (member, version) => {
        if (this.down.has(member)) throw new Error(`${member} does not answer`);
        if (member === this.raftLeader) throw new Error(`${member} restarted while leading raft`);
        this.events.push(`restart ${member} on ${version}`);
        this.pending.set(member, { version, looks: this.restartLooks });
      },
      moveRaftLeader: async (from, to) => {
        this.events.push(`move raft leader ${from} -> ${to}`);
        this.raftLeader = to;
      },
      checkBinaries: async () => undefined,
      sleep: async (ms) => void (this.ms += ms),
      clock: () => this.ms,
      restartTimeoutMs: 10_000,
      log,
      metrics: { blocked: (reason) => this.blocked.push(reason), refused: () => this.refused++ },
    };
  }
}

function pass(etcdVersion: string, extra: Partial<Pass> = {}): Pass {
  return { leading: true, created: true, spec: { memberCount: 3, etcdVersion }, ...extra };
}

/** Runs passes until one reports nothing done, waiting or progress (at most `max`). */
async function runPasses(step: VersionStep, p: () => Pass, max = 30): Promise<(StepResult | undefined)[]> {
  const results: (StepResult | undefined)[] = [];
  for (let i = 0; i < max; i++) {
    const r = await step.step(p());
    results.push(r);
    if (!r || r.waitFor) break;
  }
  return results;
}

t.test('3.4.23 → 3.5.17 in place: a backup first, one member at a time, raft leadership moved first, this manager last', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('3.4.23');
  const step = new VersionStep(cluster.deps(store, () => cluster.versions.get(SELF)));
  let reads = 0;
  const readVersioned = store.readVersioned.bind(store);
  store.readVersioned = async (path) => {
    if (path === VERSION_CHANGE_PATH) reads++;
    return readVersioned(path);
  };
  for (let i = 0; i < 5; i++) t.equal(await step.step(pass('3.4.23')), undefined, 'the spec asks for the running version: nothing');
  t.equal(reads, 1, 'the record was read once (a former leader\'s change would be there), not every pass');
  t.same(cluster.events, []);
  t.equal(await readVersionChange(store), undefined, 'no record');

  const results = await runPasses(step, () => pass('3.5.17'));
  t.match(results[0], { did: /planned: 3\.4\.23 → 3\.5\.17: in place/ });
  t.same(cluster.events, [
    'backup: etcd 3.4.23 → 3.5.17 (version change ' + (results[0]?.did?.match(/version change (\w+)/)?.[1] ?? '?') + ')',
    'restart etcd-b on 3.5.17',
    'restart etcd-c on 3.5.17',
    'move raft leader etcd-a -> etcd-b',
    'restart etcd-a on 3.5.17',
  ], 'the backup before any member moves; the leader member last, after raft leadership left it');
  t.match(results.at(-2), { did: /finished: etcd 3\.5\.17/ });
  t.equal(results.at(-1), undefined, 'then idle');
  t.same([...cluster.versions.values()], ['3.5.17', '3.5.17', '3.5.17']);
  t.equal(await readVersionChange(store), undefined, 'the record is removed at the end');
  t.match(step.status, { state: 'finished', from: '3.4.23', to: '3.5.17' });
  t.same(cluster.blocked, []);
});

t.test('a member that is down stops the change, counted once, and it resumes once the member is back', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('3.4.23');
  const step = new VersionStep(cluster.deps(store, () => cluster.versions.get(SELF)));
  await step.step(pass('3.4.24')); // planned
  await step.step(pass('3.4.24')); // backup
  await step.step(pass('3.4.24')); // etcd-b restarted
  t.same(cluster.events.slice(1), ['restart etcd-b on 3.4.24']);
  cluster.down.add('etcd-c');
  for (let i = 0; i < 3; i++) {
    const r = await step.step(pass('3.4.24'));
    t.match(r, { waitFor: /member etcd-c is not healthy/ }, `pass ${i + 1} waits`);
  }
  t.same(cluster.blocked, ['member-unhealthy'], 'counted once, not per pass');
  t.match(step.status, { state: 'waiting', to: '3.4.24', message: /etcd-c is not healthy/, stepsDone: 2, steps: 4 });
  t.match((await readVersionChange(store))?.record.blocked, { reason: 'member-unhealthy', member: 'etcd-c' }, 'the record says why (get reads it)');
  t.same(cluster.events.slice(1), ['restart etcd-b on 3.4.24'], 'nothing moved while it was down');

  cluster.down.delete('etcd-c');
  const rest = await runPasses(step, () => pass('3.4.24'));
  t.match(rest.at(-2), { did: /finished/ });
  t.same([...cluster.versions.values()], ['3.4.24', '3.4.24', '3.4.24']);
  t.equal(cluster.events.filter((e) => e.startsWith('restart etcd-b')).length, 1, 'the member done before the stop was not restarted again');
});

t.test('a downgrade goes by backup + restore: one restore command with the new version, pending until its outcome; a failed restore fails the step with its reason', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('3.5.17');
  const step = new VersionStep(cluster.deps(store, () => cluster.versions.get(SELF)));
  t.match(await step.step(pass('3.4.23')), { did: /planned: 3\.5\.17 → 3\.4\.23: backup, then restore into 3\.4\.23 \(a downgrade\)/ });
  t.match(await step.step(pass('3.4.23')), { did: /step backup done/ });
  const record = (await readVersionChange(store))!.record;
  const commandId = versionChangeCommandId(record.id);
  t.match(await step.step(pass('3.4.23')), { waitFor: new RegExp(`the restore of backup-1 into etcd 3\\.4\\.23 \\(command ${commandId}\\)`) });
  const queued = await listCommands(store);
  t.same(queued.commands.map((c) => ({ id: c.id, restore: c.restoreBackup })), [{ id: commandId, restore: { backup: 'backup-1', clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } } }], 'kOps\' restore command, with the new version');
  t.ok(await store.exists(DOORBELL_PATH), 'the doorbell rung');
  await step.step(pass('3.4.23'));
  t.equal((await listCommands(store)).commands.length, 1, 'queued once, not once per pass');
  t.match(step.status, { state: 'running', message: /the restore of backup-1/ });
  t.same(cluster.events, ['backup: etcd 3.5.17 → 3.4.23 (version change ' + record.id + ')'], 'no member restarted by the version step itself');

  // The restore fails before touching anything live: the step fails with its reason, each pass, and nothing is queued again.
  const outcome: CommandOutcome = { format: OUTCOME_FORMAT, id: commandId, state: 'failed', backup: 'backup-1', error: 'preparing on etcd-b failed 3 times: disk full', finishedAt: new Date().toISOString(), leader: SELF, term: 7 };
  await writeOutcome(store, outcome);
  t.match(await step.step(pass('3.4.23')), { waitFor: /version change step restore/ });
  t.match(step.status, { state: 'failed', message: /the restore of backup-1 into etcd 3\.4\.23 failed: preparing on etcd-b failed 3 times: disk full; the cluster still runs etcd 3\.5\.17, untouched\. .*delete-command version-change-/ });
  t.equal((await listCommands(store)).commands.length, 1);

  // The operator deletes the command (delete-command leaves the outcome): queued again, the old outcome gone.
  await store.delete(`control/${commandId}/_command.json`);
  t.match(await step.step(pass('3.4.23')), { waitFor: /the restore of backup-1/ });
  t.equal((await listCommands(store)).commands.length, 1, 'queued again');
  t.equal(await store.exists(outcomePath(commandId)), false, 'without the failed outcome');
  t.equal((await readVersionChange(store))!.record.lastError, undefined, 'and the record no longer shows the old failure');
  t.match(await step.step(pass('3.4.23')), { waitFor: /the restore of backup-1/ }, 'and pending, not failed, while it runs');

  // It succeeds (controller/restore.ts removes the command and writes the outcome): the step is done, then the change.
  await store.delete(`control/${commandId}/_command.json`);
  await writeOutcome(store, { ...outcome, state: 'succeeded', error: undefined });
  for (const m of cluster.versions.keys()) cluster.versions.set(m, '3.4.23');
  t.match(await step.step(pass('3.4.23')), { did: /step restore done/ });
  t.match(await step.step(pass('3.4.23')), { did: /finished: etcd 3\.4\.23/ });
  t.equal(await readVersionChange(store), undefined, 'the record is removed');
  t.equal((await listCommands(store)).commands.length, 0, 'nothing left queued');
});

t.test('a skipped minor plans a backup + restore too; a bad version is refused with a status, nothing started', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('3.4.23');
  const step = new VersionStep(cluster.deps(store, () => cluster.versions.get(SELF)));
  t.match(await step.step(pass('3.6.5')), { did: /backup, then restore into 3\.6\.5 \(skips a minor\)/ });
  await store.delete(VERSION_CHANGE_PATH);

  const other = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const v3 = new FakeCluster('3.4.23');
  const refusing = new VersionStep(v3.deps(other, () => v3.versions.get(SELF)));
  for (const wanted of ['2.2.5', '2.2.5', 'latest']) t.equal(await refusing.step(pass(wanted)), undefined);
  t.match(refusing.status, { state: 'refused', from: '3.4.23', to: 'latest', message: /"latest" is not a version/ });
  t.equal(v3.refused, 2, 'counted once per refusal, not per pass');
  t.same(v3.events, [], 'no backup, no member touched');
  t.equal(await readVersionChange(other), undefined, 'no record');

});

t.test('etcd2 → etcd3: a v2 backup, converted into a v3 backup, then one restore command for the converted backup with the new version', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('2.2.1');
  const step = new VersionStep(cluster.deps(store, () => cluster.versions.get(SELF)));
  t.match(await step.step(pass('3.4.23')), { did: /planned: 2\.2\.1 → 3\.4\.23: v2 backup, then the v2 → v3 migration/ });
  t.match(await step.step(pass('3.4.23')), { did: /step backup done/ });
  t.match(await step.step(pass('3.4.23')), { did: /step convert done/ });
  const record = (await readVersionChange(store))!.record;
  t.match(record.steps.find((s) => s.id === 'convert'), { kind: 'convert-v2', to: '3.4.23', name: 'converted-2', state: 'done' }, 'the converted backup\'s name kept in the record');
  const commandId = versionChangeCommandId(record.id);
  t.match(await step.step(pass('3.4.23')), { waitFor: new RegExp(`the restore of converted-2 into etcd 3\\.4\\.23 \\(command ${commandId}\\)`) });
  const queued = await listCommands(store);
  t.same(queued.commands.map((c) => ({ id: c.id, restore: c.restoreBackup })), [{ id: commandId, restore: { backup: 'converted-2', clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } } }], 'the converted backup is restored, not the v2 one');
  t.same(cluster.events, [`backup: etcd 2.2.1 → 3.4.23 (version change ${record.id})`, 'convert backup-1 into 3.4.23'], 'no member touched before the restore');

  await store.delete(`control/${commandId}/_command.json`);
  await writeOutcome(store, { format: OUTCOME_FORMAT, id: commandId, state: 'succeeded', backup: 'converted-2', finishedAt: new Date().toISOString(), leader: SELF, term: 7 });
  for (const m of cluster.versions.keys()) cluster.versions.set(m, '3.4.23');
  t.match(await step.step(pass('3.4.23')), { did: /step restore done/ });
  t.match(await step.step(pass('3.4.23')), { did: /finished: etcd 3\.4\.23/ });
  t.equal(await readVersionChange(store), undefined, 'the record is removed');
});

t.test('no spec, no cluster yet, a restore under way, or no known version: the step does nothing', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('3.4.23');
  let current: string | undefined = '3.4.23';
  const step = new VersionStep(cluster.deps(store, () => current));
  t.equal(await step.step({ leading: true, created: true }), undefined);
  t.equal(await step.step(pass('3.5.17', { created: false })), undefined);
  t.equal(await step.step(pass('3.5.17', { restoring: true })), undefined);
  current = undefined;
  t.equal(await step.step(pass('3.5.17')), undefined);
  t.same(cluster.events, []);
  t.equal(await readVersionChange(store), undefined);
});

t.test('a member is marked upgraded only once it is back healthy on the new version; one that does not come back in time fails the step, which the next passes finish', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('3.4.23');
  const step = new VersionStep(cluster.deps(store, () => cluster.versions.get(SELF)));
  await step.step(pass('3.5.17')); // planned
  await step.step(pass('3.5.17')); // backup
  cluster.restartLooks = 3;
  const started = cluster.ms;
  t.match(await step.step(pass('3.5.17')), { did: /step member\/etcd-b done/ });
  t.equal(cluster.ms - started, 3 * 500, 'the pass looked until etcd-b was back (3 looks while it restarted)');
  t.equal(cluster.versions.get('etcd-b'), '3.5.17');

  cluster.restartLooks = 1_000; // etcd-c does not come back within the bound
  const failed = await step.step(pass('3.5.17'));
  t.match(failed, { waitFor: 'version change step member/etcd-c' });
  t.match(step.status, { state: 'failed', message: /member etcd-c is not back healthy on etcd 3\.5\.17 after 10 s/ });
  t.match((await readVersionChange(store))?.record.lastError, { step: 'member/etcd-c', attempts: 1 });
  t.match(await step.step(pass('3.5.17')), { waitFor: /etcd-c is not healthy/ }, 'while it is down, nothing else moves');
  t.equal(cluster.events.filter((e) => e.startsWith('restart')).length, 2, 'etcd-a was not restarted meanwhile');

  cluster.restartLooks = 0;
  cluster.pending.set('etcd-c', { version: '3.5.17', looks: 0 });
  const rest = await runPasses(step, () => pass('3.5.17'));
  t.match(rest[0], { did: /step member\/etcd-c done/ }, 'back: marked done, not restarted again');
  t.match(rest.at(-2), { did: /finished/ });
  t.equal(cluster.events.filter((e) => e === 'restart etcd-c on 3.5.17').length, 1, 'etcd-c restarted once');
  t.same([...cluster.versions.values()], ['3.5.17', '3.5.17', '3.5.17']);
});

t.test('a new term reads the record again: a change another leader started is carried on even when this member already runs the new version', async (t) => {
  const store = new MemfsStore(`memfs://version-step-${process.pid}-${stores++}/backups/etcd/main`);
  const cluster = new FakeCluster('3.4.23');
  let term = 7;
  const deps = { ...cluster.deps(store, () => cluster.versions.get(SELF)), term: () => term };
  const other = new VersionStep({ ...deps, self: 'etcd-b', currentVersion: () => cluster.versions.get('etcd-b') });
  const step = new VersionStep(deps);
  t.equal(await step.step(pass('3.4.23')), undefined, 'nothing asked, nothing recorded');
  // Another manager leads meanwhile, starts a change and gets as far as this member (which it moved first).
  term = 8;
  cluster.versions.set(SELF, '3.5.17');
  const started = await other.step(pass('3.5.17'));
  t.match(started, { did: /planned/ });
  // This one leads again under a newer term; its own member already runs 3.5.17, the spec asks for it.
  term = 9;
  const rest = await runPasses(step, () => pass('3.5.17'));
  t.match(rest.at(-2), { did: /finished: etcd 3\.5\.17/ }, 'the change was carried on, not ignored');
  t.same([...cluster.versions.values()], ['3.5.17', '3.5.17', '3.5.17']);
  t.equal(await readVersionChange(store), undefined);
});
