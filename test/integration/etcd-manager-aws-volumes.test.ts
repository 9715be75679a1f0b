// The aws volume provider against the EC2 test server: the real
// @aws-sdk/client-ec2 request path (signing, Query serialisation, XML parsing,
// retries) and IMDSv2, all on 127.0.0.1. Attached "EBS volumes" are loop
// devices the test wires in: the server's attach hook links
// <device-root>/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volid> (or
// <device-root>/xvdX) to the volume's loop device, as udev would.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { configureLogging, logger } from '../../shared/log.js';
import { AwsVolumeProvider, type AwsProviderOptions } from '../../agents/etcd-manager/volumes/aws.js';
import { nvmeByIdPath } from '../../agents/etcd-manager/volumes/aws-devices.js';
import { InstanceMetadata } from '../../agents/etcd-manager/volumes/aws-imds.js';
import { filesystemType, mountedAt } from '../../agents/etcd-manager/volumes/blockdev.js';
import { DescribeVolumesCommand, EC2Client, type EC2ServiceException } from '@aws-sdk/client-ec2';
import { EC2TestServer, startEC2Server, TEST_ACCESS_KEY, TEST_SECRET_KEY, type AttachRequest, type FakeInstance } from '../harness/ec2-server.js';
import { loopArea, loopSkipReason, type LoopArea } from '../harness/loop.js';
import { freePort, loopbackNet, waitFor } from '../harness/net.js';
import { startManager } from '../harness/manager.js';
import { checkEtcd, openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { openStore } from '../../shared/store/index.js';
import type { Teardown } from '../harness/tmp.js';

// Nothing here may reach AWS: every endpoint the SDK could fall back to is a
// closed port on 127.0.0.1, and the credentials are the test server's.
const deadPort = await freePort('127.0.0.1');
const DEAD = `http://127.0.0.1:${deadPort}`;
Object.assign(process.env, {
  AWS_REGION: 'us-test-1',
  AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: TEST_SECRET_KEY,
  AWS_ENDPOINT_URL: DEAD,
  AWS_ENDPOINT_URL_EC2: DEAD,
  AWS_EC2_METADATA_SERVICE_ENDPOINT: DEAD,
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_CONFIG_FILE: '/nonexistent/mooring-test',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/mooring-test',
});
delete process.env.AWS_PROFILE;
delete process.env.AWS_SESSION_TOKEN;

const loopSkip = await loopSkipReason();
if (loopSkip) console.log(`# skipping the tests that attach and mount devices: ${loopSkip}`);

const lines: string[] = [];
configureLogging({ format: 'json', write: (line) => lines.push(line) });
const log = logger('test');

const CLUSTER = 'c1.example.com';
const NAME_TAG = 'k8s.io/etcd/main';
const ZONE = 'us-test-1a';
const tags = (member: string, extra: Record<string, string> = {}) => ({
  [`kubernetes.io/cluster/${CLUSTER}`]: 'owned',
  [NAME_TAG]: `${member}/a,b,c`,
  'k8s.io/role/control-plane': '1',
  ...extra,
});

async function server(t: Teardown): Promise<EC2TestServer> {
  const s = await startEC2Server();
  t.teardown(() => s.close());
  return s;
}

function provider(t: Teardown, s: EC2TestServer, instance: FakeInstance, extra: Partial<AwsProviderOptions> = {}): AwsVolumeProvider {
  const p = new AwsVolumeProvider({
    kubernetesClusterName: CLUSTER,
    tagFilters: ['k8s.io/role/control-plane=1'],
    nameTag: NAME_TAG,
    mountRoot: '/nonexistent/mnt',
    log: log.child({ instance: instance.id }),
    endpoint: s.endpoint,
    credentials: { accessKeyId: TEST_ACCESS_KEY, secretAccessKey: TEST_SECRET_KEY },
    metadata: { endpoint: instance.imdsEndpoint, timeoutMs: 1000 },
    pollIntervalMs: 50,
    attachTimeoutMs: 10_000,
    deviceTimeoutMs: 5_000,
    requestTimeoutMs: 2_000,
    ...extra,
  });
  t.teardown(() => p.destroy());
  return p;
}

/**
 * Backs volumes with loop devices and plays udev: on attach, the device root
 * gets the NVMe by-id link (or the plain xvdX link) to the volume's loop device.
 */
class Devices {
  readonly deviceRoot: string;
  readonly loops = new Map<string, string>();

  constructor(readonly area: LoopArea, private readonly style: 'nvme' | 'xen' = 'nvme') {
    this.deviceRoot = join(area.root, 'dev');
    mkdirSync(join(this.deviceRoot, 'disk', 'by-id'), { recursive: true });
  }

  /** A blank sparse image on a loop device for the volume. */
  async add(volumeId: string, sizeMiB = 64): Promise<string> {
    mkdirSync(this.area.volumeDir, { recursive: true });
    const image = join(this.area.volumeDir, `${volumeId}.img`);
    await execa('truncate', ['-s', `${sizeMiB}M`, image]);
    const dev = String((await execa('losetup', ['--find', '--show', image])).stdout).trim();
    this.loops.set(volumeId, dev);
    return dev;
  }

  private link(a: AttachRequest): string {
    return this.style === 'nvme' ? nvmeByIdPath(this.deviceRoot, a.volumeId) : join(this.deviceRoot, a.device.replace(/^\/dev\//, ''));
  }

  wire(s: EC2TestServer): void {
    s.hooks.onAttach = (a) => {
      const dev = this.loops.get(a.volumeId);
      if (dev) symlinkSync(dev, this.link(a));
    };
    s.hooks.onDetach = (a) => rmSync(this.link(a), { force: true });
  }
}

t.test('finds the tagged volume in its zone, attaches it on /dev/xvdu, resolves NVMe and mounts it', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  const s = await server(t);
  const devices = new Devices(area, 'nvme');
  devices.wire(s);
  const me = await s.addInstance({ availabilityZone: ZONE });
  // Decoys, all sorted before the real one: another cluster, another zone, the events cluster, a non-control-plane volume.
  s.addVolume({ id: 'vol-0001', availabilityZone: ZONE, tags: { ...tags('a'), [`kubernetes.io/cluster/${CLUSTER}`]: 'shared', 'kubernetes.io/cluster/other': 'owned' } });
  s.addVolume({ id: 'vol-0002', availabilityZone: 'us-test-1b', tags: tags('a') });
  s.addVolume({ id: 'vol-0003', availabilityZone: ZONE, tags: { ...tags('a'), [NAME_TAG]: '', 'k8s.io/etcd/events': 'a/a,b,c' } });
  s.addVolume({ id: 'vol-0004', availabilityZone: ZONE, tags: { ...tags('a'), 'k8s.io/role/control-plane': '0' } });
  s.addVolume({ id: 'vol-0abc', availabilityZone: ZONE, tags: tags('b') });
  for (const id of s.volumes.keys()) await devices.add(id);

  const p = provider(t, s, me, { mountRoot: area.mountRoot, deviceRoot: devices.deviceRoot });
  const volume = await p.acquire();
  t.equal(volume.id, 'vol-0abc', 'only the volume of this cluster, zone, etcd cluster and role');
  t.equal(volume.memberName, 'b');
  t.same(volume.allMembers, ['a', 'b', 'c']);
  t.equal(volume.mountPoint, join(area.mountRoot, 'master-vol-0abc'));
  t.equal(volume.device, devices.loops.get('vol-0abc'), 'the NVMe by-id link was followed to the real device');
  t.equal((await mountedAt(volume.mountPoint))?.fsType, 'ext4', 'blank disk formatted ext4 and mounted');
  t.same(s.volumes.get('vol-0abc')!.attachments.map((a) => [a.instanceId, a.device]), [[me.id, '/dev/xvdu']], 'attached on /dev/xvdu');
  for (const id of ['vol-0001', 'vol-0002', 'vol-0003', 'vol-0004']) t.equal(s.volumes.get(id)!.attachments.length, 0, `${id} left alone`);

  const search = s.requests.find((r) => r.action === 'DescribeVolumes' && r.params['Filter.1.Name'] !== undefined);
  t.ok(search, 'DescribeVolumes was asked with filters');
  const filters = Object.entries(search!.params).filter(([k]) => /^Filter\.\d+\.Name$/.test(k)).map(([, v]) => v);
  t.same(filters.sort(), ['availability-zone', 'tag-key', `tag:k8s.io/role/control-plane`, `tag:kubernetes.io/cluster/${CLUSTER}`].sort());
  t.ok(s.requests.every((r) => r.params.Version === '2016-11-15'), 'every call is EC2 Query 2016-11-15');
  t.match(lines.join('\n'), /"msg":"volume claimed".*"volume":"vol-0abc".*"reason":"first available candidate by volume id/);
});

t.test('takes the next free device when xvdu is used, and waits for "attached"', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  const s = await server(t);
  const devices = new Devices(area, 'xen');
  devices.wire(s);
  // /dev/sdu is the same attachment point as /dev/xvdu.
  const me = await s.addInstance({ availabilityZone: ZONE, extraDevices: ['/dev/xvda', '/dev/sdu'] });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: tags('a') });
  await devices.add('vol-0aaa');
  s.attachDelayMs = 1500;
  const p = provider(t, s, me, { mountRoot: area.mountRoot, deviceRoot: devices.deviceRoot, pollIntervalMs: 100 });
  const started = Date.now();
  const volume = await p.acquire();
  t.ok(Date.now() - started >= 1400, 'did not go on before the attachment was attached');
  t.equal(s.volumes.get('vol-0aaa')!.attachments[0].device, '/dev/xvdv', 'xvdu (taken as sdu) skipped');
  t.equal(s.attachmentState(s.volumes.get('vol-0aaa')!.attachments[0]), 'attached');
  t.ok(s.count('DescribeVolumes', { 'VolumeId.1': 'vol-0aaa' }) >= 5, 'polled DescribeVolumes while attaching');
  t.equal(volume.device, devices.loops.get('vol-0aaa'), 'the plain /dev/xvdv node was found without NVMe');
  t.ok(await mountedAt(volume.mountPoint));

  // Every slot used: a clear error, and no AttachVolume for a device EC2 would refuse.
  const full = await s.addInstance({ availabilityZone: ZONE, extraDevices: ['/dev/xvda', '/dev/xvdu', '/dev/xvdv', '/dev/sdw', '/dev/xvdx', '/dev/xvdy', '/dev/xvdz'] });
  s.addVolume({ id: 'vol-0bbb', availabilityZone: ZONE, tags: tags('b') });
  const before = s.count('AttachVolume');
  await t.rejects(provider(t, s, full).claim(), /no free device among \/dev\/xvdu–\/dev\/xvdz on i-.* for vol-0bbb/);
  t.equal(s.count('AttachVolume'), before);
});

