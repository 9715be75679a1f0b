// The operator-facing records without a process: control/status.json (its
// parser is the CLI's contract), the restore plan and command outcomes, the
// control inbox (a doorbell GET per poll; listings only when it rang, on
// becoming acting, or on the fallback; nothing at all when not acting) and the
// status writer (on change, throttled, with a heartbeat).
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import { STATUS_FORMAT, STATUS_HEARTBEAT_MS, STATUS_PATH, StatusFormatError, formatStatus, parseStatus, readStatus, statusAge, type ManagerStatus } from '../../agents/etcd-manager/control/status.js';
import { ControlRecordError, listControl, outcomePath, parseOutcome, parseRestorePlan, writeOutcome, OUTCOME_FORMAT, RESTORE_PLAN_FORMAT } from '../../agents/etcd-manager/control/restore-plan.js';
import { queueRestoreCommand } from '../../agents/etcd-manager/control/commands.js';
import { ringDoorbell, submitRequest, type ManagerRequest } from '../../agents/etcd-manager/control/requests.js';
import { ControlInbox } from '../../agents/etcd-manager/controller/commands.js';
import { StatusWriter, type StatusDeps } from '../../agents/etcd-manager/controller/status.js';
import type { ControlListing } from '../../agents/etcd-manager/control/restore-plan.js';
import { countingStore } from '../harness/counting-store.js';

