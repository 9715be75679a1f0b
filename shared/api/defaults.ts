// The values completion fills in when the user's spec leaves them out, kept in
// one place so validation can check the user's ranges against the defaults
// they will meet. Mirrors kOps' cloudup defaults (reference §2).
import { formatCIDR, nthAddressOf, subdivide } from './cidr.js';
import type { Cluster } from './types.js';

export const Defaults = {
  /** A release in the shipped known-hash table (known-assets.generated.ts), so nodes' assets need no look-up. */
  kubernetesVersion: '1.34.10',
  networkCIDR: '172.20.0.0/16',
  nonMasqueradeCIDR: '100.64.0.0/10',
  clusterDomain: 'cluster.local',
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

/** kOps' fixed ports for the etcd clusters it knows (pkg/wellknownports). Others get ports in completion. */
export const WELL_KNOWN_ETCD_PORTS: Record<string, EtcdPorts> = {
  main: { clientPort: 4001, peerPort: 2380, grpcPort: 3996, quarantineClientPort: 3994 },
  events: { clientPort: 4002, peerPort: 2381, grpcPort: 3997, quarantineClientPort: 3995 },
  cilium: { clientPort: 4003, peerPort: 2382, grpcPort: 3991, quarantineClientPort: 3992 },
  leases: { clientPort: 4004, peerPort: 2383, grpcPort: 4006, quarantineClientPort: 4005 },
};

/** Where ports of other etcd clusters start; completion takes the next free one. */
export const EXTRA_ETCD_PORT_BASES: EtcdPorts = { clientPort: 4003, peerPort: 2382, grpcPort: 3998, quarantineClientPort: 3990 };

/** kOps' service ranges (populate_cluster_spec.go): fixed, whatever nonMasqueradeCIDR is. */
export const DEFAULT_SERVICE_CIDR = { ipv4: '100.64.0.0/13', ipv6: 'fd00:5e4f:ce::/108' } as const;

/**
 * kOps' pod range: the upper half of an IPv4 nonMasqueradeCIDR (100.64.0.0/10 →
 * 100.96.0.0/11); none for IPv6, whose pods get node ranges from kops-controller.
 */
export function derivedPodCIDR(nonMasqueradeCIDR: string): string | undefined {
  if (nonMasqueradeCIDR.includes(':')) return undefined;
  return formatCIDR(subdivide(nonMasqueradeCIDR, prefixOf(nonMasqueradeCIDR) + 1)[1]);
}

/** kOps' service range: 100.64.0.0/13 for IPv4, fd00:5e4f:ce::/108 for IPv6 (never derived from nonMasqueradeCIDR). */
export function derivedServiceCIDR(nonMasqueradeCIDR: string): string {
  return nonMasqueradeCIDR.includes(':') ? DEFAULT_SERVICE_CIDR.ipv6 : DEFAULT_SERVICE_CIDR.ipv4;
}

function prefixOf(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

/** The cluster DNS service IP: the 10th address of the service range (100.64.0.10, fd00:5e4f:ce::a). */
export function derivedDNSIP(serviceClusterIPRange: string): string {
  return nthAddressOf(serviceClusterIPRange, 10);
}

/** The cluster's networks as completion will set them: the user's value, else the default. */
export function effectiveNetworks(cluster: Cluster): {
  networkCIDR?: string;
  nonMasqueradeCIDR: string;
  podCIDR?: string;
  serviceClusterIPRange?: string;
} {
  const spec = cluster.spec;
  // kOps: the AWS VPC CNI gives pods VPC addresses, so nonMasqueradeCIDR defaults to the VPC's range.
  const networkCIDR = spec.networkCIDR ?? (spec.networkID === undefined ? Defaults.networkCIDR : undefined);
  const amazonVPC = typeof spec.networking === 'object' && spec.networking !== null && 'amazonvpc' in spec.networking;
  const nonMasqueradeCIDR = spec.nonMasqueradeCIDR ?? (amazonVPC && networkCIDR !== undefined ? networkCIDR : Defaults.nonMasqueradeCIDR);
  const derive = (fn: (cidr: string) => string | undefined): string | undefined => {
    try {
      return fn(nonMasqueradeCIDR);
    } catch {
      return undefined; // an invalid nonMasqueradeCIDR is reported by validation
    }
  };
  return {
    // A shared VPC (networkID) has its own range that only the cloud knows.
    networkCIDR,
    nonMasqueradeCIDR,
    podCIDR: spec.podCIDR ?? derive(derivedPodCIDR),
    serviceClusterIPRange: spec.serviceClusterIPRange ?? derive(derivedServiceCIDR),
  };
}