t.test('a restart reuses the volume already attached: no second AttachVolume, no reformat', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  const s = await server(t);
  const devices = new Devices(area, 'nvme');
  devices.wire(s);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0bbb', availabilityZone: ZONE, tags: tags('b') });
  await devices.add('vol-0aaa');
  await devices.add('vol-0bbb');
  const options = { mountRoot: area.mountRoot, deviceRoot: devices.deviceRoot };
  const first = provider(t, s, me, options);
  const volume = await first.acquire();
  t.equal(volume.id, 'vol-0aaa');
  writeFileSync(join(volume.mountPoint, 'marker'), 'kept');
  t.equal(s.count('AttachVolume'), 1);

  // A fresh process: the volume is attached and mounted already.
  const again = await provider(t, s, me, options).acquire();
  t.equal(again.id, 'vol-0aaa', 'the same volume, not the next candidate');
  t.equal(again.device, volume.device);
  t.equal(s.count('AttachVolume'), 1, 'no second AttachVolume');
  t.match(lines.join('\n'), /"reason":"already attached to this instance \(restart\)"/);
  t.equal(readFileSync(join(again.mountPoint, 'marker'), 'utf8'), 'kept');

  // Released: unmounted and detached; taken again: the data is there, so it was not reformatted.
  await first.release();
  t.notOk(await mountedAt(volume.mountPoint), 'unmounted');
  t.equal(s.volumeState(s.volumes.get('vol-0aaa')!), 'available', 'detached');
  t.equal(s.count('DetachVolume', { VolumeId: 'vol-0aaa', InstanceId: me.id }), 1);
  const later = await provider(t, s, me, options).acquire();
  t.equal(later.id, 'vol-0aaa');
  t.equal(readFileSync(join(later.mountPoint, 'marker'), 'utf8'), 'kept', 'an ext4 volume is never reformatted');
  t.equal(await filesystemType(later.device!), 'ext4');
});

