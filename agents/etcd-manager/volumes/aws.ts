// The `aws` provider: etcd volumes are EBS volumes found by kOps' tags in this
// instance's availability zone, attached on a free /dev/xvdu–xvdz, formatted
// only when blank and mounted at <mount-root>/master-<volume id>.
//
// Who holds a volume is EC2's attachment record: AttachVolume on a volume that
// is not `available` fails (VolumeInUse / IncorrectState), so of two instances
// racing for one volume exactly one wins, and the loser moves on to the next
// candidate. Candidates are tried in volume-id order, so racing instances
// converge instead of colliding at random. A restarted manager finds the
// volume already attached to its own instance and uses it again without a
// second AttachVolume.
import { mkdir, realpath, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
// Types only here: the SDK (~0.5 s to load) is imported when the provider first
// talks to EC2, so managers using the local or static provider never load it.
import type { EC2Client, Filter, Volume as EC2Volume } from '@aws-sdk/client-ec2';
type EC2SDK = typeof import('@aws-sdk/client-ec2');
import type { Logger } from '../../../shared/log.js';
import { firstFreeDevice, waitForDevice } from './aws-devices.js';
import { allPages } from './aws-pages.js';
import { isIP } from 'node:net';
import { InstanceMetadata, networkReason, type InstanceIdentity, type MetadataOptions } from './aws-imds.js';
import { filesystemType, makeExt4, mount, mountedAt, unmount } from './blockdev.js';
import { matchesTags, parseNameTag, type Volume, type VolumeProvider } from './types.js';

export interface AwsProviderOptions {
  /**
   * The Kubernetes cluster: volumes must carry kubernetes.io/cluster/<name>=owned.
   * (Not etcd-manager's --cluster-name, which kOps sets to etcd / etcd-events.)
   */
  kubernetesClusterName: string;
  /** --volume-tag: `key` or `key=value`, all must match. */
  tagFilters: string[];
  /** --volume-name-tag, e.g. k8s.io/etcd/main; its value is `<member>/<all members>`. */
  nameTag: string;
  mountRoot: string;
  log: Logger;
  /** EC2 endpoint; default: the SDK's (AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, else the region's). */
  endpoint?: string;
  /** Default: AWS_REGION / AWS_DEFAULT_REGION, else the instance's region from the IMDS. */
  region?: string;
  /** Default: the SDK's chain (env, profile, the instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  metadata?: MetadataOptions;
  /** Where device nodes are looked up (`<root>/disk/by-id/nvme-…`, `<root>/xvdu`). Default MOORING_AWS_DEVICE_ROOT, else /dev (tests point it elsewhere). */
  deviceRoot?: string;
  /** How long an attachment may stay `attaching`. Default 5 min. */
  attachTimeoutMs?: number;
  /** How long after `attached` the block device may take to show up. Default 2 min. */
  deviceTimeoutMs?: number;
  /** DescribeVolumes polling while waiting. Default 2 s. */
  pollIntervalMs?: number;
  /** Per EC2 request (connect + reply). Default 10 s. */
  requestTimeoutMs?: number;
  /** SDK attempts per EC2 call. Default 3. */
  maxAttempts?: number;
}

interface Candidate {
  id: string;
  tags: Record<string, string>;
  memberName: string;
  allMembers: string[];
  state: string;
  attachments: { instanceId: string; device: string; state: string }[];
}

/** A volume attached to this instance, before its device is looked up and mounted. */
export interface ClaimedVolume {
  id: string;
  /** The attachment's device name as EC2 knows it (/dev/xvdu…). */
  ec2Device: string;
  instanceId: string;
  tags: Record<string, string>;
  memberName: string;
  allMembers: string[];
  /** Why this one: for logs and tests. */
  reason: string;
}

interface Held {
  volume: Volume;
  ec2Device: string;
}

/**
 * MaxResults for the candidate search: EC2's largest for DescribeVolumes (it
 * takes 5–500). Asking for pages at all is what EC2 recommends (unpaged
 * describes are throttled and time out with many volumes); the replies may
 * still be shorter, so every NextToken is followed.
 */
const DESCRIBE_VOLUMES_PAGE_SIZE = 500;

const LOST_RACE = new Set(['VolumeInUse', 'IncorrectState', 'InvalidVolume.NotFound', 'InvalidVolume.ZoneMismatch']);

function errorCode(err: unknown): string {
  if (!(err instanceof Error)) return 'Error';
  const code = (err as NodeJS.ErrnoException).code;
  // The SDK names connect-phase failures TimeoutError too; a reset connection is not a timeout.
  if (err.name === 'TimeoutError' && code && code !== 'ETIMEDOUT') return code;
  return err.name !== 'Error' ? err.name : code ?? 'Error';
}

function tagsOf(volume: EC2Volume): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const tag of volume.Tags ?? []) if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? '';
  return tags;
}

