// Certificate renewal without downtime: with a test-only lifetime of 24 s
// (the test-only --test-hook=cert-lifetime=24s), the manager renews every
// certificate with a third of its life left while etcd keeps running (same PID,
// no restart) and keeps serving: writes on one long-lived connection never fail,
// and NEW TLS connections after the first certificates have expired are served
// with the renewed server certificate (etcd 3.4 reloads its files per handshake).
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { openStore } from '../../shared/store/index.js';
import { checkEtcd, openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { startManager } from '../harness/manager.js';
import { freePort, loopbackNet, processAlive, waitFor } from '../harness/net.js';
import { tempDir } from '../harness/tmp.js';
import { notReadBack, startWriter } from '../harness/writer.js';

const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
const LIFETIME_MS = 24_000;

/** The certificate etcd presents on a fresh handshake. */
function servedCert(host: string, port: number, pki: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, ca: readFileSync(join(pki, 'etcd-clients-ca.crt')), cert: readFileSync(join(pki, 'etcdClient.crt')), key: readFileSync(join(pki, 'etcdClient.key')), ALPNProtocols: ['h2'] }, () => {
      const raw = s.getPeerX509Certificate();
      s.end();
      if (raw) resolve(raw);
      else reject(new Error('no peer certificate'));
    });
    s.once('error', reject);
    s.setTimeout(3_000, () => s.destroy(new Error('handshake timed out')));
  });
}

t.test('short-lived certificates are renewed while etcd keeps serving', { skip: etcdSkip }, async (t) => {
  const dir = tempDir(t);
  const ip = loopbackNet()(1);
  const [peer, client, quarantine, grpc] = [await freePort(ip), await freePort(ip), await freePort(ip), await freePort(ip)];
  const stateURL = `file://${dir}/state/c.example.com`;
  await ensureClusterPKI(openStore(stateURL), ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
  const backupURL = `${stateURL}/backups/etcd/main`;
  await openStore(backupURL).write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 1, etcdVersion: '3.4.23' }));
  const pki = join(dir, 'pki');
  const m = startManager(t, [
    '--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ip}`, '--volume-provider=static', `--data-dir=${join(dir, 'vol')}`, '--instance-id=a',
    `--peer-urls=https://__address__:${peer}`, `--client-urls=https://__address__:${client}`, `--quarantine-client-urls=https://__address__:${quarantine}`,
    `--grpc-port=${grpc}`, `--pki-dir=${pki}`, `--hosts-file=${join(dir, 'hosts')}`, '--reconcile-interval=500ms',
    `--test-hook=cert-lifetime=${LIFETIME_MS / 1000}s`,
  ]);
  const tls = { certFile: join(pki, 'etcdClient.crt'), keyFile: join(pki, 'etcdClient.key'), caFile: join(pki, 'etcd-clients-ca.crt') };
  const endpoint = `https://${ip}:${client}`;
  await waitFor('etcd healthy', async () => {
    if (m.child.exitCode !== null) throw new Error(`manager exited: ${JSON.stringify(m.logs.slice(-5))}`);
    return existsSync(tls.certFile) && (await checkEtcd([endpoint], tls)).healthy;
  }, 60_000, 300);
  const firstServed = await servedCert(ip, client, pki);
  const firstNotAfter = new Date(firstServed.validTo).getTime();
  t.ok(firstNotAfter - Date.now() < LIFETIME_MS + 2_000, `etcd serves a short-lived certificate (valid to ${firstServed.validTo})`);
  // (The first start of a new cluster is quarantined; lifting that is one restart, before this point.)
  const etcdPids = m.etcdPids();
  const etcdPid = etcdPids.at(-1)!;

  const w = await openEtcdClient([endpoint], tls);
  const writer = startWriter((key, value) => w.put(key).value(value).exec(), { prefix: '/registry/r/' });

  // Past the first certificates' expiry: everything was renewed, and new handshakes work.
  await waitFor('past the first expiry', async () => Date.now() > firstNotAfter + 1_500, LIFETIME_MS + 10_000, 250);
  const served = await servedCert(ip, client, pki);
  const tally = await writer.stop();
  const { writes, failures } = tally;
  const unread = notReadBack(tally, await w.getAll().prefix('/registry/r/').strings());
  w.close();

  const renewed = m.logs.filter((l) => l.event === 'tls.issued' && /s left/.test(String(l.reason)));
  t.same([...new Set(renewed.map((l) => String(l.cert).split('/').at(-1)))].sort(), ['etcdClient.crt', 'manager.crt', 'peer.crt', 'server.crt'], 'all four certificates renewed before expiry');
  t.not(served.serialNumber, firstServed.serialNumber, 'a new handshake gets a different server certificate');
  t.ok(new Date(served.validTo).getTime() > firstNotAfter, 'valid past the first one\'s expiry');
  t.equal(served.fingerprint256, new X509Certificate(readFileSync(join(pki, 'server.crt'))).fingerprint256, 'it is the renewed file on disk');
  t.equal(failures.length, 0, `no write failed across the renewal (${writes} writes; ${failures.slice(0, 3).join('; ')})`);
  t.ok(writes > 50);
  t.same(unread, [], 'every acknowledged write reads back');
  t.same(m.etcdPids(), etcdPids, 'etcd was not restarted for the renewal');
  t.ok(processAlive(etcdPid));
  const fresh = await checkEtcd([endpoint], tls);
  t.ok(fresh.healthy, 'a new client with the renewed client certificate is served');
  t.equal((await m.stop()).code, 0);
});