t.test('a lost attach race moves on to the next candidate; none left is a clear error', async (t) => {
  const s = await server(t);
  const a = await s.addInstance({ availabilityZone: ZONE });
  const b = await s.addInstance({ availabilityZone: ZONE });
  const c = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0bbb', availabilityZone: ZONE, tags: tags('b') });
  // Instance B attaches vol-0aaa between A's DescribeVolumes and A's AttachVolume.
  s.hooks.beforeAttach = async (req) => {
    if (req.instanceId === a.id && req.volumeId === 'vol-0aaa') await s.attachDirect('vol-0aaa', b.id, '/dev/xvdu');
  };
  const claimed = await provider(t, s, a).claim();
  t.equal(claimed.id, 'vol-0bbb', 'took the next candidate');
  t.equal(claimed.ec2Device, '/dev/xvdu');
  t.match(claimed.reason, /lost the race for 1 before it/);
  t.equal(s.requests.find((r) => r.action === 'AttachVolume' && r.params.VolumeId === 'vol-0aaa')?.errorCode, 'VolumeInUse');
  t.match(lines.join('\n'), /lost the attach race for a volume; trying the next candidate.*vol-0aaa/);
  t.same(s.volumes.get('vol-0aaa')!.attachments.map((x) => x.instanceId), [b.id], 'the winner keeps it');

  // C: both candidates taken (one while attaching, so EC2 says IncorrectState).
  s.addVolume({ id: 'vol-0ccc', availabilityZone: ZONE, tags: tags('c') });
  s.hooks.beforeAttach = async (req) => {
    if (req.instanceId === c.id && req.volumeId === 'vol-0ccc') {
      s.volumes.get('vol-0ccc')!.attachments.push({ instanceId: b.id, device: '/dev/xvdv', attachTime: new Date(), readyAt: Date.now() + 60_000 });
    }
  };
  const error = await provider(t, s, c).claim().then(() => undefined, (err: Error) => err);
  t.ok(error, 'no volume left');
  t.comment(error?.message);
  t.match(error?.message, new RegExp(`no candidate volume could be attached to ${c.id} \\(cluster ${CLUSTER.replace(/\./g, '\\.')}, zone ${ZONE}`));
  t.match(error?.message, `tag:kubernetes.io/cluster/${CLUSTER}=owned`);
  t.match(error?.message, `tag-key=${NAME_TAG}`);
  t.match(error?.message, /vol-0aaa: in-use, attached to i-\w+ \(attached\)/);
  t.match(error?.message, /vol-0ccc: lost the race \(.*IncorrectState/);
});

t.test('a volume still detaching from this instance is waited for and taken back', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: tags('a') });
  const mine = s.addVolume({ id: 'vol-0bbb', availabilityZone: ZONE, tags: tags('b') });
  await s.attachDirect('vol-0bbb', me.id, '/dev/xvdu');
  mine.attachments[0].goneAt = Date.now() + 800; // detaching for a while
  const claimed = await provider(t, s, me).claim();
  t.equal(claimed.id, 'vol-0bbb', 'its own volume, not vol-0aaa which sorts first');
  t.equal(claimed.memberName, 'b');
  t.match(claimed.reason, /detached from this instance just before; taken back/);
  t.equal(s.volumes.get('vol-0aaa')!.attachments.length, 0);
});

