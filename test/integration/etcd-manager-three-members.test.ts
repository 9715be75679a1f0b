// Three etcd-manager processes on 127.0.x.1-3, each claiming one of three
// loop-device volumes, elect one leader over the mutual-TLS peer API, and the
// leader forms one three-member etcd cluster. Then all stop and restart with
// their data intact. Checked through etcd's own view: member list, every
// endpoint healthy, the same cluster ID and member IDs on every endpoint
// (asserted on each endpoint's raw view), a key written on one member read on
// the others. The start
// race repeated 20 times is etcd-manager-scenarios-race.test.ts.
import t from 'tap';
import { existsSync } from 'node:fs';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { agreedLeader, clustersSeen, scenario, type EndpointView } from '../harness/etcd-scenario.js';
import { loopSkipReason } from '../harness/loop.js';
import { startManager, type ManagerProcess } from '../harness/manager.js';
import { waitFor } from '../harness/net.js';

const loopSkip = await loopSkipReason();
if (loopSkip) console.log(`# skipping: ${loopSkip}`);
const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;

t.test('three managers racing at start form exactly one three-member cluster; full restart, kill -9 etcd, leader killed', { skip: loopSkip || etcdSkip }, async (t) => {
  // Volumes also carry a role tag that --volume-tag filters on, as kOps tags them; managers run as `etcd-manager run`.
  const s = await scenario(t, { hosts: 3, memberCount: 3, volumeKind: 'image', reconcileInterval: '500ms', discoveryInterval: '1s', extraArgs: ['--volume-tag=k8s.io/role/control-plane=1'] });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m, { 'k8s.io/role/control-plane': '1' });
  const argsFor = (i: number) => ['run', ...s.args(i)];
  const endpoints = [0, 1, 2].map(s.endpoint);
  const backups = s.backups;
  const clusterHealthy = (managers: ManagerProcess[]) => s.view([0, 1, 2], 3, managers);
  const oneCluster = (views: EndpointView[], when: string) => {
    const seen = clustersSeen(views);
    t.equal(seen.length, 1, `${when}: one cluster (every endpoint reports the same cluster ID and member IDs)`, { clusters: seen });
    return seen[0];
  };

  const managers = [0, 1, 2].map((i) => startManager(t, argsFor(i)));
  const views = await waitFor('three healthy members', () => clusterHealthy(managers), 90_000, 500);
  // The cluster of the first formation: every later view must name this one, on every endpoint.
  const formed = oneCluster(views, 'after the start race');
  t.same(views[0]!.members!.map((m) => m.name).sort(), ['a', 'b', 'c'], 'etcd lists a, b and c');
  await t.resolves(waitFor('every member to name the same etcd leader', async () => agreedLeader(await clusterHealthy(managers)), 30_000, 200), 'every member sees the same etcd leader');
  await waitFor('created marker', () => backups.exists('control/etcd-cluster-created'), 20_000);

  const logsOf = (ms: ManagerProcess[]) => ms.flatMap((m) => m.logs);
  t.equal(logsOf(managers).filter((l) => l.event === 'cluster.forming').length, 1, 'exactly one formation');
  t.equal(managers.filter((m) => m.logs.some((l) => l.event === 'leader.elected')).length, 1, 'exactly one manager ever led');
  const tokens = new Set(logsOf(managers).filter((l) => l.event === 'etcd.started').map((l) => l.dataDir));
  t.equal(tokens.size, 3, 'three etcd data dirs');

  const writer = await openEtcdClient([endpoints[0]], s.tls);
  await writer.put('/registry/three').value('ok');
  writer.close();
  for (const e of endpoints.slice(1)) {
    const reader = await openEtcdClient([e], s.tls);
    t.equal(await reader.get('/registry/three').string(), 'ok', `read back on ${e}`);
    reader.close();
  }

  // Everything stops (a full outage), then comes back: same cluster, same data, no new formation.
  const stopped = await Promise.all(managers.map((m) => m.stop()));
  t.same(stopped, [0, 1, 2].map(() => ({ code: 0, signal: null })), 'every manager exits 0 on SIGTERM');
  const again = [0, 1, 2].map((i) => startManager(t, argsFor(i)));
  t.equal(oneCluster(await waitFor('healthy after restarting all', () => clusterHealthy(again), 90_000, 500), 'after restarting all'), formed, 'the same cluster as formed');
  const reader = await openEtcdClient([endpoints[2]], s.tls);
  t.equal(await reader.get('/registry/three').string(), 'ok', 'data intact after all stopped and restarted');
  reader.close();
  t.equal(logsOf(again).filter((l) => l.event === 'cluster.forming').length, 0, 'no second formation');

  // kill -9 one member's etcd: its supervisor brings it back into the same cluster.
  const victim = again[1];
  const etcdPid = victim.etcdPids().at(-1)!;
  process.kill(etcdPid, 'SIGKILL');
  await waitFor('the killed etcd restarted', async () => (victim.etcdPids().at(-1) !== etcdPid ? true : undefined), 30_000);
  t.equal(oneCluster(await waitFor('three healthy members after kill -9', () => clusterHealthy(again), 60_000, 500), 'after kill -9 of an etcd'), formed, 'the same cluster as formed');

  // The leading manager dies with its instance (manager and etcd, kill -9): another manager takes over.
  const leader = await waitFor('a leader among the restarted managers', async () => again.find((m) => m.logs.some((l) => l.event === 'leader.elected')), 30_000);
  const leaderTerm = leader.logs.find((l) => l.event === 'leader.elected')!.term as number;
  await leader.kill();
  const rest = again.filter((m) => m !== leader);
  const successor = await waitFor('another manager leads', async () => rest.find((m) => m.logs.some((l) => l.event === 'leader.elected')), 60_000);
  t.ok((successor.logs.find((l) => l.event === 'leader.elected')!.term as number) > leaderTerm, 'in a newer term');
  // The instance comes back (same volume): three healthy members again, still no new formation.
  const back = startManager(t, argsFor(again.indexOf(leader)));
  const final = [...rest, back];
  t.equal(oneCluster(await waitFor('three healthy members after the leader came back', () => clusterHealthy(final), 90_000, 500), 'after the leader came back'), formed, 'the same cluster as formed');
  t.equal(logsOf(final).filter((l) => l.event === 'cluster.forming').length, 0, 'no second formation');
  await Promise.all(final.map((m) => m.stop()));
});

