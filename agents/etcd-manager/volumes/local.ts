// The `local` provider: volumes are files in one directory, for bare metal
// and tests. Each volume <id> is either an ext4 image <id>.img (attached to a
// loop device and mounted at <mount-root>/master-<id>) or, where loop devices
// are refused, a plain directory <id>.d used in place. Its tags live in the
// sidecar <id>.tags.json; the holder's claim in <id>.claim.
//
// Claiming is link(2) of a fully written temp file onto <id>.claim: link fails
// with EEXIST when the name exists, atomically, so of two managers racing for
// one volume exactly one wins, and a reader never sees a half-written claim.
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, rmdir, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../../shared/log.js';
import {
  attachLoopDevice, detachLoopDevice, filesystemType, findLoopDevice, loopDevicesRefused, makeExt4, mount, mountedAt, unmount,
} from './blockdev.js';
import { LOCAL_VOLUME_ID as ID, localPaths, readJSONIfExists as readJSON, type ClaimRecord, type LocalVolumeFile } from '../../../shared/volumes/local-images.js';
import { matchesTags, parseNameTag, type Volume, type VolumeProvider } from './types.js';

export interface LocalProviderOptions {
  volumeDir: string;
  mountRoot: string;
  /** Who claims: a restarted manager with the same id gets its own volume back. */
  holder: string;
  tagFilters: string[];
  nameTag: string;
  log: Logger;
  /**
   * The instance metadata service (IMDSv2 shape), where instances have one (the
   * local cloud's do): this instance's address is then its `local-ipv4`.
   */
  metadata?: { get(path: string): Promise<string> };
}

interface Candidate {
  id: string;
  tags: Record<string, string>;
  availabilityZone?: string;
  kind: 'image' | 'directory';
  memberName: string;
  allMembers: string[];
  claim?: ClaimRecord;
}

export { createLocalVolume, localPaths, type ClaimRecord } from '../../../shared/volumes/local-images.js';

export class LocalVolumeProvider implements VolumeProvider {
  readonly name = 'local';
  private held?: Volume;

  /** Set only with instance metadata: without it the provider knows no address. */
  readonly localAddress?: () => Promise<string>;

  constructor(private readonly options: LocalProviderOptions) {
    const metadata = options.metadata;
    if (metadata) this.localAddress = () => metadata.get('local-ipv4');
  }

