// kubelet settings, for nodes (spec.kubelet) and the control plane
// (spec.masterKubelet) (kOps pkg/model/components/kubelet.go).
import { nthAddressOf } from '../cidr.js';
import type { Cluster } from '../types.js';
import type { OptionsContext } from './context.js';
import { child, isObject, type JsonObject } from './merge.js';

export const DEFAULT_EVICTION_HARD = 'memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<10%,imagefs.inodesFree<5%';

function usesAmazonVPC(cluster: Cluster): boolean {
  return isObject(cluster.spec.networking) && cluster.spec.networking.amazonvpc !== undefined;
}

/**
 * The cluster DNS address kubelets hand to pods: NodeLocal DNS when enabled, else
 * kubeDNS.serverIP (the kube-dns builder runs first and defaults it to the 10th
 * service IP). kOps takes the 10th service IP even when the user set serverIP,
 * and then its own validation refuses the completed spec unless the user also
 * set kubelet.clusterDNS to match; Mooring follows serverIP instead.
 */
export function clusterDNSAddress(cluster: Cluster): string {
  const kubeDNS = isObject(cluster.spec.kubeDNS) ? cluster.spec.kubeDNS : undefined;
  const nodeLocal = isObject(kubeDNS?.nodeLocalDNS) ? kubeDNS.nodeLocalDNS : undefined;
  if (nodeLocal?.enabled === true && typeof nodeLocal.localIP === 'string' && nodeLocal.localIP !== '') return nodeLocal.localIP;
  if (typeof kubeDNS?.serverIP === 'string' && kubeDNS.serverIP !== '') return kubeDNS.serverIP;
  return nthAddressOf(String(cluster.spec.serviceClusterIPRange), 10);
}

function configureKubelet(cluster: Cluster, kubelet: JsonObject, ctx: OptionsContext): void {
  kubelet.enableDebuggingHandlers = true;
  kubelet.podManifestPath = '/etc/kubernetes/manifests';
  kubelet.logLevel = 2;
  kubelet.clusterDomain = cluster.spec.clusterDNSDomain;
  // Removed from kubelet in 1.14: kOps drops it rather than pass it.
  delete kubelet.allowPrivileged;
  if (!kubelet.clusterDNS) kubelet.clusterDNS = clusterDNSAddress(cluster);
  if (kubelet.evictionHard === undefined) kubelet.evictionHard = DEFAULT_EVICTION_HARD;
  kubelet.kubeconfigPath = '/var/lib/kubelet/kubeconfig';
  kubelet.cgroupRoot = '/';
  // A cloud without a cloud-controller-manager (kOps' metal; Mooring's local)
  // must not say "external": kubelet would wait for one to initialise the node.
  if (ctx.cloud === 'local' || ctx.cloud === 'metal') delete kubelet.cloudProvider;
  else kubelet.cloudProvider = 'external';
  kubelet.cgroupDriver = 'systemd';
  if (kubelet.protectKernelDefaults === undefined) kubelet.protectKernelDefaults = true;
  // kOps: no graceful shutdown with the AWS VPC CNI (it leaks ENIs).
  if (usesAmazonVPC(cluster)) {
    kubelet.shutdownGracePeriod = '0s';
    kubelet.shutdownGracePeriodCriticalPods = '0s';
  } else if (kubelet.shutdownGracePeriod === undefined) {
    kubelet.shutdownGracePeriod = '30s';
    kubelet.shutdownGracePeriodCriticalPods = '10s';
  }
  if (ctx.isLT('1.34')) kubelet.registerSchedulable = true;
}

export function buildKubeletOptions(cluster: Cluster, ctx: OptionsContext): void {
  const spec = cluster.spec;
  configureKubelet(cluster, child(spec, 'kubelet'), ctx);
  const controlPlane = child(spec, 'masterKubelet');
  configureKubelet(cluster, controlPlane, ctx);
  // Control-plane logs are read through the kubelet.
  controlPlane.enableDebuggingHandlers = true;
  if (isObject(spec.networking) && spec.networking.isolateMasters === true) {
    controlPlane.enableDebuggingHandlers = false;
    controlPlane.hairpinMode = 'none';
  }
  if (spec.isolateMasters === true) {
    controlPlane.enableDebuggingHandlers = false;
    controlPlane.hairpinMode = 'none';
  }
}
