// The aws volume provider against the EC2 test server: the real
// @aws-sdk/client-ec2 request path (signing, Query serialisation, XML parsing,
// retries) and IMDSv2, all on 127.0.0.1. Attached "EBS volumes" are loop
// devices the test wires in: the server's attach hook links
// <device-root>/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volid> (or
// <device-root>/xvdX) to the volume's loop device, as udev would.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { configureLogging, logger } from '../../shared/log.js';
import { AwsVolumeProvider, type AwsProviderOptions } from '../../agents/etcd-manager/volumes/aws.js';
import { nvmeByIdPath } from '../../agents/etcd-manager/volumes/aws-devices.js';
import { InstanceMetadata } from '../../agents/etcd-manager/volumes/aws-imds.js';
import { filesystemType, mountedAt } from '../../agents/etcd-manager/volumes/blockdev.js';
import { AttachVolumeCommand, DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, paginateDescribeVolumes, type AttachVolumeCommandInput, type EC2ServiceException } from '@aws-sdk/client-ec2';
import { EC2TestServer, startEC2Server, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY, type AttachRequest, type FakeInstance } from '../harness/ec2-server.js';
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

/** A TCP listener that counts connections and either cuts each at once or never answers. */
async function countingListener(t: Teardown, mode: 'reset' | 'hang'): Promise<{ url: string; readonly connections: number }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const listener: Server = createServer((sock) => {
    connections++;
    sock.on('error', () => undefined);
    if (mode === 'reset') sock.resetAndDestroy();
    else sockets.add(sock);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const sock of sockets) sock.destroy();
    listener.close();
  });
  return { url: `http://127.0.0.1:${(listener.address() as AddressInfo).port}`, get connections() { return connections; } };
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
  s.addVolume({ id: 'vol-00000001', availabilityZone: ZONE, tags: { ...tags('a'), [`kubernetes.io/cluster/${CLUSTER}`]: 'shared', 'kubernetes.io/cluster/other': 'owned' } });
  s.addVolume({ id: 'vol-00000002', availabilityZone: 'us-test-1b', tags: tags('a') });
  s.addVolume({ id: 'vol-00000003', availabilityZone: ZONE, tags: { ...tags('a'), [NAME_TAG]: '', 'k8s.io/etcd/events': 'a/a,b,c' } });
  s.addVolume({ id: 'vol-00000004', availabilityZone: ZONE, tags: { ...tags('a'), 'k8s.io/role/control-plane': '0' } });
  s.addVolume({ id: 'vol-00000abc', availabilityZone: ZONE, tags: tags('b') });
  for (const id of s.volumes.keys()) await devices.add(id);

  const p = provider(t, s, me, { mountRoot: area.mountRoot, deviceRoot: devices.deviceRoot });
  const volume = await p.acquire();
  t.equal(volume.id, 'vol-00000abc', 'only the volume of this cluster, zone, etcd cluster and role');
  t.equal(volume.memberName, 'b');
  t.same(volume.allMembers, ['a', 'b', 'c']);
  t.equal(volume.mountPoint, join(area.mountRoot, 'master-vol-00000abc'));
  t.equal(volume.device, devices.loops.get('vol-00000abc'), 'the NVMe by-id link was followed to the real device');
  t.equal((await mountedAt(volume.mountPoint))?.fsType, 'ext4', 'blank disk formatted ext4 and mounted');
  t.same(s.volumes.get('vol-00000abc')!.attachments.map((a) => [a.instanceId, a.device]), [[me.id, '/dev/xvdu']], 'attached on /dev/xvdu');
  for (const id of ['vol-00000001', 'vol-00000002', 'vol-00000003', 'vol-00000004']) t.equal(s.volumes.get(id)!.attachments.length, 0, `${id} left alone`);

  const search = s.requests.find((r) => r.action === 'DescribeVolumes' && r.params['Filter.1.Name'] !== undefined);
  t.ok(search, 'DescribeVolumes was asked with filters');
  const filters = Object.entries(search!.params).filter(([k]) => /^Filter\.\d+\.Name$/.test(k)).map(([, v]) => v);
  t.same(filters.sort(), ['availability-zone', 'tag-key', `tag:k8s.io/role/control-plane`, `tag:kubernetes.io/cluster/${CLUSTER}`].sort());
  t.ok(s.requests.every((r) => r.params.Version === '2016-11-15'), 'every call is EC2 Query 2016-11-15');
  t.match(lines.join('\n'), /"event":"volume.claimed".*"volume":"vol-00000abc".*"reason":"first available candidate by volume id/);
});

