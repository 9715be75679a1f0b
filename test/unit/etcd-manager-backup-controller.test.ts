// The acting manager's backups without a process: the real backup library over
// a memfs store, snapshots from a fake source that streams a valid etcd
// snapshot (a database then its sha256), a fake clock. Scheduled backups every
// interval, counted from the newest backup in the store (so a new leader keeps
// the pace); one retention pass (one listing) after each backup; requests run
// one at a time, never two at once; the membership hook waits for a backup;
// failures are reported in the request's result and counted.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { configureLogging, logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import { BackupController, type BackupDeps, type BackupReason, type SnapshotLease } from '../../agents/etcd-manager/controller/backup.js';
import type { SnapshotSource } from '../../agents/etcd-manager/backup/snapshot-stream.js';
import { listBackups } from '../../agents/etcd-manager/backup/list.js';
import { formatBackupName } from '../../agents/etcd-manager/backup/names.js';
import { readResult, RequestInbox, submitRequest } from '../../agents/etcd-manager/control/requests.js';
import { countingStore } from '../harness/counting-store.js';

const lines: Array<Record<string, unknown>> = [];
configureLogging({ format: 'json', level: 'info', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });

const MIN = 60_000;
const T0 = Date.parse('2026-11-30T08:00:00Z');

/** A fake etcd member: each open streams a fresh valid snapshot; `gate` holds the stream's end; counts concurrency. */
class FakeEtcd implements SnapshotSource {
  live = 0;
  maxOpen = 0;
  opened = 0;
  gate?: Promise<void>;
  async open() {
    this.live++;
    this.opened++;
    this.maxOpen = Math.max(this.maxOpen, this.live);
    const db = randomBytes(4096 * 4);
    const body = Buffer.concat([db, createHash('sha256').update(db).digest()]);
    const gate = this.gate;
    const done = () => this.live--;
    const data = Readable.from((async function* () {
      yield body.subarray(0, 8192);
      await gate;
      yield body.subarray(8192);
      done();
    })());
    return { origin: { clusterId: '1', memberId: '2', endpoint: 'https://a:4001', revision: String(100 + this.opened), version: '3.4.23' }, data };
  }
}

function setup(overrides: Partial<BackupDeps> = {}) {
  const inner = openStore(`memfs://backup-ctl-${Math.random()}/c.example.com/backups/etcd/main`);
  const store = countingStore(inner);
  const etcd = new FakeEtcd();
  const clock = { wall: T0, mono: 0, now() { return this.mono; }, wallNow() { return this.wall; } };
  const wakes: string[] = [];
  const counted = { succeeded: [] as BackupReason[], failed: [] as BackupReason[], last: [] as Array<string | undefined> };
  let acting = true;
  let term = 1;
  let healthy = true;
  const lease = (): SnapshotLease | undefined => (healthy ? { source: etcd, endpoint: 'https://a:4001', close: () => undefined } : undefined);
  let n = 0;
  const deps: BackupDeps = {
    store,
    openSnapshot: async () => lease(),
    key: async () => undefined,
    clusterSpec: () => ({ memberCount: 3, etcdVersion: '3.4.23' }),
    intervalMs: 15 * MIN,
    retention: { keepAllForMs: 60 * MIN, hourlyForMs: 7 * 24 * 60 * MIN, dailyForMs: 90 * 24 * 60 * MIN },
    clock,
    log: logger('test'),
    isActing: () => acting,
    term: () => term,
    wake: (reason) => wakes.push(reason),
    metrics: { setLast: (l) => counted.last.push(l?.name), succeeded: (r) => counted.succeeded.push(r), failed: (r) => counted.failed.push(r) },
    nextName: () => formatBackupName(clock.wall, ++n),
    ...overrides,
  };
  const ctl = new BackupController(deps);
  const idle = async () => {
    for (let i = 0; i < 500 && ctl.busy; i++) await new Promise((r) => setTimeout(r, 5));
    if (ctl.busy) throw new Error('backups never finished');
  };
  return {
    store, inner, etcd, clock, wakes, counted, ctl, idle, deps,
    setActing: (v: boolean) => (acting = v), setTerm: (v: number) => (term = v), setHealthy: (v: boolean) => (healthy = v),
  };
}

const created = { leading: true, created: true, spec: { memberCount: 3, etcdVersion: '3.4.23' } };

