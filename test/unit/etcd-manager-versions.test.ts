// etcd version changes as pure logic: the transition table, the plan's steps,
// what to do next given what the members report, the stored progress record,
// and where each version's binaries are found. No process is started here
// except the fake `etcd --version` scripts of the binary lookup.
import t from 'tap';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { clearMemfs, MemfsStore } from '../../shared/store/memfs.js';
import { checkBinaries, findEtcdBinaries, findV2CapableEtcd, installedVersions, requiredTools } from '../../agents/etcd-manager/versions/binaries.js';
import { markBlocked, markDone, markStarted, newVersionChange, nextAction, type ClusterObservation, type MemberObservation, type VersionChangeRecord } from '../../agents/etcd-manager/versions/plan.js';
import { decodeVersionChange, encodeVersionChange, readVersionChange, saveVersionChange, VERSION_CHANGE_PATH } from '../../agents/etcd-manager/versions/record.js';
import { decideTransition, describeTransition, type Transition } from '../../agents/etcd-manager/versions/transition.js';
import { parseEtcdVersion, VersionError } from '../../agents/etcd-manager/versions/version.js';
import { tempDir } from '../harness/tmp.js';

type Row = [from: string, to: string, expected: Partial<Transition> | { error: VersionError['kind']; message: RegExp }];

const TABLE: Row[] = [
  // same version
  ['3.4.23', '3.4.23', { kind: 'none' }],
  ['2.2.1', '2.2.1', { kind: 'none' }],
  // in place: a patch release either way, or the next 3.x minor
  ['3.4.13', '3.4.23', { kind: 'in-place', change: 'patch' }],
  ['3.4.23', '3.4.13', { kind: 'in-place', change: 'patch' }],
  ['3.3.17', '3.4.23', { kind: 'in-place', change: 'next-minor' }],
  ['3.4.23', '3.5.9', { kind: 'in-place', change: 'next-minor' }],
  ['3.0.17', '3.1.12', { kind: 'in-place', change: 'next-minor' }],
  ['2.2.1', '2.2.5', { kind: 'in-place', change: 'patch' }],
  // backup + restore: downgrades and skipped minors
  ['3.5.9', '3.4.23', { kind: 'restore', reason: 'downgrade' }],
  ['3.4.23', '3.2.24', { kind: 'restore', reason: 'downgrade' }],
  ['3.2.24', '3.4.23', { kind: 'restore', reason: 'skipped-minor' }],
  ['3.1.12', '3.5.9', { kind: 'restore', reason: 'skipped-minor' }],
  // major change: the v2 → v3 migration
  ['2.2.1', '3.4.23', { kind: 'migrate-v2', reason: 'major-change' }],
  ['2.3.8', '3.1.12', { kind: 'migrate-v2', reason: 'major-change' }],
  // refused
  ['3.4.23', '2.2.1', { error: 'unsupported', message: /etcd 3\.4\.23 → 2\.2\.1: etcd 2 cannot read etcd 3 data/ }],
  ['2.2.1', '2.3.8', { error: 'unsupported', message: /between etcd 2 minors/ }],
  ['3.4.23', '4.0.0', { error: 'unsupported', message: /wanted etcd version 4\.0\.0: only etcd 2\.x and 3\.x are known/ }],
  ['1.0.0', '3.4.23', { error: 'unsupported', message: /current etcd version 1\.0\.0/ }],
  // invalid / unknown spellings
  ['3.4', '3.4.23', { error: 'invalid', message: /current etcd version "3\.4" is not a version like 3\.4\.23/ }],
  ['3.4.23', 'v3.5.0', { error: 'invalid', message: /wanted etcd version "v3\.5\.0"/ }],
  ['3.4.23', 'latest', { error: 'invalid', message: /"latest"/ }],
  ['3.4.23', '', { error: 'invalid', message: /""/ }],
  ['3.4.23', '3.5.0-rc.1', { error: 'invalid', message: /3\.5\.0-rc\.1/ }],
  ['3.4.23 ', '3.4.23', { error: 'invalid', message: /"3\.4\.23 "/ }],
];

t.test('the transition table', async (t) => {
  for (const [from, to, expected] of TABLE) {
    if ('error' in expected) {
      let caught: unknown;
      try {
        decideTransition(from, to);
      } catch (err) {
        caught = err;
      }
      t.ok(caught instanceof VersionError, `${from} → ${to}: refused`);
      t.match(caught, { kind: expected.error, message: expected.message }, `${from} → ${to}: ${expected.error}`);
      continue;
    }
    const got = decideTransition(from, to);
    t.match(got, expected, `${from} → ${to}: ${describeTransition(got)}`);
    if (got.kind !== 'none') t.match(got, { from, to });
  }
});