t.test('takes the next free device when xvdu is used, and waits for "attached"', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  const s = await server(t);
  const devices = new Devices(area, 'xen');
  devices.wire(s);
  // /dev/sdu is the same attachment point as /dev/xvdu.
  const me = await s.addInstance({ availabilityZone: ZONE, extraDevices: ['/dev/xvda', '/dev/sdu'] });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
  await devices.add('vol-0000aaaa');
  // The attachment reads `attaching` in EC2's first three answers about it, `attached` from the fourth on.
  s.attachingPolls = 3;
  const p = provider(t, s, me, { mountRoot: area.mountRoot, deviceRoot: devices.deviceRoot, pollIntervalMs: 20 });
  const volume = await p.acquire();
  t.equal(s.volumes.get('vol-0000aaaa')!.attachments[0].device, '/dev/xvdv', 'xvdu (taken as sdu) skipped');
  t.equal(s.attachmentState(s.volumes.get('vol-0000aaaa')!.attachments[0]), 'attached');
  const polls = s.requests.filter((r) => r.action === 'DescribeVolumes' && r.params['VolumeId.1'] === 'vol-0000aaaa');
  t.same(polls.map((r) => r.answered?.map((v) => v.attachments.map((a) => a.state))), [[['attaching']], [['attaching']], [['attaching']], [['attached']]],
    'polled while EC2 said attaching, and went on only after the answer that said attached');
  t.equal(volume.device, devices.loops.get('vol-0000aaaa'), 'the plain /dev/xvdv node was found without NVMe');
  t.ok(await mountedAt(volume.mountPoint));

  // Every slot used: a clear error, and no AttachVolume for a device EC2 would refuse.
  const full = await s.addInstance({ availabilityZone: ZONE, extraDevices: ['/dev/xvda', '/dev/xvdu', '/dev/xvdv', '/dev/sdw', '/dev/xvdx', '/dev/xvdy', '/dev/xvdz'] });
  s.addVolume({ id: 'vol-0000bbbb', availabilityZone: ZONE, tags: tags('b') });
  const before = s.count('AttachVolume');
  await t.rejects(provider(t, s, full).claim(), /no free device among \/dev\/xvdu–\/dev\/xvdz on i-.* for vol-0000bbbb/);
  t.equal(s.count('AttachVolume'), before);
});

t.test('a restart reuses the volume already attached: no second AttachVolume, no reformat', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  const s = await server(t);
  const devices = new Devices(area, 'nvme');
  devices.wire(s);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0000bbbb', availabilityZone: ZONE, tags: tags('b') });
  await devices.add('vol-0000aaaa');
  await devices.add('vol-0000bbbb');
  const options = { mountRoot: area.mountRoot, deviceRoot: devices.deviceRoot };
  const first = provider(t, s, me, options);
  const volume = await first.acquire();
  t.equal(volume.id, 'vol-0000aaaa');
  writeFileSync(join(volume.mountPoint, 'marker'), 'kept');
  t.equal(s.count('AttachVolume'), 1);

  // A fresh process: the volume is attached and mounted already.
  const again = await provider(t, s, me, options).acquire();
  t.equal(again.id, 'vol-0000aaaa', 'the same volume, not the next candidate');
  t.equal(again.device, volume.device);
  t.equal(s.count('AttachVolume'), 1, 'no second AttachVolume');
  t.match(lines.join('\n'), /"reason":"already attached to this instance \(restart\)"/);
  t.equal(readFileSync(join(again.mountPoint, 'marker'), 'utf8'), 'kept');

  // Released: unmounted and detached; taken again: the data is there, so it was not reformatted.
  await first.release();
  t.notOk(await mountedAt(volume.mountPoint), 'unmounted');
  t.equal(s.volumeState(s.volumes.get('vol-0000aaaa')!), 'available', 'detached');
  t.equal(s.count('DetachVolume', { VolumeId: 'vol-0000aaaa', InstanceId: me.id }), 1);
  const later = await provider(t, s, me, options).acquire();
  t.equal(later.id, 'vol-0000aaaa');
  t.equal(readFileSync(join(later.mountPoint, 'marker'), 'utf8'), 'kept', 'an ext4 volume is never reformatted');
  t.equal(await filesystemType(later.device!), 'ext4');
});

