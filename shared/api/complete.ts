// Completion: the user's spec plus every default kOps would infer, the way kOps
// infers it (upup/pkg/fi/cloudup/populate_cluster_spec.go): first kOps'
// assignments (networks, subnets, etcd members and retention, the API's public
// name, stores), then its option builders by Kubernetes version
// (shared/api/options/), with the user's own values merged over their result.
// Works on copies: the user's spec is stored apart from the result. The
// completed spec holds only fields kOps' v1alpha2 defines; what Mooring needs
// beyond them (etcd ports, the API's internal name) is returned beside it, for
// the node configs.
import { ExitCode, UserError } from '../errors.js';
import { cloudOf } from './cloud.js';
import { Defaults, derivedPodCIDR, derivedServiceCIDR, type EtcdPorts } from './defaults.js';
import { assignEtcdPorts, defaultEtcdMembers } from './etcd.js';
import { buildOptions, etcdVersionFor, LOCAL_CLOUD_ETCD_VERSION, newOptionsContext, OptionsError } from './options/index.js';
import { isObject, mergeInto, type JsonObject } from './options/merge.js';
import { canonicalQuantity, durationFlagValue } from './k8s-values.js';
import { COMPONENT_STRUCTS, componentFields } from './kops-flags.js';
import { SpecError } from './parse.js';
import { assignSubnetCIDRs, instanceGroupZones } from './subnets.js';
import { isControlPlane, type Cluster, type ClusterSpec, type InstanceGroup } from './types.js';

export { cloudOf } from './cloud.js';
export { newClusterObjects, type NewClusterOptions } from './newcluster.js';

export interface CompleteOptions {
  /** `<store URL>/<cluster name>`; spec.configBase wins when the user set it. */
  configBase?: string;
}

/** What nodes need that kOps derives in code rather than writing into the completed spec. */
export interface MooringSettings {
  /** Every etcd cluster's ports: kOps' well-known ones, the user's, or Mooring's next free ones. */
  etcdPorts: Record<string, EtcdPorts>;
  /** The API server's internal name (kOps: api.internal.<cluster>). */
  masterInternalName: string;
  /** Where this cluster differs from kOps on purpose, one line each, for `update`'s output. */
  notes: string[];
}

export interface CompletedObjects {
  cluster: Cluster;
  instanceGroups: InstanceGroup[];
  settings: MooringSettings;
}

/** The annotation that says, in the completed spec, where the local cloud differs from kOps. */
export const LOCAL_CLOUD_ANNOTATION = 'mooring.dev/local-cloud';

/** Fields Mooring reads in a user's spec that kOps' v1alpha2 does not define (moved or dropped by completion). */
const ETCD_PORT_FIELDS = ['clientPort', 'peerPort', 'grpcPort', 'quarantineClientPort'] as const;

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
  spec.kubernetesVersion = String(spec.kubernetesVersion ?? Defaults.kubernetesVersion).trim().replace(/^v(?=\d)/, '');
  adoptMooringNames(spec);
  assignNetworks(completed);
  completeSubnets(completed);
  const etcdPorts = completeEtcd(spec, groups);
  assignClusterDefaults(completed, configBase);
  // Groups that name only zones get their subnets first: kOps picks the API's access from them.
  for (const ig of groups) ig.spec.subnets ??= defaultGroupSubnets(ig, completed);
  assignAPIAccess(completed, groups);
  const settings: MooringSettings = {
    etcdPorts,
    masterInternalName: typeof spec.masterInternalName === 'string' && spec.masterInternalName !== '' ? spec.masterInternalName : `api.internal.${name}`,
    notes: [],
  };
  const userEtcdVersions = new Map((spec.etcdClusters ?? []).map((e) => [e.name, e.version]));
  // kOps' SpecBuilder: the control plane's kubelet starts as the nodes' kubelet with its own settings over it.
  const controlPlaneKubelet: JsonObject = structuredClone(isObject(spec.kubelet) ? spec.kubelet : {});
  if (isObject(spec.masterKubelet)) mergeInto(controlPlaneKubelet, spec.masterKubelet);
  spec.masterKubelet = controlPlaneKubelet;

  const ctx = newOptionsContext(completed, new Map(Object.entries(etcdPorts)));
  let result: Cluster;
  try {
    result = buildOptions(completed, ctx);
  } catch (err) {
    if (err instanceof OptionsError) invalid(completed, err.path, err);
    throw err;
  }
  canonicalValues(result);
  noteLocalCloud(result, userEtcdVersions, settings);
  for (const ig of groups) completeInstanceGroup(ig, result);
  return { cluster: result, instanceGroups: groups, settings };
}

