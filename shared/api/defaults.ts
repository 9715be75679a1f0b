// The values completion fills in when the user's spec leaves them out, kept in
// one place so validation can check the user's ranges against the defaults
// they will meet. Mirrors kOps' cloudup defaults (reference §2).
import { formatCIDR, nthAddress, subdivide } from './cidr.js';
import type { Cluster } from './types.js';

export const Defaults = {
  kubernetesVersion: '1.30.5',
  networkCIDR: '172.20.0.0/16',
  nonMasqueradeCIDR: '100.64.0.0/10',
  clusterDomain: 'cluster.local',
  etcdVersion: '3.4.23',
  containerdVersion: '1.7.24',
  backupRetentionDays: 90,
  apiServerSecurePort: 443,
  image: 'debian-12',
  machineType: { aws: 't3.medium', local: 'local' } as Record<string, string>,
  /** Instance group sizes: control plane and bastions 1, everything else 2. */
  controlPlaneSize: 1,
  nodeSize: 2,
} as const;

export interface EtcdPorts {
  clientPort: number;
  peerPort: number;
  grpcPort: number;
  quarantineClientPort: number;
}

/** kOps' fixed ports for its two etcd clusters. Others get ports in completion. */
export const WELL_KNOWN_ETCD_PORTS: Record<string, EtcdPorts> = {
  main: { clientPort: 4001, peerPort: 2380, grpcPort: 3996, quarantineClientPort: 3994 },
  events: { clientPort: 4002, peerPort: 2381, grpcPort: 3997, quarantineClientPort: 3995 },
};

/** Where ports of other etcd clusters start; completion takes the next free one. */
export const EXTRA_ETCD_PORT_BASES: EtcdPorts = { clientPort: 4003, peerPort: 2382, grpcPort: 3998, quarantineClientPort: 3990 };

/**
 * kOps derives the pod range as the upper half of nonMasqueradeCIDR and the
 * service range as its first eighth: 100.64.0.0/10 → 100.96.0.0/11 and 100.64.0.0/13.
 */
export function derivedPodCIDR(nonMasqueradeCIDR: string): string {
  return formatCIDR(subdivide(nonMasqueradeCIDR, prefixOf(nonMasqueradeCIDR) + 1)[1]);
}

export function derivedServiceCIDR(nonMasqueradeCIDR: string): string {
  return formatCIDR(subdivide(nonMasqueradeCIDR, prefixOf(nonMasqueradeCIDR) + 3)[0]);
}

function prefixOf(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

/** The cluster DNS service IP: the 10th address of the service range (100.64.0.10). */
export function derivedDNSIP(serviceClusterIPRange: string): string {
  return nthAddress(serviceClusterIPRange, 10);
}

/** The cluster's networks as completion will set them: the user's value, else the default. */
export function effectiveNetworks(cluster: Cluster): {
  networkCIDR?: string;
  nonMasqueradeCIDR: string;
  podCIDR?: string;
  serviceClusterIPRange?: string;
} {
  const spec = cluster.spec;
  const nonMasqueradeCIDR = spec.nonMasqueradeCIDR ?? Defaults.nonMasqueradeCIDR;
  const derive = (fn: (cidr: string) => string): string | undefined => {
    try {
      return fn(nonMasqueradeCIDR);
    } catch {
      return undefined; // an invalid nonMasqueradeCIDR is reported by validation
    }
  };
  return {
    // A shared VPC (networkID) has its own range that only the cloud knows.
    networkCIDR: spec.networkCIDR ?? (spec.networkID === undefined ? Defaults.networkCIDR : undefined),
    nonMasqueradeCIDR,
    podCIDR: spec.podCIDR ?? derive(derivedPodCIDR),
    serviceClusterIPRange: spec.serviceClusterIPRange ?? derive(derivedServiceCIDR),
  };
}
