// Certificate renewal across three managers, with no restart: with a test-only
// lifetime of 45 s (the test-only --test-hook=cert-lifetime=45s) every certificate
// of every member expires during the test, and must have been renewed in place:
//   - etcd keeps its PIDs, and writes through the leading manager's member keep
//     succeeding and read back on every member (replicated over peer TLS);
//   - after the first certificates have expired, NEW handshakes on etcd's peer
//     port, on its client port and on the managers' peer API succeed with the
//     certificates on disk, each served a renewed, unexpired certificate (Node
//     refuses an expired one in the handshake);
//   - the managers' own traffic over the peer API still works: a leadership
//     change forced after the expiry (the leader SIGSTOPped past its lease) is
//     won by vote in a newer term, and that leader then shrinks the cluster 3→2
//     through fenced peer-API commands (quarantine, leave), the quarantined
//     member's new etcd handshaking with the others over peer TLS.
// The one-member variant (client certificate and handshakes on one host) is
// etcd-manager-cert-renewal.test.ts.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { clustersSeen, leadershipHistory, logged, scenario, withTimeout } from '../harness/etcd-scenario.js';
import { describeManagers, startManager, type ManagerProcess } from '../harness/manager.js';
import { processAlive, waitFor } from '../harness/net.js';
import { notReadBack, startWriter } from '../harness/writer.js';

const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
const LIFETIME_MS = 45_000;

// Formation, a full certificate lifetime, a change of leader and a shrink: longer than tap's default.
t.setTimeout(660_000);

interface Creds { ca: Buffer; cert: Buffer; key: Buffer }
const creds = (pki: string, ca: string, leaf: string): Creds => ({
  ca: readFileSync(join(pki, `${ca}.crt`)), cert: readFileSync(join(pki, `${leaf}.crt`)), key: readFileSync(join(pki, `${leaf}.key`)),
});

/** The certificate a listener presents on a fresh, verified handshake (an expired one fails it). */
function servedCert(host: string, port: number, c: Creds, alpn?: string[]): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, ...c, ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => {
      const raw = s.getPeerX509Certificate();
      s.end();
      if (raw) resolve(raw);
      else reject(new Error('no peer certificate'));
    });
    s.once('error', reject);
    s.setTimeout(5_000, () => s.destroy(new Error(`${host}:${port}: handshake timed out`)));
  });
}

