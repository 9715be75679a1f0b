// kops.k8s.io/v1alpha2 Cluster and InstanceGroup: the subset Mooring reads.
// Every object type carries an index signature so that fields we do not model
// (anything `kops get cluster -o yaml` writes) survive a round trip untouched.

export const API_VERSION = 'kops.k8s.io/v1alpha2';

export interface ObjectMeta {
  name: string;
  creationTimestamp?: string | null;
  labels?: Record<string, string>;
  [extra: string]: unknown;
}

export interface EtcdMemberSpec {
  name: string;
  instanceGroup: string;
  encryptedVolume?: boolean;
  volumeType?: string;
  volumeSize?: number;
  [extra: string]: unknown;
}

export interface EtcdClusterSpec {
  name: string;
  version?: string;
  etcdMembers: EtcdMemberSpec[];
  cpuRequest?: string;
  memoryRequest?: string;
  backups?: { backupStore?: string; [extra: string]: unknown };
  manager?: { backupRetentionDays?: number; env?: Array<{ name: string; value: string }>; [extra: string]: unknown };
  /**
   * Mooring additions a user may set (kOps derives ports in code). Completion moves
   * them out of the completed spec into the node configs (MooringSettings.etcdPorts).
   */
  clientPort?: number;
  peerPort?: number;
  grpcPort?: number;
  quarantineClientPort?: number;
  [extra: string]: unknown;
}

export interface ClusterSubnetSpec {
  name: string;
  zone?: string;
  cidr?: string;
  type?: 'Public' | 'Private' | 'Utility' | string;
  [extra: string]: unknown;
}

export interface KubeAPIServerConfig {
  etcdServers?: string[];
  etcdServersOverrides?: string[];
  serviceClusterIPRange?: string;
  securePort?: number;
  allowPrivileged?: boolean;
  [extra: string]: unknown;
}

export interface KubeletConfigSpec {
  clusterDNS?: string;
  clusterDomain?: string;
  [extra: string]: unknown;
}

export interface ClusterSpec {
  /** Newer kOps writes `cloudProvider: {aws: {}}`; older kOps writes `cloudProvider: aws`. */
  cloudProvider?: string | Record<string, unknown>;
  configBase?: string;
  kubernetesVersion?: string;
  /** An existing VPC; its range is then known only to the cloud. */
  networkID?: string;
  networkCIDR?: string;
  additionalNetworkCIDRs?: string[];
  nonMasqueradeCIDR?: string;
  podCIDR?: string;
  serviceClusterIPRange?: string;
  clusterDNSDomain?: string;
  /** `key=value` sysctls for every node. */
  sysctlParameters?: string[];
  subnets?: ClusterSubnetSpec[];
  etcdClusters?: EtcdClusterSpec[];
  kubeAPIServer?: KubeAPIServerConfig;
  kubelet?: KubeletConfigSpec;
  masterKubelet?: KubeletConfigSpec;
  /** kOps v1alpha3's name for masterKubelet, read as it (completion moves it there). */
  controlPlaneKubelet?: KubeletConfigSpec;
  kubeDNS?: { serverIP?: string; domain?: string; provider?: string; [extra: string]: unknown };
  kubeProxy?: { clusterCIDR?: string; [extra: string]: unknown };
  kubeControllerManager?: { clusterCIDR?: string; clusterName?: string; [extra: string]: unknown };
  containerd?: { version?: string; [extra: string]: unknown };
  /** kOps' asset mirror: nodes download release files from `fileRepository` (shared/api/assets.ts). */
  assets?: { fileRepository?: string; containerRegistry?: string; [extra: string]: unknown };
  /** `publicName` is kOps v1alpha3's name, read as v1alpha2's masterPublicName (completion moves it there). */
  api?: { dns?: Record<string, unknown>; loadBalancer?: Record<string, unknown>; publicName?: string; [extra: string]: unknown };
  masterPublicName?: string;
  masterInternalName?: string;
  networking?: Record<string, unknown>;
  topology?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface Cluster {
  apiVersion: typeof API_VERSION | string;
  kind: 'Cluster';
  metadata: ObjectMeta;
  spec: ClusterSpec;
  [extra: string]: unknown;
}

/** kOps v1alpha2 accepts both Master (old) and ControlPlane (new) for control-plane groups. */
export type InstanceGroupRole = 'ControlPlane' | 'Master' | 'Node' | 'Bastion' | 'APIServer';
export const INSTANCE_GROUP_ROLES: readonly InstanceGroupRole[] = ['ControlPlane', 'Master', 'Node', 'Bastion', 'APIServer'];

export interface InstanceGroupSpec {
  role: InstanceGroupRole;
  machineType?: string;
  image?: string;
  minSize?: number;
  maxSize?: number;
  subnets?: string[];
  zones?: string[];
  nodeLabels?: Record<string, string>;
  taints?: string[];
  /** `key=value` sysctls for this group's nodes; they win over the cluster's. */
  sysctlParameters?: string[];
  rootVolumeSize?: number;
  [extra: string]: unknown;
}

export interface InstanceGroup {
  apiVersion: typeof API_VERSION | string;
  kind: 'InstanceGroup';
  metadata: ObjectMeta;
  spec: InstanceGroupSpec;
  [extra: string]: unknown;
}

export type ApiObject = Cluster | InstanceGroup;

/** The folder name kOps uses under igconfig/ for a role. */
export function roleFolder(role: InstanceGroupRole): 'control-plane' | 'node' | 'bastion' | 'apiserver' {
  switch (role) {
    case 'ControlPlane':
    case 'Master':
      return 'control-plane';
    case 'Node':
      return 'node';
    case 'Bastion':
      return 'bastion';
    case 'APIServer':
      return 'apiserver';
  }
}

export function isControlPlane(ig: InstanceGroup): boolean {
  return ig.spec.role === 'ControlPlane' || ig.spec.role === 'Master';
}

/** The state-store paths of kOps' layout, relative to the cluster's folder. */
export const StorePaths = {
  config: 'config',
  instanceGroup: (ig: string) => `instancegroup/${ig}`,
  instanceGroupDir: 'instancegroup/',
  completedSpec: 'cluster-completed.spec',
  keyset: (id: string) => `pki/private/${id}/keyset.yaml`,
  issued: (id: string) => `pki/issued/${id}/keyset.yaml`,
  secret: (name: string) => `secrets/${name}`,
  nodeupConfig: (role: InstanceGroupRole, ig: string) => `igconfig/${roleFolder(role)}/${ig}/nodeupconfig.yaml`,
  etcdClusterSpec: (etcd: string) => `backups/etcd/${etcd}/control/etcd-cluster-spec`,
  userData: (ig: string) => `userdata/${ig}.sh`,
  /** kOps' additional objects: other Kubernetes objects kept with the cluster (kops create -f). */
  clusterAddons: 'clusteraddons/default',
  /** The ones applied to the cluster, as kOps' addon cluster-addons.kops.k8s.io. */
  clusterAddonsManifest: 'addons/cluster-addons.kops.k8s.io/default.yaml',
} as const;
