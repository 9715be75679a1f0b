// Membership changes driven by control/etcd-cluster-spec, with real managers
// and etcd on loop-device volumes: a one-member cluster grows to three
// (learners, promoted one at a time), then an instance is lost for good and
// replaced by one with an EMPTY volume: back to three healthy members, data
// intact, no restore.
import t from 'tap';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { localPaths } from '../../agents/etcd-manager/volumes/local.js';
import { findLoopDevice, mountedAt } from '../../agents/etcd-manager/volumes/blockdev.js';
import { clustersSeen, scenario } from '../harness/etcd-scenario.js';
import { loopSkipReason } from '../harness/loop.js';
import { waitFor } from '../harness/net.js';

const loopSkip = await loopSkipReason();
if (loopSkip) console.log(`# skipping: ${loopSkip}`);
const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;

t.test('expansion 1→3, then an instance replaced with an empty volume', { skip: loopSkip || etcdSkip }, async (t) => {
  const s = await scenario(t, { hosts: 4, memberCount: 1, volumeKind: 'image' });
  const { area, ips, tls, endpoint } = s;
  const volume = (id: string, m: string) => s.volume(id, m);
  const start = (i: number) => s.start(i);
  const healthy = (idx: number[], managers: ReturnType<typeof start>[], voting: number) => () => s.view(idx, voting, managers);

  await volume('vol-a', 'a');
  const a = start(0);
  await waitFor('one member', healthy([0], [a], 1), 60_000, 300);
  const w = await openEtcdClient([endpoint(0)], tls);
  await w.put('/registry/grown').value('from-one');
  w.close();

  // Grow to three: new spec, two new instances with blank volumes.
  await s.setSpec(3);
  await volume('vol-b', 'b');
  await volume('vol-c', 'c');
  const b = start(1);
  const c = start(2);
  const views = await waitFor('three voting members', healthy([0, 1, 2], [a, b, c], 3), 120_000, 300);
  t.same(views[0]!.members!.map((m) => m.name).sort(), ['a', 'b', 'c'], 'etcd lists a, b, c, none a learner');
  t.equal(clustersSeen(views).length, 1, 'one cluster: every endpoint reports the same cluster ID and member IDs', { clusters: clustersSeen(views) });
  const all = [a, b, c].flatMap((m) => m.logs);
  t.equal(all.filter((l) => l.event === 'member.added').length, 2, 'two members added, as learners');
  t.equal(all.filter((l) => l.event === 'member.promoted').length, 2, 'and promoted');
  t.equal(all.filter((l) => l.event === 'cluster.forming').length, 0, 'the existing cluster grew; none was formed');
  const r = await openEtcdClient([endpoint(2)], tls);
  t.equal(await r.get('/registry/grown').string(), 'from-one', 'data written on the single member reads back on c');
  r.close();

  // Instance c is gone for good: manager and etcd killed, its volume deleted.
  const cMember = c.logs.find((l) => l.event === 'member.identity')!;
  const oldC = views[0]!.members!.find((m) => m.name === cMember.member)!;
  // What a and b log from here on: the growth above logged adds and promotions of its own.
  const killedAt = [a, b].map((m) => m.logs.length);
  await c.kill();
  const lost = String(cMember.volume);
  const mp = join(area.mountRoot, `master-${lost}`);
  if (await mountedAt(mp)) await execa('umount', [mp]);
  const dev = await findLoopDevice(localPaths(area.volumeDir, lost).image);
  if (dev) await execa('losetup', ['--detach', dev]);
  for (const f of Object.values(localPaths(area.volumeDir, lost))) rmSync(f, { recursive: true, force: true });
  // A replacement instance with a new, blank volume for the same member, on another address.
  await volume('vol-c2', String(cMember.member));
  const replacement = start(3);
  const after = await waitFor('three healthy members again', healthy([0, 1, 3], [a, b, replacement], 3), 120_000, 300);
  t.same(after[0]!.members!.map((m) => m.name).sort(), ['a', 'b', 'c']);
  t.equal(clustersSeen(after).length, 1, 'one cluster: every endpoint reports the same cluster ID and member IDs', { clusters: clustersSeen(after) });
  const newC = after[0]!.members!.find((m) => m.name === cMember.member)!;
  t.ok(newC.peerURLs.some((u) => u.includes(ips[3])), 'member c now lives on the replacement');
  t.not(newC.ID, oldC.ID, 'c is a new etcd member, not the old one revived');
  // Replaced through remove/add, as the leader logged it after the kill: the old c removed (by its
  // member ID; the empty-volume rule, or the unhealthy timeout if that came first), then c added as a
  // learner and promoted.
  const sinceKill = [a, b].flatMap((m, i) => m.logs.slice(killedAt[i])).sort((x, y) => String(x.time).localeCompare(String(y.time)));
  const removal = sinceKill.findIndex((l) => (l.event === 'member.removed-empty' || l.event === 'member.removed-unhealthy') && l.member === cMember.member && String(l.id) === String(oldC.ID));
  t.ok(removal >= 0, `the old c (member ID ${oldC.ID}) was removed after the kill`, { logged: sinceKill.map((l) => l.msg) });
  const added = sinceKill.findIndex((l, i) => i > removal && l.event === 'member.added' && l.member === cMember.member);
  t.ok(removal >= 0 && added > removal, 'then c was added again, as a learner');
  t.ok(added > removal && removal >= 0 && sinceKill.some((l, i) => i > added && l.event === 'member.promoted' && l.member === cMember.member), 'and promoted');
  const r2 = await openEtcdClient([endpoint(3)], tls);
  t.equal(await r2.get('/registry/grown').string(), 'from-one', 'data on the replacement without any restore');
  r2.close();
  await Promise.all([a, b, replacement].map((m) => m.stop()));
});
