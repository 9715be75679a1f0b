// etcd's version per Kubernetes version and the etcd-manager settings
// (kOps pkg/model/components/etcd.go and etcdmanager/options.go).
import type { Cluster } from '../types.js';
import type { OptionsContext } from './context.js';
import { child, isObject } from './merge.js';

/** kOps' latest etcd of each minor it bundles. */
export const LATEST_ETCD = { '3.5': '3.5.31', '3.6': '3.6.12', '3.7': '3.7.0' } as const;

/**
 * The local cloud installs etcd offline from Debian 12's etcd-server package,
 * which is 3.4.23; kOps would pick etcdVersionFor() instead.
 */
export const LOCAL_CLOUD_ETCD_VERSION = '3.4.23';

/** kOps: etcd 3.5 up to Kubernetes 1.33, 3.6 from 1.34, 3.7 from 1.37. */
export function etcdVersionFor(ctx: OptionsContext): string {
  if (ctx.isLT('1.34')) return LATEST_ETCD['3.5'];
  if (ctx.isLT('1.37')) return LATEST_ETCD['3.6'];
  return LATEST_ETCD['3.7'];
}

export function defaultEtcdVersion(ctx: OptionsContext): string {
  return ctx.cloud === 'local' ? LOCAL_CLOUD_ETCD_VERSION : etcdVersionFor(ctx);
}

export function buildEtcdOptions(cluster: Cluster, ctx: OptionsContext): void {
  for (const etcd of cluster.spec.etcdClusters ?? []) {
    if (!etcd.version) etcd.version = defaultEtcdVersion(ctx);
  }
}

export function buildEtcdManagerOptions(cluster: Cluster, ctx: OptionsContext): void {
  const spec = cluster.spec;
  // kOps mounts etcd's image as a volume of the etcd-manager pod, which needs the
  // ImageVolume gate on control-plane kubelets before 1.36 (on from 1.32).
  if (!ctx.isLT('1.32') && ctx.isLT('1.36')) {
    const gates = child(child(spec, 'masterKubelet'), 'featureGates');
    if (!Object.hasOwn(gates, 'ImageVolume')) gates.ImageVolume = 'true';
  }
  const base = String(spec.configBase ?? '');
  for (const etcd of spec.etcdClusters ?? []) {
    const backups = isObject(etcd.backups) ? etcd.backups : (etcd.backups = {});
    if (!backups.backupStore) backups.backupStore = `${base.replace(/\/?$/, '/')}backups/etcd/${etcd.name}`;
  }
}