function invalid(cluster: Cluster, path: string, err: unknown): never {
  throw new SpecError((err as Error).message, { source: `Cluster/${cluster.metadata.name}`, path });
}

/**
 * Mooring also reads kOps v1alpha3's names in a v1alpha2 object; the completed
 * spec says them the v1alpha2 way: controlPlaneKubelet → masterKubelet,
 * api.publicName → masterPublicName.
 */
function adoptMooringNames(spec: ClusterSpec): void {
  if (isObject(spec.controlPlaneKubelet)) {
    const merged: JsonObject = isObject(spec.masterKubelet) ? spec.masterKubelet : {};
    mergeInto(merged, spec.controlPlaneKubelet);
    spec.masterKubelet = merged;
  }
  delete spec.controlPlaneKubelet;
  if (isObject(spec.api) && typeof spec.api.publicName === 'string') {
    spec.masterPublicName ??= spec.api.publicName;
    delete spec.api.publicName;
  }
}

/** kOps' PerformAssignments and assignSubnets for the network ranges. */
function assignNetworks(cluster: Cluster): void {
  const spec = cluster.spec;
  // A shared VPC (networkID) has a range only the cloud knows: leave it unset.
  if (spec.networkCIDR === undefined && spec.networkID === undefined) spec.networkCIDR = Defaults.networkCIDR;
  // The AWS VPC CNI gives pods VPC addresses: nothing in the VPC is masqueraded.
  const amazonVPC = isObject(spec.networking) && spec.networking.amazonvpc !== undefined;
  if (spec.nonMasqueradeCIDR === undefined && amazonVPC && spec.networkCIDR !== undefined) spec.nonMasqueradeCIDR = spec.networkCIDR;
  spec.nonMasqueradeCIDR ??= Defaults.nonMasqueradeCIDR;
  const nonMasq = spec.nonMasqueradeCIDR;
  try {
    spec.podCIDR ??= derivedPodCIDR(nonMasq);
    if (spec.podCIDR === undefined) delete spec.podCIDR;
  } catch (err) {
    invalid(cluster, 'spec.nonMasqueradeCIDR', err);
  }
  // Never derived from nonMasqueradeCIDR: kOps' fixed 100.64.0.0/13 (IPv6: fd00:5e4f:ce::/108).
  spec.serviceClusterIPRange ??= derivedServiceCIDR(nonMasq);
  if (!spec.clusterDNSDomain) {
    const kubeDNS = isObject(spec.kubeDNS) ? spec.kubeDNS : {};
    const kubelet = isObject(spec.kubelet) ? spec.kubelet : {};
    spec.clusterDNSDomain = firstString(kubeDNS.domain, kubelet.clusterDomain) ?? Defaults.clusterDomain;
  }
}

