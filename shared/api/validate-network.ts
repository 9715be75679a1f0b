// Network checks: every CIDR parses, ranges that must stay apart do, subnets
// sit inside the network. The user's ranges are checked against the defaults
// completion would add, so a clash shows up before anything is written.
import { cidrContains, cidrsOverlap, formatCIDR, parseCIDR, parseIPv6CIDR, type IPv4CIDR } from './cidr.js';
import { effectiveNetworks } from './defaults.js';
import type { Cluster } from './types.js';
import { checkCIDR, isRecord, optionalList, requireString, show, type Report } from './validate-util.js';

interface Range {
  field: string;
  path: string;
  cidr: IPv4CIDR;
  userSet: boolean;
}

function describe(range: Range): string {
  const text = formatCIDR(range.cidr);
  return range.userSet ? `${range.path} ${text}` : `${range.field} ${text} (default)`;
}

type NetworkField = 'networkCIDR' | 'nonMasqueradeCIDR' | 'podCIDR' | 'serviceClusterIPRange';

function rangeOf(cluster: Cluster, field: NetworkField, report: Report): Range | undefined {
  const path = `spec.${field}`;
  const userValue: unknown = cluster.spec[field];
  if (userValue !== undefined) {
    const cidr = checkCIDR(userValue, path, report);
    return cidr && { field, path, cidr, userSet: true };
  }
  const fallback = effectiveNetworks(cluster)[field];
  return fallback === undefined ? undefined : { field, path, cidr: parseCIDR(fallback), userSet: false };
}

/** Reports on the range the user set (defaults never clash with each other). */
function mustNotOverlap(a: Range | undefined, b: Range | undefined, report: Report): void {
  if (!a || !b || !cidrsOverlap(a.cidr, b.cidr)) return;
  const [on, other] = a.userSet ? [a, b] : [b, a];
  if (on.userSet) report(on.path, `${formatCIDR(on.cidr)} overlaps ${describe(other)}`);
}

function mustContain(outer: Range | undefined, inner: Range | undefined, report: Report): void {
  if (!outer || !inner || cidrContains(outer.cidr, inner.cidr)) return;
  if (inner.userSet) report(inner.path, `${formatCIDR(inner.cidr)} is not inside ${describe(outer)}`);
  else if (outer.userSet) report(outer.path, `${formatCIDR(outer.cidr)} does not contain ${describe(inner)}`);
}

/**
 * An IPv6 CIDR field (IPv6 clusters: service and pod ranges, subnets' ipv6CIDR). A
 * subnet may also say `/<size>#<n>` (kOps: the n-th, in hex, /size block of the range
 * the cloud assigns the VPC), which only the cloud can resolve.
 */
export function checkIPv6CIDR(value: unknown, path: string, report: Report, allowAllocation = false): void {
  if (value === undefined || value === null) return;
  if (typeof value !== 'string') return report(path, `must be a CIDR string such as "fd00::/64" (got ${JSON.stringify(value)})`);
  if (allowAllocation && value.startsWith('/')) {
    const m = /^\/(\d{1,3})#([a-f0-9]{1,15})$/.exec(value);
    if (!m) return report(path, `invalid IPv6 allocation ${JSON.stringify(value)} (want /<size>#<n in hex>, such as /64#1)`);
    if (Number(m[1]) > 128) report(path, `invalid IPv6 allocation ${JSON.stringify(value)}: the size must be 0-128`);
    return;
  }
  try {
    parseIPv6CIDR(value);
  } catch (err) {
    report(path, (err as Error).message);
  }
}

/**
 * IPv6 clusters (kOps: nonMasqueradeCIDR "::/0"): pods and services have IPv6
 * ranges; the network keeps its IPv4 range for dual-stack subnets.
 */
function checkIPv6Networks(cluster: Cluster, report: Report): { network?: Range; additional: IPv4CIDR[] } {
  const spec = cluster.spec;
  if (spec.nonMasqueradeCIDR !== '::/0') report('spec.nonMasqueradeCIDR', `IPv6 clusters must have a nonMasqueradeCIDR of "::/0" (got ${JSON.stringify(spec.nonMasqueradeCIDR)})`);
  for (const field of ['podCIDR', 'serviceClusterIPRange'] as const) checkIPv6CIDR(spec[field], `spec.${field}`, report);
  const network = rangeOf(cluster, 'networkCIDR', report);
  const additional = optionalList(spec.additionalNetworkCIDRs, 'spec.additionalNetworkCIDRs', report)
    .map((value, i) => checkCIDR(value, `spec.additionalNetworkCIDRs[${i}]`, report))
    .filter((c): c is IPv4CIDR => c !== undefined);
  return { network, additional };
}