t.test('an AttachVolume whose reply was lost is not mistaken for a lost race', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0bbb', availabilityZone: ZONE, tags: tags('b') });
  // EC2 attaches, the reply never arrives, the SDK retries and hears VolumeInUse.
  s.dropAttachResponses = 1;
  const claimed = await provider(t, s, me).claim();
  t.equal(claimed.id, 'vol-0aaa', 'kept the volume that is in fact attached here');
  t.equal(claimed.ec2Device, '/dev/xvdu');
  t.same(s.requests.filter((r) => r.action === 'AttachVolume').map((r) => r.errorCode ?? 'OK'), ['ConnectionDropped', 'VolumeInUse']);
  t.equal(s.volumes.get('vol-0bbb')!.attachments.length, 0, 'no second volume attached to this member');
});

t.test('no volume at all: the error names the cluster, zone and tags', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: 'us-test-1b', tags: tags('a') });
  await t.rejects(provider(t, s, me).claim(), {
    message: `aws volumes: no EBS volume matches (cluster ${CLUSTER}, zone ${ZONE}, filters availability-zone=${ZONE}, tag:kubernetes.io/cluster/${CLUSTER}=owned, tag-key=${NAME_TAG}, tag:k8s.io/role/control-plane=1)`,
  });
});

t.test('IMDSv2: requests without a valid token are refused, and the provider always uses one', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  t.equal((await fetch(`${me.imdsEndpoint}/latest/meta-data/instance-id`)).status, 401, 'IMDSv1-style GET refused');
  t.equal((await fetch(`${me.imdsEndpoint}/latest/meta-data/instance-id`, { headers: { 'X-aws-ec2-metadata-token': 'forged' } })).status, 401, 'forged token refused');
  t.equal((await fetch(`${me.imdsEndpoint}/latest/api/token`, { method: 'PUT' })).status, 400, 'token without a TTL refused');

  const from = s.imdsRequests.length;
  const md = new InstanceMetadata({ endpoint: me.imdsEndpoint });
  t.same(await md.identity(), { instanceId: me.id, availabilityZone: ZONE, region: 'us-test-1' });
  const mine = s.imdsRequests.slice(from);
  t.same(mine[0], { instanceId: me.id, method: 'PUT', path: '/latest/api/token', status: 200 }, 'a token first');
  t.equal(mine.filter((r) => r.method === 'PUT').length, 1, 'one token for the session');
  t.ok(mine.length >= 3 && mine.filter((r) => r.method === 'GET').every((r) => r.status === 200), 'every GET of the client carried a valid token');
  // A token the IMDS no longer honours is renewed once.
  s.expireTokens();
  t.equal(await md.get('instance-id'), me.id);
  t.same(s.imdsRequests.slice(from + mine.length).map((r) => `${r.method} ${r.status}`), ['GET 401', 'PUT 200', 'GET 200'], 'token renewed after a 401');

  // Without any IMDS: a clear error within seconds.
  const gone = new InstanceMetadata({ endpoint: DEAD, timeoutMs: 500 });
  const started = Date.now();
  await t.rejects(gone.identity(), new RegExp(`instance metadata \\(IMDSv2\\) at ${DEAD.replace(/\./g, '\\.')}: PUT /latest/api/token: ECONNREFUSED`));
  t.ok(Date.now() - started < 5000);
});

