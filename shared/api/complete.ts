// Completion: the user's spec plus every default kOps would infer (reference
// §2). Works on a deep copy: the user's spec is stored apart from the result.
import { ExitCode, UserError } from '../errors.js';
import { cloudOf } from './cloud.js';
import { Defaults, derivedDNSIP, derivedPodCIDR, derivedServiceCIDR } from './defaults.js';
import { assignEtcdPorts, defaultEtcdMembers } from './etcd.js';
import { SpecError } from './parse.js';
import { assignSubnetCIDRs, instanceGroupZones } from './subnets.js';
import { isControlPlane, type Cluster, type ClusterSpec, type InstanceGroup } from './types.js';

export { cloudOf } from './cloud.js';
export { newClusterObjects, type NewClusterOptions } from './newcluster.js';

export interface CompleteOptions {
  /** `<store URL>/<cluster name>`; spec.configBase wins when the user set it. */
  configBase?: string;
}

export interface CompletedObjects {
  cluster: Cluster;
  instanceGroups: InstanceGroup[];
}

/**
 * Fills every default into copies of the objects. Expects a spec that passed
 * validateCluster; what it cannot complete (no configBase, no room for a
 * subnet) is a UserError with exit code InvalidSpec.
 */
export function completeCluster(cluster: Cluster, instanceGroups: InstanceGroup[], options: CompleteOptions = {}): CompletedObjects {
  const completed = structuredClone(cluster);
  const groups = structuredClone(instanceGroups);
  const spec = completed.spec;
  const name = completed.metadata.name;
  const configBase = (spec.configBase ?? options.configBase)?.replace(/\/+$/, '');
  if (!configBase) {
    throw new UserError(`cannot complete cluster "${name}": no configBase (set spec.configBase or give the state store)`, ExitCode.InvalidSpec);
  }
  spec.configBase = configBase;
  spec.kubernetesVersion = String(spec.kubernetesVersion ?? Defaults.kubernetesVersion).replace(/^v(?=\d)/, '');
  completeNetworks(completed);
  completeSubnets(completed);
  completeEtcd(spec, groups, configBase);
  completeComponents(completed);
  for (const ig of groups) completeInstanceGroup(ig, completed);
  return { cluster: completed, instanceGroups: groups };
}

function invalid(cluster: Cluster, path: string, err: unknown): never {
  throw new SpecError((err as Error).message, { source: `Cluster/${cluster.metadata.name}`, path });
}

function completeNetworks(cluster: Cluster): void {
  const spec = cluster.spec;
  // A shared VPC (networkID) has a range only the cloud knows: leave it unset.
  if (spec.networkCIDR === undefined && spec.networkID === undefined) spec.networkCIDR = Defaults.networkCIDR;
  spec.nonMasqueradeCIDR ??= Defaults.nonMasqueradeCIDR;
  const nonMasq = spec.nonMasqueradeCIDR;
  try {
    spec.podCIDR ??= derivedPodCIDR(nonMasq);
    spec.serviceClusterIPRange ??= derivedServiceCIDR(nonMasq);
  } catch (err) {
    invalid(cluster, 'spec.nonMasqueradeCIDR', err);
  }
  const clusterDomain = stringOr(spec.clusterDNSDomain, spec.kubeDNS?.domain ?? spec.kubelet?.clusterDomain ?? Defaults.clusterDomain);
  spec.clusterDNSDomain = clusterDomain;
  let dnsIP: string;
  try {
    dnsIP = spec.kubeDNS?.serverIP ?? derivedDNSIP(spec.serviceClusterIPRange);
  } catch (err) {
    invalid(cluster, 'spec.serviceClusterIPRange', err);
  }
  spec.kubeDNS = { provider: 'CoreDNS', ...spec.kubeDNS, serverIP: dnsIP, domain: spec.kubeDNS?.domain ?? clusterDomain };
  spec.kubelet = { ...spec.kubelet, clusterDNS: spec.kubelet?.clusterDNS ?? dnsIP, clusterDomain: spec.kubelet?.clusterDomain ?? clusterDomain };
  // Control-plane kubelet overrides (v1alpha2 masterKubelet, v1alpha3 controlPlaneKubelet) get the same DNS when present.
  for (const key of ['masterKubelet', 'controlPlaneKubelet'] as const) {
    const kubelet = spec[key];
    if (kubelet) spec[key] = { ...kubelet, clusterDNS: kubelet.clusterDNS ?? dnsIP, clusterDomain: kubelet.clusterDomain ?? clusterDomain };
  }
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' && value !== '' ? value : fallback;
}