const lines: Array<Record<string, unknown>> = [];
configureLogging({ format: 'json', level: 'info', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

const status: ManagerStatus = {
  format: STATUS_FORMAT,
  updatedAt: '2026-11-30T08:00:00.000Z',
  leader: { member: 'a', term: 4, runner: 'a/1234' },
  clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' },
  created: true,
  members: [
    { name: 'a', id: '11', healthy: true, managerAlive: true, quarantined: false, clientURLs: ['https://a:4001'], peerURLs: ['https://a:2380'] },
    { name: 'b', id: '12', healthy: false, learner: true, managerAlive: false, clientURLs: ['https://b:4001'], peerURLs: ['https://b:2380'] },
  ],
  etcdAnswered: true,
  lastBackup: { name: '2026-11-30T07:45:00Z-000001', startedAt: '2026-11-30T07:45:00.000Z', storedBytes: 1000, snapshotBytes: 4000, durationMs: 120, reason: 'scheduled', revision: '42', encrypted: false },
  backupRunning: { reason: 'on-demand', requestId: 'r1', name: '2026-11-30T08:00:00Z-000002', startedAt: '2026-11-30T08:00:00.000Z', bytes: 512 },
  backupsQueued: ['r2'],
  restore: { commandId: 'c1', backup: 'x', phase: 'preparing', startedAt: '2026-11-30T08:00:00.000Z', members: { a: 'prepared', b: 'preparing' } },
  commands: [{ id: 'c1', backup: 'x', state: 'running' }, { id: 'c0', backup: 'y', state: 'refused', error: 'bad' }],
};

t.test('status.json: what the writer formats, the CLI\'s parser reads back; anything else is named', async (t) => {
  t.same(parseStatus(formatStatus(status), 'status.json'), status, 'a round trip');
  const minimal = { format: STATUS_FORMAT, updatedAt: status.updatedAt, leader: status.leader, created: false, members: [], etcdAnswered: false, backupsQueued: [], commands: [] };
  t.same(parseStatus(JSON.stringify({ ...minimal, later: 'field' }), 's'), minimal, 'optional parts absent; unknown fields dropped');
  const bad: Array<[unknown, RegExp]> = [
    ['{', /s: not JSON/],
    [{ ...status, format: 'other/v9' }, /format "other\/v9" is not mooring\.etcd-manager-status\/v1/],
    [{ ...status, updatedAt: 'yesterday' }, /updatedAt is missing or malformed/],
    [{ ...status, leader: { member: 'a', term: -1, runner: 'x' } }, /leader \{member, term, runner\}/],
    [{ ...status, members: [{ name: 'a' }] }, /members is missing or malformed/],
    [{ ...status, lastBackup: { name: 'x', startedAt: 'y', storedBytes: '12' } }, /lastBackup/],
    [{ ...status, commands: [{ id: 'c', state: 'exploded' }] }, /commands/],
  ];
  for (const [doc, want] of bad) t.throws(() => parseStatus(typeof doc === 'string' ? doc : JSON.stringify(doc), 's'), { name: 'Error', message: want });
  t.ok(thrown(() => parseStatus('[]', 's')) instanceof StatusFormatError, 'a StatusFormatError');
  t.same(statusAge(status, Date.parse(status.updatedAt) + 1000), { ageMs: 1000, stale: false });
  t.equal(statusAge(status, Date.parse(status.updatedAt) + 3 * STATUS_HEARTBEAT_MS + 1).stale, true);
});

t.test('restore plan and outcomes: parsed strictly; one listing finds commands and outcomes', async (t) => {
  const plan = {
    format: RESTORE_PLAN_FORMAT, commandId: 'c1', backup: 'b', clusterSpec: { memberCount: 1, etcdVersion: '3.4.23' }, writeSpec: false, term: 2, leader: 'a',
    phase: 'stopping', clusterToken: 't', initialCluster: { a: ['https://a:2380'] }, startedAt: 'x', updatedAt: 'y', attempts: {},
  };
  t.same(parseRestorePlan(JSON.stringify(plan), 'p'), plan);
  t.throws(() => parseRestorePlan(JSON.stringify({ ...plan, phase: 'dancing' }), 'p'), { message: /p: phase is missing or malformed/ });
  t.ok(thrown(() => parseRestorePlan(JSON.stringify({ ...plan, initialCluster: {} }), 'p')) instanceof ControlRecordError, 'a ControlRecordError');
  t.throws(() => parseOutcome('{"format":"x"}', 'o'), { message: /o: not a mooring\.etcd-command-outcome\/v1 outcome/ });

  const inner = openStore(`memfs://control-${Math.random()}/c/backups/etcd/main`);
  const store = countingStore(inner);
  await queueRestoreCommand(inner, '2026-11-30T08:00:00Z-000001', Date.parse('2026-11-30T08:00:00Z'), { backup: 'one' });
  await queueRestoreCommand(inner, '2026-11-30T08:00:01Z-000002', Date.parse('2026-11-30T08:00:01Z'), { backup: 'two' });
  await writeOutcome(inner, { format: OUTCOME_FORMAT, id: '2026-11-30T08:00:00Z-000001', state: 'refused', backup: 'one', error: 'bad', check: 'gzip', finishedAt: 'z', leader: 'a', term: 1 });
  await inner.write('control/broken/_command.json', '{');
  await inner.write(outcomePath('gone'), '{"nope":1}');
  store.reset();
  const listing = await listControl(store);
  t.equal(store.calls.list, 1, 'one listing of control/');
  t.same(listing.commands.map((c) => c.restoreBackup?.backup), ['one', 'two'], 'oldest first');
  t.same([...listing.outcomes.keys()], ['2026-11-30T08:00:00Z-000001']);
  t.same(listing.invalid.map((i) => i.id), ['broken'], 'a command that does not parse is reported, not run');
  t.equal(listing.invalidOutcomes.length, 1);
});

t.test('the control inbox: nothing while not acting; a ring is noticed at the next poll; listings only when it rang', async (t) => {
  const inner = openStore(`memfs://inbox-${Math.random()}/c/backups/etcd/main`);
  const store = countingStore(inner);
  let acting = false;
  let now = Date.parse('2026-11-30T08:00:00Z');
  const got: { requests: ManagerRequest[][]; commands: ControlListing[] } = { requests: [], commands: [] };
  const inbox = new ControlInbox({
    store, runner: 'a/1', clock: { now: () => now, wallNow: () => now }, log: logger('test'), isActing: () => acting,
    onRequests: (r) => got.requests.push(r), onCommands: (l) => got.commands.push(l),
  });
  await inbox.tick();
  await inbox.step();
  t.same(store.calls, { ...store.calls, readIfExists: 0, list: 0 }, 'not acting: not one request to the store');

  acting = true;
  await inbox.step();
  t.equal(store.calls.list, 2, 'becoming acting: the requests and the commands listed at once');
  t.equal(got.commands.length, 1);
  store.reset();
  await inbox.tick();
  t.same([store.calls.readIfExists, store.calls.list], [1, 0], 'then one GET of the doorbell per poll, no listing');

  await submitRequest(inner, { kind: 'backup' }, { id: 'req-1', nowMs: now });
  await queueRestoreCommand(inner, 'cmd-1', now, { backup: 'x' });
  await ringDoorbell(inner, 'cmd-1', now);
  store.reset();
  await inbox.tick();
  t.equal(store.calls.list, 2, 'a ring: both listed');
  t.same(got.requests.at(-1)?.map((r) => r.id), ['req-1'], 'the request handed to the backup queue');
  t.same(got.commands.at(-1)?.commands.map((c) => c.id), ['cmd-1'], 'the command handed to the restore step');
  store.reset();
  now += 61_000;
  await inbox.tick();
  t.equal(store.calls.list, 2, 'a minute without a ring: listed anyway (kOps\' ctl does not ring)');
  acting = false;
  store.reset();
  await inbox.tick();
  t.equal(store.calls.readIfExists + store.calls.list, 0, 'a manager that stopped acting stops polling');
});

t.test('the status writer: on change (throttled), and a heartbeat when nothing changes', async (t) => {
  const inner = openStore(`memfs://status-${Math.random()}/c/backups/etcd/main`);
  const store = countingStore(inner);
  let now = 0;
  let acting = true;
  let bytes = 0;
  const deps: StatusDeps = {
    store, self: 'a', runner: 'a/1', term: () => 3, isActing: () => acting,
    observeMembers: async () => [{ name: 'a', id: '1', healthy: true, managerAlive: true, clientURLs: [], peerURLs: [] }],
    managers: () => [],
    backup: { statusLast: () => undefined, get running() { return bytes ? { reason: 'on-demand', name: 'n', startedAt: 's', bytes } : undefined; }, queued: [] },
    restore: { statusRestore: () => undefined, statusCommands: () => [] },
    clock: { now: () => now, wallNow: () => Date.parse('2026-11-30T08:00:00Z') + now }, log: logger('test'),
  };
  const w = new StatusWriter(deps);
  const pass = { leading: true, created: true, spec: { memberCount: 1, etcdVersion: '3.4.23' } };
  await w.step(pass);
  const first = await readStatus(inner);
  t.equal(first?.leader.term, 3);
  t.same(first?.members.map((m) => m.name), ['a']);
  t.equal(first?.etcdAnswered, true);
  t.equal(store.calls.write, 1);
  now += 1000;
  await w.step(pass);
  t.equal(store.calls.write, 1, 'unchanged: not written');
  bytes = 100;
  await w.step(pass);
  t.equal(store.calls.write, 1, 'changed, but within the minimum gap');
  now += 1500;
  await w.step(pass);
  t.equal(store.calls.write, 2, 'changed: written');
  t.equal((await readStatus(inner))?.backupRunning?.bytes, 100);
  now += STATUS_HEARTBEAT_MS;
  await w.step(pass);
  t.equal(store.calls.write, 3, 'a heartbeat');
  acting = false;
  now += STATUS_HEARTBEAT_MS;
  await w.step(pass);
  t.equal(store.calls.write, 3, 'not acting: never written');
  t.ok(await inner.exists(STATUS_PATH));
});
