// Subnet CIDR assignment and the zones an instance group runs in.
import { cidrsOverlap, formatCIDR, parseCIDR, subdivide, type IPv4CIDR } from './cidr.js';
import type { ClusterSubnetSpec, InstanceGroup } from './types.js';

/**
 * Gives every subnet without a CIDR one, the way kOps does: the network is cut
 * into 8 blocks (a /16 into /19s); zone subnets take blocks 2..8 in order, then
 * block 1; Utility subnets take the 8 smaller blocks (/22s) of block 1 first.
 * Blocks that overlap a CIDR already given are skipped. Subnets with an `id`
 * (existing cloud subnets) and IPv6-only private subnets are left alone. Mutates `subnets`; returns the
 * index of the first subnet that found no room, or -1.
 */
export function assignSubnetCIDRs(subnets: ClusterSubnetSpec[], networkCIDR: string): number {
  const network = parseCIDR(networkCIDR);
  const taken: IPv4CIDR[] = [];
  for (const subnet of subnets) {
    try {
      if (typeof subnet.cidr === 'string') taken.push(parseCIDR(subnet.cidr));
    } catch {
      // validation reports bad CIDRs; they cannot block anything here
    }
  }
  const big = subdivide(network, Math.min(network.prefix + 3, 32));
  const small = subdivide(network, Math.min(network.prefix + 6, 32));
  const zoneCandidates = [...big.slice(1), big[0]];
  // kOps: an IPv6-only private subnet (ipv6CIDR, no IPv4 range) gets no IPv4 range.
  const needsCIDR = (s: ClusterSubnetSpec): boolean => s.cidr === undefined && s.id === undefined && !(s.ipv6CIDR !== undefined && s.type === 'Private');
  const order = [
    ...subnets.filter((s) => needsCIDR(s) && s.type !== 'Utility'),
    ...subnets.filter((s) => needsCIDR(s) && s.type === 'Utility'),
  ];
  for (const subnet of order) {
    const candidates = subnet.type === 'Utility' ? small : zoneCandidates;
    const free = candidates.find((c) => !taken.some((t) => cidrsOverlap(c, t)));
    if (!free) return subnets.indexOf(subnet);
    taken.push(free);
    subnet.cidr = formatCIDR(free);
  }
  return -1;
}

/** Zones of a group: its own `zones`, else the zones of the cluster subnets it names. */
export function instanceGroupZones(ig: InstanceGroup, clusterSubnets: ClusterSubnetSpec[]): string[] {
  if (Array.isArray(ig.spec.zones) && ig.spec.zones.length > 0) return ig.spec.zones;
  const zones: string[] = [];
  for (const name of ig.spec.subnets ?? []) {
    const zone = clusterSubnets.find((s) => s.name === name)?.zone;
    if (zone !== undefined && !zones.includes(zone)) zones.push(zone);
  }
  return zones;
}