function firstString(...values: unknown[]): string | undefined {
  return values.find((v): v is string => typeof v === 'string' && v !== '');
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

/** Members, retention (kOps' PerformAssignments) and ports; the ports leave the spec for the node configs. */
function completeEtcd(spec: ClusterSpec, groups: InstanceGroup[]): Record<string, EtcdPorts> {
  // An empty list is what kOps' omitempty turns into "absent": treat both alike.
  if (!spec.etcdClusters || spec.etcdClusters.length === 0) {
    const members = defaultEtcdMembers(groups.filter(isControlPlane), spec.subnets ?? []);
    spec.etcdClusters = ['main', 'events'].map((name) => ({ name, etcdMembers: structuredClone(members) }));
  }
  for (const etcd of spec.etcdClusters) {
    etcd.manager = { ...etcd.manager, backupRetentionDays: etcd.manager?.backupRetentionDays ?? Defaults.backupRetentionDays };
  }
  const withPorts = structuredClone(spec.etcdClusters);
  assignEtcdPorts(withPorts);
  const ports: Record<string, EtcdPorts> = {};
  for (const etcd of withPorts) {
    ports[etcd.name] = { clientPort: Number(etcd.clientPort), peerPort: Number(etcd.peerPort), grpcPort: Number(etcd.grpcPort), quarantineClientPort: Number(etcd.quarantineClientPort) };
  }
  for (const etcd of spec.etcdClusters) for (const field of ETCD_PORT_FIELDS) delete etcd[field];
  return ports;
}

/** The rest of kOps' assignments and v1alpha2 defaults that are not option builders. */
function assignClusterDefaults(cluster: Cluster, configBase: string): void {
  const spec = cluster.spec;
  const name = cluster.metadata.name;
  spec.channel ??= 'stable';
  // v1alpha2 defaults: public DNS, RBAC when authorization says nothing.
  if (!isObject(spec.topology)) spec.topology = {};
  const topology = spec.topology;
  if (!isObject(topology.dns)) topology.dns = {};
  const dns = topology.dns as JsonObject;
  if (!dns.type) dns.type = 'Public';
  if (!isObject(spec.authorization) || Object.keys(spec.authorization).length === 0) spec.authorization = { rbac: {} };
  if (dns.type === 'Public' && !spec.masterPublicName) spec.masterPublicName = `api.${name}`;
  spec.keyStore ??= `${configBase}/pki`;
  spec.secretStore ??= `${configBase}/secrets`;
  // IAMSpec.legacy has no omitempty: kOps writes it whenever iam is there.
  if (isObject(spec.iam) && spec.iam.legacy === undefined) spec.iam.legacy = false;
}

/**
 * kOps' completed spec writes every quantity and duration of a component section
 * the way Kubernetes marshals them (3.14 → 3140m, 1m → 1m0s).
 */
function canonicalValues(cluster: Cluster): void {
  const spec = cluster.spec as JsonObject;
  for (const [section, struct] of Object.entries(COMPONENT_STRUCTS)) {
    const value = spec[section];
    if (!isObject(value)) continue;
    for (const [field, facts] of Object.entries(componentFields(struct))) {
      const v = value[field];
      if (typeof v !== 'string' && typeof v !== 'number') continue;
      try {
        if (facts.kind === 'quantity') value[field] = canonicalQuantity(String(v));
        else if (facts.kind === 'duration') value[field] = durationFlagValue(String(v));
      } catch {
        // validation reports a malformed value
      }
    }
  }
}

/**
 * kOps: with neither api.dns nor api.loadBalancer, the API is reached by DNS when
 * the control plane sits in public subnets, through a load balancer (public,
 * classic on AWS) when in private ones; both: the load balancer.
 */
function assignAPIAccess(cluster: Cluster, groups: InstanceGroup[]): void {
  const spec = cluster.spec;
  const api: JsonObject = isObject(spec.api) ? spec.api : {};
  if (api.dns === undefined && api.loadBalancer === undefined) {
    const types = new Map((spec.subnets ?? []).map((s) => [s.name, s.type]));
    const apiServers = groups.some((g) => g.spec.role === 'APIServer');
    for (const ig of groups) {
      if (!(ig.spec.role === 'APIServer' || (!apiServers && isControlPlane(ig)))) continue;
      for (const subnet of ig.spec.subnets ?? []) {
        if (types.get(subnet) === 'Private') api.loadBalancer = {};
        else if (types.get(subnet) === 'Public') api.dns = {};
      }
    }
    if (api.loadBalancer !== undefined) delete api.dns;
  }
  if (isObject(api.loadBalancer)) {
    api.loadBalancer.type ??= 'Public';
    if (cloudOf(cluster) === 'aws') api.loadBalancer.class ??= 'Classic';
  }
  if (Object.keys(api).length > 0 || spec.api !== undefined) spec.api = api;
}

/** The local cloud installs Debian's etcd offline: its default version, said in the spec and by `update`. */
function noteLocalCloud(cluster: Cluster, userVersions: Map<string, string | undefined>, settings: MooringSettings): void {
  if (cloudOf(cluster) !== 'local') return;
  const defaulted = (cluster.spec.etcdClusters ?? []).filter((e) => !userVersions.get(e.name) && e.version === LOCAL_CLOUD_ETCD_VERSION);
  if (defaulted.length === 0) return;
  const ctx = newOptionsContext({ ...cluster, spec: { ...cluster.spec, cloudProvider: 'aws' } }, new Map());
  const kops = etcdVersionFor(ctx);
  const note = `etcd ${LOCAL_CLOUD_ETCD_VERSION} for ${defaulted.map((e) => `"${e.name}"`).join(', ')}: the local cloud installs Debian 12's etcd-server package offline; kOps would use etcd ${kops} for Kubernetes ${cluster.spec.kubernetesVersion}`;
  settings.notes.push(note);
  cluster.metadata.annotations = { ...(isObject(cluster.metadata.annotations) ? (cluster.metadata.annotations as Record<string, string>) : {}), [LOCAL_CLOUD_ANNOTATION]: note };
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