t.test('versions parse strictly and compare numerically', async (t) => {
  t.match(parseEtcdVersion('3.10.2'), { major: 3, minor: 10, patch: 2 });
  t.match(decideTransition('3.9.0', '3.10.0'), { kind: 'in-place', change: 'next-minor' }, '3.9 → 3.10 is the next minor, not a string compare');
  t.throws(() => parseEtcdVersion('03.4.23x'), VersionError);
});

const member = (name: string, over: Partial<MemberObservation> = {}): MemberObservation => ({ name, version: '3.4.13', healthy: true, appliedIndex: 1000, isRaftLeader: false, ...over });
const obs = (members: MemberObservation[], managerLeader = 'a', leaderIndex = 1000): ClusterObservation => ({ members, leaderIndex, managerLeader });
const NOW = new Date('2025-01-01T00:00:00Z');

function inPlace(members = ['a', 'b', 'c']): VersionChangeRecord {
  return newVersionChange(decideTransition('3.4.13', '3.4.23') as Exclude<Transition, { kind: 'none' }>, members, 7, NOW, 'test');
}

t.test('in place: backup first, then one member at a time, raft leader handed over, the driving manager last', async (t) => {
  let record = inPlace();
  t.same(record.steps.map((s) => s.id), ['backup', 'member/a', 'member/b', 'member/c']);
  // a drives the change; b is etcd's raft leader.
  const view = (versions: Record<string, string>, over: Record<string, Partial<MemberObservation>> = {}) =>
    obs(['a', 'b', 'c'].map((n) => member(n, { version: versions[n], isRaftLeader: n === 'b', ...over[n] })));

  let action = nextAction(record, view({ a: '3.4.13', b: '3.4.13', c: '3.4.13' }));
  t.match(action, { kind: 'run', step: { id: 'backup', kind: 'backup', version: '3.4.13' } });
  record = markDone(record, 'backup', NOW, { name: '2025-01-01T00:00:00Z-000001' });
  t.match(record.steps[0], { state: 'done', name: '2025-01-01T00:00:00Z-000001' });

  // c first: neither the driving manager's member nor the raft leader.
  action = nextAction(record, view({ a: '3.4.13', b: '3.4.13', c: '3.4.13' }));
  t.match(action, { kind: 'run', step: { id: 'member/c', member: 'c', to: '3.4.23' } });
  // c restarted on the new version, not healthy yet: wait, naming it.
  action = nextAction(record, view({ a: '3.4.13', b: '3.4.13', c: '3.4.23' }, { c: { healthy: false } }));
  t.match(action, { kind: 'wait', reason: 'member-unhealthy', member: 'c' });
  // healthy but behind: wait.
  action = nextAction(record, view({ a: '3.4.13', b: '3.4.13', c: '3.4.23' }, { c: { appliedIndex: 100 } }));
  t.match(action, { kind: 'wait', reason: 'member-behind', member: 'c' });
  // caught up: the step is marked done from what c reports.
  action = nextAction(record, view({ a: '3.4.13', b: '3.4.13', c: '3.4.23' }));
  t.match(action, { kind: 'mark-done', step: { id: 'member/c' } });
  record = markDone(record, 'member/c', NOW);

  // b is next but leads raft: leadership goes to c (already upgraded) first.
  action = nextAction(record, view({ a: '3.4.13', b: '3.4.13', c: '3.4.23' }));
  t.same(action, { kind: 'move-raft-leader', from: 'b', to: 'c' });
  const afterMove = (versions: Record<string, string>) => obs(['a', 'b', 'c'].map((n) => member(n, { version: versions[n], isRaftLeader: n === 'c' })));
  action = nextAction(record, afterMove({ a: '3.4.13', b: '3.4.13', c: '3.4.23' }));
  t.match(action, { kind: 'run', step: { id: 'member/b' } });
  record = markDone(record, 'member/b', NOW);

  // the driving manager's member last.
  action = nextAction(record, afterMove({ a: '3.4.13', b: '3.4.23', c: '3.4.23' }));
  t.match(action, { kind: 'run', step: { id: 'member/a' } });
  record = markDone(record, 'member/a', NOW);
  t.same(nextAction(record, afterMove({ a: '3.4.23', b: '3.4.23', c: '3.4.23' })), { kind: 'done' });
});