  private async candidates(): Promise<Candidate[]> {
    const { volumeDir, tagFilters, nameTag } = this.options;
    let names: string[];
    try {
      names = await readdir(volumeDir);
    } catch (err) {
      throw new Error(`local volumes: cannot list ${volumeDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const found: Candidate[] = [];
    for (const name of names.filter((n) => n.endsWith('.tags.json')).sort()) {
      const id = name.slice(0, -'.tags.json'.length);
      if (!ID.test(id)) continue;
      const paths = localPaths(volumeDir, id);
      const record = await readJSON<LocalVolumeFile>(paths.tags);
      const tags = record?.tags ?? {};
      if (!matchesTags(tags, tagFilters)) continue;
      const member = parseNameTag(tags[nameTag]);
      if (!member) {
        this.options.log.warn('volume matches the tags but has no usable name tag; ignored', { volume: id, nameTag });
        continue;
      }
      const kind = names.includes(`${id}.img`) ? 'image' : names.includes(`${id}.d`) ? 'directory' : undefined;
      if (!kind) continue;
      found.push({ id, tags, availabilityZone: record?.availabilityZone, kind, ...member, claim: await readJSON<ClaimRecord>(paths.claim) });
    }
    // Deterministic: by member name, then id.
    return found.sort((a, b) => (a.memberName < b.memberName ? -1 : a.memberName > b.memberName ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** true when this holder now owns the claim (newly, or already). */
  private async claim(id: string): Promise<boolean> {
    const paths = localPaths(this.options.volumeDir, id);
    const record: ClaimRecord = { holder: this.options.holder, host: hostname(), pid: process.pid, claimedAt: new Date().toISOString() };
    const temp = `${paths.claim}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(temp, JSON.stringify(record) + '\n');
    try {
      await link(temp, paths.claim);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const current = await readJSON<ClaimRecord>(paths.claim);
      return current?.holder === this.options.holder;
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  async acquire(): Promise<Volume> {
    if (this.held) return this.held;
    const { log, holder, metadata } = this.options;
    // Like EBS, a volume that has a zone is only for instances in that zone (known from the instance metadata).
    const zone = metadata ? await metadata.get('placement/availability-zone') : undefined;
    const all = (await this.candidates()).filter((c) => zone === undefined || c.availabilityZone === undefined || c.availabilityZone === zone);
    if (all.length === 0) {
      throw new Error(`local volumes: no volume in ${this.options.volumeDir} matches tags [${this.options.tagFilters.join(', ')}] with name tag ${this.options.nameTag}${zone ? ` in zone ${zone}` : ''}`);
    }
    const mine = all.filter((c) => c.claim?.holder === holder);
    if (mine.length > 1) {
      log.warn('this instance holds several volumes; using the first in order and leaving the others alone', { volumes: mine.map((c) => c.id) });
    }
    let chosen: Candidate | undefined;
    let reason = '';
    if (mine.length > 0) {
      chosen = mine[0];
      reason = 'already claimed by this instance';
    } else {
      const free = all.filter((c) => !c.claim);
      for (const candidate of free) {
        if (await this.claim(candidate.id)) {
          chosen = candidate;
          const lost = free.indexOf(candidate);
          reason = `first unclaimed candidate by (member, id) among ${all.length}` +
            (all.length - free.length > 0 ? `, ${all.length - free.length} held by others` : '') +
            (lost > 0 ? `, lost the race for ${lost} before it` : '');
          break;
        }
      }
    }
    if (!chosen) {
      const holders = all.map((c) => `${c.id}:${c.claim?.holder ?? 'just claimed by another'}`).join(', ');
      throw new Error(`local volumes: every candidate volume is claimed by another instance (${holders})`);
    }
    log.info('volume claimed', { event: 'volume.claimed', volume: chosen.id, member: chosen.memberName, reason, candidates: all.map((c) => c.id) });
    const mountPoint = chosen.kind === 'image' ? await this.mountImage(chosen.id) : localPaths(this.options.volumeDir, chosen.id).directory;
    if (chosen.kind === 'directory') log.warn('volume is a plain directory (loop devices refused when it was made); no filesystem isolation', { volume: chosen.id, mountPoint });
    this.held = {
      id: chosen.id,
      mountPoint,
      tags: chosen.tags,
      memberName: chosen.memberName,
      allMembers: chosen.allMembers,
      device: chosen.kind === 'image' ? await findLoopDevice(localPaths(this.options.volumeDir, chosen.id).image) : undefined,
    };
    return this.held;
  }

  private mountPointOf(id: string): string {
    return join(this.options.mountRoot, `master-${id}`);
  }

  private async mountImage(id: string): Promise<string> {
    const { log } = this.options;
    const image = localPaths(this.options.volumeDir, id).image;
    const refused = await loopDevicesRefused();
    if (refused) throw new Error(`volume ${id} is an image but loop devices are refused here: ${refused}`);
    const device = await attachLoopDevice(image);
    const mountPoint = this.mountPointOf(id);
    const current = await mountedAt(mountPoint);
    if (current) {
      if (current.source !== device) throw new Error(`${mountPoint} is already mounted from ${current.source}, not ${device}`);
      log.info('volume already mounted', { volume: id, device, mountPoint });
      return mountPoint;
    }
    const fsType = await filesystemType(device);
    if (fsType === undefined) {
      log.info('blank volume: formatting ext4', { volume: id, device });
      await makeExt4(device, `etcd-${id}`);
    } else if (fsType !== 'ext4') {
      throw new Error(`volume ${id} (${device}) holds a ${fsType} filesystem, not ext4; refusing to touch it`);
    }
    await mkdir(mountPoint, { recursive: true });
    await mount(device, mountPoint);
    log.info('volume mounted', { volume: id, device, mountPoint });
    return mountPoint;
  }

  async release(): Promise<void> {
    const held = this.held;
    if (!held) return;
    const paths = localPaths(this.options.volumeDir, held.id);
    if (held.device) {
      if (await mountedAt(held.mountPoint)) await unmount(held.mountPoint);
      await rmdir(held.mountPoint).catch(() => undefined);
      const device = await findLoopDevice(paths.image);
      if (device) await detachLoopDevice(device);
    }
    const claim = await readJSON<ClaimRecord>(paths.claim);
    if (claim?.holder === this.options.holder) await unlink(paths.claim);
    this.held = undefined;
    this.options.log.info('volume released', { volume: held.id });
  }
}
