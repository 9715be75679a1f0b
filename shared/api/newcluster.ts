// What `mooring create cluster` writes: the user's spec, shaped like the one
// `kops create cluster` writes (subnet per zone, control-plane and node groups
// per zone, etcd clusters main and events listing their members).
import { ExitCode, UserError } from '../errors.js';
import { Defaults } from './defaults.js';
import { defaultEtcdMembers } from './etcd.js';
import { DNS_NAME_RULE, isDNSLabel, isDNSName, KUBERNETES_VERSION } from './names.js';
import { assignSubnetCIDRs } from './subnets.js';
import { API_VERSION, type Cluster, type ClusterSubnetSpec, type InstanceGroup, type InstanceGroupRole } from './types.js';

export interface NewClusterOptions {
  name: string;
  zones: string[];
  controlPlaneCount: number;
  nodeCount: number;
  cloud: 'aws' | 'local';
  kubernetesVersion?: string;
}

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

function checkOptions(o: NewClusterOptions): void {
  if (!isDNSName(o.name)) throw usage(`invalid cluster name ${JSON.stringify(o.name)} (want ${DNS_NAME_RULE})`);
  if (o.zones.length === 0) throw usage('at least one zone is required');
  const seen = new Set<string>();
  for (const zone of o.zones) {
    if (!isDNSLabel(zone)) throw usage(`invalid zone ${JSON.stringify(zone)} (want a lowercase DNS label such as us-east-1a)`);
    if (seen.has(zone)) throw usage(`zone ${JSON.stringify(zone)} is listed twice`);
    seen.add(zone);
  }
  if (!Number.isInteger(o.controlPlaneCount) || o.controlPlaneCount < 1) {
    throw usage(`control-plane count must be a whole number of at least 1 (got ${o.controlPlaneCount})`);
  }
  if (!Number.isInteger(o.nodeCount) || o.nodeCount < 0) {
    throw usage(`node count must be a whole number of at least 0 (got ${o.nodeCount})`);
  }
  if (o.kubernetesVersion !== undefined && !KUBERNETES_VERSION.test(o.kubernetesVersion)) {
    throw usage(`invalid Kubernetes version ${JSON.stringify(o.kubernetesVersion)} (want e.g. ${Defaults.kubernetesVersion})`);
  }
}

function newGroup(cluster: string, name: string, role: InstanceGroupRole, zone: string, size: number, cloud: string): InstanceGroup {
  return {
    apiVersion: API_VERSION,
    kind: 'InstanceGroup',
    metadata: { name, labels: { 'kops.k8s.io/cluster': cluster } },
    spec: {
      role,
      image: Defaults.image,
      machineType: Defaults.machineType[cloud],
      minSize: size,
      maxSize: size,
      nodeLabels: { 'kops.k8s.io/instancegroup': name },
      subnets: [zone],
    },
  };
}

/**
 * Control-plane groups of size 1 spread round-robin over the zones; when there
 * are more than zones, every name gets its round (`control-plane-us-east-1a-2`),
 * as kOps does. Nodes are split evenly over the zones (the first zones take the
 * remainder); zones left with no node get no group.
 */
export function newClusterObjects(options: NewClusterOptions): { cluster: Cluster; instanceGroups: InstanceGroup[] } {
  checkOptions(options);
  const { name, zones, cloud } = options;
  const subnets: ClusterSubnetSpec[] = zones.map((zone) => ({ name: zone, zone, type: 'Public' }));
  if (assignSubnetCIDRs(subnets, Defaults.networkCIDR) >= 0) {
    throw usage(`too many zones (${zones.length}): networkCIDR ${Defaults.networkCIDR} has room for 8 zone subnets`);
  }

  const controlPlane: InstanceGroup[] = [];
  const rounds = options.controlPlaneCount > zones.length;
  for (let i = 0; i < options.controlPlaneCount; i++) {
    const zone = zones[i % zones.length];
    const igName = `control-plane-${zone}${rounds ? `-${1 + Math.floor(i / zones.length)}` : ''}`;
    controlPlane.push(newGroup(name, igName, 'ControlPlane', zone, 1, cloud));
  }
  const nodes: InstanceGroup[] = [];
  zones.forEach((zone, i) => {
    const count = Math.floor(options.nodeCount / zones.length) + (i < options.nodeCount % zones.length ? 1 : 0);
    if (count > 0) nodes.push(newGroup(name, `nodes-${zone}`, 'Node', zone, count, cloud));
  });

  const members = defaultEtcdMembers(controlPlane, subnets);
  const etcdCluster = (etcdName: string, cpuRequest: string) => ({
    name: etcdName,
    cpuRequest,
    memoryRequest: '100Mi',
    manager: { backupRetentionDays: Defaults.backupRetentionDays },
    etcdMembers: structuredClone(members),
  });
  const cluster: Cluster = {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name },
    spec: {
      cloudProvider: cloud,
      kubernetesVersion: (options.kubernetesVersion ?? Defaults.kubernetesVersion).replace(/^v/, ''),
      networkCIDR: Defaults.networkCIDR,
      nonMasqueradeCIDR: Defaults.nonMasqueradeCIDR,
      subnets,
      etcdClusters: [etcdCluster('main', '200m'), etcdCluster('events', '100m')],
    },
  };
  return { cluster, instanceGroups: [...controlPlane, ...nodes] };
}