t.test('scheduled: the first at once, the next an interval later; each followed by one retention listing', async (t) => {
  const s = setup();
  t.same(await s.ctl.step({ leading: true, created: false }), undefined, 'no cluster yet: nothing');
  t.same(await s.ctl.step(created), { did: 'scheduled backup started' }, 'no backup in the store: one at once');
  t.equal(s.store.calls.list, 1, 'one listing to learn the last backup');
  await s.idle();
  const first = (await listBackups(s.inner)).backups.map((b) => b.name);
  t.equal(first.length, 1);
  t.ok(lines.some((l) => l.event === 'backup.completed' && l.name === first[0] && l.reason === 'scheduled'));
  t.equal(s.store.calls.list, 2, 'the retention pass listed the store once');
  t.ok(lines.some((l) => l.event === 'backup.retention' && l.kept === 1 && l.deleted === 0));
  t.same(s.wakes.at(-1), 'backup finished (scheduled)', 'a finished backup wakes the loop');

  s.clock.wall += 14 * MIN;
  t.same(await s.ctl.step(created), undefined, 'not due before the interval');
  s.clock.wall += MIN;
  t.same(await s.ctl.step(created), { did: 'scheduled backup started' }, 'due at the interval');
  await s.idle();
  t.equal((await listBackups(s.inner)).backups.length, 2);
  t.same(s.counted.succeeded, ['scheduled', 'scheduled']);
  t.equal(s.ctl.statusLast()?.reason, 'scheduled');
  t.equal(s.ctl.statusLast()?.revision, '102', 'the revision the member reported');
});

t.test('the last backup time comes from the store: a new leader keeps the pace', async (t) => {
  const s = setup();
  await s.ctl.step(created);
  await s.idle();
  const name = (await listBackups(s.inner)).backups[0].name;
  // Another manager starts leading 10 minutes later: it must wait 5 more, not back up at once.
  const other = new BackupController({ ...s.deps, metrics: undefined });
  s.clock.wall += 10 * MIN;
  s.store.reset();
  t.same(await other.step(created), undefined, 'not due: the newest backup in the store is 10 min old');
  t.equal(s.store.calls.list, 1, 'one listing');
  t.equal(other.last?.name, name, 'it knows the last backup by its name');
  t.equal(other.last?.storedBytes, s.ctl.last?.storedBytes, 'and its size, from the sidecar');
  s.clock.wall += 5 * MIN;
  t.same(await other.step(created), { did: 'scheduled backup started' });
  await other.step(created).catch(() => undefined);
  for (let i = 0; i < 500 && other.busy; i++) await new Promise((r) => setTimeout(r, 5));
  s.store.reset();
  await other.step(created);
  t.equal(s.store.calls.list, 0, 'the same term: no listing again');
});

t.test('requests run one at a time, oldest first, with results a requester can read', async (t) => {
  const s = setup();
  await s.ctl.step(created);
  await s.idle();
  let release!: () => void;
  s.etcd.gate = new Promise((r) => (release = r));
  const inbox = new RequestInbox(s.inner, { runner: 'a/1', now: () => s.clock.wall });
  const ids = ['2026-11-30T08:00:01Z-000001', '2026-11-30T08:00:02Z-000002'];
  for (const id of ids) await submitRequest(s.inner, { kind: 'backup', reason: id.slice(-1) }, { id, nowMs: s.clock.wall });
  const polled = await inbox.poll();
  t.same(polled.pending.map((r) => r.id), ids);
  s.ctl.enqueue(polled.pending, inbox);
  s.ctl.enqueue((await inbox.poll()).pending, inbox); // a second poll lists them again: nothing doubles
  for (let i = 0; i < 100 && !(await readResult(s.inner, ids[0])); i++) await new Promise((r) => setTimeout(r, 5));
  t.equal((await readResult(s.inner, ids[0]))?.state, 'running', 'the first runs');
  t.equal(await readResult(s.inner, ids[1]), undefined, 'the second waits its turn (no result yet)');
  t.same(s.ctl.queued, [ids[1]]);
  t.same(await s.ctl.step(created), undefined, 'a scheduled backup never starts beside a request');
  release();
  for (let i = 0; i < 500 && (await readResult(s.inner, ids[1]))?.state !== 'succeeded'; i++) await new Promise((r) => setTimeout(r, 5));
  await s.idle();
  const [r1, r2] = [await readResult(s.inner, ids[0]), await readResult(s.inner, ids[1])];
  t.equal(r1?.state, 'succeeded');
  t.equal(r2?.state, 'succeeded');
  t.equal(s.etcd.maxOpen, 1, 'never two snapshots at once');
  t.ok(r1!.backup!.storedBytes > 0 && r1!.backup!.snapshotBytes === 4096 * 4 + 32);
  t.not(r1!.backup!.name, r2!.backup!.name);
  const started = lines.filter((l) => l.event === 'backup.request-started').map((l) => l.requestId);
  t.same(started.slice(-2), ids, 'oldest first');
  t.same((await listBackups(s.inner)).backups.map((b) => b.name).filter((n) => n === r1!.backup!.name || n === r2!.backup!.name).length, 2, 'both listed');
});