t.test('in place: an unhealthy member stops the change before anything moves, and it resumes once healthy', async (t) => {
  let record = markDone(inPlace(), 'backup', NOW);
  const down = obs([member('a', { isRaftLeader: true }), member('b', { healthy: false, version: undefined, appliedIndex: undefined }), member('c')]);
  const action = nextAction(record, down);
  t.match(action, { kind: 'wait', reason: 'member-unhealthy', member: 'b', message: /member b is not healthy/ });
  if (action.kind !== 'wait') throw new Error('unreachable');
  record = markBlocked(record, action, NOW);
  const later = markBlocked(record, action, new Date(NOW.getTime() + 60_000));
  t.equal(later.blocked?.since, NOW.toISOString(), 'the block keeps its first time while the reason stays');
  // the backup is also held back by an unhealthy member
  t.match(nextAction(inPlace(), down), { kind: 'wait', member: 'b' });
  // no raft leader: wait
  t.match(nextAction(record, obs([member('a'), member('b'), member('c')])), { kind: 'wait', reason: 'no-leader' }, 'no member leads raft');
  // b back: the change moves again, and the block is cleared by the next step done
  const back = obs([member('a', { isRaftLeader: true }), member('b'), member('c')]);
  t.match(nextAction(record, back), { kind: 'run', step: { id: 'member/b' } });
  t.equal(markDone(record, 'member/b', NOW).blocked, undefined);
});

t.test('in place: restarted half way, the record and the members say where it stands', async (t) => {
  // The manager died after restarting b and before marking it: b reports the new version.
  const record = markDone(inPlace(), 'backup', NOW);
  const view = obs([member('a', { isRaftLeader: true }), member('b', { version: '3.4.23' }), member('c')]);
  t.match(nextAction(record, view), { kind: 'mark-done', step: { id: 'member/b' } }, 'not restarted twice');
  // a third version: stop and say so
  t.match(nextAction(record, obs([member('a', { isRaftLeader: true }), member('b', { version: '3.5.0' }), member('c')])), { kind: 'wait', reason: 'member-unexpected-version', member: 'b' });
  // members changed: replan
  t.match(nextAction(record, obs([member('a', { isRaftLeader: true }), member('b'), member('c'), member('d')])), { kind: 'replan', message: /\+d/ });
  t.match(nextAction(record, obs([member('a', { isRaftLeader: true }), member('b')])), { kind: 'replan', message: /-c/ });
});

t.test('restore and v2 migration: fixed steps, all members healthy until the cluster is stopped', async (t) => {
  const restore = newVersionChange(decideTransition('3.5.9', '3.4.23') as Exclude<Transition, { kind: 'none' }>, ['a', 'b', 'c'], 3, NOW, 'r');
  t.same(restore.steps.map((s) => s.kind), ['backup', 'restore-snapshot'], 'a backup, then that backup restored into the new version');
  t.equal(restore.reason, 'downgrade');
  const healthy = obs([member('a', { isRaftLeader: true, version: '3.5.9' }), member('b', { version: '3.5.9' }), member('c', { version: '3.5.9' })]);
  const unhealthy = obs([member('a', { isRaftLeader: true }), member('b', { healthy: false }), member('c')]);
  t.match(nextAction(restore, unhealthy), { kind: 'wait', member: 'b' });
  t.match(nextAction(restore, healthy), { kind: 'run', step: { kind: 'backup', format: 'v3-snapshot', version: '3.5.9' } });
  let r = markDone(restore, 'backup', NOW, { name: 'x' });
  t.match(nextAction(r, unhealthy), { kind: 'wait', member: 'b' }, 'the restore does not begin while a member is unhealthy');
  r = markStarted(r, 'restore', NOW);
  t.match(nextAction(r, obs([])), { kind: 'run', step: { kind: 'restore-snapshot', to: '3.4.23' } }, 'once the restore has begun, members being down is expected');
  r = markDone(r, 'restore', NOW);
  t.same(nextAction(r, healthy), { kind: 'done' });

  const v2 = newVersionChange(decideTransition('2.2.1', '3.4.23') as Exclude<Transition, { kind: 'none' }>, ['a'], 1, NOW, 'm');
  t.same(v2.steps.map((s) => s.kind), ['backup', 'convert-v2', 'restore-snapshot']);
  t.match(v2.steps[0], { format: 'v2-data-dir', version: '2.2.1' });
  t.match(v2.steps[1], { to: '3.4.23' });
  const v2healthy = obs([member('a', { isRaftLeader: true, version: '2.2.1' })]);
  const v2down = obs([member('a', { isRaftLeader: true, version: '2.2.1' }), member('b', { healthy: false })]);
  let m = markDone(v2, 'backup', NOW, { name: 'v2-backup' });
  t.match(nextAction(m, v2down), { kind: 'wait', member: 'b' }, 'the conversion waits for a healthy cluster too (the live cluster is still serving)');
  m = markDone(m, 'convert', NOW, { name: 'converted' });
  t.match(m.steps[1], { name: 'converted', state: 'done' }, 'the converted backup is named in the record');
  t.match(nextAction(m, v2healthy), { kind: 'run', step: { kind: 'restore-snapshot', to: '3.4.23' } });
  t.throws(() => markDone(v2, 'nope', NOW), /has no step nope/);
});