export class AwsVolumeProvider implements VolumeProvider {
  readonly name = 'aws';
  private readonly metadata: InstanceMetadata;
  private identityCache?: InstanceIdentity;
  private client?: EC2Client;
  private sdk?: EC2SDK;
  private connecting?: Promise<{ client: EC2Client; sdk: EC2SDK }>;
  private region?: string;
  private held?: Held;

  constructor(private readonly options: AwsProviderOptions) {
    if (!options.kubernetesClusterName) throw new Error('aws volumes: the Kubernetes cluster name is required');
    if (!options.nameTag) throw new Error('aws volumes: the volume name tag is required (--volume-name-tag)');
    this.metadata = new InstanceMetadata(options.metadata);
  }

  /** This instance, from the IMDS (cached). */
  /** The instance's private IPv4 from instance metadata (kOps' etcd-manager advertises this one too). */
  async localAddress(): Promise<string> {
    const ip = await this.metadata.get('local-ipv4');
    if (isIP(ip) !== 4) throw new Error(`instance metadata: local-ipv4 ${JSON.stringify(ip)} is not an IPv4 address`);
    return ip;
  }

  async identity(): Promise<InstanceIdentity> {
    return (this.identityCache ??= await this.metadata.identity());
  }

  private endpointText(): string {
    return this.options.endpoint || process.env.AWS_ENDPOINT_URL_EC2 || process.env.AWS_ENDPOINT_URL || `the EC2 endpoint of ${this.region ?? 'the region'}`;
  }

