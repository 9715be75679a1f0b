// Three etcd-manager processes on 127.0.x.1-3, each claiming one of three
// loop-device volumes, elect one leader over the mutual-TLS peer API, and the
// leader forms one three-member etcd cluster. Then all stop and restart with
// their data intact. Checked through etcd's own view: member list, every
// endpoint healthy, a key written on one member read on the others.
import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { openStore } from '../../shared/store/index.js';
import { checkEtcd, openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { createLocalVolume } from '../../agents/etcd-manager/volumes/local.js';
import { loopArea, loopSkipReason } from '../harness/loop.js';
import { startManager, type ManagerProcess } from '../harness/manager.js';
import { freePort, loopbackNet, waitFor } from '../harness/net.js';

const loopSkip = await loopSkipReason();
if (loopSkip) console.log(`# skipping: ${loopSkip}`);
const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;

t.test('three managers racing at start form exactly one three-member cluster; full restart, kill -9 etcd, leader killed', { skip: loopSkip || etcdSkip }, async (t) => {
  const area = loopArea(t);
  const net = loopbackNet();
  const ips = [1, 2, 3].map(net);
  const [peer, client, quarantine, grpc] = [await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0])];
  const stateURL = `file://${area.root}/state/c.example.com`;
  await ensureClusterPKI(openStore(stateURL), ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
  const backupURL = `${stateURL}/backups/etcd/main`;
  const backups = openStore(backupURL);
  await backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 3, etcdVersion: '3.4.23' }));
  for (const m of ['a', 'b', 'c']) {
    await createLocalVolume({ volumeDir: area.volumeDir, id: `vol-${m}`, tags: { 'k8s.io/etcd/main': `${m}/a,b,c`, 'k8s.io/role/control-plane': '1' }, kind: 'image' });
  }
  const argsFor = (i: number) => {
    const hosts = join(area.root, `hosts-${i}`);
    if (!existsSync(hosts)) writeFileSync(hosts, '');
    return [
      'run', '--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ips[i]}`,
      `--peer-urls=https://__address__:${peer}`, `--client-urls=https://__address__:${client}`, `--quarantine-client-urls=https://__address__:${quarantine}`,
      `--grpc-port=${grpc}`, '--volume-provider=local', `--local-volume-dir=${area.volumeDir}`, `--mount-root=${area.mountRoot}`,
      '--volume-tag=k8s.io/role/control-plane=1', `--instance-id=node-${i}`, `--pki-dir=${join(area.root, `pki-${i}`)}`,
      `--hosts-file=${hosts}`, '--reconcile-interval=500ms', '--discovery-poll-interval=1s',
    ];
  };
  const tls = (i: number) => ({ certFile: join(area.root, `pki-${i}/etcdClient.crt`), keyFile: join(area.root, `pki-${i}/etcdClient.key`), caFile: join(area.root, `pki-${i}/etcd-clients-ca.crt`) });
  const endpoints = ips.map((ip) => `https://${ip}:${client}`);

  const clusterHealthy = async (managers: ManagerProcess[]) => {
    for (const m of managers) if (m.child.exitCode !== null) throw new Error(`a manager exited: ${JSON.stringify(m.logs.slice(-5))}`);
    const views = await Promise.all(endpoints.map((e) => (existsSync(tls(0).certFile) ? checkEtcd([e], tls(0)) : undefined)));
    return views.every((v) => v?.healthy && v.members?.length === 3 && v.members.every((m) => m.name !== '')) ? views : undefined;
  };

  const managers = [0, 1, 2].map((i) => startManager(t, argsFor(i)));
  const views = await waitFor('three healthy members', () => clusterHealthy(managers), 90_000, 500);
  t.same(views[0]!.members!.map((m) => m.name).sort(), ['a', 'b', 'c'], 'etcd lists a, b and c');
  t.equal(new Set(views.map((v) => v!.leaderId)).size, 1, 'every member sees the same etcd leader');
  await waitFor('created marker', () => backups.exists('control/etcd-cluster-created'), 20_000);

  const logsOf = (ms: ManagerProcess[]) => ms.flatMap((m) => m.logs);
  t.equal(logsOf(managers).filter((l) => l.msg === 'forming a new cluster').length, 1, 'exactly one formation');
  t.equal(managers.filter((m) => m.logs.some((l) => l.msg === 'became leader')).length, 1, 'exactly one manager ever led');
  const tokens = new Set(logsOf(managers).filter((l) => l.msg === 'etcd started').map((l) => l.dataDir));
  t.equal(tokens.size, 3, 'three etcd data dirs');

  const writer = await openEtcdClient([endpoints[0]], tls(0));
  await writer.put('/registry/three').value('ok');
  writer.close();
  for (const e of endpoints.slice(1)) {
    const reader = await openEtcdClient([e], tls(0));
    t.equal(await reader.get('/registry/three').string(), 'ok', `read back on ${e}`);
    reader.close();
  }

  // Everything stops (a full outage), then comes back: same cluster, same data, no new formation.
  const stopped = await Promise.all(managers.map((m) => m.stop()));
  t.same(stopped, [0, 1, 2].map(() => ({ code: 0, signal: null })), 'every manager exits 0 on SIGTERM');
  const again = [0, 1, 2].map((i) => startManager(t, argsFor(i)));
  await waitFor('healthy after restarting all', () => clusterHealthy(again), 90_000, 500);
  const reader = await openEtcdClient([endpoints[2]], tls(0));
  t.equal(await reader.get('/registry/three').string(), 'ok', 'data intact after all stopped and restarted');
  reader.close();
  t.equal(logsOf(again).filter((l) => l.msg === 'forming a new cluster').length, 0, 'no second formation');

  // kill -9 one member's etcd: its supervisor brings it back into the same cluster.
  const victim = again[1];
  const etcdPid = victim.etcdPids().at(-1)!;
  process.kill(etcdPid, 'SIGKILL');
  await waitFor('the killed etcd restarted', async () => (victim.etcdPids().at(-1) !== etcdPid ? true : undefined), 30_000);
  await waitFor('three healthy members after kill -9', () => clusterHealthy(again), 60_000, 500);

  // The leading manager dies with its instance (manager and etcd, kill -9): another manager takes over.
  const leader = await waitFor('a leader among the restarted managers', async () => again.find((m) => m.logs.some((l) => l.msg === 'became leader')), 30_000);
  const leaderTerm = leader.logs.find((l) => l.msg === 'became leader')!.term as number;
  await leader.kill();
  const rest = again.filter((m) => m !== leader);
  const successor = await waitFor('another manager leads', async () => rest.find((m) => m.logs.some((l) => l.msg === 'became leader')), 60_000);
  t.ok((successor.logs.find((l) => l.msg === 'became leader')!.term as number) > leaderTerm, 'in a newer term');
  // The instance comes back (same volume): three healthy members again, still no new formation.
  const back = startManager(t, argsFor(again.indexOf(leader)));
  const final = [...rest, back];
  await waitFor('three healthy members after the leader came back', () => clusterHealthy(final), 90_000, 500);
  t.equal(logsOf(final).filter((l) => l.msg === 'forming a new cluster').length, 0, 'no second formation');
  await Promise.all(final.map((m) => m.stop()));
});