t.test('two instances racing for two volumes end with one each', async (t) => {
  const s = await server(t);
  s.attachDelayMs = 150;
  for (let round = 0; round < 5; round++) {
    const a = await s.addInstance({ availabilityZone: ZONE });
    const b = await s.addInstance({ availabilityZone: ZONE });
    const v1 = s.addVolume({ id: `vol-0${round}a`, availabilityZone: ZONE, tags: tags('a', { 'k8s.io/role/control-plane': `r${round}` }) });
    const v2 = s.addVolume({ id: `vol-0${round}b`, availabilityZone: ZONE, tags: tags('b', { 'k8s.io/role/control-plane': `r${round}` }) });
    const filters = [`k8s.io/role/control-plane=r${round}`];
    const [ca, cb] = await Promise.all([provider(t, s, a, { tagFilters: filters }).claim(), provider(t, s, b, { tagFilters: filters }).claim()]);
    t.not(ca.id, cb.id, `round ${round}: different volumes`);
    t.same([ca.id, cb.id].sort(), [v1.id, v2.id]);
    t.same(v1.attachments.length + v2.attachments.length, 2);
    t.equal(s.volumes.get(ca.id)!.attachments[0].instanceId, a.id);
    t.equal(s.volumes.get(cb.id)!.attachments[0].instanceId, b.id);
  }
});