t.test('a lost attach race moves on to the next candidate; none left is a clear error', async (t) => {
  const s = await server(t);
  const a = await s.addInstance({ availabilityZone: ZONE });
  const b = await s.addInstance({ availabilityZone: ZONE });
  const c = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0000bbbb', availabilityZone: ZONE, tags: tags('b') });
  // Instance B attaches vol-0000aaaa between A's DescribeVolumes and A's AttachVolume.
  s.hooks.beforeAttach = async (req) => {
    if (req.instanceId === a.id && req.volumeId === 'vol-0000aaaa') await s.attachDirect('vol-0000aaaa', b.id, '/dev/xvdu');
  };
  const claimed = await provider(t, s, a).claim();
  t.equal(claimed.id, 'vol-0000bbbb', 'took the next candidate');
  t.equal(claimed.ec2Device, '/dev/xvdu');
  t.match(claimed.reason, /lost the race for 1 before it/);
  t.equal(s.requests.find((r) => r.action === 'AttachVolume' && r.params.VolumeId === 'vol-0000aaaa')?.errorCode, 'VolumeInUse');
  t.match(lines.join('\n'), /lost the attach race for a volume; trying the next candidate.*vol-0000aaaa/);
  t.same(s.volumes.get('vol-0000aaaa')!.attachments.map((x) => x.instanceId), [b.id], 'the winner keeps it');

  // C: both candidates taken (one while attaching, so EC2 says IncorrectState).
  s.addVolume({ id: 'vol-0000cccc', availabilityZone: ZONE, tags: tags('c') });
  s.hooks.beforeAttach = async (req) => {
    if (req.instanceId === c.id && req.volumeId === 'vol-0000cccc') {
      s.volumes.get('vol-0000cccc')!.attachments.push({ instanceId: b.id, device: '/dev/xvdv', attachTime: new Date(), readyAt: Date.now() + 60_000 });
    }
  };
  const error = await provider(t, s, c).claim().then(() => undefined, (err: Error) => err);
  t.ok(error, 'no volume left');
  t.comment(error?.message);
  t.match(error?.message, new RegExp(`no candidate volume could be attached to ${c.id} \\(cluster ${CLUSTER.replace(/\./g, '\\.')}, zone ${ZONE}`));
  t.match(error?.message, `tag:kubernetes.io/cluster/${CLUSTER}=owned`);
  t.match(error?.message, `tag-key=${NAME_TAG}`);
  t.match(error?.message, /vol-0000aaaa: in-use, attached to i-\w+ \(attached\)/);
  t.match(error?.message, /vol-0000cccc: lost the race \(.*IncorrectState/);
});

t.test('a volume still detaching from this instance is waited for and taken back', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
  const mine = s.addVolume({ id: 'vol-0000bbbb', availabilityZone: ZONE, tags: tags('b') });
  await s.attachDirect('vol-0000bbbb', me.id, '/dev/xvdu');
  // Detaching in EC2's next three answers that list it (the search, then two polls), gone after.
  Object.assign(mine.attachments[0], { goneAt: Date.now(), detachingAnswersLeft: 3 });
  const claimed = await provider(t, s, me).claim();
  t.equal(claimed.id, 'vol-0000bbbb', 'its own volume, not vol-0000aaaa which sorts first');
  t.equal(claimed.memberName, 'b');
  t.match(claimed.reason, /detached from this instance just before; taken back/);
  t.equal(s.volumes.get('vol-0000aaaa')!.attachments.length, 0);
  const polls = s.requests.filter((r) => r.action === 'DescribeVolumes' && r.params['VolumeId.1'] === 'vol-0000bbbb');
  t.same(polls.map((r) => r.answered?.[0]?.attachments.map((a) => a.state)), [['detaching'], ['detaching'], [], ['attached']],
    'waited until the detach was over, then attached it again');
});

t.test('an AttachVolume whose reply was lost is not mistaken for a lost race', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0000bbbb', availabilityZone: ZONE, tags: tags('b') });
  // EC2 attaches, the reply never arrives, the SDK retries and hears VolumeInUse.
  s.dropAttachResponses = 1;
  const claimed = await provider(t, s, me).claim();
  t.equal(claimed.id, 'vol-0000aaaa', 'kept the volume that is in fact attached here');
  t.equal(claimed.ec2Device, '/dev/xvdu');
  t.same(s.requests.filter((r) => r.action === 'AttachVolume').map((r) => r.errorCode ?? 'OK'), ['ConnectionDropped', 'VolumeInUse']);
  t.equal(s.volumes.get('vol-0000bbbb')!.attachments.length, 0, 'no second volume attached to this member');
});

t.test('no volume at all: the error names the cluster, zone and tags', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: 'us-test-1b', tags: tags('a') });
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

  // Without any IMDS: a clear error naming the endpoint and the reason.
  const gone = new InstanceMetadata({ endpoint: DEAD, timeoutMs: 500 });
  await t.rejects(gone.identity(), new RegExp(`instance metadata \\(IMDSv2\\) at ${DEAD.replace(/\./g, '\\.')}: PUT /latest/api/token: ECONNREFUSED`));
  // Bounded: a listener that cuts every connection is tried `attempts` times, one that never answers likewise, each attempt cut off by the timeout.
  const cutter = await countingListener(t, 'reset');
  await t.rejects(new InstanceMetadata({ endpoint: cutter.url, timeoutMs: 500, attempts: 3 }).identity(), new RegExp(`at ${cutter.url.replace(/\./g, '\\.')}: PUT /latest/api/token: `));
  t.equal(cutter.connections, 3, 'three attempts at a connection that is cut, then the error');
  const silent = await countingListener(t, 'hang');
  await t.rejects(new InstanceMetadata({ endpoint: silent.url, timeoutMs: 200, attempts: 2 }).identity(), /PUT \/latest\/api\/token: timed out/);
  t.equal(silent.connections, 2, 'two attempts at an IMDS that never answers, each ended by the timeout');
});

