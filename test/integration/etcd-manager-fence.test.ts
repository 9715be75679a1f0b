// etcd as the fence for membership changes. The leader (a) decides to remove c
// (spec 3→2), then is paused (SIGSTOP, by a test hook placed after its
// leadership check and before the etcd fence — exactly the gap a pause could
// exploit). The spec goes back to 3; b takes over and claims the fence with its
// newer term. a resumes (SIGCONT): its stale removal is refused by etcd's
// transaction and logged; c stays; one cluster of a, b, c.
import t from 'tap';
import { existsSync } from 'node:fs';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { FENCE_KEY, fenceValue } from '../../agents/etcd-manager/controller/membership.js';
import { waitFor } from '../harness/net.js';
import { membershipVolumeKind, threeManagers, votingMembers } from '../harness/three-managers.js';

const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
// The fence is about etcd and leadership, not block devices: directory volumes where loop devices are refused.
const volumeKind = await membershipVolumeKind();

t.test(`a deposed leader paused between its check and its etcd call is refused by the etcd fence (${volumeKind} volumes)`, { skip: etcdSkip }, async (t) => {
  const h = await threeManagers(t, { memberCount: 3 });
  const managers = await h.startAll(['--test-hook=stop-before-fence']);
  const [a, b, c] = managers;
  t.teardown(() => {
    // a SIGSTOPped manager must not outlive a failed test
    for (const m of managers) if (m.child.exitCode === null && m.child.pid) process.kill(m.child.pid, 'SIGCONT');
  });
  const views = await waitFor('three voting members', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 90_000, 300);
  const ids = views[0]!.members!.map((m) => m.ID).sort();
  const leader = managers.find((m) => m.logs.some((l) => l.event === 'leader.elected'));
  t.equal(leader, a, 'a (lowest name) leads');
  const firstTerm = Number(a.logs.find((l) => l.event === 'leader.elected')?.term);
  await waitFor('a claims the fence', async () => a.logs.some((l) => l.event === 'fence.claimed'), 20_000, 100);

  await h.backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 2, etcdVersion: '3.4.23' }));
  const hook = await waitFor('a stops itself before the fence', async () => a.logs.find((l) => l.event === 'test-hook.stop-before-fence'), 30_000, 50);
  t.equal(hook.change, 'remove extra c', 'a had decided to remove c');
  const aTerm = Number(hook.term);
  t.ok(aTerm >= firstTerm, `a decided in its term ${aTerm}`);
  // The spec changes back while a is paused: removing c is now wrong.
  await h.backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 3, etcdVersion: '3.4.23' }));
  await waitFor('a is stopped', async () => {
    const { readFileSync } = await import('node:fs');
    return /^State:\s+T/m.test(readFileSync(`/proc/${a.child.pid}/status`, 'utf8'));
  }, 5_000, 50);

  const bLead = await waitFor('b becomes leader', async () => b.logs.find((l) => l.event === 'leader.elected'), 30_000, 100);
  const bTerm = Number(bLead.term);
  t.ok(bTerm > aTerm, `b's term ${bTerm} is newer than a's ${aTerm}`);
  await waitFor('b claims the fence', async () => b.logs.some((l) => l.event === 'fence.claimed' && Number(l.term) === bTerm), 20_000, 100);

  process.kill(a.child.pid!, 'SIGCONT');
  const refused = await waitFor('a refused by the etcd fence', async () => a.logs.find((l) => l.event === 'membership.fenced'), 20_000, 100);
  t.equal(refused.change, 'remove extra c');
  t.equal(Number(refused.term), aTerm, 'a tried with its old term');
  t.equal(Number(refused.fenceTerm), bTerm, 'etcd held b\'s term');

  await new Promise((r) => setTimeout(r, 2_000));
  const after = await waitFor('still a, b, c', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 30_000, 300);
  t.same(after.map((v) => v.members!.map((m) => m.ID).sort()), [ids, ids, ids], 'every member reports the same three member IDs: one cluster, unchanged');
  t.notOk(h.logsOf(managers).some((l) => l.event === 'member.removed-extra'), 'nobody removed c');
  t.equal(h.logsOf(managers).filter((l) => l.event === 'cluster.forming').length, 1, 'exactly one formation');
  const etcd = await openEtcdClient([h.endpointOf(b)], h.tls);
  t.ok((await etcd.get(FENCE_KEY).string())! >= fenceValue(bTerm), 'the fence key holds b\'s term (or newer)');
  etcd.close();
  t.equal(c.child.exitCode, null);
  await Promise.all(managers.map((m) => m.stop()));
});