t.test('two instances racing through acquire() each mount their own volume', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  const s = await server(t);
  const devices = new Devices(area, 'nvme');
  devices.wire(s);
  s.attachDelayMs = 200;
  const a = await s.addInstance({ availabilityZone: ZONE });
  const b = await s.addInstance({ availabilityZone: ZONE });
  for (const [id, member] of [['vol-0aaa', 'a'], ['vol-0bbb', 'b']]) {
    s.addVolume({ id, availabilityZone: ZONE, tags: tags(member) });
    await devices.add(id);
  }
  const pa = provider(t, s, a, { mountRoot: join(area.mountRoot, 'a'), deviceRoot: devices.deviceRoot });
  const pb = provider(t, s, b, { mountRoot: join(area.mountRoot, 'b'), deviceRoot: devices.deviceRoot });
  const [va, vb] = await Promise.all([pa.acquire(), pb.acquire()]);
  t.same([va.id, vb.id].sort(), ['vol-0aaa', 'vol-0bbb'], 'one each');
  t.not(va.device, vb.device);
  t.equal((await mountedAt(va.mountPoint))?.source, va.device);
  t.equal((await mountedAt(vb.mountPoint))?.source, vb.device);
  t.equal(s.count('AttachVolume', { VolumeId: va.id, InstanceId: a.id }), 1);
  t.equal(s.count('AttachVolume', { VolumeId: vb.id, InstanceId: b.id }), 1);
});

t.test('two managers of one instance (main, events) pick different devices', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0main', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0evts', availabilityZone: ZONE, tags: { ...tags('a'), [NAME_TAG]: '', 'k8s.io/etcd/events': 'a/a,b,c' } });
  // Both looked at the instance before either attached: the second one's device is taken by the time it attaches.
  let held: (() => void) | undefined;
  // (Released after 3 s regardless, so a provider that serialised its attaches would fail here, not hang.)
  const bothLooked = new Promise<void>((resolve) => { held = resolve; setTimeout(resolve, 3000).unref(); });
  let waiting = 0;
  s.hooks.beforeAttach = async () => {
    if (++waiting === 2) held?.();
    await bothLooked;
  };
  const main = provider(t, s, me);
  const events = provider(t, s, me, { nameTag: 'k8s.io/etcd/events' });
  const [cm, ce] = await Promise.all([main.claim(), events.claim()]);
  t.equal(cm.id, 'vol-0main');
  t.equal(ce.id, 'vol-0evts');
  t.same([cm.ec2Device, ce.ec2Device].sort(), ['/dev/xvdu', '/dev/xvdv']);
  t.equal(s.requests.filter((r) => r.action === 'AttachVolume' && r.errorCode === 'InvalidParameterValue').length, 1, 'one attach refused for its device, then retried on the next');
});

t.test('an unreachable or hanging EC2 endpoint is a clear error within seconds', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  let started = Date.now();
  const refused = await provider(t, s, me, { endpoint: DEAD }).claim().then(() => undefined, (err: Error) => err);
  t.ok(Date.now() - started < 5000, `refused in ${Date.now() - started} ms`);
  t.comment(refused?.message);
  t.match(refused?.message, `aws volumes: EC2 DescribeVolumes at ${DEAD}: ECONNREFUSED`);

  // A server that accepts and never answers.
  const sockets = new Set<import('node:net').Socket>();
  const hang: Server = createServer((sock) => { sockets.add(sock); });
  await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { for (const sock of sockets) sock.destroy(); hang.close(); });
  const port = (hang.address() as import('node:net').AddressInfo).port;
  started = Date.now();
  const hung = await provider(t, s, me, { endpoint: `http://127.0.0.1:${port}`, requestTimeoutMs: 500, maxAttempts: 2 }).claim().then(() => undefined, (err: Error) => err);
  t.ok(Date.now() - started < 8000, `gave up in ${Date.now() - started} ms`);
  t.comment(hung?.message);
  t.match(hung?.message, new RegExp(`aws volumes: EC2 DescribeVolumes at http://127\\.0\\.0\\.1:${port}: .*time`, 'i'));
});