function completeSubnets(cluster: Cluster): void {
  const spec = cluster.spec;
  if (!spec.subnets || spec.networkCIDR === undefined) return;
  let full: number;
  try {
    full = assignSubnetCIDRs(spec.subnets, spec.networkCIDR);
  } catch (err) {
    invalid(cluster, 'spec.networkCIDR', err);
  }
  if (full >= 0) {
    invalid(cluster, `spec.subnets[${full}].cidr`, new Error(`no free range left in networkCIDR ${spec.networkCIDR}`));
  }
}

function completeEtcd(spec: ClusterSpec, groups: InstanceGroup[], configBase: string): void {
  // An empty list is what kOps' omitempty turns into "absent": treat both alike.
  if (!spec.etcdClusters || spec.etcdClusters.length === 0) {
    const members = defaultEtcdMembers(groups.filter(isControlPlane), spec.subnets ?? []);
    spec.etcdClusters = ['main', 'events'].map((name) => ({ name, etcdMembers: structuredClone(members) }));
  }
  for (const etcd of spec.etcdClusters) {
    etcd.version ??= Defaults.etcdVersion;
    etcd.backups = { ...etcd.backups, backupStore: etcd.backups?.backupStore ?? `${configBase}/backups/etcd/${etcd.name}` };
    etcd.manager = { ...etcd.manager, backupRetentionDays: etcd.manager?.backupRetentionDays ?? Defaults.backupRetentionDays };
  }
  assignEtcdPorts(spec.etcdClusters);
}

function completeComponents(cluster: Cluster): void {
  const spec = cluster.spec;
  const name = cluster.metadata.name;
  const etcd = spec.etcdClusters ?? [];
  const main = etcd.find((e) => e.name === 'main');
  const events = etcd.find((e) => e.name === 'events');
  const api = { ...spec.kubeAPIServer };
  if (main) api.etcdServers ??= [`https://127.0.0.1:${main.clientPort}`];
  if (events) api.etcdServersOverrides ??= [`/events#https://127.0.0.1:${events.clientPort}`];
  api.serviceClusterIPRange ??= spec.serviceClusterIPRange;
  api.securePort ??= Defaults.apiServerSecurePort;
  api.allowPrivileged ??= true;
  spec.kubeAPIServer = api;
  spec.masterInternalName ??= `api.internal.${name}`;
  spec.masterPublicName ??= spec.api?.publicName ?? `api.${name}`;
  spec.api = { ...spec.api, publicName: spec.api?.publicName ?? spec.masterPublicName };
  spec.kubeProxy = { ...spec.kubeProxy, clusterCIDR: spec.kubeProxy?.clusterCIDR ?? spec.podCIDR };
  spec.kubeControllerManager = {
    ...spec.kubeControllerManager,
    clusterCIDR: spec.kubeControllerManager?.clusterCIDR ?? spec.podCIDR,
    clusterName: spec.kubeControllerManager?.clusterName ?? name,
  };
  spec.containerd = { ...spec.containerd, version: spec.containerd?.version ?? Defaults.containerdVersion };
}

/** kOps taints control-plane nodes unless the group says otherwise. */
export const CONTROL_PLANE_TAINT = 'node-role.kubernetes.io/control-plane=:NoSchedule';

function completeInstanceGroup(ig: InstanceGroup, cluster: Cluster): void {
  const spec = ig.spec;
  const single = isControlPlane(ig) || spec.role === 'Bastion';
  const defaultSize = single ? Defaults.controlPlaneSize : Defaults.nodeSize;
  // Each size defaults independently, but never so that min > max.
  if (spec.minSize === undefined) spec.minSize = Math.min(defaultSize, spec.maxSize ?? defaultSize);
  if (spec.maxSize === undefined) spec.maxSize = Math.max(defaultSize, spec.minSize);
  const cloud = cloudOf(cluster);
  if (Object.hasOwn(Defaults.machineType, cloud)) spec.machineType ??= Defaults.machineType[cloud];
  spec.image ??= Defaults.image;
  spec.subnets ??= defaultGroupSubnets(ig, cluster);
  if (isControlPlane(ig)) spec.taints ??= [CONTROL_PLANE_TAINT];
}

/**
 * The cluster subnets in the group's zones (all zones when it names none).
 * Utility subnets are for load balancers and bastions: bastions get them when
 * there are any, other groups never.
 */
function defaultGroupSubnets(ig: InstanceGroup, cluster: Cluster): string[] {
  const subnets = cluster.spec.subnets ?? [];
  const zones = instanceGroupZones(ig, subnets);
  const inZones = subnets.filter((s) => zones.length === 0 || (s.zone !== undefined && zones.includes(s.zone)));
  const utility = inZones.filter((s) => s.type === 'Utility');
  const others = inZones.filter((s) => s.type !== 'Utility');
  const chosen = ig.spec.role === 'Bastion' && utility.length > 0 ? utility : others;
  return chosen.map((s) => s.name);
}
