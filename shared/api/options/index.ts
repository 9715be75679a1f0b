// kOps' option builders, in kOps' order (upup/pkg/fi/cloudup/populate_cluster_spec.go),
// run the way kOps' options loader runs them: on a copy of the current spec,
// then the user's values merged back over the result, repeated until nothing
// changes. A builder fills what nodes need by Kubernetes version; the user's
// own values always win.
import { isDeepStrictEqual } from 'node:util';
import type { Cluster } from '../types.js';
import { buildDiscoveryOptions, buildKubeAPIServerOptions } from './apiserver.js';
import type { OptionsContext } from './context.js';
import { buildKubeControllerManagerOptions, buildKubeProxyOptions, buildKubeSchedulerOptions } from './controller-manager.js';
import { buildEtcdManagerOptions, buildEtcdOptions } from './etcd.js';
import { buildKubeletOptions } from './kubelet.js';
import { mergeInto, type JsonObject } from './merge.js';
import { buildCloudConfigOptions, buildContainerdOptions, buildKubeDNSOptions } from './runtime.js';

export type OptionsBuilder = (cluster: Cluster, ctx: OptionsContext) => void;

function clusterDNSDomain(cluster: Cluster): void {
  if (!cluster.spec.clusterDNSDomain) cluster.spec.clusterDNSDomain = 'cluster.local';
}

export const OPTIONS_BUILDERS: readonly OptionsBuilder[] = [
  clusterDNSDomain,
  buildEtcdOptions,
  buildEtcdManagerOptions,
  buildKubeAPIServerOptions,
  buildContainerdOptions,
  buildKubeDNSOptions,
  buildKubeletOptions,
  buildKubeControllerManagerOptions,
  buildKubeSchedulerOptions,
  buildKubeProxyOptions,
  buildCloudConfigOptions,
  buildDiscoveryOptions,
];

const MAX_ITERATIONS = 10;

/** kOps' OptionsLoader.Build: builders, then the user's values over them, until it converges. */
export function buildOptions(user: Cluster, ctx: OptionsContext, builders: readonly OptionsBuilder[] = OPTIONS_BUILDERS): Cluster {
  let current = structuredClone(user);
  for (let i = 0; i <= MAX_ITERATIONS; i++) {
    const next = structuredClone(current);
    for (const build of builders) build(next, ctx);
    mergeInto(next as unknown as JsonObject, user as unknown as JsonObject);
    if (isDeepStrictEqual(next, current)) return current;
    current = next;
  }
  throw new Error(`the cluster's options did not converge after ${MAX_ITERATIONS} rounds`);
}

export { newOptionsContext, parseKubernetesVersion, type OptionsContext } from './context.js';
export { OptionsError } from './controller-manager.js';
export { defaultEtcdVersion, etcdVersionFor, LATEST_ETCD, LOCAL_CLOUD_ETCD_VERSION } from './etcd.js';