t.test('two instances racing for two volumes end with one each', async (t) => {
  const s = await server(t);
  s.attachDelayMs = 150;
  for (let round = 0; round < 5; round++) {
    const a = await s.addInstance({ availabilityZone: ZONE });
    const b = await s.addInstance({ availabilityZone: ZONE });
    const v1 = s.addVolume({ id: `vol-000${round}000a`, availabilityZone: ZONE, tags: tags('a', { 'k8s.io/role/control-plane': `r${round}` }) });
    const v2 = s.addVolume({ id: `vol-000${round}000b`, availabilityZone: ZONE, tags: tags('b', { 'k8s.io/role/control-plane': `r${round}` }) });
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
  for (const [id, member] of [['vol-0000aaaa', 'a'], ['vol-0000bbbb', 'b']]) {
    s.addVolume({ id, availabilityZone: ZONE, tags: tags(member) });
    await devices.add(id);
  }
  const pa = provider(t, s, a, { mountRoot: join(area.mountRoot, 'a'), deviceRoot: devices.deviceRoot });
  const pb = provider(t, s, b, { mountRoot: join(area.mountRoot, 'b'), deviceRoot: devices.deviceRoot });
  const [va, vb] = await Promise.all([pa.acquire(), pb.acquire()]);
  t.same([va.id, vb.id].sort(), ['vol-0000aaaa', 'vol-0000bbbb'], 'one each');
  t.not(va.device, vb.device);
  t.equal((await mountedAt(va.mountPoint))?.source, va.device);
  t.equal((await mountedAt(vb.mountPoint))?.source, vb.device);
  t.equal(s.count('AttachVolume', { VolumeId: va.id, InstanceId: a.id }), 1);
  t.equal(s.count('AttachVolume', { VolumeId: vb.id, InstanceId: b.id }), 1);
});

t.test('two managers of one instance (main, events) pick different devices', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000a000', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0000e000', availabilityZone: ZONE, tags: { ...tags('a'), [NAME_TAG]: '', 'k8s.io/etcd/events': 'a/a,b,c' } });
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
  t.equal(cm.id, 'vol-0000a000');
  t.equal(ce.id, 'vol-0000e000');
  t.same([cm.ec2Device, ce.ec2Device].sort(), ['/dev/xvdu', '/dev/xvdv']);
  t.equal(s.requests.filter((r) => r.action === 'AttachVolume' && r.errorCode === 'InvalidParameterValue').length, 1, 'one attach refused for its device, then retried on the next');
});

t.test('an unreachable or hanging EC2 endpoint is a clear error after a bounded number of attempts', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  const refused = await provider(t, s, me, { endpoint: DEAD }).claim().then(() => undefined, (err: Error) => err);
  t.comment(refused?.message);
  t.match(refused?.message, `aws volumes: EC2 DescribeVolumes at ${DEAD}: ECONNREFUSED`);

  // Connections cut at once: the SDK retries them, `maxAttempts` in all.
  const cutter = await countingListener(t, 'reset');
  const cut = await provider(t, s, me, { endpoint: cutter.url, maxAttempts: 2 }).claim().then(() => undefined, (err: Error & { ec2Code?: string }) => err);
  t.comment(cut?.message);
  t.equal(cut?.ec2Code, 'ECONNRESET', 'the error kind is the reset, not a timeout');
  t.match(cut?.message, `aws volumes: EC2 DescribeVolumes at ${cutter.url}: ECONNRESET: `);
  t.equal(cutter.connections, 2, 'two attempts, then the error');

  // A server that accepts and never answers: each attempt ends at the request timeout.
  const silent = await countingListener(t, 'hang');
  const hung = await provider(t, s, me, { endpoint: silent.url, requestTimeoutMs: 500, maxAttempts: 2 }).claim().then(() => undefined, (err: Error & { ec2Code?: string }) => err);
  t.comment(hung?.message);
  t.equal(hung?.ec2Code, 'TimeoutError', 'the error kind is a timeout');
  t.match(hung?.message, `aws volumes: EC2 DescribeVolumes at ${silent.url}: TimeoutError: no reply within 500 ms (2 attempts)`);
  t.equal(silent.connections, 2, 'two attempts, each ended by the request timeout');
});

