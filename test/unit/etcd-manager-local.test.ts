// This member's etcd without a process: a fake supervisor, a fake health
// check, a temp directory as the volume and a memfs store. A one-member
// cluster is created quarantined and announced only once healthy; a second
// cluster is never created over an existing one; a leader's join is answered
// before etcd has started (the start goes on in the background, then the
// member announces it); leave moves the data aside and stands by.
import t from 'tap';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { configureLogging, logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import { LocalMember, type LocalDeps, type LocalEtcd } from '../../agents/etcd-manager/controller/local.js';
import type { EtcdHealth } from '../../agents/etcd-manager/etcd/client.js';
import type { EtcdProcessSpec } from '../../agents/etcd-manager/etcd/process.js';
import { readVolumeState, writeVolumeState } from '../../agents/etcd-manager/volume-state.js';
import { tempDir } from '../harness/tmp.js';

const lines: Array<Record<string, unknown>> = [];
configureLogging({ format: 'json', level: 'info', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });

class FakeEtcd implements LocalEtcd {
  running = false;
  isQuarantined = false;
  starts: Array<{ spec: EtcdProcessSpec; quarantined: boolean }> = [];
  gate?: Promise<void>;
  async start(spec: EtcdProcessSpec, options: { quarantined?: boolean }) {
    await this.gate;
    this.starts.push({ spec, quarantined: options.quarantined ?? false });
    this.running = true;
    this.isQuarantined = options.quarantined ?? false;
  }
  async stop() { this.running = false; }
  async setQuarantined(q: boolean) { this.isQuarantined = q; }
}

function setup(t: Parameters<typeof tempDir>[0], health: () => EtcdHealth = () => ({ healthy: false, error: 'starting' }), extra: Partial<LocalDeps> = {}) {
  const dir = tempDir(t);
  const etcd = new FakeEtcd();
  const backups = openStore(`memfs://local-${Math.random()}/backups/etcd/main`);
  const changes: string[] = [];
  const local = new LocalMember({
    volume: { id: 'vol-a', mountPoint: dir, memberName: 'a' }, clusterName: 'etcd', backups, etcd,
    processSpec: async (state) => ({ binary: '/bin/true', name: state.memberName, dataDir: join(dir, 'data', state.clusterToken), clusterToken: state.clusterToken, peerURLs: [], clientURLs: [], quarantineClientURLs: [], initialCluster: state.initialCluster ?? {}, initialClusterState: state.initialClusterState ?? 'new', listenAddress: '127.0.0.1' }),
    checkLocal: async () => health(),
    clock: { now: () => 0, wallNow: () => Date.parse('2026-11-30T00:00:00Z') }, log: logger('test'),
    setPhase: () => undefined, changed: (reason) => changes.push(reason),
    ...extra,
  });
  return { dir, etcd, backups, local, changes };
}
const one = { memberCount: 1, etcdVersion: '3.4.23' };

t.test('one member: created quarantined, the marker written and the quarantine lifted once etcd answers', async (t) => {
  let healthy: EtcdHealth = { healthy: false, error: 'starting' };
  const { etcd, backups, local, changes } = setup(t, () => healthy);
  await local.load();
  t.ok(local.volumeEmpty, 'an empty volume, read (positive evidence)');
  t.same(await local.startStep({ leading: false, spec: one }), { did: 'etcd started', waitFor: 'etcd healthy' });
  t.equal(etcd.starts[0].quarantined, true, 'a new cluster starts quarantined');
  t.ok(lines.some((l) => l.event === 'cluster.creating-one-member'));
  t.same(await local.healthStep(), { waitFor: 'etcd healthy' }, 'not healthy yet: poll');
  t.notOk(await backups.exists('control/etcd-cluster-created'));
  healthy = { healthy: true, members: [{ ID: '1', name: 'a', peerURLs: [], clientURLs: [], isLearner: false }] } as unknown as EtcdHealth;
  t.same(await local.healthStep(), { did: 'quarantine lifted', waitFor: 'etcd healthy' });
  t.ok(await backups.exists('control/etcd-cluster-created'), 'the marker, once etcd answers');
  t.equal(etcd.isQuarantined, false, 'then clients');
  t.same(changes, ['quarantine lifted'], 'and peers are told');
});

t.test('an empty volume never creates a second cluster once the marker exists', async (t) => {
  const { etcd, backups, local } = setup(t);
  await backups.write('control/etcd-cluster-created', '{}\n');
  await local.load();
  await t.rejects(local.startStep({ leading: false, spec: one }), /refusing to create a second cluster/);
  t.same(etcd.starts, []);
});

t.test('a join is answered once accepted, before etcd has started; the start is then announced', async (t) => {
  const { dir, etcd, local, changes } = setup(t);
  await local.load();
  let open: () => void = () => undefined;
  etcd.gate = new Promise((resolve) => (open = resolve));
  const answer = await local.onCommand({ leader: 'b', term: 4, action: 'join', body: { clusterToken: 'etcd-x', initialCluster: { a: ['https://a:2380'], b: ['https://b:2380'] }, etcdVersion: '3.4.23' } });
  t.equal(answer, 'joined', 'answered');
  t.same(etcd.starts, [], 'while etcd has not started yet');
  t.match(await readVolumeState(dir), { clusterToken: 'etcd-x', initialClusterState: 'existing' }, 'the volume state is written before the answer');
  open();
  await new Promise((r) => setTimeout(r, 10));
  t.equal(etcd.starts.length, 1);
  t.equal(etcd.starts[0].quarantined, true, 'a joining member starts quarantined');
  t.same(changes, ['etcd started (join)']);
});

t.test('a form for another cluster than the one on the volume is refused', async (t) => {
  const { local } = setup(t);
  await local.load();
  const body = { clusterToken: 'etcd-x', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' };
  await local.onCommand({ leader: 'b', term: 4, action: 'form', body });
  await t.rejects(local.onCommand({ leader: 'b', term: 5, action: 'form', body: { ...body, clusterToken: 'etcd-y' } }), /already belongs to cluster etcd-x/);
});

t.test('leave: etcd stopped, data moved aside (not deleted), standing by until added again', async (t) => {
  const { dir, etcd, local } = setup(t);
  await local.load();
  await local.onCommand({ leader: 'b', term: 4, action: 'form', body: { clusterToken: 'etcd-x', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' } });
  await new Promise((r) => setTimeout(r, 10));
  mkdirSync(join(dir, 'data', 'etcd-x', 'member'), { recursive: true });
  t.equal(await local.onCommand({ leader: 'b', term: 4, action: 'leave' }), 'standing by');
  t.equal(etcd.running, false);
  t.ok(existsSync(join(dir, 'etcd-manager-standby.json')));
  t.equal(readdirSync(join(dir, 'data-removed')).length, 1, 'the data dir moved aside');
  t.equal(await readVolumeState(dir), undefined, 'no member state left');
  t.ok(local.standby);
  t.same(await local.startStep({ leading: false, spec: { memberCount: 3, etcdVersion: '3.4.23' } }), { stop: true }, 'a pass stops at standby: no etcd, no leading');
  t.equal(etcd.starts.length, 1, 'etcd not started again');
});

t.test('leave racing a reconcile pass: no etcd start between "stopped" and "standing by"', async (t) => {
  const { dir, etcd, local } = setup(t);
  await local.load();
  await local.onCommand({ leader: 'b', term: 4, action: 'form', body: { clusterToken: 'etcd-x', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' } });
  await until(() => etcd.starts.length === 1);
  mkdirSync(join(dir, 'data', 'etcd-x', 'member'), { recursive: true });
  // A slow stop holds the leave between "etcd stopped" and the state's removal; a pass runs meanwhile.
  let stopped: (() => void) | undefined;
  etcd.stop = async () => {
    etcd.running = false;
    await new Promise<void>((resolve) => (stopped = resolve));
  };
  const leaving = local.onCommand({ leader: 'b', term: 4, action: 'leave' });
  await until(() => stopped !== undefined);
  stopped?.();
  await until(() => !local.etcdStarted); // the leave goes on: data being moved aside, state not yet removed
  const pass = local.startStep({ leading: false, spec: { memberCount: 3, etcdVersion: '3.4.23' } });
  t.equal(await leaving, 'standing by');
  await pass;
  t.same(await local.startStep({ leading: false, spec: { memberCount: 3, etcdVersion: '3.4.23' } }), { stop: true }, 'the next pass stands by');
  t.equal(etcd.starts.length, 1, 'etcd was never started again on an emptied data dir');
  t.equal(readdirSync(join(dir, 'data-removed')).length, 1, 'the data moved aside once');
});

t.test('restore: a member told to stop never starts; a restored one starts quarantined and stays so until the leader lifts it', async (t) => {
  let gate: 'hold' | 'quarantined' | undefined = 'hold';
  let healthy: EtcdHealth = { healthy: false, error: 'starting' };
  const { dir, etcd, backups, local } = setup(t, () => healthy, { restoreGate: () => gate });
  await local.load();
  await local.onCommand({ leader: 'b', term: 4, action: 'form', body: { clusterToken: 'etcd-x', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' } });
  await new Promise((r) => setTimeout(r, 10));
  t.same(etcd.starts, [], 'held: the form did not start etcd');
  t.same(await local.startStep({ leading: false, spec: one }), undefined, 'nor does a pass');
  t.same(etcd.starts, []);
  gate = 'quarantined';
  t.same(await local.startStep({ leading: false, spec: one }), { did: 'etcd started', waitFor: 'etcd healthy' });
  t.equal(etcd.starts[0].quarantined, true, 'restored data starts quarantined');
  healthy = { healthy: true, members: [{ ID: '1', name: 'a', peerURLs: [], clientURLs: [], isLearner: false }] } as unknown as EtcdHealth;
  t.same(await local.healthStep(), { waitFor: 'the leader to lift the restore quarantine' }, 'a voting member, but the quarantine stays');
  t.equal(etcd.isQuarantined, true);
  t.notOk(await backups.exists('control/etcd-cluster-created'), 'and no marker is written by it');
  await local.liftRestoreQuarantine();
  t.equal(etcd.isQuarantined, false, 'the leader lifts it');
  await local.stopForRestore();
  t.equal(etcd.running, false);
  t.equal(local.etcdStarted, false);
  t.ok(dir);
});

t.test('restore: a pass during the start on the restored data waits for it; etcd is started once', async (t) => {
  const gate: 'quarantined' = 'quarantined';
  const { etcd, local } = setup(t, undefined, { restoreGate: () => gate });
  await local.load();
  let open: () => void = () => undefined;
  etcd.gate = new Promise((resolve) => (open = resolve));
  const state = { clusterToken: 'restored', memberName: 'a', etcdVersion: '3.4.23', createdAt: 'now', initialCluster: { a: ['https://a:2380'] }, initialClusterState: 'new' as const };
  const starting = local.startRestored(state);
  const pass = local.startStep({ leading: false, spec: one });
  open();
  await starting;
  await pass;
  t.equal(etcd.starts.length, 1, 'one start, not two');
  t.equal(etcd.starts[0].spec.clusterToken, 'restored');
  t.equal(etcd.starts[0].quarantined, true);
});

t.test('restore, the lift in two steps: a manager restarted while stopped for the lift starts etcd on its client URLs from the volume state', async (t) => {
  let gate: 'hold' | undefined = 'hold';
  const { dir, etcd, local, changes } = setup(t, undefined, { restoreGate: () => gate });
  const state = { clusterToken: 'restored', memberName: 'a', etcdVersion: '3.4.23', createdAt: 'now', initialCluster: { a: ['https://a:2380'] }, initialClusterState: 'new' as const };
  await writeVolumeState(dir, state);
  await local.load();
  t.same(await local.startStep({ leading: false, spec: one }), undefined, 'held: a pass does not start etcd');
  t.same(etcd.starts, []);
  await local.startLifted();
  t.equal(etcd.starts.length, 1, 'started once');
  t.equal(etcd.starts[0].spec.clusterToken, 'restored', 'on the restored data, read from the volume');
  t.equal(etcd.starts[0].quarantined, false, 'on its client URLs');
  t.ok(changes.includes('quarantine lifted'), 'the leader is told');
  gate = undefined;
  t.same(await local.startStep({ leading: false, spec: one }), undefined, 'a later pass does not start it again');
  t.equal(etcd.starts.length, 1);
});

t.test('an empty one-member volume with a restore queued waits for it instead of failing', async (t) => {
  const { etcd, backups, local } = setup(t, undefined, { restorePending: () => true });
  await backups.write('control/etcd-cluster-created', '{}\n');
  await local.load();
  t.same(await local.startStep({ leading: false, spec: one }), undefined);
  t.same(etcd.starts, []);
});

/** Waits for a condition the code under test reaches through its own promises (no time asserted). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setImmediate(r));
}

t.test('set-version: the binary checked first, the volume state written, etcd restarted on it in the background; the running version is what etcd was started with', async (t) => {
  let missing = '';
  const { dir, etcd, local, changes } = setup(t, undefined, {
    processSpec: async (state) => {
      if (state.etcdVersion === missing) throw new Error(`no etcd ${missing}: /opt/etcd/${missing}/etcd is missing`);
      return { binary: `/opt/etcd/${state.etcdVersion}/etcd`, name: state.memberName, dataDir: join(dir, 'data', state.clusterToken), clusterToken: state.clusterToken, peerURLs: [], clientURLs: [], quarantineClientURLs: [], initialCluster: state.initialCluster ?? {}, initialClusterState: state.initialClusterState ?? 'new', listenAddress: '127.0.0.1' };
    },
  });
  await local.load();
  await local.onCommand({ leader: 'b', term: 4, action: 'form', body: { clusterToken: 'etcd-x', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' } });
  await until(() => etcd.starts.length === 1);
  t.equal(local.runningVersion, '3.4.23');

  missing = '3.5.0';
  await t.rejects(local.onCommand({ leader: 'b', term: 4, action: 'set-version', body: { etcdVersion: '3.5.0' } }), /no etcd 3\.5\.0/);
  t.match(await readVolumeState(dir), { etcdVersion: '3.4.23' }, 'a missing binary changes nothing');
  t.equal(etcd.starts.length, 1, 'and restarts nothing');

  let open: () => void = () => undefined;
  etcd.gate = new Promise((resolve) => (open = resolve));
  t.equal(await local.onCommand({ leader: 'b', term: 4, action: 'set-version', body: { etcdVersion: '3.5.17' } }), 'restarting on 3.5.17', 'answered once accepted');
  t.match(await readVolumeState(dir), { etcdVersion: '3.5.17', clusterToken: 'etcd-x' }, 'the new version is in the volume state before the answer (same cluster, same data)');
  t.equal(local.runningVersion, '3.4.23', 'until the restart, the running etcd is still the old one');
  open();
  await until(() => etcd.starts.length === 2);
  await until(() => local.runningVersion === '3.5.17');
  t.equal(etcd.starts[1].spec.binary, '/opt/etcd/3.5.17/etcd');
  t.equal(etcd.starts[1].spec.dataDir, etcd.starts[0].spec.dataDir, 'the same data directory');
  await until(() => changes.includes('etcd restarted on 3.5.17'));
  t.equal(await local.onCommand({ leader: 'b', term: 5, action: 'set-version', body: { etcdVersion: '3.5.17' } }), 'already on 3.5.17', 'repeated: harmless');
  t.equal(etcd.starts.length, 2, 'no second restart');
  t.ok(lines.some((l) => l.event === 'member.set-version' && l.from === '3.4.23' && l.to === '3.5.17'));
});
