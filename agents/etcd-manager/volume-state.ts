// What the volume remembers about its member: the cluster token (the etcd data
// lives in data/<token>) and the member name. A volume without this file is
// empty: it has never been part of a cluster.
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface VolumeState {
  clusterToken: string;
  memberName: string;
  etcdVersion: string;
  createdAt: string;
  /** member name → peer URLs, as the cluster was formed (absent: a one-member cluster of this member). */
  initialCluster?: Record<string, string[]>;
  /** 'existing' when the member joined a running cluster. */
  initialClusterState?: 'new' | 'existing';
  /** When a member that joined as a learner was first seen voting; until then it restarts quarantined. */
  votingSince?: string;
}

const FILE = 'etcd-manager-state.json';

export async function readVolumeState(mountPoint: string): Promise<VolumeState | undefined> {
  try {
    return JSON.parse(await readFile(join(mountPoint, FILE), 'utf8')) as VolumeState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${join(mountPoint, FILE)}: ${(err as Error).message}`);
  }
}

export async function writeVolumeState(mountPoint: string, state: VolumeState): Promise<void> {
  const path = join(mountPoint, FILE);
  await writeFile(`${path}.tmp`, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

export function newClusterToken(clusterName: string): string {
  return `${clusterName}-${randomBytes(8).toString('hex')}`;
}

export function etcdDataDir(mountPoint: string, clusterToken: string): string {
  return join(mountPoint, 'data', clusterToken);
}
