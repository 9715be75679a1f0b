// Liveness: the leader's reconcile loop hangs while its peer API still answers
// (the stall seen under heavy load, when one etcd call never returned). Its
// lease lapses, it reports itself unable to lead once the pass has run past the
// stuck threshold, and the next manager takes over in a newer term; the
// cluster stays one healthy three-member cluster. Also: an etcd call to an
// endpoint that accepts connections and never answers ends at its deadline.
import t from 'tap';
import { existsSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { checkEtcd } from '../../agents/etcd-manager/etcd/client.js';
import { clustersSeen, leadershipHistory, logged, scenario, withTimeout } from '../harness/etcd-scenario.js';
import { startManager } from '../harness/manager.js';
import { waitFor } from '../harness/net.js';

const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;

t.test('an etcd endpoint that accepts and never answers: the health check ends at its deadline', async (t) => {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s)); // accepts, never speaks TLS
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  const port = (server.address() as { port: number }).port;
  // The guard only turns a hang into a clear failure; the deadline under test is 500 ms.
  const health = await withTimeout('checkEtcd on a silent endpoint', checkEtcd([`https://127.0.0.1:${port}`], undefined, 500), 30_000);
  t.equal(health.healthy, false, 'reported unhealthy');
  t.match(health.error ?? '', /deadline|timed? ?out|unavailable/i, `with the reason (${health.error})`);
});

t.test('the leader\'s loop hangs with its API up: another manager takes over, one healthy cluster', { skip: etcdSkip }, async (t) => {
  const s = await scenario(t, { hosts: 3, memberCount: 3, volumeKind: 'directory', reconcileInterval: '300ms', discoveryInterval: '300ms' });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m);
  // a is the lowest name, so it forms the cluster and leads; then its next pass hangs.
  // It registers first, so b and c see it alive from their first pass and leave the campaign to it.
  const a = startManager(t, [...s.args(0), '--test-hook=hang-while-leading'], s.env);
  await waitFor('a registered', () => s.backups.exists('discovery/a.json'), 60_000, 100);
  const b = s.start(1);
  const c = s.start(2);
  const managers = [a, b, c];
  await waitFor('three healthy members', () => s.view([0, 1, 2], 3, managers), 120_000, 300);
  await waitFor('a\'s pass hangs', async () => a.logs.some((l) => l.event === 'test-hook.hang'), 60_000, 100);
  const hungAt = new Date().toISOString();
  const aTerm = Math.max(...leadershipHistory(managers).filter((h) => h.manager === 0).map((h) => h.term));

  const successor = await waitFor('another manager leads', async () => leadershipHistory(managers).find((h) => h.manager !== 0 && h.time > hungAt), 90_000, 200);
  t.ok(successor.term > aTerm, `${'abc'[successor.manager]} leads in term ${successor.term}, after a's ${aTerm}`);
  t.ok(a.logs.some((l) => l.event === 'reconcile.stuck'), 'a says its pass is stuck');
  t.notOk(a.logs.some((l) => l.event === 'leader.elected' && String(l.time) > hungAt), 'a never led again while hung');

  const views = await waitFor('still three healthy members', () => s.view([0, 1, 2], 3, managers), 60_000, 300);
  t.equal(views.length, 3);
  t.equal(clustersSeen(views).length, 1, 'one cluster: every endpoint reports the same cluster ID and member IDs', { clusters: clustersSeen(views) });
  await s.put(1, '/stuck/after', 'yes');
  t.same(await Promise.all([0, 1, 2].map((i) => s.get(i, '/stuck/after'))), ['yes', 'yes', 'yes'], 'a write after the takeover reads back everywhere');
  t.equal(logged(managers, 'cluster.forming').length, 1, 'one formation');
  const history = leadershipHistory(managers).map((h) => h.term);
  t.equal(new Set(history).size, history.length, 'no term won twice');

  t.same(managers.flatMap((m) => m.logs.filter((l) => !('level' in l))).map((l) => l.msg), [], 'every stderr line is a log line (node warnings included)');
  const exits = await Promise.all(managers.map((m) => m.stop()));
  t.same(exits.map((e) => e.code), [0, 0, 0], 'every manager, the hung one too, exits 0 on SIGTERM');
});