/** Returns the network range the subnets must sit in, if known. */
export function checkNetworks(cluster: Cluster, report: Report): { network?: Range; additional: IPv4CIDR[] } {
  const spec = cluster.spec;
  if (typeof spec.nonMasqueradeCIDR === 'string' && spec.nonMasqueradeCIDR.includes(':')) return checkIPv6Networks(cluster, report);
  const network = rangeOf(cluster, 'networkCIDR', report);
  const nonMasq = rangeOf(cluster, 'nonMasqueradeCIDR', report);
  const pod = rangeOf(cluster, 'podCIDR', report);
  const service = rangeOf(cluster, 'serviceClusterIPRange', report);
  const additional = optionalList(spec.additionalNetworkCIDRs, 'spec.additionalNetworkCIDRs', report)
    .map((value, i) => checkCIDR(value, `spec.additionalNetworkCIDRs[${i}]`, report))
    .filter((c): c is IPv4CIDR => c !== undefined);
  checkCIDR(spec.kubeAPIServer?.serviceClusterIPRange, 'spec.kubeAPIServer.serviceClusterIPRange', report);
  checkCIDR(spec.kubeProxy?.clusterCIDR, 'spec.kubeProxy.clusterCIDR', report);
  checkCIDR(spec.kubeControllerManager?.clusterCIDR, 'spec.kubeControllerManager.clusterCIDR', report);

  // Pods and services always need ranges of their own.
  mustNotOverlap(service, pod, report);
  // The AWS VPC CNI gives pods VPC addresses by design: the ranges below then share space.
  const vpcCNI = isRecord(spec.networking) && 'amazonvpc' in spec.networking;
  if (!vpcCNI) {
    // kOps checks only the pod range against nonMasqueradeCIDR; its service range is a fixed 100.64.0.0/13.
    mustContain(nonMasq, pod, report);
    mustNotOverlap(network, nonMasq, report);
    mustNotOverlap(network, pod, report);
    mustNotOverlap(network, service, report);
  }
  return { network, additional };
}

/** Subnet names, zones and CIDRs; returns name → zone of the subnets that parsed, or undefined when the list is unusable. */
export function checkSubnets(
  cluster: Cluster,
  networks: { network?: Range; additional: IPv4CIDR[] },
  report: Report,
): Map<string, string | undefined> | undefined {
  const raw: unknown = cluster.spec.subnets;
  if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) {
    report('spec.subnets', 'at least one subnet required');
    return undefined;
  }
  if (!Array.isArray(raw)) {
    report('spec.subnets', 'must be a list');
    return undefined;
  }
  const zones = new Map<string, string | undefined>();
  const placed: Array<{ path: string; cidr: IPv4CIDR }> = [];
  raw.forEach((subnet: unknown, i) => {
    const path = `spec.subnets[${i}]`;
    if (!isRecord(subnet)) return report(path, 'must be an object');
    const name = requireString(subnet.name, `${path}.name`, report);
    // An existing subnet (id) may leave out its zone: the cloud knows it (kOps asks the cloud).
    const zone = subnet.id !== undefined && (subnet.zone === undefined || subnet.zone === null) ? undefined : requireString(subnet.zone, `${path}.zone`, report);
    checkIPv6CIDR(subnet.ipv6CIDR, `${path}.ipv6CIDR`, report, true);
    if (name !== undefined) {
      if (zones.has(name)) report(`${path}.name`, `duplicate subnet ${show(name)}`);
      else zones.set(name, zone);
    }
    const cidr = checkCIDR(subnet.cidr, `${path}.cidr`, report);
    if (!cidr) return;
    const { network, additional } = networks;
    if (network && !cidrContains(network.cidr, cidr) && !additional.some((a) => cidrContains(a, cidr))) {
      report(`${path}.cidr`, `${formatCIDR(cidr)} is not inside ${describe(network)}`);
    }
    const clash = placed.find((p) => cidrsOverlap(p.cidr, cidr));
    if (clash) report(`${path}.cidr`, `${formatCIDR(cidr)} overlaps ${clash.path} ${formatCIDR(clash.cidr)}`);
    placed.push({ path: `${path}.cidr`, cidr });
  });
  return zones;
}
