// Shrink 3→1 driven by control/etcd-cluster-spec, with real managers and etcd
// on loop-device volumes: extra members are removed one at a time (never below
// quorum), quarantined first when the others keep quorum through the restart
// that costs (3→2, not 2→1), and their managers stop etcd, move the data aside
// and stand by — no rejoin, no second cluster. Writes keep succeeding throughout
// (each write has a 5 s deadline, so a stall shows up as a failure), and every
// acknowledged write reads back from the one member left.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { processAlive, waitFor } from '../harness/net.js';
import { threeManagers, votingMembers } from '../harness/three-managers.js';
import { notReadBack, startWriter } from '../harness/writer.js';

const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;

t.test('shrink 3→1: one member at a time, removed managers stand by', { skip: etcdSkip }, async (t) => {
  const h = await threeManagers(t, { memberCount: 3 });
  const [a, b, c] = await h.startAll();
  await waitFor('three voting members', () => votingMembers(h, [a, b, c], ['a', 'b', 'c'], [a, b, c]), 90_000, 300);
  const w = await openEtcdClient([h.endpointOf(a)], h.tls);
  await w.put('/registry/before').value('three');

  // Keep writing through a (the survivor) while the cluster shrinks.
  const writer = startWriter((key, value) => w.put(key).value(value).exec(), { prefix: '/registry/w/' });

  await h.backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 1, etcdVersion: '3.4.23' }));
  const after = await waitFor('one member, a', () => votingMembers(h, [a], ['a'], [a, b, c]), 90_000, 300);
  const tally = await writer.stop();
  const { writes, failures } = tally;
  t.same(after[0]!.members!.map((m) => m.name), ['a'], 'etcd lists only a');
  // etcd can list one member before the leader's log line about the second removal has reached us.
  await waitFor('the leader\'s log of both removals', async () => h.logsOf([a, b, c]).filter((l) => l.event === 'member.removed-extra').length >= 2, 20_000, 100).catch(() => undefined);
  const all = h.logsOf([a, b, c]);
  const removed = all.filter((l) => l.event === 'member.removed-extra');
  t.same(removed.map((l) => l.member), ['c', 'b'], 'c removed, then b: one at a time, highest name first');
  t.same(removed.map((l) => l.members), [2, 1]);
  t.ok(all.some((l) => l.event === 'member.quarantined' && l.member === 'c'), 'the leader quarantined c before removing it');
  t.ok(c.logs.some((l) => l.event === 'etcd.quarantined-by-leader'), 'c logs its quarantine');
  t.ok(all.some((l) => l.event === 'member.quarantine-skipped' && l.member === 'b'), 'going 2→1, b is not quarantined: a restart of its etcd would lose the quorum');
  t.notOk(b.logs.some((l) => l.event === 'etcd.quarantined-by-leader'), 'b never restarts into quarantine');
  for (const [name, m] of [['b', b], ['c', c]] as const) {
    await waitFor(`${name} stands by`, async () => m.logs.some((l) => l.event === 'member.left'), 20_000, 100);
    t.pass(`${name} says it stands by`);
    const mp = h.mountPoint(m);
    t.ok(existsSync(join(mp, 'etcd-manager-standby.json')), `${name}: standby marker on its volume`);
    t.equal(readdirSync(join(mp, 'data-removed')).length, 1, `${name}: its data dir moved aside, not deleted`);
    t.same(readdirSync(join(mp, 'data')), [], `${name}: nothing left in data/`);
  }
  t.equal(failures.length, 0, `every write through a succeeded during the shrink (${writes} writes; failures: ${failures.slice(0, 3).join('; ')})`);
  t.ok(writes > 0);

  // Some time later: b and c still idle, no etcd running, no new cluster, a still alone.
  const pids = [b, c].map((m) => m.etcdPids().length);
  await new Promise((r) => setTimeout(r, 3_000));
  for (const m of [b, c]) t.notOk(m.etcdPids().some(processAlive), 'no etcd running for a removed member');
  t.same([b, c].map((m) => m.etcdPids().length), pids, 'and none started again');
  t.equal(all.filter((l) => l.event === 'cluster.forming' || l.event === 'cluster.creating-one-member').length, 1, 'the only formation is the original one');
  t.equal(b.child.exitCode, null, 'b\'s manager keeps running (standby)');
  const final = await votingMembers(h, [a], ['a'], [a, b, c]);
  t.ok(final, 'still exactly one member, a');
  t.equal(await w.get('/registry/before').string(), 'three', 'data written before the shrink reads back');
  const found = await w.getAll().prefix('/registry/w/').strings();
  t.same(notReadBack(tally, found), [], `every one of the ${tally.acked.size} acknowledged writes reads back from a, the member left`);
  w.close();
  await Promise.all([a, b, c].map((m) => m.stop()));
});