t.test('with no endpoint options, the SDK\'s environment settings are used (as in production)', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
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
  t.equal(claimed.id, 'vol-0000aaaa');
  t.equal(claimed.instanceId, me.id);
  t.ok(s.requests.length >= 3, 'the EC2 calls went to the endpoint from AWS_ENDPOINT_URL_EC2');
});

/** An SDK client of the test server; `secret`, `region` and `clockOffsetMs` let a test get them wrong. */
function ec2Client(t: Teardown, s: EC2TestServer, options: { accessKeyId?: string; secret?: string; region?: string; clockOffsetMs?: number; maxAttempts?: number } = {}): EC2Client {
  const client = new EC2Client({
    region: options.region ?? TEST_REGION,
    endpoint: s.endpoint,
    credentials: { accessKeyId: options.accessKeyId ?? TEST_ACCESS_KEY, secretAccessKey: options.secret ?? TEST_SECRET_KEY },
    maxAttempts: options.maxAttempts ?? 1,
    ...(options.clockOffsetMs !== undefined ? { systemClockOffset: options.clockOffsetMs } : {}),
  });
  t.teardown(() => client.destroy());
  return client;
}

interface WireRequest {
  body: string;
  headers: Record<string, string>;
}

type StackMiddleware = Parameters<EC2Client['middlewareStack']['addRelativeTo']>[0];
type Handler = (args: { request: unknown }) => Promise<unknown>;

/** A finalize-step middleware that edits the outgoing HTTP request. */
function editing(edit: (request: WireRequest) => void): StackMiddleware {
  const middleware = (next: Handler): Handler => async (args) => {
    edit(args.request as WireRequest);
    return next(args);
  };
  return middleware as unknown as StackMiddleware;
}

/** Edits every request of `client` just before the SDK signs it (the body then goes out correctly signed). */
function beforeSigning(client: EC2Client, edit: (request: WireRequest) => void): void {
  client.middlewareStack.addRelativeTo(editing((request) => {
    edit(request);
    request.headers['content-length'] = String(Buffer.byteLength(request.body));
  }), { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'testEditBeforeSigning' });
}

/** Edits every request of `client` after the SDK signed it (what a proxy, or an attacker, would do). */
function afterSigning(client: EC2Client, edit: (request: WireRequest) => void): void {
  client.middlewareStack.addRelativeTo(editing(edit), { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'testEditAfterSigning' });
}

/** An SDK failure as name, HTTP status and message. */
const failure = (p: Promise<unknown>) => p.then(
  () => 'no error',
  (err: EC2ServiceException) => ({ name: err.name, status: err.$metadata?.httpStatusCode, message: err.message }),
);

const MISMATCH = 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

t.test('the test server verifies SigV4: the secret, the signed headers and body, the date, the region and the service', async (t) => {
  const s = await server(t);
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
  t.same((await ec2Client(t, s).send(new DescribeVolumesCommand({}))).Volumes?.map((v) => v.VolumeId), ['vol-0000aaaa'], 'the SDK\'s signature with the test secret is accepted');

  t.same(await failure(ec2Client(t, s, { secret: 'not-the-test-secret' }).send(new DescribeVolumesCommand({}))),
    { name: 'SignatureDoesNotMatch', status: 403, message: MISMATCH }, 'a wrong secret');
  t.same(await failure(ec2Client(t, s, { accessKeyId: 'AKIDOTHER', secret: 'x' }).send(new DescribeVolumesCommand({}))),
    { name: 'AuthFailure', status: 401, message: 'AWS was not able to validate the provided access credentials' }, 'an unknown access key');
  t.same(await failure(ec2Client(t, s, { region: 'us-east-1' }).send(new DescribeVolumesCommand({}))),
    { name: 'SignatureDoesNotMatch', status: 403, message: "Credential should be scoped to a valid region, not 'us-east-1'." }, 'signed for another region');

  const otherService = ec2Client(t, s);
  afterSigning(otherService, (r) => { r.headers.authorization = r.headers.authorization.replace('/ec2/aws4_request', '/ec3/aws4_request'); });
  t.same(await failure(otherService.send(new DescribeVolumesCommand({}))),
    { name: 'SignatureDoesNotMatch', status: 403, message: "Credential should be scoped to correct service: 'ec2'." }, 'signed for another service');

  // The body changed after signing, its hash header made to match: the canonical request covers the body.
  const changedBody = ec2Client(t, s);
  afterSigning(changedBody, (r) => {
    r.body = r.body.replace('MaxResults=5', 'MaxResults=6');
    r.headers['x-amz-content-sha256'] = createHash('sha256').update(r.body).digest('hex');
  });
  t.same(await failure(changedBody.send(new DescribeVolumesCommand({ MaxResults: 5 }))), { name: 'SignatureDoesNotMatch', status: 403, message: MISMATCH }, 'a body changed after signing');
  const changedHeader = ec2Client(t, s);
  afterSigning(changedHeader, (r) => { r.headers['x-amz-user-agent'] += ' changed'; });
  t.same(await failure(changedHeader.send(new DescribeVolumesCommand({}))), { name: 'SignatureDoesNotMatch', status: 403, message: MISMATCH }, 'a signed header changed after signing');

  // A date 20 minutes old: RequestExpired.
  const slow = await failure(ec2Client(t, s, { clockOffsetMs: -20 * 60_000 }).send(new DescribeVolumesCommand({})));
  t.match(slow, { name: 'RequestExpired', status: 400 }, 'a date 20 minutes old');
  // This machine's clock 20 minutes behind EC2's: refused once, with EC2's Date, from which the SDK corrects its clock and retries.
  s.clockOffsetMs = 20 * 60_000;
  const from = s.requests.length;
  const corrected = await ec2Client(t, s, { maxAttempts: 2 }).send(new DescribeVolumesCommand({}));
  t.same(corrected.Volumes?.map((v) => v.VolumeId), ['vol-0000aaaa']);
  t.same(s.requests.slice(from).map((r) => r.errorCode ?? r.status), ['RequestExpired', 200], 'refused once, then accepted with the corrected clock');
  s.clockOffsetMs = 0;

  const raw = await fetch(s.endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'Action=DescribeVolumes&Version=2016-11-15' });
  t.equal(raw.status, 401, 'unsigned requests are refused');
  t.match(await raw.text(), /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>AuthFailure<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]+<\/RequestID><\/Response>$/);
});

