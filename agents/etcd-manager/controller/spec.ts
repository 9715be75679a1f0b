// The cluster spec the operator writes (control/etcd-cluster-spec) and the
// marker the manager writes once the cluster exists (control/etcd-cluster-created).
import type { StateStore } from '../../../shared/store/types.js';

export interface EtcdClusterSpecFile {
  memberCount: number;
  etcdVersion: string;
}

export const CONTROL = {
  spec: 'control/etcd-cluster-spec',
  created: 'control/etcd-cluster-created',
};

export async function readClusterSpec(store: StateStore): Promise<EtcdClusterSpecFile | undefined> {
  const data = await store.readIfExists(CONTROL.spec);
  if (!data) return undefined;
  const spec = JSON.parse(data.toString('utf8')) as Partial<EtcdClusterSpecFile>;
  if (!Number.isInteger(spec.memberCount) || (spec.memberCount ?? 0) < 1 || typeof spec.etcdVersion !== 'string') {
    throw new Error(`${store.urlOf(CONTROL.spec)}: want {"memberCount":N,"etcdVersion":"3.x.y"}, got ${data.toString('utf8').trim()}`);
  }
  return spec as EtcdClusterSpecFile;
}