  /** One client per provider, made on first use (concurrent callers share it; a failed start is retried next time). */
  private ec2(): Promise<{ client: EC2Client; sdk: EC2SDK }> {
    this.connecting ??= this.connect().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private async connect(): Promise<{ client: EC2Client; sdk: EC2SDK }> {
    const region = this.options.region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || (await this.identity()).region;
    this.region = region;
    const sdk = (this.sdk ??= await import('@aws-sdk/client-ec2'));
    this.client = new sdk.EC2Client({
      region,
      ...(this.options.endpoint ? { endpoint: this.options.endpoint } : {}),
      ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
      maxAttempts: this.options.maxAttempts ?? 3,
      requestHandler: {
        connectionTimeout: Math.min(this.options.requestTimeoutMs ?? 10_000, 5_000),
        requestTimeout: this.options.requestTimeoutMs ?? 10_000,
        throwOnRequestTimeout: true,
      },
    });
    return { client: this.client, sdk };
  }

  /** Runs one EC2 call; failures name the action, the endpoint and EC2's code. */
  private async call<T>(action: string, run: (client: EC2Client, sdk: EC2SDK) => Promise<T>): Promise<T> {
    const { client, sdk } = await this.ec2();
    try {
      return await run(client, sdk);
    } catch (err) {
      const code = errorCode(err);
      const detail = code === 'TimeoutError'
        ? `no reply within ${this.options.requestTimeoutMs ?? 10_000} ms (${this.options.maxAttempts ?? 3} attempts)`
        : err instanceof Error ? err.message || networkReason(err) : String(err);
      throw Object.assign(new Error(`aws volumes: EC2 ${action} at ${this.endpointText()}: ${code}: ${detail}`, { cause: err }), { ec2Code: code });
    }
  }

  private filters(availabilityZone: string): Filter[] {
    const filters: Filter[] = [
      { Name: 'availability-zone', Values: [availabilityZone] },
      { Name: `tag:kubernetes.io/cluster/${this.options.kubernetesClusterName}`, Values: ['owned'] },
      { Name: 'tag-key', Values: [this.options.nameTag] },
    ];
    for (const filter of this.options.tagFilters) {
      const eq = filter.indexOf('=');
      filters.push(eq === -1 ? { Name: 'tag-key', Values: [filter] } : { Name: `tag:${filter.slice(0, eq)}`, Values: [filter.slice(eq + 1)] });
    }
    return filters;
  }

  private describeFilters(availabilityZone: string): string {
    return this.filters(availabilityZone).map((f) => `${f.Name}=${(f.Values ?? []).join('|')}`).join(', ');
  }

  private toCandidate(volume: EC2Volume): Candidate | undefined {
    const tags = tagsOf(volume);
    if (!volume.VolumeId) return undefined;
    if (tags[`kubernetes.io/cluster/${this.options.kubernetesClusterName}`] !== 'owned' || !matchesTags(tags, this.options.tagFilters)) return undefined;
    const member = parseNameTag(tags[this.options.nameTag]);
    if (!member) {
      this.options.log.warn('volume matches the tags but has no usable name tag; ignored', { volume: volume.VolumeId, nameTag: this.options.nameTag });
      return undefined;
    }
    return {
      id: volume.VolumeId,
      tags,
      ...member,
      state: volume.State ?? 'unknown',
      attachments: (volume.Attachments ?? []).map((a) => ({ instanceId: a.InstanceId ?? '', device: a.Device ?? '', state: a.State ?? 'unknown' })),
    };
  }

  /** Every volume of this cluster and etcd cluster in this zone, by id, from every page EC2 returns. */
  private async candidates(identity: InstanceIdentity): Promise<Candidate[]> {
    const filters = this.filters(identity.availabilityZone);
    const volumes = await allPages(`aws volumes: EC2 DescribeVolumes at ${this.endpointText()}`, async (nextToken) => {
      const page = await this.call('DescribeVolumes', (c, sdk) => c.send(new sdk.DescribeVolumesCommand({ Filters: filters, MaxResults: DESCRIBE_VOLUMES_PAGE_SIZE, NextToken: nextToken })));
      return { items: page.Volumes ?? [], nextToken: page.NextToken };
    });
    // Pages are not a snapshot: a volume can show up on two of them.
    const found = new Map<string, Candidate>();
    for (const volume of volumes) {
      // The filters do this already; checked again so a loose endpoint cannot hand us a stranger's disk.
      if (volume.AvailabilityZone !== identity.availabilityZone) continue;
      const candidate = this.toCandidate(volume);
      if (candidate) found.set(candidate.id, candidate);
    }
    return [...found.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** One volume by id (not paged: EC2 returns every named id at once and refuses MaxResults with ids). */
  private async describeVolume(id: string): Promise<EC2Volume | undefined> {
    try {
      const out = await this.call('DescribeVolumes', (c, sdk) => c.send(new sdk.DescribeVolumesCommand({ VolumeIds: [id] })));
      return out.Volumes?.find((v) => v.VolumeId === id);
    } catch (err) {
      if ((err as { ec2Code?: string }).ec2Code === 'InvalidVolume.NotFound') return undefined;
      throw err;
    }
  }

  /** Device names in this instance's block device mappings (by id, so one reply: no paging). */
  private async usedDevices(instanceId: string): Promise<string[]> {
    const out = await this.call('DescribeInstances', (c, sdk) => c.send(new sdk.DescribeInstancesCommand({ InstanceIds: [instanceId] })));
    const instance = out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
    if (!instance) throw new Error(`aws volumes: EC2 DescribeInstances at ${this.endpointText()} does not know this instance ${instanceId}`);
    return (instance.BlockDeviceMappings ?? []).map((m) => m.DeviceName ?? '').filter((d) => d !== '');
  }

  /**
   * Attaches on the first free device; 'lost' when another instance got the
   * volume first. A device taken between our look and our attach (the other
   * etcd cluster's manager on this instance) is skipped and the next one tried.
   */
  private async attach(identity: InstanceIdentity, volumeId: string): Promise<{ device: string } | { lost: string }> {
    const skip: string[] = [];
    for (;;) {
      const used = await this.usedDevices(identity.instanceId);
      const device = firstFreeDevice(used, skip);
      if (!device) {
        throw new Error(`aws volumes: no free device among /dev/xvdu–/dev/xvdz on ${identity.instanceId} for ${volumeId} (in use: ${[...used, ...skip].join(', ')})`);
      }
      try {
        await this.call('AttachVolume', (c, sdk) => c.send(new sdk.AttachVolumeCommand({ VolumeId: volumeId, InstanceId: identity.instanceId, Device: device })));
        return { device };
      } catch (err) {
        const code = (err as { ec2Code?: string }).ec2Code ?? '';
        // A reply lost on the way (and the SDK's retry then told "in use"), or
        // a network failure after EC2 acted: the volume may be ours already.
        // Taking the next candidate then would attach two volumes to one member.
        const ours = await this.describeVolume(volumeId).then(
          (v) => v?.Attachments?.find((a) => a.InstanceId === identity.instanceId && a.State !== 'detaching' && a.State !== 'detached'),
          () => undefined,
        );
        if (ours) {
          this.options.log.warn('AttachVolume failed but the volume is attached to this instance; keeping it', { volume: volumeId, error: (err as Error).message });
          return { device: ours.Device ?? device };
        }
        if (LOST_RACE.has(code)) return { lost: (err as Error).message };
        if (code === 'InvalidParameterValue' && /already in use|attachment point/i.test((err as Error).message)) {
          this.options.log.info('device taken meanwhile; trying the next one', { volume: volumeId, device });
          skip.push(device);
          continue;
        }
        throw err;
      }
    }
  }

  /** Polls until this instance's attachment is `attached`; 'lost' when the volume went to another instance. */
  private async waitAttached(identity: InstanceIdentity, volumeId: string): Promise<{ device: string } | { lost: string }> {
    const timeoutMs = this.options.attachTimeoutMs ?? 300_000;
    const deadline = Date.now() + timeoutMs;
    let last = 'unknown';
    for (;;) {
      const volume = await this.describeVolume(volumeId);
      if (!volume) return { lost: `volume ${volumeId} no longer exists` };
      const mine = volume.Attachments?.find((a) => a.InstanceId === identity.instanceId);
      if (!mine) {
        const other = volume.Attachments?.find((a) => a.InstanceId);
        return { lost: other ? `attached to ${other.InstanceId} instead` : `attachment to ${identity.instanceId} disappeared (volume is ${volume.State})` };
      }
      last = mine.State ?? 'unknown';
      if (last === 'attached') return { device: mine.Device ?? '' };
      if (last === 'detaching' || last === 'detached') return { lost: `attachment is ${last}` };
      if (Date.now() >= deadline) {
        throw new Error(`aws volumes: ${volumeId} did not reach "attached" on ${identity.instanceId} within ${timeoutMs} ms (still ${last})`);
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.pollIntervalMs ?? 2000));
    }
  }

  /**
   * Finds this instance's volume and makes sure it is attached here: the one
   * already attached (a restart), else the first available candidate by id
   * that this instance wins. No device lookup, no mount.
   */
  async claim(): Promise<ClaimedVolume> {
    const { log, kubernetesClusterName: clusterName } = this.options;
    const identity = await this.identity();
    let all = await this.candidates(identity);
    const where = `cluster ${clusterName}, zone ${identity.availabilityZone}, filters ${this.describeFilters(identity.availabilityZone)}`;
    if (all.length === 0) throw new Error(`aws volumes: no EBS volume matches (${where})`);

    const attachedHere = (c: Candidate) => c.attachments.some((a) => a.instanceId === identity.instanceId && (a.state === 'attached' || a.state === 'attaching'));
    const detachingHere = (c: Candidate) => c.attachments.some((a) => a.instanceId === identity.instanceId && a.state === 'detaching');
    // A volume still detaching from this instance was this member's a moment ago
    // (a release just before a restart): wait for it and take it back rather than
    // another member's volume.
    const wasMine = new Set<string>();
    if (!all.some(attachedHere) && all.some(detachingHere)) {
      for (const candidate of all.filter(detachingHere)) {
        log.info('a volume of this instance is still detaching; waiting for it before choosing', { volume: candidate.id });
        await this.waitDetached(identity, candidate.id);
        wasMine.add(candidate.id);
      }
      all = await this.candidates(identity);
    }
    const mine = all.filter(attachedHere);
    if (mine.length > 1) {
      log.warn('several candidate volumes are attached to this instance; using the first by id and leaving the others alone', { volumes: mine.map((c) => c.id) });
    }
    const tried: string[] = [];
    let chosen: { candidate: Candidate; device: string; reason: string } | undefined;
    for (const candidate of mine) {
      const waited = await this.waitAttached(identity, candidate.id);
      if ('device' in waited) {
        chosen = { candidate, device: waited.device, reason: 'already attached to this instance (restart)' };
        break;
      }
      tried.push(`${candidate.id}: ${waited.lost}`);
    }
    if (!chosen) {
      const free = all.filter((c) => c.state === 'available' && c.attachments.length === 0);
      // Stable sort: the volume this instance just gave up first, then by id.
      free.sort((a, b) => Number(wasMine.has(b.id)) - Number(wasMine.has(a.id)));
      for (const candidate of all.filter((c) => !free.includes(c) && !mine.includes(c))) {
        const holder = candidate.attachments.map((a) => `${a.instanceId} (${a.state})`).join(', ');
        tried.push(`${candidate.id}: ${candidate.state}${holder ? `, attached to ${holder}` : ''}`);
      }
      for (const [index, candidate] of free.entries()) {
        const attached = await this.attach(identity, candidate.id);
        if ('lost' in attached) {
          log.info('lost the attach race for a volume; trying the next candidate', { volume: candidate.id, reason: attached.lost });
          tried.push(`${candidate.id}: lost the race (${attached.lost})`);
          continue;
        }
        log.info('volume attaching', { volume: candidate.id, device: attached.device, instance: identity.instanceId });
        const waited = await this.waitAttached(identity, candidate.id);
        if ('lost' in waited) {
          tried.push(`${candidate.id}: ${waited.lost}`);
          continue;
        }
        chosen = {
          candidate,
          device: waited.device || attached.device,
          reason: (wasMine.has(candidate.id) ? 'detached from this instance just before; taken back' : `first available candidate by volume id among ${all.length}`) +
            (all.length - free.length > 0 ? `, ${all.length - free.length} attached elsewhere` : '') +
            (index > 0 ? `, lost the race for ${index} before it` : ''),
        };
        break;
      }
    }
    if (!chosen) {
      throw new Error(`aws volumes: no candidate volume could be attached to ${identity.instanceId} (${where}): ${tried.join('; ')}`);
    }
    const { candidate, device, reason } = chosen;
    log.info('volume claimed', {
      event: 'volume.claimed',
      volume: candidate.id, member: candidate.memberName, device, instance: identity.instanceId, reason, candidates: all.map((c) => c.id),
    });
    return { id: candidate.id, ec2Device: device, instanceId: identity.instanceId, tags: candidate.tags, memberName: candidate.memberName, allMembers: candidate.allMembers, reason };
  }

  async acquire(): Promise<Volume> {
    if (this.held) return this.held.volume;
    const claimed = await this.claim();
    const found = await waitForDevice({
      deviceRoot: this.options.deviceRoot || process.env.MOORING_AWS_DEVICE_ROOT || '/dev',
      volumeId: claimed.id,
      device: claimed.ec2Device,
      timeoutMs: this.options.deviceTimeoutMs ?? 120_000,
      pollMs: Math.min(this.options.pollIntervalMs ?? 250, 250),
    });
    this.options.log.info('volume device found', { volume: claimed.id, path: found.path, device: found.device });
    const mountPoint = await this.mountVolume(claimed.id, found.device);
    this.held = {
      ec2Device: claimed.ec2Device,
      volume: { id: claimed.id, mountPoint, tags: claimed.tags, memberName: claimed.memberName, allMembers: claimed.allMembers, device: found.device },
    };
    return this.held.volume;
  }

  private async mountVolume(id: string, device: string): Promise<string> {
    const { log } = this.options;
    const mountPoint = join(this.options.mountRoot, `master-${id}`);
    const current = await mountedAt(mountPoint);
    if (current) {
      const source = await realpath(current.source).catch(() => current.source);
      if (source !== device) throw new Error(`aws volumes: ${mountPoint} is already mounted from ${current.source}, not ${device} (volume ${id})`);
      log.info('volume already mounted', { volume: id, device, mountPoint });
      return mountPoint;
    }
    const fsType = await filesystemType(device);
    if (fsType === undefined) {
      log.info('blank volume: formatting ext4', { volume: id, device });
      await makeExt4(device, `etcd-${id.replace(/^vol-/, '')}`);
    } else if (fsType !== 'ext4') {
      throw new Error(`aws volumes: volume ${id} (${device}) holds a ${fsType} filesystem, not ext4; refusing to touch it`);
    }
    await mkdir(mountPoint, { recursive: true });
    await mount(device, mountPoint);
    log.info('volume mounted', { volume: id, device, mountPoint });
    return mountPoint;
  }

  /** Polls until the volume has no attachment to this instance. */
  private async waitDetached(identity: InstanceIdentity, volumeId: string): Promise<void> {
    const timeoutMs = this.options.attachTimeoutMs ?? 300_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const current = await this.describeVolume(volumeId);
      if (!current?.Attachments?.some((a) => a.InstanceId === identity.instanceId)) return;
      if (Date.now() >= deadline) throw new Error(`aws volumes: ${volumeId} still attached to ${identity.instanceId} after ${timeoutMs} ms of detaching`);
      await new Promise((resolve) => setTimeout(resolve, this.options.pollIntervalMs ?? 2000));
    }
  }

  async release(): Promise<void> {
    const held = this.held;
    if (!held) return;
    const { volume } = held;
    if (await mountedAt(volume.mountPoint)) await unmount(volume.mountPoint);
    await rmdir(volume.mountPoint).catch(() => undefined);
    const identity = await this.identity();
    try {
      await this.call('DetachVolume', (c, sdk) => c.send(new sdk.DetachVolumeCommand({ VolumeId: volume.id, InstanceId: identity.instanceId, Device: held.ec2Device })));
    } catch (err) {
      // Already detached (by an operator, say): nothing left to give up.
      if ((err as { ec2Code?: string }).ec2Code !== 'IncorrectState') throw err;
    }
    await this.waitDetached(identity, volume.id);
    this.held = undefined;
    this.options.log.info('volume released', { volume: volume.id });
  }

  /** Closes the SDK client's sockets. */
  destroy(): void {
    this.client?.destroy();
    this.client = undefined;
    this.connecting = undefined;
  }
}
