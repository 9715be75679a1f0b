// kOps' "additional objects": any other Kubernetes object in the file that
// holds the Cluster (kops create -f). kOps keeps them with the cluster
// (<cluster>/clusteraddons/default), makes a KubeSchedulerConfiguration the
// control plane's kube-scheduler config file, and applies the rest to the
// cluster as the addon cluster-addons.kops.k8s.io. Mooring keeps them the same
// way, passes them along the same way, and lists them with `get all`.
import { isObject } from './options/merge.js';
import { toYAML } from './parse.js';

export interface AdditionalObject {
  apiVersion: string;
  kind: string;
  [field: string]: unknown;
}

export function isAdditionalObject(value: unknown): value is AdditionalObject {
  return isObject(value) && typeof value.apiVersion === 'string' && value.apiVersion !== '' && typeof value.kind === 'string' && value.kind !== '';
}

export function isSchedulerConfiguration(object: AdditionalObject): boolean {
  return object.kind === 'KubeSchedulerConfiguration' && object.apiVersion.split('/')[0] === 'kubescheduler.config.k8s.io';
}

/** `kind/name` (or just the kind when it has no name), as `get all` lists it. */
export function describeAdditionalObject(object: AdditionalObject): string {
  const meta = isObject(object.metadata) ? object.metadata : {};
  const name = typeof meta.name === 'string' && meta.name !== '' ? `/${meta.name}` : '';
  const ns = typeof meta.namespace === 'string' && meta.namespace !== '' ? ` (namespace ${meta.namespace})` : '';
  return `${object.kind}${name} ${object.apiVersion}${ns}`;
}

/** kOps' check (validation/additionalobjects.go): the scheduler's kubeconfig is nodeup's to set. */
export function additionalObjectProblems(object: AdditionalObject): Array<{ path: string; reason: string }> {
  if (!isSchedulerConfiguration(object)) return [];
  const connection = isObject(object.clientConnection) ? object.clientConnection : {};
  if (typeof connection.kubeconfig === 'string' && connection.kubeconfig !== '') {
    return [{ path: 'clientConnection.kubeconfig', reason: 'is set by nodeup (/var/lib/kube-scheduler/kubeconfig) and must not be given' }];
  }
  return [];
}

/** YAML documents joined by `---`, in the order given. */
export function stringifyAdditionalObjects(objects: AdditionalObject[]): string {
  return objects.map((o) => toYAML(o)).join('---\n');
}