t.test('a request that cannot be served says why in its result; failures are counted', async (t) => {
  const s = setup();
  await s.ctl.step(created);
  await s.idle();
  s.setHealthy(false);
  const inbox = new RequestInbox(s.inner, { runner: 'a/1', now: () => s.clock.wall });
  await submitRequest(s.inner, { kind: 'backup' }, { id: 'req-1', nowMs: s.clock.wall });
  s.ctl.enqueue((await inbox.poll()).pending, inbox);
  for (let i = 0; i < 500 && (await readResult(s.inner, 'req-1'))?.state !== 'failed'; i++) await new Promise((r) => setTimeout(r, 5));
  const r = await readResult(s.inner, 'req-1');
  t.equal(r?.state, 'failed');
  t.match(r?.error, /no etcd member answers/);
  t.same(s.counted.failed, ['on-demand']);
  t.ok(lines.some((l) => l.event === 'backup.failed' && l.reason === 'on-demand'));
});

t.test('before a membership change: the change waits until a backup completed for it', async (t) => {
  const s = setup();
  let release!: () => void;
  s.etcd.gate = new Promise((r) => (release = r));
  t.equal(await s.ctl.beforeChange('add c'), false, 'the first ask starts a backup');
  t.equal(await s.ctl.beforeChange('add c'), false, 'still running');
  release();
  await s.idle();
  t.equal(await s.ctl.beforeChange('add c'), true, 'done: the change may go ahead');
  t.equal(await s.ctl.beforeChange('remove b'), false, 'the next change needs its own backup');
  await s.idle();
  t.same(s.counted.succeeded, ['before-membership-change', 'before-membership-change']);
  t.ok(lines.some((l) => l.event === 'backup.started' && l.reason === 'before-membership-change' && l.detail === 'add c'));

  s.setHealthy(false);
  t.equal(await s.ctl.beforeChange('remove b'), true, 'the backup taken above counts');
  t.equal(await s.ctl.beforeChange('add d'), false);
  await s.idle();
  t.equal(await s.ctl.beforeChange('add d'), false, 'a failed backup: the change still waits');
  t.equal(s.counted.failed.at(-1), 'before-membership-change');
});

t.test('a manager that stops acting starts nothing and forgets its queue', async (t) => {
  const s = setup();
  s.setActing(false);
  t.same(await s.ctl.step(created), undefined);
  t.equal(s.etcd.opened, 0);
  t.equal(s.store.calls.list, 0, 'not even a listing');
  const inbox = new RequestInbox(s.inner, { runner: 'a/1', now: () => s.clock.wall });
  await submitRequest(s.inner, { kind: 'backup' }, { id: 'req-2', nowMs: s.clock.wall });
  s.ctl.enqueue((await inbox.poll()).pending, inbox);
  t.same(s.ctl.queued, ['req-2'], 'queued, not started');
  await s.ctl.step(created);
  t.same(s.ctl.queued, [], 'dropped: the next leader lists it again');
  t.equal(await readResult(s.inner, 'req-2'), undefined);
});

t.test('during a restore: no scheduled backup, and requests wait for it to end', async (t) => {
  const s = setup();
  t.same(await s.ctl.step({ ...created, restoring: true }), undefined);
  t.equal(s.etcd.opened, 0, 'no scheduled backup');
  const inbox = new RequestInbox(s.inner, { runner: 'a/1', now: () => s.clock.wall });
  await submitRequest(s.inner, { kind: 'backup' }, { id: 'req-3', nowMs: s.clock.wall });
  s.ctl.enqueue((await inbox.poll()).pending, inbox);
  t.same(s.ctl.queued, ['req-3'], 'queued, not started');
  t.equal(s.etcd.opened, 0);
  await s.ctl.step(created);
  await s.idle();
  t.equal((await readResult(s.inner, 'req-3'))?.state, 'succeeded', 'run once the restore is over');
});

t.test('a manager that stops acting reports no last backup', async (t) => {
  const s = setup();
  await s.ctl.step(created);
  await s.idle();
  s.setActing(false);
  await s.ctl.step(created);
  t.equal(s.counted.last.at(-1), undefined, 'the gauges are cleared');
});