t.test('the test server takes only each action\'s own parameters and well-formed IDs, with EC2\'s error codes', async (t) => {
  const s = await server(t);
  const a = await s.addInstance({ availabilityZone: ZONE });
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0000bbbb', availabilityZone: ZONE, tags: tags('b') });
  await s.attachDirect('vol-0000bbbb', a.id, '/dev/xvdu');
  const client = ec2Client(t, s);
  const byAttachment = await client.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [a.id] }] }));
  t.same(byAttachment.Volumes?.map((v) => [v.VolumeId, v.State, v.Attachments?.[0]?.Device, v.Attachments?.[0]?.State]), [['vol-0000bbbb', 'in-use', '/dev/xvdu', 'attached']]);
  const wildcard = await client.send(new DescribeVolumesCommand({ Filters: [{ Name: `tag:${NAME_TAG}`, Values: ['a/*'] }] }));
  t.same(wildcard.Volumes?.map((v) => v.VolumeId), ['vol-0000aaaa'], 'tag values with EC2 wildcards');

  const misspelled = ec2Client(t, s);
  beforeSigning(misspelled, (r) => { r.body = r.body.replace('MaxResults=', 'MaxResult='); });
  t.same(await failure(misspelled.send(new DescribeVolumesCommand({ MaxResults: 5 }))),
    { name: 'UnknownParameter', status: 400, message: 'The parameter MaxResult is not recognized' }, 'a misspelled parameter');
  const foreign = ec2Client(t, s);
  beforeSigning(foreign, (r) => { r.body += '&Device=%2Fdev%2Fxvdu'; });
  t.same(await failure(foreign.send(new DescribeVolumesCommand({}))),
    { name: 'UnknownParameter', status: 400, message: 'The parameter Device is not recognized' }, 'another action\'s parameter');
  t.same(await failure(client.send(new AttachVolumeCommand({ VolumeId: 'vol-0000aaaa', InstanceId: a.id } as AttachVolumeCommandInput))),
    { name: 'MissingParameter', status: 400, message: 'The request must contain the parameter Device' }, 'a required parameter left out');
  t.equal(s.volumes.get('vol-0000aaaa')!.attachments.length, 0);

  t.same(await failure(client.send(new DescribeVolumesCommand({ VolumeIds: ['vol-missing'] }))),
    { name: 'InvalidVolumeID.Malformed', status: 400, message: 'Invalid id: "vol-missing"' });
  t.same(await failure(client.send(new DescribeVolumesCommand({ VolumeIds: ['volume-1'] }))),
    { name: 'InvalidVolumeID.Malformed', status: 400, message: 'Invalid id: "volume-1" (expecting "vol-...")' });
  t.same(await failure(client.send(new DescribeVolumesCommand({ VolumeIds: ['vol-0000dead'] }))),
    { name: 'InvalidVolume.NotFound', status: 400, message: "The volume 'vol-0000dead' does not exist." }, 'well-formed but unknown is NotFound');
  t.same(await failure(client.send(new DescribeInstancesCommand({ InstanceIds: ['i-123'] }))),
    { name: 'InvalidInstanceID.Malformed', status: 400, message: 'Invalid id: "i-123"' });
  t.same(await failure(client.send(new AttachVolumeCommand({ VolumeId: 'vol-0000aaaa', InstanceId: 'i-123', Device: '/dev/xvdv' }))),
    { name: 'InvalidInstanceID.Malformed', status: 400, message: 'Invalid id: "i-123"' });

  t.same(await failure(client.send(new DescribeVolumesCommand({ MaxResults: 4 }))),
    { name: 'InvalidParameterValue', status: 400, message: 'Value ( 4 ) for parameter maxResults is invalid. Expecting a value greater than 5.' });
  t.same(await failure(client.send(new DescribeVolumesCommand({ VolumeIds: ['vol-0000aaaa'], MaxResults: 5 }))),
    { name: 'InvalidParameterCombination', status: 400, message: 'The parameter volumeSet cannot be used with the parameter maxResults' });
  const notANumber = ec2Client(t, s);
  beforeSigning(notANumber, (r) => { r.body = r.body.replace('MaxResults=5', 'MaxResults=five'); });
  t.match(await failure(notANumber.send(new DescribeVolumesCommand({ MaxResults: 5 }))), { name: 'InvalidParameterValue', status: 400 });
  t.same(await failure(client.send(new DescribeVolumesCommand({ Filters: [{ Name: 'nonsense', Values: ['x'] }] }))),
    { name: 'InvalidParameterValue', status: 400, message: "The filter 'nonsense' is invalid" });
  t.same(await failure(client.send(new AttachVolumeCommand({ VolumeId: 'vol-0000aaaa', InstanceId: a.id, Device: '/dev/xvdv', DryRun: true }))),
    { name: 'DryRunOperation', status: 412, message: 'Request would have succeeded, but DryRun flag is set.' });
  t.equal(s.volumes.get('vol-0000aaaa')!.attachments.length, 0, 'a dry run attaches nothing');

  // List indices are integers from 1; every index given is read, gaps or not.
  const twoFilters = [{ Name: 'availability-zone', Values: [ZONE] }, { Name: `tag:${NAME_TAG}`, Values: ['b/*'] }];
  const gap = ec2Client(t, s);
  beforeSigning(gap, (r) => { r.body = r.body.replaceAll('Filter.2.', 'Filter.5.'); });
  t.same((await gap.send(new DescribeVolumesCommand({ Filters: twoFilters }))).Volumes?.map((v) => v.VolumeId), ['vol-0000bbbb'], 'Filter.5 after Filter.1 still filters');
  const zero = ec2Client(t, s);
  beforeSigning(zero, (r) => { r.body = r.body.replaceAll('Filter.1.', 'Filter.0.'); });
  t.same(await failure(zero.send(new DescribeVolumesCommand({ Filters: twoFilters }))),
    { name: 'UnknownParameter', status: 400, message: 'The parameter Filter.0.Name is not recognized' });
  const valueOnly = ec2Client(t, s);
  beforeSigning(valueOnly, (r) => { r.body = r.body.replace(/&Filter\.2\.Name=[^&]*/, ''); });
  t.same(await failure(valueOnly.send(new DescribeVolumesCommand({ Filters: twoFilters }))),
    { name: 'MissingParameter', status: 400, message: 'The request must contain the parameter Filter.2.Name' });
});

