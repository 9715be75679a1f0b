// etcd cluster defaults: member names for control-plane groups and ports.
import { EXTRA_ETCD_PORT_BASES, WELL_KNOWN_ETCD_PORTS, type EtcdPorts } from './defaults.js';
import { zoneLetter } from './names.js';
import { instanceGroupZones } from './subnets.js';
import type { ClusterSubnetSpec, EtcdClusterSpec, EtcdMemberSpec, InstanceGroup } from './types.js';

/**
 * One member per control-plane group, named like kOps: the zone letter
 * (`us-east-1a` → `a`), with the group's round suffix when several groups share
 * a zone (`control-plane-us-east-1a-2` → `a-2`); the group name when the zone
 * has no letter. Clashes get `-2`, `-3`, … so names stay unique.
 */
export function defaultEtcdMembers(controlPlaneGroups: InstanceGroup[], clusterSubnets: ClusterSubnetSpec[]): EtcdMemberSpec[] {
  const used = new Set<string>();
  return controlPlaneGroups.map((ig) => {
    const igName = ig.metadata.name;
    const zone = instanceGroupZones(ig, clusterSubnets)[0];
    const letter = zone === undefined ? undefined : zoneLetter(zone);
    let name = igName;
    if (zone !== undefined && letter !== undefined) {
      const round = new RegExp(`${escapeRegExp(zone)}-(\\d+)$`).exec(igName)?.[1];
      name = round === undefined ? letter : `${letter}-${round}`;
    }
    let unique = name;
    for (let n = 2; used.has(unique); n++) unique = `${name}-${n}`;
    used.add(unique);
    return { name: unique, instanceGroup: igName };
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const PORT_FIELDS = ['clientPort', 'peerPort', 'grpcPort', 'quarantineClientPort'] as const;

/**
 * Fills missing ports in place. `main` and `events` get kOps' fixed ports.
 * Any other cluster, in spec order, gets for each port the lowest free port at
 * or above 4003 (client), 2382 (peer), 3998 (gRPC), 3990 (quarantine client),
 * skipping every port another cluster already has, so the result is
 * deterministic and free of clashes.
 */
export function assignEtcdPorts(clusters: EtcdClusterSpec[]): void {
  const taken = new Set<number>();
  for (const cluster of clusters) {
    const known: EtcdPorts | undefined = Object.hasOwn(WELL_KNOWN_ETCD_PORTS, cluster.name)
      ? WELL_KNOWN_ETCD_PORTS[cluster.name]
      : undefined;
    for (const field of PORT_FIELDS) {
      if (cluster[field] === undefined && known) cluster[field] = known[field];
      const port = cluster[field];
      if (port !== undefined) taken.add(port);
    }
  }
  for (const cluster of clusters) {
    for (const field of PORT_FIELDS) {
      if (cluster[field] !== undefined) continue;
      let port = EXTRA_ETCD_PORT_BASES[field];
      while (taken.has(port)) port++;
      taken.add(port);
      cluster[field] = port;
    }
  }
}