t.test('the progress record: round trip, strict decoding, compare-and-swap with term fencing', async (t) => {
  const record = markDone(inPlace(), 'backup', NOW, { name: 'b1' });
  t.same(decodeVersionChange(encodeVersionChange(record), 'x'), JSON.parse(JSON.stringify(record)));
  const bad: Array<[unknown, RegExp]> = [
    [{ ...record, format: 2 }, /format: unknown format 2/],
    [{ ...record, to: 'latest' }, /to: the wanted etcd version|to: etcd version "latest"/],
    [{ ...record, transition: 'teleport' }, /transition: must be one of/],
    [{ ...record, term: -1 }, /term: must be a whole number/],
    [{ ...record, steps: [] }, /steps: must be a non-empty list/],
    [{ ...record, steps: [record.steps[0], record.steps[0]] }, /steps\[1\]\.id: backup appears twice/],
    [{ ...record, steps: [{ ...record.steps[0], state: 'half' }] }, /steps\[0\]\.state/],
  ];
  for (const [value, message] of bad) t.throws(() => decodeVersionChange(JSON.stringify(value), 'memfs://x/control/etcd-version-change'), message);
  t.throws(() => decodeVersionChange('{', 'src'), /src: not JSON/);

  const name = `versions-${process.pid}`;
  t.teardown(() => clearMemfs());
  const store = new MemfsStore(`memfs://${name}`);
  t.equal(await readVersionChange(store), undefined);
  const first = await saveVersionChange(store, record, undefined);
  t.ok(first.saved);
  const stored = await readVersionChange(store);
  t.same(stored?.record, JSON.parse(JSON.stringify(record)));
  // A writer that read nothing (stale) loses.
  t.match(await saveVersionChange(store, record, undefined), { saved: false, why: 'changed' });
  // A deposed leader (lower term) cannot overwrite a record of a newer term.
  const newer = { ...record, term: 9 };
  t.ok((await saveVersionChange(store, newer, stored)).saved);
  const old = await saveVersionChange(store, { ...markDone(record, 'member/a', NOW), term: 7 }, await readVersionChange(store));
  t.match(old, { saved: false, why: 'newer-term' });
  t.equal((await readVersionChange(store))?.record.term, 9);
  t.ok(await store.exists(VERSION_CHANGE_PATH));
});

/** A fake etcd tool printing a version, as `etcd --version` ("etcd Version: X") and `etcdctl version` ("etcdctl version: X") do. */
function fakeTool(path: string, version: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  const tool = basename(path);
  writeFileSync(path, `#!/bin/sh\necho "${tool === 'etcd' ? 'etcd Version' : `${tool} version`}: ${version}"\n`);
  chmodSync(path, 0o755);
}

