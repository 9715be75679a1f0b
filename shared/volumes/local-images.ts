// The `local` volume format, shared by who makes volumes (mooring's local
// cloud, tests) and who claims them (etcd-manager's `local` provider): in one
// directory, each volume <id> is an ext4 image <id>.img (blank until its first
// mount) or, where loop devices are refused, a plain directory <id>.d; its tags
// are in the sidecar <id>.tags.json, and the holder's claim in <id>.claim.
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { loopDevicesRefused } from './blockdev.js';

export interface ClaimRecord {
  holder: string;
  host: string;
  pid: number;
  claimedAt: string;
}

export const LOCAL_VOLUME_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const localPaths = (dir: string, id: string) => ({
  image: join(dir, `${id}.img`),
  directory: join(dir, `${id}.d`),
  tags: join(dir, `${id}.tags.json`),
  claim: join(dir, `${id}.claim`),
});

/** Creates a volume: a sparse blank image (formatted on first mount), or a directory where loop devices are refused. */
export async function createLocalVolume(options: {
  volumeDir: string;
  id: string;
  tags: Record<string, string>;
  /** Sparse; etcd's WAL alone preallocates 64 MiB. Default 512. */
  sizeMiB?: number;
  /** Like an EBS volume's zone: only instances in this zone may claim it (when they know their zone). */
  availabilityZone?: string;
  kind?: 'image' | 'directory' | 'auto';
}): Promise<'image' | 'directory'> {
  if (!LOCAL_VOLUME_ID.test(options.id)) throw new Error(`invalid volume id ${JSON.stringify(options.id)}`);
  const paths = localPaths(options.volumeDir, options.id);
  await mkdir(options.volumeDir, { recursive: true });
  let kind = options.kind ?? 'auto';
  if (kind === 'auto') kind = (await loopDevicesRefused()) === undefined ? 'image' : 'directory';
  if (kind === 'image') {
    const made = await execa('truncate', ['-s', `${options.sizeMiB ?? 512}M`, paths.image], { reject: false });
    if (made.exitCode !== 0) throw new Error(`truncate ${paths.image}: ${String(made.stderr)}`);
  } else {
    await mkdir(paths.directory, { recursive: true });
  }
  // Written last: a volume without its record is not a candidate yet.
  const record: LocalVolumeFile = { tags: options.tags, ...(options.availabilityZone ? { availabilityZone: options.availabilityZone } : {}) };
  await writeFile(`${paths.tags}.tmp`, JSON.stringify(record, null, 2) + '\n');
  await rename(`${paths.tags}.tmp`, paths.tags);
  return kind;
}

export async function readJSONIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/** What <id>.tags.json holds. */
export interface LocalVolumeFile {
  tags?: Record<string, string>;
  availabilityZone?: string;
}

export interface LocalVolumeRecord {
  id: string;
  tags: Record<string, string>;
  availabilityZone?: string;
  kind: 'image' | 'directory' | 'none';
  claim?: ClaimRecord;
}

/** Every volume in the directory that has its tags record, in id order. */
export async function listLocalVolumes(volumeDir: string): Promise<LocalVolumeRecord[]> {
  let names: string[];
  try {
    names = await readdir(volumeDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: LocalVolumeRecord[] = [];
  for (const name of names.filter((n) => n.endsWith('.tags.json')).sort()) {
    const id = name.slice(0, -'.tags.json'.length);
    if (!LOCAL_VOLUME_ID.test(id)) continue;
    const paths = localPaths(volumeDir, id);
    const record = await readJSONIfExists<LocalVolumeFile>(paths.tags);
    const kind = names.includes(`${id}.img`) ? 'image' : names.includes(`${id}.d`) ? 'directory' : 'none';
    out.push({ id, tags: record?.tags ?? {}, availabilityZone: record?.availabilityZone, kind, claim: await readJSONIfExists<ClaimRecord>(paths.claim) });
  }
  return out;
}

/**
 * Gives up every claim `holder` has in the directory: what a cloud does to the
 * volumes of an instance that is gone (EBS detaches them). Returns the volume ids.
 */
export async function releaseClaimsOf(volumeDir: string, holder: string): Promise<string[]> {
  const released: string[] = [];
  for (const volume of await listLocalVolumes(volumeDir)) {
    if (volume.claim?.holder !== holder) continue;
    await unlink(localPaths(volumeDir, volume.id).claim).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    released.push(volume.id);
  }
  return released;
}