t.test('SIGSTOP the leader before formation: another takes over, the resumed one never acts, one cluster forms', { skip: loopSkip || etcdSkip }, async (t) => {
  const area = loopArea(t);
  const net = loopbackNet();
  const ips = [1, 2, 3].map(net);
  const [peer, client, quarantine, grpc] = [await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0])];
  const stateURL = `file://${area.root}/state/c.example.com`;
  await ensureClusterPKI(openStore(stateURL), ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
  const backupURL = `${stateURL}/backups/etcd/main`;
  await openStore(backupURL).write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 3, etcdVersion: '3.4.23' }));
  const volume = (m: string) => createLocalVolume({ volumeDir: area.volumeDir, id: `vol-${m}`, tags: { 'k8s.io/etcd/main': `${m}/a,b,c` }, kind: 'image' });
  const argsFor = (i: number) => [
    '--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ips[i]}`,
    `--peer-urls=https://__address__:${peer}`, `--client-urls=https://__address__:${client}`, `--quarantine-client-urls=https://__address__:${quarantine}`,
    `--grpc-port=${grpc}`, '--volume-provider=local', `--local-volume-dir=${area.volumeDir}`, `--mount-root=${area.mountRoot}`,
    `--instance-id=node-${i}`, `--pki-dir=${join(area.root, `pki-${i}`)}`, `--hosts-file=${join(area.root, `hosts-${i}`)}`,
    '--reconcile-interval=500ms', '--discovery-poll-interval=500ms',
  ];
  await volume('a');
  await volume('b');
  const first = [0, 1].map((i) => startManager(t, argsFor(i)));
  const memberOf = (m: ManagerProcess) => m.logs.find((l) => l.msg === 'member identity')?.member;
  await waitFor('both members known', async () => first.every((m) => memberOf(m) !== undefined), 30_000);
  const a = first.find((m) => memberOf(m) === 'a')!;
  const b = first.find((m) => memberOf(m) === 'b')!;
  await waitFor('a leads (2 of 3 votes) while waiting for c', async () => a.logs.some((l) => l.msg === 'became leader'), 30_000);

  process.kill(a.child.pid!, 'SIGSTOP');
  t.teardown(() => { if (a.child.exitCode === null) process.kill(a.child.pid!, 'SIGCONT'); });
  await volume('c');
  const c = startManager(t, argsFor(2));
  await waitFor('b takes over once a\'s lease lapsed', async () => b.logs.some((l) => l.msg === 'became leader'), 60_000);
  const bTerm = b.logs.find((l) => l.msg === 'became leader')!.term as number;
  const aTerm = a.logs.find((l) => l.msg === 'became leader')!.term as number;
  t.ok(bTerm > aTerm, `b's term ${bTerm} is newer than a's ${aTerm}`);
  const aLogsAtResume = a.logs.length;
  process.kill(a.child.pid!, 'SIGCONT');

  const tls = { certFile: join(area.root, 'pki-2/etcdClient.crt'), keyFile: join(area.root, 'pki-2/etcdClient.key'), caFile: join(area.root, 'pki-2/etcd-clients-ca.crt') };
  const endpoints = ips.map((ip) => `https://${ip}:${client}`);
  const views = await waitFor('three healthy members', async () => {
    const vs = await Promise.all(endpoints.map((e) => checkEtcd([e], tls)));
    return vs.every((v) => v.healthy && v.members?.length === 3 && v.members.every((m) => m.name !== '')) ? vs : undefined;
  }, 90_000, 500);
  const ids = views.map((v) => v.members!.map((m) => m.ID).sort().join(','));
  t.equal(new Set(ids).size, 1, 'one cluster: every endpoint lists the same member IDs');
  const all = [a, b, c];
  t.equal(all.flatMap((m) => m.logs).filter((l) => l.msg === 'forming a new cluster').length, 1, 'exactly one formation');
  t.ok(b.logs.some((l) => l.msg === 'forming a new cluster'), 'by b, the current leader');
  t.notOk(a.logs.slice(aLogsAtResume).some((l) => l.msg === 'became leader' || l.msg === 'forming a new cluster'), 'the resumed old leader never acted');
  await Promise.all(all.map((m) => m.stop()));
});

