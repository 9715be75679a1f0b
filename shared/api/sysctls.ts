// The kernel settings nodeup writes to /etc/sysctl.d/99-k8s-general.conf: kOps'
// defaults, then the cluster's and the group's `sysctlParameters` on top.

const GENERAL: Record<string, string> = {
  // Many connections and large socket buffers for busy nodes.
  'net.core.somaxconn': '32768',
  'net.core.rmem_max': '16777216',
  'net.core.wmem_max': '16777216',
  'net.ipv4.tcp_wmem': '4096 12582912 16777216',
  'net.ipv4.tcp_rmem': '4096 12582912 16777216',
  'net.ipv4.tcp_max_syn_backlog': '8096',
  'net.ipv4.tcp_slow_start_after_idle': '0',
  'net.ipv4.tcp_tw_reuse': '1',
  'net.core.netdev_max_backlog': '16384',
  // File handles and inotify: every container watches files; 128 instances per user is too few.
  'fs.file-max': '2097152',
  'fs.inotify.max_user_instances': '8192',
  'fs.inotify.max_user_watches': '524288',
  // What kubelet expects and checks at start.
  'vm.overcommit_memory': '1',
  'kernel.panic': '10',
  'kernel.panic_on_oops': '1',
  // Kernel keyring room for many containers.
  'kernel.keys.root_maxkeys': '1000000',
  'kernel.keys.root_maxbytes': '25000000',
  // Pods and services are routed through the node.
  'net.ipv4.ip_forward': '1',
};

/** On AWS the neighbour table must not be garbage-collected below its first threshold (kubernetes#23395). */
const AWS: Record<string, string> = { 'net.ipv4.neigh.default.gc_thresh1': '0' };

/** Splits `key=value` entries; malformed entries are left to validation and skipped here. */
export function parseSysctlParameters(entries: unknown): Record<string, string> {
  const result: Record<string, string> = {};
  if (!Array.isArray(entries)) return result;
  for (const entry of entries) {
    if (typeof entry !== 'string') continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    result[entry.slice(0, eq).trim()] = entry.slice(eq + 1).trim();
  }
  return result;
}

export function nodeSysctls(cloud: string, clusterParameters: unknown, groupParameters: unknown): Record<string, string> {
  return {
    ...GENERAL,
    ...(cloud === 'aws' ? AWS : {}),
    ...parseSysctlParameters(clusterParameters),
    ...parseSysctlParameters(groupParameters),
  };
}
