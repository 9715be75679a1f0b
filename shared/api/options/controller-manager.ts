// kube-controller-manager, kube-scheduler and kube-proxy settings
// (kOps pkg/model/components/kubecontrollermanager.go, kubescheduler.go, kubeproxy.go).
import { parseGoDuration } from '../k8s-values.js';
import type { Cluster } from '../types.js';
import { isIPv6Only } from './apiserver.js';
import type { OptionsContext } from './context.js';
import { child, isObject } from './merge.js';

const ONE_SECOND_NS = 1_000_000_000n;

export class OptionsError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'OptionsError';
  }
}

export function buildKubeControllerManagerOptions(cluster: Cluster, ctx: OptionsContext): void {
  const spec = cluster.spec;
  const kcm = child(spec, 'kubeControllerManager');
  const period = kcm.attachDetachReconcileSyncPeriod;
  const ns = typeof period === 'string' ? parseGoDuration(period) : undefined;
  if (ns === undefined || ns === 0n) kcm.attachDetachReconcileSyncPeriod = '1m0s';
  else if (ns < ONE_SECOND_NS) {
    throw new OptionsError('spec.kubeControllerManager.attachDetachReconcileSyncPeriod', 'cannot be less than 1 second');
  }
  kcm.clusterName = ctx.clusterName;
  kcm.cloudProvider = 'external';
  if (!kcm.logLevel) kcm.logLevel = 2;
  kcm.image = ctx.componentImage('kube-controller-manager');
  kcm.leaderElection = { leaderElect: true };
  // IPv6 clusters leave node IP ranges to kops-controller's IPAM.
  const ipv6 = isIPv6Only(cluster);
  kcm.allocateNodeCIDRs = !ipv6;
  if (!kcm.clusterCIDR && !ipv6 && spec.podCIDR) kcm.clusterCIDR = spec.podCIDR;
  if (typeof kcm.clusterCIDR === 'string' && kcm.clusterCIDR.includes(':')) {
    const clusterSize = Number(kcm.clusterCIDR.split('/')[1]);
    kcm.nodeCIDRMaskSize = clusterSize + Math.min(Math.trunc((128 - clusterSize) / 2), 16);
  }
  const networking = isObject(spec.networking) ? spec.networking : {};
  kcm.configureCloudRoutes = networking.kubenet !== undefined;
  if (networking.gcp !== undefined) kcm.allocateNodeCIDRs = false;
  if (kcm.useServiceAccountCredentials === undefined) kcm.useServiceAccountCredentials = true;
  if (!Array.isArray(kcm.controllers) || kcm.controllers.length === 0) {
    if (ipv6) kcm.controllers = ['*', '-nodeipam'];
  }
}

export function buildKubeSchedulerOptions(cluster: Cluster, ctx: OptionsContext): void {
  const scheduler = child(cluster.spec, 'kubeScheduler');
  if (!scheduler.logLevel) scheduler.logLevel = 2;
  if (!scheduler.image) scheduler.image = ctx.componentImage('kube-scheduler');
  if (scheduler.leaderElection === undefined) scheduler.leaderElection = { leaderElect: true };
}

export function buildKubeProxyOptions(cluster: Cluster, ctx: OptionsContext): void {
  const spec = cluster.spec;
  const proxy = child(spec, 'kubeProxy');
  if (!proxy.logLevel) proxy.logLevel = 2;
  if (proxy.cpuRequest === undefined) proxy.cpuRequest = '100m';
  proxy.image = ctx.componentImage('kube-proxy');
  if (proxy.clusterCIDR === undefined) {
    const kcm = isObject(spec.kubeControllerManager) ? spec.kubeControllerManager : {};
    const amazonVPC = isObject(spec.networking) && spec.networking.amazonvpc !== undefined;
    if (!isIPv6Only(cluster) && !amazonVPC && typeof kcm.clusterCIDR === 'string' && kcm.clusterCIDR !== '') proxy.clusterCIDR = kcm.clusterCIDR;
  }
}