// The start race alone, on fresh volumes each time. MOORING_ETCD_RACE_REPEAT=20
// runs it as often as the issue asks; the suite runs it once (about 10 s each).
const REPEAT = Number(process.env.MOORING_ETCD_RACE_REPEAT ?? 1);
t.test(`start race, repeated ${REPEAT} time(s): exactly one cluster each time`, { skip: loopSkip || etcdSkip }, async (t) => {
  for (let round = 0; round < REPEAT; round++) {
    const area = loopArea(t);
    const net = loopbackNet();
    const ips = [1, 2, 3].map(net);
    const [peer, client, quarantine, grpc] = [await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0])];
    const stateURL = `file://${area.root}/state/c.example.com`;
    await ensureClusterPKI(openStore(stateURL), ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
    const backupURL = `${stateURL}/backups/etcd/main`;
    await openStore(backupURL).write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 3, etcdVersion: '3.4.23' }));
    for (const m of ['a', 'b', 'c']) await createLocalVolume({ volumeDir: area.volumeDir, id: `vol-${m}`, tags: { 'k8s.io/etcd/main': `${m}/a,b,c` }, kind: 'image' });
    const managers = [0, 1, 2].map((i) => startManager(t, [
      '--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ips[i]}`,
      `--peer-urls=https://__address__:${peer}`, `--client-urls=https://__address__:${client}`, `--quarantine-client-urls=https://__address__:${quarantine}`,
      `--grpc-port=${grpc}`, `--local-volume-dir=${area.volumeDir}`, `--mount-root=${area.mountRoot}`, `--instance-id=node-${i}`,
      `--pki-dir=${join(area.root, `pki-${i}`)}`, `--hosts-file=${join(area.root, `hosts-${i}`)}`, '--reconcile-interval=300ms', '--discovery-poll-interval=300ms',
    ]));
    const tls = { certFile: join(area.root, 'pki-0/etcdClient.crt'), keyFile: join(area.root, 'pki-0/etcdClient.key'), caFile: join(area.root, 'pki-0/etcd-clients-ca.crt') };
    const views = await waitFor(`round ${round}: three healthy members`, async () => {
      if (!existsSync(tls.certFile)) return undefined;
      const vs = await Promise.all(ips.map((ip) => checkEtcd([`https://${ip}:${client}`], tls)));
      return vs.every((v) => v.healthy && v.members?.length === 3 && v.members.every((m) => m.name !== '')) ? vs : undefined;
    }, 90_000, 300);
    t.equal(new Set(views.map((v) => v.members!.map((m) => m.ID).sort().join(','))).size, 1, `round ${round}: one cluster`);
    t.equal(managers.flatMap((m) => m.logs).filter((l) => l.msg === 'forming a new cluster').length, 1, `round ${round}: one formation`);
    await Promise.all(managers.map((m) => m.kill()));
    await area.cleanup();
  }
});
