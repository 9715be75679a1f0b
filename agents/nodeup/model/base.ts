// The basics every node needs: packages, folders, kernel modules, sysctls,
// /etc/hosts, the CA certificate clients trust, and any .deb assets.
import { DirectoryTask, FileTask } from '../tasks/file.js';
import { HostsTask } from '../tasks/hosts.js';
import { KernelModuleTask } from '../tasks/kernel-module.js';
import { DebPackageTask, debIdentity, PackagesTask } from '../tasks/package.js';
import { SysctlTask } from '../tasks/sysctl.js';
import type { Task } from '../engine/task.js';
import { assetsByName, isControlPlaneRole, type ModelInput } from './context.js';
import { runsProtokube } from './protokube.js';

/** What kubelet and kube-proxy shell out to, per package family. */
const BASE_PACKAGES: Record<'debian' | 'rhel', string[]> = {
  debian: ['conntrack', 'ebtables', 'ethtool', 'iptables', 'socat', 'ca-certificates'],
  rhel: ['conntrack-tools', 'ebtables', 'ethtool', 'iptables', 'socat', 'ca-certificates'],
};

export const CA_CERT_PATH = '/srv/kubernetes/ca.crt';
export const SYSCTL_PATH = '/etc/sysctl.d/99-k8s-general.conf';

export function baseTasks(input: ModelInput): Task[] {
  const tasks: Task[] = [new PackagesTask('base', BASE_PACKAGES[input.host.family ?? 'debian'])];
  for (const dir of ['/etc/kubernetes', '/etc/kubernetes/manifests', '/srv/kubernetes', '/var/lib/kubelet', '/opt/cni/bin', '/etc/cni/net.d']) {
    tasks.push(new DirectoryTask({ path: dir }));
  }
  for (const mod of ['br_netfilter', 'overlay']) tasks.push(new KernelModuleTask(mod));
  tasks.push(new SysctlTask(SYSCTL_PATH, input.nodeConfig.sysctls));
  tasks.push(new FileTask({ path: CA_CERT_PATH, content: input.caCerts['kubernetes-ca'] ?? '', deps: ['Directory:/srv/kubernetes'] }));
  tasks.push(new HostsTask(hostsEntries(input)));
  // Extra .deb assets (e.g. a pinned runtime package) are installed with dpkg from the verified file.
  for (const [name, ref] of assetsByName(input)) {
    const identity = debIdentity(name);
    if (identity) tasks.push(new DebPackageTask(ref, identity));
  }
  return tasks;
}

/**
 * The API server's internal name, on nodes without protokube (bastions): this
 * node itself on the control plane, else the boot config's API server IPs.
 * Where protokube runs it owns the name (its block follows the live control
 * plane; nodeup passes it the boot config's IPs as seeds), so nodeup's block
 * stays empty, and a block an older nodeup wrote is removed: two blocks for
 * one name would leave the first, stale one to win.
 */
function hostsEntries(input: ModelInput): Array<[string, string[]]> {
  if (runsProtokube(input)) return [];
  const name = input.nodeConfig.masterInternalName;
  if (isControlPlaneRole(input.nodeConfig)) return [['127.0.0.1', [name]]];
  return (input.boot.apiServerIPs ?? []).map((ip): [string, string[]] => [ip, [name]]);
}
