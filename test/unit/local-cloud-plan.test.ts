// What `update cluster --yes` asks of the local cloud, decided without
// touching the system: one zonal volume per etcd member tagged as kOps tags EBS,
// minSize instances per group, stopped ones replaced, surplus ones terminated;
// and user-data handed to the metadata service as a cloud takes it.
import t from 'tap';
import { gzipSync } from 'node:zlib';
import { completeCluster, newClusterObjects } from '../../shared/api/complete.js';
import { etcdVolumes, planLocalCluster, userDataBytes } from '../../agents/mooring/cloud/local/cluster.js';
import type { InstanceView, LocalCloud } from '../../agents/mooring/cloud/local/cloud.js';
import { instanceAddress, vethName, CloudLayout } from '../../agents/mooring/cloud/local/plan.js';

function cluster(zones: string[], controlPlanes: number) {
  const user = newClusterObjects({ name: 'lc.example.com', zones, controlPlaneCount: controlPlanes, nodeCount: 0, cloud: 'local' });
  return completeCluster(user.cluster, user.instanceGroups, { configBase: 's3://mooring/lc.example.com' });
}

function fakeCloud(instances: Array<Partial<InstanceView>>, volumes: string[] = []): LocalCloud {
  return {
    instances: async () => instances as InstanceView[],
    volumes: async () => volumes.map((id) => ({ id, tags: {}, kind: 'image' as const })),
  } as unknown as LocalCloud;
}

t.test('etcd volumes: one per member and etcd cluster, in the member\'s zone, with kOps\' tags', async (t) => {
  const c = cluster(['local-a', 'local-b', 'local-c'], 3);
  const volumes = etcdVolumes(c.cluster, c.instanceGroups);
  t.equal(volumes.length, 6);
  const a = volumes.find((v) => v.id === 'control-plane-local-a.etcd-main');
  t.same(a, {
    id: 'control-plane-local-a.etcd-main',
    availabilityZone: 'local-a',
    tags: {
      'k8s.io/etcd/main': 'control-plane-local-a/control-plane-local-a,control-plane-local-b,control-plane-local-c',
      'k8s.io/role/control-plane': '1',
      'kubernetes.io/cluster/lc.example.com': 'owned',
    },
  });
  t.same(volumes.filter((v) => v.availabilityZone === 'local-b').map((v) => v.id).sort(), ['control-plane-local-b.etcd-events', 'control-plane-local-b.etcd-main'], 'main and events of a zone go together');
});

t.test('instances: missing ones launched per group and zone, stopped ones replaced, surplus terminated', async (t) => {
  const c = cluster(['local-a', 'local-b', 'local-c'], 3);
  const empty = await planLocalCluster(fakeCloud([]), c.cluster, c.instanceGroups);
  t.equal(empty.volumesToCreate.length, 6);
  t.same(empty.toLaunch.map((l) => `${l.instanceGroup.metadata.name}@${l.zone}`).sort(), ['control-plane-local-a@local-a', 'control-plane-local-b@local-b', 'control-plane-local-c@local-c']);

  const at = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString();
  const plan = await planLocalCluster(fakeCloud([
    { id: 'i-a', instanceGroup: 'control-plane-local-a', state: 'running', createdAt: at(1) },
    { id: 'i-a2', instanceGroup: 'control-plane-local-a', state: 'running', createdAt: at(2) },
    { id: 'i-b', instanceGroup: 'control-plane-local-b', state: 'stopped', createdAt: at(1) },
    { id: 'i-c', instanceGroup: 'control-plane-local-c', state: 'pending', createdAt: at(1) },
    { id: 'i-old', instanceGroup: 'gone', state: 'running', createdAt: at(1) },
  ], etcdVolumes(c.cluster, c.instanceGroups).map((v) => v.id)), c.cluster, c.instanceGroups);
  t.same(plan.volumesToCreate, [], 'volumes that exist are kept as they are');
  t.same(plan.toReplace.map((i) => i.id), ['i-b'], 'a stopped instance is replaced');
  t.same(plan.toLaunch.map((l) => l.instanceGroup.metadata.name), ['control-plane-local-b'], 'by a new one in its group');
  t.same(plan.toTerminate.map((i) => i.id).sort(), ['i-a2', 'i-old'], 'the newest above maxSize, and instances of groups that are gone');
});

t.test('user-data as the metadata service hands it out', async (t) => {
  t.equal(userDataBytes(Buffer.from('#!/bin/bash\ntrue\n')).toString(), '#!/bin/bash\ntrue\n', 'a script as it is');
  const gz = gzipSync(Buffer.from('#!/bin/bash\nbig\n'));
  t.same(userDataBytes(Buffer.from(gz.toString('base64'))), gz, 'gzip+base64 as gzip bytes (cloud-init unpacks them)');
  t.throws(() => userDataBytes(Buffer.from('not user-data')), /neither a script nor gzip\+base64/);
});

t.test('names and addresses', async (t) => {
  t.equal(instanceAddress(0), '198.18.1.1');
  t.equal(instanceAddress(249), '198.18.1.250');
  t.equal(instanceAddress(250), '198.18.2.1');
  t.ok(vethName('i-0123456789abcdef0').length <= 15, 'interface names fit the kernel\'s 15 characters');
  const a = new CloudLayout('/var/lib/mooring/local');
  const b = new CloudLayout('/tmp/other');
  t.not(a.bridgeNetns, b.bridgeNetns, 'two local clouds never share a namespace name');
  t.match(a.instanceNetns('i-0123456789abcdef0'), new RegExp(`^mlc-${a.id}-`));
});
