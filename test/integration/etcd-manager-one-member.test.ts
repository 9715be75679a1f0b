// etcd-manager as a real process: a one-member cluster on a loop-device volume
// with TLS from the state store's CAs, /etc/hosts block, discovery record,
// /healthz and /metrics; etcd killed with -9 and recovered; the manager
// stopped and restarted with its data intact. Then the s3rver store with the
// static provider, an env file and --insecure.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { openStore } from '../../shared/store/index.js';
import { checkEtcd, openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { createLocalVolume } from '../../agents/etcd-manager/volumes/local.js';
import { mountedAt } from '../../agents/etcd-manager/volumes/blockdev.js';
import { loopArea, loopSkipReason } from '../harness/loop.js';
import { startManager } from '../harness/manager.js';
import { freePort, loopbackNet, processAlive, waitFor } from '../harness/net.js';
import { startS3 } from '../harness/s3.js';
import { tempDir } from '../harness/tmp.js';

const loopSkip = await loopSkipReason();
if (loopSkip) console.log(`# skipping: ${loopSkip}`);
const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
const SPEC = JSON.stringify({ memberCount: 1, etcdVersion: '3.4.23' });

t.test('one member on a loop volume, TLS, hosts, metrics; kill -9 etcd; restart the manager', { skip: loopSkip || etcdSkip }, async (t) => {
  const area = loopArea(t);
  const ip = loopbackNet()(1);
  const [peer, client, quarantine, metrics] = [await freePort(ip), await freePort(ip), await freePort(ip), await freePort(ip)];
  const stateURL = `file://${area.root}/state/c.example.com`;
  await ensureClusterPKI(openStore(stateURL), ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
  const backupURL = `${stateURL}/backups/etcd/main`;
  const backups = openStore(backupURL);
  await backups.write('control/etcd-cluster-spec', SPEC);
  await createLocalVolume({ volumeDir: area.volumeDir, id: 'vol-a', tags: { 'k8s.io/etcd/main': 'a/a', 'k8s.io/role/control-plane': '1' }, kind: 'image' });
  const hostsFile = join(area.root, 'hosts');
  writeFileSync(hostsFile, '127.0.0.1 localhost\n');
  const pkiDir = join(area.root, 'pki');
  const args = [
    '--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ip}`,
    // __address__, not __name__: the test's hosts file is not the resolver's /etc/hosts.
    `--peer-urls=https://__address__:${peer}`, `--client-urls=https://__address__:${client}`, `--quarantine-client-urls=https://__address__:${quarantine}`,
    '--volume-provider=local', `--local-volume-dir=${area.volumeDir}`, `--mount-root=${area.mountRoot}`,
    '--volume-tag=k8s.io/role/control-plane=1', '--volume-name-tag=k8s.io/etcd/main', '--instance-id=node-a',
    `--pki-dir=${pkiDir}`, `--hosts-file=${hostsFile}`, `--metrics-port=${metrics}`, `--metrics-address=${ip}`,
    '--reconcile-interval=300ms', '--discovery-poll-interval=1s',
  ];
  const manager = startManager(t, ['run', ...args]);

  const tls = { certFile: join(pkiDir, 'etcdClient.crt'), keyFile: join(pkiDir, 'etcdClient.key'), caFile: join(pkiDir, 'etcd-clients-ca.crt') };
  const endpoint = [`https://${ip}:${client}`];
  const health = await waitFor('etcd healthy over TLS on the client port', async () => {
    if (manager.child.exitCode !== null) throw new Error(`manager exited: ${JSON.stringify(manager.logs.slice(-5))}`);
    const h = existsSync(tls.certFile) ? await checkEtcd(endpoint, tls) : undefined;
    return h?.healthy ? h : undefined;
  }, 60_000);
  t.same(health.members?.map((m) => m.name), ['a'], 'etcd itself lists one member, a');
  t.equal(health.version, '3.4.23');
  const etcd = await openEtcdClient(endpoint, tls);
  await etcd.put('/registry/k').value('v1');
  t.equal(await etcd.get('/registry/k').string(), 'v1', 'a written key reads back');
  etcd.close();
  t.notOk((await checkEtcd([`https://${ip}:${client}`])).healthy, 'without a client certificate etcd refuses');

  t.ok(await mountedAt(join(area.mountRoot, 'master-vol-a')), 'the volume is mounted at master-<id>');
  const state = JSON.parse(readFileSync(join(area.mountRoot, 'master-vol-a/etcd-manager-state.json'), 'utf8')) as { clusterToken: string };
  t.ok(existsSync(join(area.mountRoot, 'master-vol-a/data', state.clusterToken, 'member')), 'etcd data lives on the volume under data/<token>');
  t.ok(await backups.exists('control/etcd-cluster-created'), 'the created marker is written');
  t.ok(manager.logs.some((l) => l.event === 'etcd.quarantine-entered' || (l.event === 'etcd.started' && l.quarantined === true)), 'a new cluster starts quarantined');
  t.ok(manager.logs.some((l) => l.event === 'etcd.quarantine-lifted'), 'and the quarantine is lifted once healthy');
  const discovery = JSON.parse((await backups.read('discovery/a.json')).toString()) as { address: string; dnsName: string };
  t.match(discovery, { address: ip, dnsName: 'etcd-a.internal.c.example.com' });
  await waitFor('hosts block', async () => readFileSync(hostsFile, 'utf8').includes(`${ip}\tetcd-a.internal.c.example.com`));
  t.match(readFileSync(hostsFile, 'utf8'), /^127\.0\.0\.1 localhost\n# Begin host entries managed by etcd-manager\[etcd\]/);

  const healthz = await waitFor('/healthz 200', async () => {
    const r = await fetch(`http://${ip}:${metrics}/healthz`);
    return r.status === 200 ? r.text() : undefined;
  });
  t.match(healthz, /^ok: etcd healthy/);
  const text = await (await fetch(`http://${ip}:${metrics}/metrics`)).text();
  t.match(text, /etcd_manager_etcd_running 1/);
  t.match(text, /etcd_manager_members 1/);
  t.match(text, /etcd_manager_is_leader 1/, 'the holder of a healthy one-member cluster reports itself leader');
  t.match(text, /etcd_manager_etcd_restarts_total 0/, 'lifting the quarantine is not counted as a restart');
  t.match(text, /etcd_manager_last_reconcile_timestamp_seconds \d/);
  t.ok(manager.logs.some((l) => l.event === 'volume.claimed' && l.volume === 'vol-a' && typeof l.reason === 'string'), 'the log says which volume and why');

  // kill -9 the etcd process the manager started: the supervisor brings it back.
  const firstPid = manager.etcdPids().at(-1)!;
  process.kill(firstPid, 'SIGKILL');
  await waitFor('etcd restarted', async () => (manager.etcdPids().at(-1) !== firstPid ? true : undefined));
  await waitFor('healthy after kill -9', async () => (await checkEtcd(endpoint, tls)).healthy);
  const again = await openEtcdClient(endpoint, tls);
  t.equal(await again.get('/registry/k').string(), 'v1', 'data intact after kill -9');
  again.close();
  const after = await waitFor('restart counted', async () => {
    const m = await (await fetch(`http://${ip}:${metrics}/metrics`)).text();
    return /etcd_manager_etcd_restarts_total 1/.test(m) ? m : undefined;
  });
  t.match(after, /etcd_manager_etcd_restarts_total 1/, 'the kill -9 is counted once');

  // SIGTERM: etcd stopped, manager exits 0; the volume stays (the instance did not go away).
  const pids = manager.etcdPids();
  t.same(await manager.stop(), { code: 0, signal: null }, 'manager exits 0 on SIGTERM');
  t.ok(pids.every((p) => !processAlive(p)), 'no etcd left running');

  const second = startManager(t, ['run', ...args]);
  await waitFor('healthy after the manager restart', async () => (await checkEtcd(endpoint, tls)).healthy, 60_000);
  const c = await openEtcdClient(endpoint, tls);
  t.equal(await c.get('/registry/k').string(), 'v1', 'data intact after a full stop and restart');
  c.close();
  t.ok(second.logs.some((l) => l.event === 'volume.claimed' && l.reason === 'already claimed by this instance'), 'the same volume is taken back');
  t.notOk(second.logs.some((l) => l.event === 'tls.issued'), 'certificates are reused across restarts');
  t.same(await second.stop(), { code: 0, signal: null });
});

t.test('s3rver store, static provider, settings from an env file, --insecure', { skip: etcdSkip }, async (t) => {
  const dir = tempDir(t);
  const s3 = await startS3(t);
  const ip = loopbackNet()(1);
  const [peer, client, quarantine] = [await freePort(ip), await freePort(ip), await freePort(ip)];
  const backupURL = `${s3.url}/state/c.example.com/backups/etcd/events`;
  await openStore(backupURL, { env: s3.env }).write('control/etcd-cluster-spec', SPEC);
  const envFile = join(dir, 'etcd-manager.env');
  writeFileSync(envFile, [
    'ETCD_MANAGER_CLUSTER_NAME=etcd-events', `ETCD_MANAGER_BACKUP_STORE=${backupURL}`, `ETCD_MANAGER_ADDRESS=${ip}`,
    `ETCD_MANAGER_PEER_URLS=http://__address__:${peer}`, `ETCD_MANAGER_CLIENT_URLS=http://__address__:${client}`,
    `ETCD_MANAGER_QUARANTINE_CLIENT_URLS=http://__address__:${quarantine}`, 'ETCD_MANAGER_VOLUME_PROVIDER=static',
    `ETCD_MANAGER_DATA_DIR=${join(dir, 'data')}`, 'ETCD_MANAGER_INSECURE=true', `ETCD_MANAGER_HOSTS_FILE=${join(dir, 'hosts')}`,
    'ETCD_MANAGER_INSTANCE_ID=bare-1', 'ETCD_MANAGER_RECONCILE_INTERVAL=300ms', '',
  ].join('\n'));
  const manager = startManager(t, [`--env-file=${envFile}`], s3.env);
  const endpoint = [`http://${ip}:${client}`];
  const health = await waitFor('healthy', async () => {
    if (manager.child.exitCode !== null) throw new Error(`manager exited: ${JSON.stringify(manager.logs.slice(-5))}`);
    const h = await checkEtcd(endpoint);
    return h.healthy ? h : undefined;
  }, 60_000);
  t.same(health.members?.map((m) => m.name), ['bare-1']);
  const etcd = await openEtcdClient(endpoint);
  await etcd.put('k').value('from-s3-run');
  t.equal(await etcd.get('k').string(), 'from-s3-run');
  etcd.close();
  t.ok(manager.logs.some((l) => l.level === 'warn' && l.event === 'config.insecure'), '--insecure logs a warning');
  t.ok(await openStore(backupURL, { env: s3.env }).exists('control/etcd-cluster-created'), 'marker in S3');
  t.ok(existsSync(join(dir, 'data/etcd-manager-state.json')), 'state on the static volume');
  t.same(await manager.stop(), { code: 0, signal: null });
});

t.test('an empty volume never creates a second cluster once one exists', { skip: etcdSkip }, async (t) => {
  const dir = tempDir(t);
  const ip = loopbackNet()(1);
  const backupURL = `file://${dir}/state/c.example.com/backups/etcd/main`;
  const backups = openStore(backupURL);
  await backups.write('control/etcd-cluster-spec', SPEC);
  await backups.write('control/etcd-cluster-created', '{}\n');
  const m = startManager(t, ['--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ip}`, '--insecure', '--volume-provider=static',
    `--data-dir=${join(dir, 'data')}`, `--hosts-file=${join(dir, 'hosts')}`, '--reconcile-interval=300ms', '--instance-id=n1']);
  await waitFor('the refusal in the log', async () => m.logs.some((l) => l.event === 'reconcile.failed' && String(l.err).includes('refusing to create a second cluster')));
  t.same(m.etcdPids(), [], 'no etcd was started');
  t.same(await m.stop(), { code: 0, signal: null });
});