t.test('with no endpoint options, the SDK\'s environment settings are used (as in production)', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: tags('a') });
  const saved = { ec2: process.env.AWS_ENDPOINT_URL_EC2, imds: process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT, region: process.env.AWS_REGION };
  t.teardown(() => {
    const restore = (name: string, value: string | undefined) => {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    };
    restore('AWS_ENDPOINT_URL_EC2', saved.ec2);
    restore('AWS_EC2_METADATA_SERVICE_ENDPOINT', saved.imds);
    restore('AWS_REGION', saved.region);
  });
  process.env.AWS_ENDPOINT_URL_EC2 = s.endpoint;
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = me.imdsEndpoint;
  delete process.env.AWS_REGION; // the region then comes from the IMDS
  const p = new AwsVolumeProvider({ kubernetesClusterName: CLUSTER, tagFilters: [], nameTag: NAME_TAG, mountRoot: '/nonexistent/mnt', log, pollIntervalMs: 50 });
  t.teardown(() => p.destroy());
  const claimed = await p.claim();
  t.equal(claimed.id, 'vol-0aaa');
  t.equal(claimed.instanceId, me.id);
  t.ok(s.requests.length >= 3, 'the EC2 calls went to the endpoint from AWS_ENDPOINT_URL_EC2');
});

t.test('the test server speaks EC2 Query: filters, XML errors with HTTP statuses, signed requests only', async (t) => {
  const s = await server(t);
  const a = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0bbb', availabilityZone: ZONE, tags: tags('b') });
  await s.attachDirect('vol-0bbb', a.id, '/dev/xvdu');
  const client = new EC2Client({ region: 'us-test-1', endpoint: s.endpoint, credentials: { accessKeyId: TEST_ACCESS_KEY, secretAccessKey: TEST_SECRET_KEY }, maxAttempts: 1 });
  t.teardown(() => client.destroy());
  const byAttachment = await client.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [a.id] }] }));
  t.same(byAttachment.Volumes?.map((v) => [v.VolumeId, v.State, v.Attachments?.[0]?.Device, v.Attachments?.[0]?.State]), [['vol-0bbb', 'in-use', '/dev/xvdu', 'attached']]);
  const wildcard = await client.send(new DescribeVolumesCommand({ Filters: [{ Name: `tag:${NAME_TAG}`, Values: ['a/*'] }] }));
  t.same(wildcard.Volumes?.map((v) => v.VolumeId), ['vol-0aaa'], 'tag values with EC2 wildcards');

  const failure = (p: Promise<unknown>) => p.then(() => undefined, (err: EC2ServiceException) => ({ name: err.name, status: err.$metadata.httpStatusCode, message: err.message }));
  t.same(await failure(client.send(new DescribeVolumesCommand({ Filters: [{ Name: 'nonsense', Values: ['x'] }] }))),
    { name: 'InvalidParameterValue', status: 400, message: "The filter 'nonsense' is invalid" });
  t.same(await failure(client.send(new DescribeVolumesCommand({ VolumeIds: ['vol-missing'] }))),
    { name: 'InvalidVolume.NotFound', status: 400, message: "The volume 'vol-missing' does not exist." });
  const stranger = new EC2Client({ region: 'us-test-1', endpoint: s.endpoint, credentials: { accessKeyId: 'AKIDOTHER', secretAccessKey: 'x' }, maxAttempts: 1 });
  t.teardown(() => stranger.destroy());
  t.match(await failure(stranger.send(new DescribeVolumesCommand({}))), { name: 'AuthFailure', status: 401 });

  const raw = await fetch(s.endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'Action=RunInstances&Version=2016-11-15' });
  t.equal(raw.status, 401, 'unsigned requests are refused');
  t.match(await raw.text(), /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>AuthFailure<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]+<\/RequestID><\/Response>$/);
});

const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;