t.test('the test server pages DescribeVolumes: MaxResults within 5..500, NextToken, bad tokens refused', async (t) => {
  const s = await server(t);
  for (let n = 1; n <= 501; n++) s.addVolume({ id: `vol-${n.toString(16).padStart(8, '0')}`, availabilityZone: ZONE, tags: tags(n % 2 ? 'a' : 'b') });
  const client = ec2Client(t, s);

  const all = await client.send(new DescribeVolumesCommand({}));
  t.equal(all.Volumes?.length, 501, 'without MaxResults, every volume at once');
  t.equal(all.NextToken, undefined);
  const capped = await client.send(new DescribeVolumesCommand({ MaxResults: 1000 }));
  t.equal(capped.Volumes?.length, 500, 'MaxResults above 500 gets 500');
  t.type(capped.NextToken, 'string');

  // The SDK's own paginator, five at a time over the 251 volumes of member a.
  const from = s.requests.length;
  const pages: number[] = [];
  const seen: string[] = [];
  for await (const page of paginateDescribeVolumes({ client, pageSize: 5 }, { Filters: [{ Name: `tag:${NAME_TAG}`, Values: ['a/*'] }] })) {
    pages.push(page.Volumes?.length ?? 0);
    seen.push(...(page.Volumes ?? []).map((v) => v.VolumeId ?? ''));
  }
  t.equal(pages.length, 51, '51 pages');
  t.ok(pages.slice(0, -1).every((n) => n === 5) && pages.at(-1) === 1, 'five a page, one on the last');
  t.equal(new Set(seen).size, 251, 'every volume once');
  const asked = s.requests.slice(from);
  t.ok(asked.every((r) => r.params.MaxResults === '5'), 'each page asked with MaxResults=5');
  t.same(asked.slice(1).map((r) => r.params.NextToken), asked.slice(0, -1).map((r) => r.nextToken), 'each request carried the previous reply\'s token');

  // Shorter pages than asked for, as EC2 may return: the token is what says more remain.
  s.pageLimit = 2;
  const short = await client.send(new DescribeVolumesCommand({ MaxResults: 500 }));
  t.equal(short.Volumes?.length, 2);
  t.type(short.NextToken, 'string');

  t.same(await failure(client.send(new DescribeVolumesCommand({ MaxResults: 5, NextToken: 'bogus' }))),
    { name: 'InvalidParameterValue', status: 400, message: 'Value ( bogus ) for parameter NextToken is invalid. The token is invalid.' });
  t.match(await failure(client.send(new DescribeVolumesCommand({ MaxResults: 5, NextToken: short.NextToken, Filters: [{ Name: 'availability-zone', Values: [ZONE] }] }))),
    { name: 'InvalidParameterValue', status: 400 }, 'a token from another query');
});