t.test('SIGSTOP the leader before formation: another takes over, the resumed one never acts, one cluster forms', { skip: loopSkip || etcdSkip }, async (t) => {
  const s = await scenario(t, { hosts: 3, memberCount: 3, volumeKind: 'image', reconcileInterval: '500ms', discoveryInterval: '500ms' });
  const volume = (m: string) => s.volume(`vol-${m}`, m);
  const argsFor = s.args;
  await volume('a');
  await volume('b');
  const first = [0, 1].map((i) => startManager(t, argsFor(i)));
  const memberOf = (m: ManagerProcess) => m.logs.find((l) => l.event === 'member.identity')?.member;
  await waitFor('both members known', async () => first.every((m) => memberOf(m) !== undefined), 30_000);
  // Whichever registered first leads (2 of 3 votes) while waiting for c; below, a is that one and b the other.
  const a = await waitFor('one of them leads (2 of 3 votes) while waiting for c', async () => first.find((m) => m.logs.some((l) => l.event === 'leader.elected')), 30_000);
  const b = first.find((m) => m !== a)!;
  t.comment(`the first leader holds member ${String(memberOf(a))}`);

  process.kill(a.child.pid!, 'SIGSTOP');
  t.teardown(() => { if (a.child.exitCode === null) process.kill(a.child.pid!, 'SIGCONT'); });
  await volume('c');
  const c = startManager(t, argsFor(2));
  await waitFor('the other takes over once the leader\'s lease lapsed', async () => b.logs.some((l) => l.event === 'leader.elected'), 60_000);
  const bTerm = b.logs.find((l) => l.event === 'leader.elected')!.term as number;
  const aTerm = a.logs.find((l) => l.event === 'leader.elected')!.term as number;
  t.ok(bTerm > aTerm, `b's term ${bTerm} is newer than a's ${aTerm}`);
  const aLogsAtResume = a.logs.length;
  process.kill(a.child.pid!, 'SIGCONT');

  const views = await waitFor('three healthy members', () => s.view([0, 1, 2], 3, [a, b, c]), 90_000, 500);
  const seen = clustersSeen(views);
  t.equal(seen.length, 1, 'one cluster: every endpoint reports the same cluster ID and member IDs', { clusters: seen });
  const all = [a, b, c];
  t.equal(all.flatMap((m) => m.logs).filter((l) => l.event === 'cluster.forming').length, 1, 'exactly one formation');
  t.ok(b.logs.some((l) => l.event === 'cluster.forming'), 'by b, the current leader');
  // Once b's lease lapses, a may lead again, legitimately, but only in a newer term than b's.
  const aLater = a.logs.slice(aLogsAtResume);
  t.notOk(aLater.some((l) => l.event === 'cluster.forming'), 'the resumed old leader never formed a cluster');
  t.ok(aLater.filter((l) => l.event === 'leader.elected').every((l) => Number(l.term) > bTerm), 'nor led again in a term older than b\'s');
  await Promise.all(all.map((m) => m.stop()));
});
