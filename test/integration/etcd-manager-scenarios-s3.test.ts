// The three-member formation with the state store on S3 (s3rver on 127.0.0.1)
// instead of file://: CAs, cluster spec, discovery records, the created marker
// all live in the bucket, and the managers reach it through @aws-sdk/client-s3.
// Volumes are loop-device images where the kernel allows them, else directories.
// Checked through etcd's own view (three named voting members with the same IDs
// on every endpoint, each healthy, a key read back) and the bucket's content.
import t from 'tap';
import { existsSync } from 'node:fs';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { loopSkipReason } from '../harness/loop.js';
import { agreedLeader, clustersSeen, leadershipHistory, logged, scenario } from '../harness/etcd-scenario.js';
import { waitFor } from '../harness/net.js';

const loopSkip = await loopSkipReason();
const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
if (loopSkip) console.log(`# loop devices unavailable (${loopSkip}): directory volumes instead`);

t.test(`three managers on the s3rver store form one three-member cluster (${loopSkip ? 'directory' : 'loop-device'} volumes)`, { skip: etcdSkip }, async (t) => {
  const s = await scenario(t, { hosts: 3, memberCount: 3, volumeKind: loopSkip ? 'directory' : 'image', store: 's3' });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m);
  const managers = [0, 1, 2].map((i) => s.start(i));
  const views = await waitFor('three healthy members', () => s.view([0, 1, 2], 3, managers), 120_000, 500);
  t.same(views[0]!.members!.map((m) => m.name).sort(), ['a', 'b', 'c'], 'etcd lists a, b and c as voting members');
  t.equal(clustersSeen(views).length, 1, 'one cluster: every endpoint reports the same cluster ID and member IDs', { clusters: clustersSeen(views) });
  await t.resolves(waitFor('every member to name the same etcd leader', async () => agreedLeader(await s.view([0, 1, 2], 3, managers)), 30_000, 200), 'every member sees the same etcd leader');
  await s.put(0, '/registry/s3', 'from-a');
  t.same(await Promise.all([1, 2].map((i) => s.get(i, '/registry/s3'))), ['from-a', 'from-a'], 'a key written on a reads back on b and c');

  await waitFor('created marker in the bucket', () => s.backups.exists('control/etcd-cluster-created'), 30_000);
  const listed = await s.backups.list();
  t.same(listed.filter((p) => p.startsWith('discovery/')).sort(), ['discovery/a.json', 'discovery/b.json', 'discovery/c.json'], 'every manager registered in S3');
  const requests = await s.s3!.requests();
  t.ok(requests.some((r) => r.method === 'PUT' && r.url.includes('/backups/etcd/main/control/etcd-cluster-created')), 'the marker was PUT to s3rver');
  t.equal(logged(managers, 'cluster.forming').length, 1, 'exactly one formation');
  const terms = leadershipHistory(managers).map((h) => h.term);
  t.equal(new Set(terms).size, terms.length, 'no term won by two managers');
  t.same(await Promise.all(managers.map((m) => m.stop())), [0, 1, 2].map(() => ({ code: 0, signal: null })), 'every manager exits 0 on SIGTERM');
});