t.test('the candidate search reads every page: a free volume on page 2 is found', async (t) => {
  const s = await server(t);
  const me = await s.addInstance({ availabilityZone: ZONE });
  const other = await s.addInstance({ availabilityZone: ZONE });
  // EC2 returns them in this order, two a page: page 1 holds two volumes in use elsewhere, page 2 the free one.
  s.addVolume({ id: 'vol-0000000a', availabilityZone: ZONE, tags: tags('a') });
  s.addVolume({ id: 'vol-0000000b', availabilityZone: ZONE, tags: tags('b') });
  s.addVolume({ id: 'vol-0000000c', availabilityZone: ZONE, tags: tags('c') });
  await s.attachDirect('vol-0000000a', other.id, '/dev/xvdu');
  await s.attachDirect('vol-0000000b', other.id, '/dev/xvdv');
  s.pageLimit = 2;
  const claimed = await provider(t, s, me).claim();
  t.equal(claimed.id, 'vol-0000000c', 'the free volume on page 2');
  const search = s.requests.filter((r) => r.action === 'DescribeVolumes' && r.params['Filter.1.Name'] !== undefined);
  t.same(search.map((r) => r.answered?.map((v) => v.id)), [['vol-0000000a', 'vol-0000000b'], ['vol-0000000c']], 'two pages');
  t.same(search.map((r) => r.params.MaxResults), ['500', '500'], 'asked for pages of 500 (EC2\'s most for DescribeVolumes)');
  t.same(search.map((r) => r.params.NextToken), [undefined, search[0].nextToken], 'the second request carried the first reply\'s token');
  t.equal(search.at(-1)?.nextToken, undefined, 'and stopped at the reply without one');
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
  s.addVolume({ id: 'vol-0000aaaa', availabilityZone: ZONE, tags: volumeTags });
  s.addVolume({ id: 'vol-0000bbbb', availabilityZone: ZONE, tags: { ...volumeTags, 'kubernetes.io/cluster/c.example.com': 'shared', 'kubernetes.io/cluster/other': 'owned' } });
  await devices.add('vol-0000aaaa', 512); // sparse; etcd's WAL alone preallocates 64 MiB
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
  const mountPoint = join(area.mountRoot, 'master-vol-0000aaaa');
  t.equal((await mountedAt(mountPoint))?.source, devices.loops.get('vol-0000aaaa'), 'the attached volume is mounted at master-<volid>');
  t.ok(existsSync(join(mountPoint, 'etcd-manager-state.json')), 'the member state lives on the volume');
  t.same(s.volumes.get('vol-0000aaaa')!.attachments.map((a) => [a.instanceId, a.device]), [[me.id, '/dev/xvdu']]);
  t.equal(s.volumes.get('vol-0000bbbb')!.attachments.length, 0, 'the other cluster\'s volume is left alone');
  t.ok(manager.logs.some((l) => l.event === 'volume.claimed' && l.volume === 'vol-0000aaaa' && typeof l.reason === 'string'), 'the log says which volume and why');
  t.ok(manager.logs.some((l) => l.event === 'member.address-from-provider' && l.address === ip), `etcd listens on the instance's private IP from IMDS (${ip})`);
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
  t.ok(second.logs.some((l) => l.event === 'volume.claimed' && l.reason === 'already attached to this instance (restart)'));
  t.same(await second.stop(), { code: 0, signal: null });
});