/** GET /v1/info on a manager's peer API over a new connection: its status, member and served certificate. */
function peerInfo(host: string, port: number, c: Creds): Promise<{ status: number; member: string; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/v1/info', method: 'GET', ...c, agent: false, timeout: 5_000 }, (res) => {
      const cert = (res.socket as TLSSocket).getPeerX509Certificate();
      let raw = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (raw += chunk));
      res.on('end', () => {
        if (!cert) return reject(new Error('no peer certificate'));
        try {
          resolve({ status: res.statusCode ?? 0, member: String((JSON.parse(raw) as { member?: unknown }).member), cert });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${host}:${port}/v1/info: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

t.test('three managers: etcd peer TLS and the managers\' peer API keep working across certificate expiry, with no restart', { skip: etcdSkip, timeout: 600_000 }, async (t) => {
  // Directory volumes: this is about certificates, not mounting. 1 s reconcile passes (3 s leases), as in
  // the pause scenario: on a loaded machine shorter leases lapse now and then, which would blur the
  // forced leadership change below.
  const s = await scenario(t, { hosts: 3, memberCount: 3, volumeKind: 'directory', reconcileInterval: '1s', discoveryInterval: '1s' });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m);
  const hook = `--test-hook=cert-lifetime=${LIFETIME_MS / 1000}s`;
  const managers: ManagerProcess[] = [];
  t.teardown(() => { for (const m of managers) if (m.child.exitCode === null && m.child.signalCode === null) process.kill(m.child.pid!, 'SIGCONT'); });
  for (const i of [0, 1, 2]) managers.push(startManager(t, [...s.args(i), hook], s.env));
  const pki = (i: number) => join(s.area.root, `pki-${i}`);
  const names = () => managers.map((m) => String(m.logs.find((l) => l.event === 'member.identity')?.member));

  const views = await waitFor('three healthy members', () => s.view([0, 1, 2], 3, managers), 120_000, 500).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${describeManagers(managers)}`);
  });
  t.equal(clustersSeen(views).length, 1, 'one cluster', { clusters: clustersSeen(views) });
  // Healthy on the client ports: every member is out of its first-start quarantine (that restart is behind us).
  const pids = managers.map((m) => m.etcdPids());

  // What every listener serves now, and when the last of those certificates expires.
  const listeners = [0, 1, 2].map((i) => ({
    peer: () => servedCert(s.ips[i], s.peer, creds(pki((i + 1) % 3), 'etcd-peers-ca-main', 'peer')),
    client: () => servedCert(s.ips[i], s.client, creds(pki((i + 1) % 3), 'etcd-clients-ca', 'etcdClient'), ['h2']),
    api: () => peerInfo(s.ips[i], s.grpc, creds(pki((i + 1) % 3), 'etcd-manager-ca-main', 'manager')),
  }));
  const first = await Promise.all(listeners.map(async (l) => ({ peer: await l.peer(), client: await l.client(), api: (await l.api()).cert })));
  const firstCerts = first.flatMap((f) => [f.peer, f.client, f.api]);
  const lastExpiry = Math.max(...firstCerts.map((c) => new Date(c.validTo).getTime()));
  t.ok(firstCerts.every((c) => new Date(c.validTo).getTime() - Date.now() < LIFETIME_MS + 2_000), `every listener serves a short-lived certificate (the last expires ${new Date(lastExpiry).toISOString()})`);

  // Writes through the member of the manager that leads, for the whole expiry.
  const leaderNow = () => waitFor('a current leader', async () => {
    const h = leadershipHistory(managers).at(-1);
    return h && !managers[h.manager].logs.some((l) => l.event === 'leader.lost' && Number(l.term) === h.term) ? h : undefined;
  }, 30_000, 200);
  const leader = await leaderNow();
  const w = await openEtcdClient([s.endpoint(leader.manager)], s.tls);
  const writer = startWriter((key, value) => withTimeout('put', w.put(key).value(value).exec()), { prefix: '/renewal/' });
  t.teardown(async () => { await writer.stop(); w.close(); }); // also when an assertion below throws

  await waitFor('past the expiry of every certificate served at first', async () => Date.now() > lastExpiry + 2_000, LIFETIME_MS + 30_000, 250);
  const expiredAt = new Date().toISOString();
  // New handshakes, each with the (renewed) files another member holds on disk.
  for (const [i, l] of listeners.entries()) {
    const n = names()[i];
    for (const [what, cert, was] of [['etcd peer port', await l.peer(), first[i].peer], ['etcd client port', await l.client(), first[i].client]] as const) {
      t.not(cert.serialNumber, was.serialNumber, `${n}: a new handshake on the ${what} gets a renewed certificate`);
      t.ok(new Date(cert.validTo).getTime() > Date.now(), `${n}: valid now (to ${cert.validTo}), after the first one expired (${was.validTo})`);
    }
    const info = await l.api();
    t.equal(info.status, 200, `${n}: the manager peer API answers a new connection after the expiry`);
    t.equal(info.member, n, `${n}: it is that member's manager`);
    t.not(info.cert.serialNumber, first[i].api.serialNumber, `${n}: and serves a renewed certificate`);
    t.ok(new Date(info.cert.validTo).getTime() > Date.now(), `${n}: valid now (to ${info.cert.validTo})`);
  }

  // Leadership after the expiry: the leader is stopped past its lease; another wins by vote.
  const before = await leaderNow();
  const stopped = managers[before.manager];
  const stoppedAt = new Date().toISOString();
  process.kill(stopped.child.pid!, 'SIGSTOP');
  const successor = await waitFor('another manager wins leadership after the expiry', async () => {
    const h = leadershipHistory(managers).at(-1);
    return h && h.manager !== before.manager && h.time > stoppedAt ? h : undefined;
  }, 60_000, 200).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${describeManagers(managers)}`);
  });
  process.kill(stopped.child.pid!, 'SIGCONT');
  t.ok(successor.term > before.term, `${names()[successor.manager]} leads in term ${successor.term}, after ${names()[before.manager]}'s ${before.term}, won after the expiry`);

  const tally = await writer.stop();
  t.equal(tally.failures.length, 0, `no write failed across the expiry and the change of leader (${tally.writes} writes; ${tally.failures.slice(0, 3).join('; ')})`);
  t.ok(tally.writes > 100, 'writes went on throughout');
  for (const i of [0, 1, 2]) {
    const c = await openEtcdClient([s.endpoint(i)], s.tls);
    const found = await withTimeout('get /renewal/', c.getAll().prefix('/renewal/').strings(), 15_000);
    c.close();
    t.same(notReadBack(tally, found), [], `every acknowledged write reads back on ${names()[i]}`);
  }
  t.same(managers.map((m) => m.etcdPids()), pids, 'no etcd was restarted for the renewals');
  t.ok(pids.every((p) => processAlive(p.at(-1)!)), 'and each is still running');
  for (const [i, m] of managers.entries()) {
    const renewed = m.logs.filter((l) => l.event === 'tls.issued' && /s left/.test(String(l.reason)) && String(l.time) < expiredAt);
    t.same([...new Set(renewed.map((l) => String(l.cert).split('/').at(-1)))].sort(), ['etcdClient.crt', 'manager.crt', 'peer.crt', 'server.crt'], `${names()[i]}: all four certificates renewed ahead of their expiry`);
    t.ok(m.logs.some((l) => l.event === 'tls.peer-api-reloaded'), `${names()[i]}: its peer API took the renewed certificate`);
  }

  // Membership after the expiry: the new leader shrinks 3→2 through fenced peer-API commands.
  await s.setSpec(2);
  const removed = await waitFor('a member removed', async () => logged(managers, 'member.removed-extra')[0], 90_000, 200).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${describeManagers(managers)}`);
  });
  const victim = names().indexOf(String(removed.member));
  const kept = [0, 1, 2].filter((i) => i !== victim);
  t.ok(victim >= 0, `${String(removed.member)} removed`);
  t.ok(logged(managers, 'member.quarantined').some((l) => l.member === removed.member), 'the leader quarantined it first (a command over the peer API)');
  t.ok(managers[victim].logs.some((l) => l.event === 'etcd.quarantined-by-leader'), 'which it took, restarting its etcd in quarantine (new peer handshakes with the others)');
  await waitFor('the removed member stands by', async () => managers[victim].logs.some((l) => l.event === 'member.left'), 60_000, 200);
  t.pass('and the stand-by command (leave) reached it');
  const after = await waitFor('two healthy members', () => s.view(kept, 2, kept.map((i) => managers[i])), 60_000, 500);
  t.equal(clustersSeen(after).length, 1, 'one cluster of two', { clusters: clustersSeen(after) });
  t.same(kept.map((i) => managers[i].etcdPids()), kept.map((i) => pids[i]), 'the members kept never restarted their etcd');
  await s.put(kept[0], '/renewal/after-shrink', 'yes');
  t.equal(await s.get(kept[1], '/renewal/after-shrink'), 'yes', 'a write after the shrink reads back on the other member');
  t.same(await Promise.all(managers.map((m) => m.stop())), [0, 1, 2].map(() => ({ code: 0, signal: null })), 'every manager exits 0 on SIGTERM');
});
