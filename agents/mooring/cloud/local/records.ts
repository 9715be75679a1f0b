// The local cloud's records on disk: cloud.json, and per instance instance.json
// (written before anything of the instance exists, removed last) and
// processes.json (the supervisor's view). Writes are temp file + rename.
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CloudLayout, instancePaths } from './plan.js';
import type { ProcessRecord } from './procs.js';

export interface CloudRecord {
  /** The host forwarder's port on 127.0.0.1 (the operator's S3 endpoint). */
  s3Port?: number;
  servers?: ProcessRecord;
  forwarder?: ProcessRecord;
  /** The single binary the daemons run and instances download. */
  binary: string;
  imageDir: string;
  createdAt: string;
}

export interface InstanceRecord {
  id: string;
  cluster: string;
  instanceGroup: string;
  role: string;
  zone: string;
  address: string;
  netns: string;
  veth: string;
  imageDir: string;
  createdAt: string;
  /** nspawn's lock of the root it booted, /run/systemd/nspawn/locks/inode-<dev>:<ino>; known once the overlay is mounted. */
  nspawnLock?: string;
}

export interface InstanceProcesses {
  supervisor?: ProcessRecord;
  nspawn?: ProcessRecord;
  /** The instance's PID 1 (nspawn's child). */
  leader?: ProcessRecord;
  boots: number;
  /** Set by the supervisor when it stops for good. */
  exited?: { code: number | null; signal: string | null; at: string };
}

export async function writeJSON(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  await rename(temp, path);
}

export async function readJSON<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

async function listDir(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function listClusters(layout: CloudLayout): Promise<string[]> {
  return listDir(layout.clustersDir);
}

/** Every instance record of one cluster (or of every cluster), by id. */
export async function listInstances(layout: CloudLayout, cluster?: string): Promise<InstanceRecord[]> {
  const clusters = cluster === undefined ? await listClusters(layout) : [cluster];
  const out: InstanceRecord[] = [];
  for (const c of clusters) {
    for (const id of await listDir(layout.instancesDir(c))) {
      const record = await readJSON<InstanceRecord>(instancePaths(layout.instanceDir(c, id)).record);
      if (record) out.push(record);
    }
  }
  return out;
}

export function instanceDirOf(layout: CloudLayout, record: Pick<InstanceRecord, 'cluster' | 'id'>): string {
  return layout.instanceDir(record.cluster, record.id);
}

export async function readProcesses(dir: string): Promise<InstanceProcesses> {
  return (await readJSON<InstanceProcesses>(instancePaths(dir).processes)) ?? { boots: 0 };
}

