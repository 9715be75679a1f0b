// The operator → leader request channel in the backup store: a doorbell the
// leader GETs cheaply, one listing only when it rang, requests run one at a
// time in order, results written back, abandoned and expired requests handled,
// finished ones cleaned up; nothing a kOps reader would take for a command.
import t from 'tap';
import { BackupNamer } from '../../agents/etcd-manager/backup/names.js';
import { listCommands } from '../../agents/etcd-manager/control/commands.js';
import { readResult, RequestInbox, ringDoorbell, submitRequest } from '../../agents/etcd-manager/control/requests.js';
import { openStore } from '../../shared/store/index.js';
import { countingStore } from '../harness/counting-store.js';

t.test('requests: doorbell, one listing per ring, FIFO one at a time, results, staleness, expiry, cleanup', async (t) => {
  let now = Date.parse('2026-11-30T08:00:00Z');
  const clock = () => now;
  let draws = 0;
  const namer = new BackupNamer({ now: clock, randomInt: () => draws++ % 1000 });
  const store = countingStore(openStore(`memfs://requests-${process.pid}/backups/etcd/main`));
  const inbox = new RequestInbox(store, { runner: 'a/1', now: clock });

  t.same(await inbox.poll(), { pending: [], expired: [], listed: true, invalid: [] }, 'the first poll lists (a new leader looks once)');
  store.reset();
  t.equal((await inbox.poll()).listed, false, 'no ring: no listing');
  t.same([store.calls.readIfExists, store.calls.list], [1, 0], 'an idle poll is one GET of the doorbell');

  const r1 = await submitRequest(store, { kind: 'backup', reason: 'before upgrade' }, { id: namer.next(), nowMs: now, requestedBy: 'ops@laptop' });
  store.reset();
  const first = await inbox.poll();
  t.equal(store.calls.list, 1, 'a ring: one listing');
  t.same(first.pending.map((r) => [r.id, r.spec.kind, r.spec.reason, r.requestedBy]), [[r1, 'backup', 'before upgrade', 'ops@laptop']]);
  t.equal(await readResult(store, r1), undefined, 'queued: no result yet');

  const startedAt = await inbox.start(r1);
  now += 2_000;
  await inbox.progress(r1, startedAt, { bytes: 1024, totalBytes: 4096 });
  t.match(await readResult(store, r1), { id: r1, state: 'running', runner: 'a/1', progress: { bytes: 1024, totalBytes: 4096 } });

  // Two more while r1 runs: both queued, in order, never reported as running.
  const r2 = await submitRequest(store, { kind: 'backup' }, { id: namer.next(), nowMs: now });
  const r3 = await submitRequest(store, { kind: 'backup' }, { id: namer.next(), nowMs: now });
  const second = await inbox.poll();
  t.same(second.pending.map((r) => r.id), [r2, r3], 'r1 is running here and alive: not offered again; the others wait in order');

  now += 1_000;
  await inbox.finish(r1, { state: 'succeeded', startedAt, backup: { name: 'n1', storedBytes: 10, snapshotBytes: 20, durationMs: 3000 } });
  t.match(await readResult(store, r1), { state: 'succeeded', backup: { name: 'n1' }, finishedAt: new Date(now).toISOString() });
  await ringDoorbell(store, 'nudge', now);
  t.same((await inbox.poll()).pending.map((r) => r.id), [r2, r3], 'finished requests are not offered again');

  // Another leader starts r2 and dies: once its result goes stale, r2 is offered again.
  const other = new RequestInbox(store, { runner: 'b/9', now: clock });
  await other.start(r2);
  await ringDoorbell(store, 'nudge', now);
  t.same((await inbox.poll()).pending.map((r) => r.id), [r3], 'r2 is running on b, alive');
  now += 3 * 60_000;
  await ringDoorbell(store, 'nudge', now);
  t.same((await inbox.poll()).pending.map((r) => r.id), [r2, r3], 'b stopped updating r2: offered again');
  await inbox.finish(r2, { state: 'failed', startedAt: new Date(now).toISOString(), error: 'etcd unreachable' });

  // A request nobody started within the expiry is answered, not run.
  now += 2 * 60 * 60_000;
  await ringDoorbell(store, 'nudge', now);
  const late = await inbox.poll();
  t.same(late.pending, []);
  t.same(late.expired, [r3]);
  t.match(await readResult(store, r3), { state: 'expired', error: /not started within 60 min/ });

  // The fallback: even with no ring, the folder is listed every few minutes.
  store.reset();
  now += 6 * 60_000;
  t.equal((await inbox.poll()).listed, true, 'fallback listing without a ring');
  t.equal(store.calls.list, 1);

  // A day later the finished pairs are gone.
  now += 25 * 60 * 60_000;
  await ringDoorbell(store, 'nudge', now);
  await inbox.poll();
  t.same((await store.list('control/requests')), [], 'finished requests and results deleted after a day');

  // Nothing here is a kOps command.
  t.same((await store.list('control')).filter((p) => p.endsWith('_command.json')), []);
  t.same(await listCommands(store), { commands: [], invalid: [] });
});

t.test('a request file that does not parse is reported by name and left alone', async (t) => {
  const store = openStore(`memfs://requests-bad-${process.pid}/b`);
  await store.write('control/requests/x.request.json', '{"format":"something-else"}');
  await ringDoorbell(store, 'x', Date.now());
  const inbox = new RequestInbox(store, { runner: 'a/1', now: Date.now });
  const polled = await inbox.poll();
  t.same(polled.pending, []);
  t.match(polled.invalid, [/control\/requests\/x.request.json: not a mooring.etcd-manager-request\/v1 request/]);
  t.ok(await store.exists('control/requests/x.request.json'));
});