t.test('binaries per version: <dir>/<version>/{etcd,etcdctl,etcdutl}, else the system etcd of that very version', async (t) => {
  const dir = tempDir(t, 'etcd-bins-');
  const bins = join(dir, 'bins');
  fakeTool(join(bins, '3.4.23', 'etcd'), '3.4.23');
  fakeTool(join(bins, '3.4.23', 'etcdctl'), '3.4.23');
  fakeTool(join(bins, '3.5.9', 'etcd'), '3.5.9');
  fakeTool(join(bins, '3.5.9', 'etcdctl'), '3.5.9');
  fakeTool(join(bins, '3.5.9', 'etcdutl'), '3.5.9');
  fakeTool(join(bins, '3.6.0', 'etcd'), '3.6.0');
  mkdirSync(join(bins, 'not-a-version'));
  mkdirSync(join(bins, '3.3.17')); // no etcd inside
  const systemEtcd = join(dir, 'usr-bin', 'etcd');
  fakeTool(systemEtcd, '3.4.13');
  fakeTool(join(dir, 'usr-bin', 'etcdctl'), '3.4.13');
  const options = { systemEtcd };

  t.same(await findEtcdBinaries('3.5.9', bins, options), { version: '3.5.9', etcd: join(bins, '3.5.9/etcd'), etcdctl: join(bins, '3.5.9/etcdctl'), etcdutl: join(bins, '3.5.9/etcdutl') });
  t.same(await findEtcdBinaries('3.4.23', bins, options), { version: '3.4.23', etcd: join(bins, '3.4.23/etcd'), etcdctl: join(bins, '3.4.23/etcdctl') });
  t.same(await findEtcdBinaries('3.4.13', bins, options), { version: '3.4.13', etcd: systemEtcd, etcdctl: join(dir, 'usr-bin', 'etcdctl') }, 'the system etcd when it is that version');
  await t.rejects(findEtcdBinaries('3.3.17', bins, options), { name: 'VersionError', kind: 'no-binary', message: `no etcd 3.3.17: ${join(bins, '3.3.17/etcd')} is missing and ${systemEtcd} is 3.4.13` });
  await t.rejects(findEtcdBinaries('3.3.17', undefined, { systemEtcd: join(dir, 'none', 'etcd') }), { kind: 'no-binary', message: /no etcd 3\.3\.17: .*none\/etcd --version/ });
  await t.rejects(findEtcdBinaries('latest', bins, options), { kind: 'invalid', message: /"latest" is not a version/ });

  t.same((await installedVersions(bins)).map((v) => v.text), ['3.4.23', '3.5.9', '3.6.0']);
  t.same(await installedVersions(join(dir, 'missing')), []);
  t.equal((await findV2CapableEtcd(bins, options)).version, '3.5.9', 'the newest that still serves v2 (3.6 does not)');
  t.equal((await findV2CapableEtcd(undefined, options)).version, '3.4.13', 'else the system one');
  const only36 = join(dir, 'only36');
  fakeTool(join(only36, '3.6.0', 'etcd'), '3.6.0');
  const newSystem = join(dir, 'new-system', 'etcd');
  fakeTool(newSystem, '3.6.0');
  await t.rejects(findV2CapableEtcd(only36, { systemEtcd: newSystem }), { kind: 'no-binary', message: /serves the v2 API.*is 3\.6\.0/ });

  // what a transition needs, checked before anything starts
  t.same(requiredTools(decideTransition('3.4.23', '3.5.9')).map((r) => `${r.version}/${r.tool}`), ['3.5.9/etcd']);
  t.same(requiredTools(decideTransition('3.5.9', '3.4.23')).map((r) => `${r.version}/${r.tool}`), ['3.4.23/etcd', '3.4.23/etcdctl']);
  t.same(requiredTools(decideTransition('3.4.23', '3.6.0')).map((r) => `${r.version}/${r.tool}`), ['3.6.0/etcd', '3.6.0/etcdutl']);
  t.same(requiredTools(decideTransition('2.2.1', '3.4.23')).map((r) => `${r.version}/${r.tool}`), ['2.2.1/etcdctl', '3.4.23/etcd', '3.4.23/etcdctl']);
  t.ok(await checkBinaries(decideTransition('3.4.23', '3.5.9'), bins, options));
  t.ok(await checkBinaries(decideTransition('3.5.9', '3.4.23'), bins, options));
  await t.rejects(checkBinaries(decideTransition('3.4.23', '3.6.0'), bins, options), { kind: 'no-binary', message: `no etcdutl 3.6.0 for the snapshot restore: ${join(bins, '3.6.0/etcdutl')} is missing` });
  await t.rejects(checkBinaries(decideTransition('2.2.1', '3.4.23'), bins, options), { kind: 'no-binary', message: /no etcd 2\.2\.1/ });

  // Every tool is asked its version before a change: one that says another version than its directory is refused.
  fakeTool(join(bins, '3.5.10', 'etcd'), '3.5.9');
  await t.rejects(checkBinaries(decideTransition('3.4.23', '3.5.10'), bins, options), { kind: 'no-binary', message: `no etcd 3.5.10 for the members after the change: ${join(bins, '3.5.10/etcd')} says it is 3.5.9` });
  fakeTool(join(bins, '3.3.18', 'etcd'), '3.3.18');
  writeFileSync(join(bins, '3.3.18', 'etcdctl'), '#!/bin/sh\necho "no such command" >&2\nexit 1\n', { mode: 0o755 });
  await t.rejects(checkBinaries(decideTransition('3.4.23', '3.3.18'), bins, options), { kind: 'no-binary', message: `${join(bins, '3.3.18/etcdctl')} version: exit 1, no "etcdctl version:" line: no such command` });
  const asked: string[] = [];
  await checkBinaries(decideTransition('3.5.9', '3.4.23'), bins, { ...options, toolProbe: async (tool, path, version) => (asked.push(`${tool}@${version.text}`), version.text) });
  t.same(asked, ['etcd@3.4.23', 'etcdctl@3.4.23'], 'each tool the transition needs is asked');
});