t.test('etcd-manager --volume-provider=aws: one member on the attached EBS volume, restart reuses it', { skip: loopSkip || etcdSkip }, async (t) => {
  const area = loopArea(t);
  const s = await server(t);
  const devices = new Devices(area, 'nvme');
  devices.wire(s);
  const ip = loopbackNet()(1);
  const me = await s.addInstance({ availabilityZone: ZONE, privateIp: ip });
  const k8s = 'c.example.com';
  const volumeTags = { 'kubernetes.io/cluster/c.example.com': 'owned', [NAME_TAG]: 'a/a', 'k8s.io/role/control-plane': '1' };
  s.addVolume({ id: 'vol-0aaa', availabilityZone: ZONE, tags: volumeTags });
  s.addVolume({ id: 'vol-0bbb', availabilityZone: ZONE, tags: { ...volumeTags, 'kubernetes.io/cluster/c.example.com': 'shared', 'kubernetes.io/cluster/other': 'owned' } });
  await devices.add('vol-0aaa', 512); // sparse; etcd's WAL alone preallocates 64 MiB
  const [peer, client, quarantine] = [await freePort(ip), await freePort(ip), await freePort(ip)];
  const backupURL = `file://${area.root}/state/${k8s}/backups/etcd/main`;
  await openStore(backupURL).write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 1, etcdVersion: '3.4.23' }));
  // kOps' flags for an AWS control plane (the cluster tag comes both from the backup store path and --volume-tag);
  // no --address, as kOps gives none: the private IP comes from instance metadata (here, a loopback address).
  const args = [
    'run', '--cluster-name=etcd', `--backup-store=${backupURL}`, '--insecure',
    `--peer-urls=http://__address__:${peer}`, `--client-urls=http://__address__:${client}`, `--quarantine-client-urls=http://__address__:${quarantine}`,
    '--volume-provider=aws', `--volume-tag=kubernetes.io/cluster/${k8s}=owned`, `--volume-tag=${NAME_TAG}`, '--volume-tag=k8s.io/role/control-plane=1',
    `--volume-name-tag=${NAME_TAG}`, `--mount-root=${area.mountRoot}`, `--hosts-file=${join(area.root, 'hosts')}`,
    '--instance-id=a', '--reconcile-interval=300ms', '--discovery-poll-interval=1s',
  ];
  const env = {
    AWS_ENDPOINT_URL_EC2: s.endpoint, AWS_EC2_METADATA_SERVICE_ENDPOINT: me.imdsEndpoint, AWS_REGION: 'us-test-1',
    AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: TEST_SECRET_KEY, MOORING_AWS_DEVICE_ROOT: devices.deviceRoot,
  };
  const endpoint = [`http://${ip}:${client}`];
  const manager = startManager(t, args, env);
  await waitFor('etcd healthy on the aws volume', async () => {
    if (manager.child.exitCode !== null) throw new Error(`manager exited: ${JSON.stringify(manager.logs.slice(-5))}`);
    return (await checkEtcd(endpoint)).healthy;
  }, 60_000);
  const etcd = await openEtcdClient(endpoint);
  await etcd.put('/registry/k').value('on-ebs');
  etcd.close();
  const mountPoint = join(area.mountRoot, 'master-vol-0aaa');
  t.equal((await mountedAt(mountPoint))?.source, devices.loops.get('vol-0aaa'), 'the attached volume is mounted at master-<volid>');
  t.ok(existsSync(join(mountPoint, 'etcd-manager-state.json')), 'the member state lives on the volume');
  t.same(s.volumes.get('vol-0aaa')!.attachments.map((a) => [a.instanceId, a.device]), [[me.id, '/dev/xvdu']]);
  t.equal(s.volumes.get('vol-0bbb')!.attachments.length, 0, 'the other cluster\'s volume is left alone');
  t.ok(manager.logs.some((l) => l.msg === 'volume claimed' && l.volume === 'vol-0aaa' && typeof l.reason === 'string'), 'the log says which volume and why');
  t.ok(manager.logs.some((l) => l.msg === 'address from the volume provider (no --address given)' && l.address === ip), `etcd listens on the instance's private IP from IMDS (${ip})`);
  t.same(await manager.stop(), { code: 0, signal: null });

  const second = startManager(t, args, env);
  await waitFor('healthy after the manager restart', async () => {
    if (second.child.exitCode !== null) throw new Error(`manager exited: ${JSON.stringify(second.logs.slice(-5))}`);
    return (await checkEtcd(endpoint)).healthy;
  }, 60_000);
  const again = await openEtcdClient(endpoint);
  t.equal(await again.get('/registry/k').string(), 'on-ebs', 'data intact after the restart');
  again.close();
  t.equal(s.count('AttachVolume'), 1, 'the restart found the volume attached: no second AttachVolume');
  t.ok(second.logs.some((l) => l.msg === 'volume claimed' && l.reason === 'already attached to this instance (restart)'));
  t.same(await second.stop(), { code: 0, signal: null });
});
