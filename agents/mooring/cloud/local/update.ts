// `update cluster` and `delete cluster` for clusters with `cloudProvider: local`.
// The local cloud takes part only when it serves the state store being used
// (s3://mooring through its forwarder): instances can read nothing else. With
// another store (a file:// one, say) the store is written as before, and a note
// says that no instance was started and why.
import { fetchSha256, type HashAnswer } from '../../../../shared/api/assets.js';
import { cloudOf as cloudProviderOf } from '../../../../shared/api/cloud.js';
import type { Cluster, InstanceGroup } from '../../../../shared/api/types.js';
import { configureLogging, logger } from '../../../../shared/log.js';
import type { StateStore } from '../../../../shared/store/types.js';
import type { AgentBinary } from '../../agent-binary.js';
import type { StoredCluster } from '../../cluster-repository.js';
import type { CliIO } from '../../io.js';
import { applyLocalCluster, describeLocalPlan, planLocalCluster } from './cluster.js';
import { cloudDirFrom, LocalCloud } from './cloud.js';
import { mirrorHash, publishAgent } from './mirror.js';
import { MIRROR_URL } from './plan.js';

export interface LocalUpdate {
  cloud: LocalCloud;
  /** The agent binary as the mirror serves it (unless --agent-url was given). */
  agent?: AgentBinary;
  /** The stored cluster with the mirror as its fileRepository when the user set none. */
  stored: StoredCluster;
  /** The mirror's own hash of each of its files, or why it leaves one out (resolveNodeAssets' mirrorHash). */
  mirrorHash: (url: string) => Promise<HashAnswer | undefined>;
}

function localCloud(io: CliIO): LocalCloud {
  if (!io.env.MOORING_LOG_LEVEL) configureLogging({ level: 'warn' });
  return new LocalCloud(cloudDirFrom(undefined, io.env), logger('local-cloud'));
}

export function isLocalCluster(cluster: Cluster): boolean {
  return cloudProviderOf(cluster) === 'local';
}

/** The local cloud serving this store, or a note saying why none takes part. */
export async function prepareLocalUpdate(store: StateStore, io: CliIO, stored: StoredCluster, resolved: AgentBinary): Promise<LocalUpdate | { note: string }> {
  const cloud = localCloud(io);
  if (!(await cloud.servesStore(store.baseURL, io.env))) {
    return {
      note: `note: cluster "${stored.cluster.object.metadata.name}" is on the local cloud, but no running local cloud (${cloud.layout.dir}) serves the state store ${store.baseURL}: the store is updated, no instance is started (start one with "mooring local-cloud up" and use the state store it prints)`,
    };
  }
  await cloud.requireUp();
  // This very binary (no --agent-url): instances cannot read the host's file, so the mirror serves a copy.
  const agent: AgentBinary | undefined =
    resolved.source === 'self' ? await publishAgent(cloud.layout.mirrorDir, process.execPath, resolved.sha256).then((a) => ({ urls: [a.url], sha256: a.sha256, source: 'self' as const })) : undefined;
  const cluster = stored.cluster.object;
  const withMirror = cluster.spec.assets?.fileRepository
    ? stored
    : { ...stored, cluster: { ...stored.cluster, object: { ...cluster, spec: { ...cluster.spec, assets: { ...cluster.spec.assets, fileRepository: MIRROR_URL } } } } };
  return {
    cloud,
    agent,
    stored: withMirror,
    // The host never sends a packet to the mirror's address: its hashes are read from its files.
    // Its files are built here (etcd's tarball from Debian's binaries), so their hashes are its own, not the table's.
    mirrorHash: async (url) => (url.startsWith(`${MIRROR_URL}/`) ? mirrorHash(cloud.layout.mirrorDir, url).then((a) => ('sha256' in a ? a.sha256 : a)) : undefined),
  };
}

/** After the store is written (or planned): the cluster's volumes and instances. */
export async function updateLocalCluster(local: LocalUpdate, clusterStore: StateStore, completed: { cluster: Cluster; instanceGroups: InstanceGroup[] }, apply: boolean, io: CliIO): Promise<void> {
  const plan = await planLocalCluster(local.cloud, completed.cluster, completed.instanceGroups);
  const lines = describeLocalPlan(plan);
  if (lines.length === 0) {
    io.out(`Local cloud: the volumes and instances of "${completed.cluster.metadata.name}" are as the spec wants.\n`);
    return;
  }
  if (!apply) {
    io.out(`\nLocal cloud (${local.cloud.layout.dir}), will:\n${lines.map((l) => `  ${l}\n`).join('')}`);
    return;
  }
  io.out(`\nLocal cloud (${local.cloud.layout.dir}):\n`);
  await applyLocalCluster(local.cloud, clusterStore, completed.cluster, plan, (line) => io.out(`  ${line}\n`));
}

/**
 * `delete cluster --yes` with this cloud's store: the cluster's instances,
 * volumes and everything they held, from the cloud's records, also when the
 * store no longer has the cluster (a crashed or interrupted run). A cluster of
 * the same name in another store is not this one: left alone.
 */
export async function deleteLocalCluster(store: StateStore, name: string, io: CliIO): Promise<boolean> {
  const cloud = localCloud(io);
  if (!(await cloud.clusters()).includes(name) || !(await cloud.servesStore(store.baseURL, io.env))) return false;
  const released = await cloud.deleteCluster(name);
  for (const r of released) io.out(`local cloud: released ${r}\n`);
  return true;
}
