// The etcd supervisor against real etcd 3.4.23 on a 127.0.x.y address:
// started from ETCD_* variables, restarted after kill -9, quarantined onto
// another client port, stopped cleanly; SIGKILL for a process that ignores SIGTERM.
import t from 'tap';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../../shared/log.js';
import { checkEtcd, openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { EtcdSupervisor, etcdEnvironment, type EtcdProcessSpec } from '../../agents/etcd-manager/etcd/process.js';
import { resolveEtcdBinary, SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { freePort, loopbackNet, processAlive, waitFor } from '../harness/net.js';
import { tempDir } from '../harness/tmp.js';

const skip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
const log = logger('test');

t.test('binary selection: versioned dir first, the system etcd only when it is that version', { skip }, async (t) => {
  const dir = tempDir(t);
  t.equal(await resolveEtcdBinary('3.4.23'), SYSTEM_ETCD);
  await t.rejects(resolveEtcdBinary('3.5.9', dir), /no etcd 3\.5\.9: .*3\.5\.9\/etcd is missing and \/usr\/bin\/etcd is 3\.4\.23/);
  const { mkdirSync, copyFileSync } = await import('node:fs');
  mkdirSync(join(dir, '3.5.9'));
  copyFileSync('/bin/true', join(dir, '3.5.9/etcd'));
  t.equal(await resolveEtcdBinary('3.5.9', dir), join(dir, '3.5.9/etcd'));
  await t.rejects(resolveEtcdBinary('latest'), /not like 3\.4\.23/);
});

t.test('run, kill -9 and recover, quarantine, stop', { skip }, async (t) => {
  const dir = tempDir(t);
  const ip = loopbackNet()(1);
  const [peer, client, quarantine] = [await freePort(ip), await freePort(ip), await freePort(ip)];
  const spec: EtcdProcessSpec = {
    binary: SYSTEM_ETCD,
    name: 'a',
    dataDir: join(dir, 'data/token-1'),
    clusterToken: 'token-1',
    peerURLs: [`http://${ip}:${peer}`],
    clientURLs: [`http://${ip}:${client}`],
    quarantineClientURLs: [`http://${ip}:${quarantine}`],
    initialCluster: { a: [`http://${ip}:${peer}`] },
    initialClusterState: 'new',
    listenAddress: ip,
  };
  t.match(etcdEnvironment(spec, true), { ETCD_LISTEN_CLIENT_URLS: `http://${ip}:${quarantine}`, ETCD_INITIAL_CLUSTER: `a=http://${ip}:${peer}` });
  const exits: string[] = [];
  const sup = new EtcdSupervisor({ log, initialBackoffMs: 100, maxBackoffMs: 400, stopTimeoutMs: 10_000, onExit: ({ code, signal, unexpected }) => exits.push(`${signal ?? String(code)}${unexpected ? ' unexpected' : ''}`) });
  t.teardown(() => sup.stop());
  await sup.start(spec);
  const endpoint = [`http://${ip}:${client}`];
  await waitFor('etcd healthy', async () => (await checkEtcd(endpoint)).healthy);
  const c1 = await openEtcdClient(endpoint);
  await c1.put('/mooring/k').value('v1');
  c1.close();

  const firstPid = sup.pid!;
  process.kill(firstPid, 'SIGKILL');
  const secondPid = await waitFor('a new etcd process', async () => (sup.pid !== undefined && sup.pid !== firstPid ? sup.pid : undefined));
  t.not(secondPid, firstPid, 'restarted as a new process');
  t.notOk(processAlive(firstPid), 'the killed process is gone');
  await waitFor('etcd healthy again', async () => (await checkEtcd(endpoint)).healthy);
  const c2 = await openEtcdClient(endpoint);
  t.equal(await c2.get('/mooring/k').string(), 'v1', 'data kept across the crash');
  c2.close();
  t.equal(sup.restarts, 1);

  await sup.setQuarantined(true);
  t.ok(sup.isQuarantined);
  const qEndpoint = [`http://${ip}:${quarantine}`];
  await waitFor('etcd on the quarantine port', async () => (await checkEtcd(qEndpoint)).healthy);
  t.notOk((await checkEtcd(endpoint)).healthy, 'the normal client port is closed while quarantined');
  await sup.setQuarantined(false);
  await waitFor('etcd back on the client port', async () => (await checkEtcd(endpoint)).healthy);
  t.notOk((await checkEtcd(qEndpoint)).healthy, 'quarantine port closed again');

  const lastPid = sup.pid!;
  await sup.stop();
  t.notOk(processAlive(lastPid), 'stopped');
  t.equal(sup.pid, undefined);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(sup.pid, undefined, 'no restart after stop');
  t.equal(exits.at(-1), 'SIGTERM', 'the last exit was our SIGTERM, not a SIGKILL');
  t.equal(exits[0], 'SIGKILL unexpected', 'the first exit was the kill -9, reported as unexpected');
  t.equal(exits.filter((e) => e.endsWith('unexpected')).length, 1, 'quarantine switches and stop are not unexpected exits');
});

t.test('a process that ignores SIGTERM is killed by PID after the timeout', async (t) => {
  const dir = tempDir(t);
  const stubborn = join(dir, 'etcd');
  writeFileSync(stubborn, `#!/bin/sh\nexec ${process.execPath} -e "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)"\n`);
  chmodSync(stubborn, 0o755);
  const signals: Array<string | null> = [];
  const sup = new EtcdSupervisor({ log, stopTimeoutMs: 500, onExit: ({ signal }) => signals.push(signal) });
  t.teardown(() => sup.stop());
  await sup.start({ binary: stubborn, name: 'x', dataDir: join(dir, 'd'), clusterToken: 't', peerURLs: [], clientURLs: [], quarantineClientURLs: [], initialCluster: {}, initialClusterState: 'new', listenAddress: '127.0.0.1' });
  const pid = sup.pid!;
  await waitFor('stub running', async () => sup.recentOutput().includes('up'));
  await sup.stop();
  t.notOk(processAlive(pid));
  t.same(signals, ['SIGKILL']);
});
