// What `mooring update cluster --yes` does on the local cloud, after the state
// store is written: find (the cluster's volumes and instances) → diff (against
// the completed spec: one volume per etcd member, minSize..maxSize instances per
// group) → apply (create volumes, replace stopped instances, launch missing
// ones from the group's stored user-data, terminate surplus ones).
import { instanceGroupZones } from '../../../../shared/api/subnets.js';
import { StorePaths, type Cluster, type InstanceGroup } from '../../../../shared/api/types.js';
import type { StateStore } from '../../../../shared/store/types.js';
import type { InstanceView, LocalCloud, VolumeSpec } from './cloud.js';

export interface LocalClusterPlan {
  volumesToCreate: VolumeSpec[];
  /** Stopped instances (their machine died): terminated and replaced. */
  toReplace: InstanceView[];
  toLaunch: Array<{ instanceGroup: InstanceGroup; zone: string }>;
  toTerminate: InstanceView[];
}

/** kOps' etcd volume tags, the same as on EBS. */
export function etcdVolumes(cluster: Cluster, groups: InstanceGroup[]): VolumeSpec[] {
  const name = cluster.metadata.name;
  // Zonal, like EBS: the instance in a member's zone gets that member's main *and* events volume.
  const zoneOf = (ig: string | undefined) => {
    const group = groups.find((g) => g.metadata.name === ig);
    return group ? instanceGroupZones(group, cluster.spec.subnets ?? [])[0] : undefined;
  };
  return (cluster.spec.etcdClusters ?? []).flatMap((etcd) => {
    const all = etcd.etcdMembers.map((m) => m.name);
    return etcd.etcdMembers.map((member) => ({
      id: `${member.name}.etcd-${etcd.name}`,
      availabilityZone: zoneOf(member.instanceGroup),
      tags: {
        [`k8s.io/etcd/${etcd.name}`]: `${member.name}/${all.join(',')}`,
        'k8s.io/role/control-plane': '1',
        [`kubernetes.io/cluster/${name}`]: 'owned',
      },
    }));
  });
}

export async function planLocalCluster(cloud: LocalCloud, cluster: Cluster, groups: InstanceGroup[]): Promise<LocalClusterPlan> {
  const name = cluster.metadata.name;
  const existingVolumes = new Set((await cloud.volumes(name)).map((v) => v.id));
  const instances = await cloud.instances(name);
  const plan: LocalClusterPlan = {
    volumesToCreate: etcdVolumes(cluster, groups).filter((v) => !existingVolumes.has(v.id)),
    toReplace: instances.filter((i) => i.state === 'stopped'),
    toLaunch: [],
    toTerminate: [],
  };
  for (const ig of groups) {
    const zones = instanceGroupZones(ig, cluster.spec.subnets ?? []);
    const live = instances.filter((i) => i.instanceGroup === ig.metadata.name && i.state !== 'stopped').sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    const min = ig.spec.minSize ?? 1;
    const max = Math.max(ig.spec.maxSize ?? min, min);
    for (let n = live.length; n < min; n++) plan.toLaunch.push({ instanceGroup: ig, zone: zones[n % Math.max(zones.length, 1)] ?? 'local-a' });
    plan.toTerminate.push(...live.slice(max).reverse());
  }
  // Instances of groups that no longer exist.
  const groupNames = new Set(groups.map((g) => g.metadata.name));
  plan.toTerminate.push(...instances.filter((i) => !groupNames.has(i.instanceGroup) && i.state !== 'stopped'));
  return plan;
}

export function describeLocalPlan(plan: LocalClusterPlan): string[] {
  return [
    ...plan.volumesToCreate.map((v) => `volume ${v.id}: create (${Object.entries(v.tags).map(([k, val]) => `${k}=${val}`).join(', ')})`),
    ...plan.toReplace.map((i) => `instance ${i.id} (${i.instanceGroup}): stopped, terminate and replace`),
    ...plan.toLaunch.map((l) => `instance of ${l.instanceGroup.metadata.name} in ${l.zone}: launch`),
    ...plan.toTerminate.map((i) => `instance ${i.id} (${i.instanceGroup}): terminate (above maxSize or group gone)`),
  ];
}

/**
 * User-data as a cloud takes it: the stored form is the script, or gzip as
 * base64 once it is past 16 KiB; the metadata service hands out the bytes
 * (gzip stays gzip: cloud-init, and our stand-in, unpack it).
 */
export function userDataBytes(stored: Buffer): Buffer {
  const text = stored.toString('utf8');
  if (text.startsWith('#!')) return stored;
  const decoded = Buffer.from(text.trim(), 'base64');
  if (decoded[0] === 0x1f && decoded[1] === 0x8b) return decoded;
  throw new Error('stored user-data is neither a script nor gzip+base64');
}

export async function applyLocalCluster(cloud: LocalCloud, clusterStore: StateStore, cluster: Cluster, plan: LocalClusterPlan, say: (line: string) => void): Promise<void> {
  const name = cluster.metadata.name;
  for (const id of await cloud.ensureVolumes(name, plan.volumesToCreate)) say(`created volume ${id}`);
  for (const instance of plan.toReplace) {
    await cloud.terminate(name, instance.id, { force: true });
    say(`terminated stopped instance ${instance.id} (${instance.instanceGroup})`);
  }
  for (const launch of plan.toLaunch) {
    const ig = launch.instanceGroup.metadata.name;
    const stored = await clusterStore.read(StorePaths.userData(ig));
    const record = await cloud.launch({ cluster: name, instanceGroup: ig, role: launch.instanceGroup.spec.role, zone: launch.zone, userData: userDataBytes(stored) });
    say(`launched instance ${record.id} (${ig}, ${launch.zone}, ${record.address})`);
  }
  for (const instance of plan.toTerminate) {
    await cloud.terminate(name, instance.id, { force: false });
    say(`terminated instance ${instance.id} (${instance.instanceGroup})`);
  }
}
