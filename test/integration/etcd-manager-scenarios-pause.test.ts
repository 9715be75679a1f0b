// SIGSTOP/SIGCONT of a non-leader manager, then of the leader, on a healthy
// three-member cluster while a client keeps writing. Proves, from the managers'
// own logs and metrics and from etcd:
//   - never two leaders acting: no term is won twice, terms only grow; the
//     resumed old leader notices it lost (by its own clock) and acts on nothing;
//     no membership change, formation or fenced command happens in steady state;
//     /metrics sampled every 100 ms show a leader, and never two managers
//     reporting etcd_manager_is_leader 1 in the same sample (the gauge is read
//     from the lease at scrape time, so a resumed old leader reports 0);
//   - never two clusters: every endpoint reports the same etcd cluster ID and
//     the same member IDs, before and after;
//   - data intact: every acknowledged write reads back on every member.
import t from 'tap';
import { existsSync } from 'node:fs';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { loopSkipReason } from '../harness/loop.js';
import { clustersSeen, leadershipHistory, logged, scenario, withTimeout } from '../harness/etcd-scenario.js';
import { freePort, waitFor } from '../harness/net.js';
import type { ManagerProcess } from '../harness/manager.js';
import { notReadBack, startWriter } from '../harness/writer.js';

const loopSkip = await loopSkipReason();
const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
if (loopSkip) console.log(`# loop devices unavailable (${loopSkip}): directory volumes instead`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('SIGSTOP/SIGCONT of a non-leader and of the leader under writes: one acting leader, one cluster, data intact', { skip: etcdSkip }, async (t) => {
  // A 1 s reconcile interval (3 s leases): at 300 ms a loaded machine lets the leader's lease lapse now and
  // then, and the lowest-named manager may then legitimately take over, which would blur what a pause does.
  const s = await scenario(t, { hosts: 3, memberCount: 3, volumeKind: loopSkip ? 'directory' : 'image', reconcileInterval: '1s', discoveryInterval: '1s' });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m);
  const metricsPorts = await Promise.all(s.ips.map((ip) => freePort(ip)));
  const managers = [0, 1, 2].map((i) => s.startWith(i, [`--metrics-port=${metricsPorts[i]}`, `--metrics-address=${s.ips[i]}`]));
  // Whatever happens, nobody is left stopped at teardown (SIGCONT first, then the kill the harness registered).
  t.teardown(() => { for (const m of managers) if (m.child.exitCode === null && m.child.signalCode === null) process.kill(m.child.pid!, 'SIGCONT'); });
  const viewsBefore = await waitFor('three healthy members', () => s.view([0, 1, 2], 3, managers), 120_000, 500);
  t.equal(clustersSeen(viewsBefore).length, 1, 'one cluster: every endpoint reports the same cluster ID and member IDs', { clusters: clustersSeen(viewsBefore) });

  const clusterIds = async () => Promise.all([0, 1, 2].map(async (i) => {
    const c = await openEtcdClient([s.endpoint(i)], s.tls);
    try { return (await withTimeout('status', c.maintenance.status())).header.cluster_id; } finally { c.close(); }
  }));
  const idsBefore = await clusterIds();
  const base = managers.map((m) => m.logs.length);
  const since = (event: string) => managers.flatMap((m, i) => m.logs.slice(base[i]).filter((l) => l.event === event));
  t.equal(new Set(idsBefore).size, 1, `one etcd cluster ID on every endpoint (${idsBefore[0]})`);

  // A writer through all three endpoints, and a sampler of every manager's /metrics.
  let running = true;
  const writerClient = await openEtcdClient([0, 1, 2].map(s.endpoint), s.tls);
  const writer = startWriter((key, value) => withTimeout('put', writerClient.put(key).value(value).exec()), { prefix: '/pause/', intervalMs: 50 });
  const samples: Array<{ at: string; values: Array<number | undefined> }> = [];
  const sampler = (async () => {
    while (running) {
          const at = new Date().toISOString();
      samples.push({ at, values: await Promise.all(metricsPorts.map(async (port, i) => {
        try {
          const r = await fetch(`http://${s.ips[i]}:${port}/metrics`, { signal: AbortSignal.timeout(400) });
          const m = /^etcd_manager_is_leader (\d+)/m.exec(await r.text());
          return m ? Number(m[1]) : undefined;
        } catch { return undefined; } // a stopped manager does not answer
      })) });
      await sleep(100);
    }
  })();

  const leaderNow = async () => waitFor('a current leader', async () => {
    const h = leadershipHistory(managers).at(-1);
    return h && !managers[h.manager].logs.some((l) => l.event === 'leader.lost' && Number(l.term) === h.term) ? h : undefined;
  }, 30_000, 100);
  const pause = async (m: ManagerProcess, ms: number) => {
    process.kill(m.child.pid!, 'SIGSTOP');
    await sleep(ms);
    process.kill(m.child.pid!, 'SIGCONT');
  };

  await sleep(1_000);
  const first = await leaderNow();
  const follower = managers[(first.manager + 1) % 3];
  await pause(follower, 4_000); // longer than a lease: the follower's own vote lease lapses meanwhile
  await sleep(2_000);
  const followerTerms = leadershipHistory(managers).filter((h) => h.term > first.term);

  const leader = await leaderNow();
  const leaderMgr = managers[leader.manager];
  const logsAtPause = leaderMgr.logs.length;
  const pausedAt = new Date().toISOString();
  process.kill(leaderMgr.child.pid!, 'SIGSTOP');
  const successor = await waitFor('another manager leads while the leader is stopped', async () => {
    const h = leadershipHistory(managers).at(-1);
    return h && h.manager !== leader.manager && h.time > pausedAt ? h : undefined;
  }, 30_000, 100);
  await sleep(1_000);
  process.kill(leaderMgr.child.pid!, 'SIGCONT');
  await waitFor('the resumed old leader notices it lost', async () => leaderMgr.logs.slice(logsAtPause).some((l) => l.event === 'leader.lost' || l.event === 'leader.elected'), 30_000, 100);
  await sleep(2_000);
  running = false;
  const tally = await writer.stop();
  writerClient.close();
  await sampler;

  t.comment(`leadership: ${leadershipHistory(managers).map((h) => `${'abc'[h.manager]}@${h.term}`).join(' → ')}; ${tally.writes} writes acknowledged, ${tally.failures.length} failed; ${samples.length} metric samples`);
  const history = leadershipHistory(managers);
  const terms = history.map((h) => h.term);
  t.equal(new Set(terms).size, terms.length, 'no term won by two managers');
  t.same(terms, [...terms].sort((x, y) => x - y), 'terms only grow over time');
  t.same(followerTerms.filter((h) => h.manager !== first.manager), [], 'pausing a non-leader moved leadership nowhere else');
  t.ok(successor.term > leader.term, `the successor's term ${successor.term} is newer than the paused leader's ${leader.term}`);
  const wonLate = leaderMgr.logs.filter((l) => l.event === 'leader.elected' && String(l.time) > pausedAt);
  t.ok(wonLate.every((l) => Number(l.term) > successor.term), 'the resumed old leader never led again in an old term');
  t.equal(logged(managers, 'cluster.forming').length, 1, 'the one formation at start, none since');
  t.same(since('membership.step'), [], 'no membership change in steady state');
  t.same(since('command.fenced'), [], 'no stale command even reached a peer');
  // A manager reports is_leader 1 only while its own lease holds, and a leader's lease ends before its
  // voters' do, so no sample may show two. A stopped manager does not answer at all.
  const both = samples.filter((row) => row.values.filter((v) => v === 1).length > 1);
  t.ok(samples.some((row) => row.values.filter((v) => v === 1).length === 1), 'the metrics show a leader');
  if (both.length > 0) t.comment(`two-leader samples: ${JSON.stringify(both)} history: ${JSON.stringify(leadershipHistory(managers))} lost: ${JSON.stringify(managers.map((m) => m.logs.filter((l) => l.event === 'leader.lost').map((l) => [l.time, l.term])))}`);
  t.same(both, [], 'no metrics sample shows two managers reporting is_leader 1');

  const idsAfter = await clusterIds();
  t.same(idsAfter, idsBefore, 'the same etcd cluster ID on every endpoint after the pauses');
  const views = await waitFor('three healthy members after the pauses', () => s.view([0, 1, 2], 3, managers), 60_000, 500);
  t.equal(views[0]!.members!.length, 3);
  t.same(clustersSeen(views), clustersSeen(viewsBefore), 'one cluster, the same member IDs on every endpoint as before the pauses');
  t.ok(tally.writes > 0, 'writes went on');
  for (const i of [0, 1, 2]) {
    const c = await openEtcdClient([s.endpoint(i)], s.tls);
    const found = await withTimeout('get /pause/', c.getAll().prefix('/pause/').strings(), 15_000);
    c.close();
    t.same(notReadBack(tally, found), [], `every acknowledged write reads back on ${'abc'[i]}`);
  }
  t.same(await Promise.all(managers.map((m) => m.stop())), [0, 1, 2].map(() => ({ code: 0, signal: null })), 'every manager exits 0 on SIGTERM');
});
