// The kinds the test API server serves: one line each. What a line says is what
// discovery reports and what the server enforces: the group/version, the plural
// resource name, scope, how names are validated, whether writes to the main
// resource leave `status` alone (a status subresource), whether
// metadata.generation counts spec changes, and any per-kind checks or defaults.
import { child, isObject, type JsonObject } from './json.js';
import type { FieldError } from './status.js';
import { validateBinding, validateConfigMap, validateService, validateWorkload, type NameRule } from './validation.js';

export interface KindInfo {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  /** The resource: lower-case plural. */
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  nameRule: NameRule;
  /** Writes to the main resource keep the stored status and server-side apply ignores `status`. */
  statusSubresource: boolean;
  /** metadata.generation starts at 1 and grows with every change outside metadata and status. */
  generation: boolean;
  /** Per-kind validation beyond object metadata; `old` is set on updates. */
  validate?: (obj: JsonObject, old: JsonObject | undefined) => FieldError[];
  /** Defaulting done when a request body is decoded: the writer of a create/update owns what it sets. */
  defaults?: (obj: JsonObject) => void;
  /** What the kind's strategy sets on every write (PrepareForCreate/Update): nobody owns it. */
  prepare?: (obj: JsonObject) => void;
}

export function apiVersionOf(k: KindInfo): string {
  return k.group === '' ? k.version : `${k.group}/${k.version}`;
}

interface KindOptions {
  cluster?: boolean;
  short?: string[];
  name?: NameRule;
  status?: boolean;
  generation?: boolean;
  validate?: KindInfo['validate'];
  defaults?: KindInfo['defaults'];
  prepare?: KindInfo['prepare'];
}

function kind(apiVersion: string, kindName: string, plural: string, o: KindOptions = {}): KindInfo {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return {
    group,
    version,
    kind: kindName,
    plural,
    singular: kindName.toLowerCase(),
    namespaced: !o.cluster,
    shortNames: o.short ?? [],
    nameRule: o.name ?? 'dns1123-subdomain',
    statusSubresource: o.status ?? false,
    generation: o.generation ?? false,
    validate: o.validate,
    defaults: o.defaults,
    prepare: o.prepare,
  };
}

/** Namespaces get the immutable name label (1.21+) when decoded and by their strategy. */
function namespaceLabel(obj: JsonObject): void {
  const meta = child(obj, 'metadata');
  if (typeof meta.name === 'string') child(meta, 'labels')['kubernetes.io/metadata.name'] = meta.name;
}

/** The namespace strategy: the label again, the `kubernetes` finalizer, phase Active. */
function namespacePrepare(obj: JsonObject): void {
  namespaceLabel(obj);
  const spec = child(obj, 'spec');
  if (!Array.isArray(spec.finalizers)) spec.finalizers = ['kubernetes'];
  const status = child(obj, 'status');
  if (!isObject(status) || status.phase === undefined) status.phase = 'Active';
}

export const KINDS: readonly KindInfo[] = [
  kind('v1', 'Namespace', 'namespaces', { cluster: true, short: ['ns'], name: 'dns1123-label', status: true, defaults: namespaceLabel, prepare: namespacePrepare }),
  kind('v1', 'ConfigMap', 'configmaps', { short: ['cm'], validate: validateConfigMap }),
  kind('v1', 'Secret', 'secrets', { validate: validateConfigMap }),
  kind('v1', 'Service', 'services', { short: ['svc'], name: 'dns1035-label', status: true, validate: validateService }),
  kind('v1', 'ServiceAccount', 'serviceaccounts', { short: ['sa'] }),
  kind('v1', 'Node', 'nodes', { cluster: true, short: ['no'], status: true }),
  kind('v1', 'Pod', 'pods', { short: ['po'], status: true }),
  kind('apps/v1', 'Deployment', 'deployments', { short: ['deploy'], status: true, generation: true, validate: validateWorkload }),
  kind('apps/v1', 'DaemonSet', 'daemonsets', { short: ['ds'], status: true, generation: true, validate: validateWorkload }),
  kind('apps/v1', 'StatefulSet', 'statefulsets', { short: ['sts'], status: true, generation: true, validate: validateWorkload }),
  kind('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', { cluster: true, name: 'path-segment' }),
  kind('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', { cluster: true, name: 'path-segment', validate: validateBinding }),
  kind('rbac.authorization.k8s.io/v1', 'Role', 'roles', { name: 'path-segment' }),
  kind('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', { name: 'path-segment', validate: validateBinding }),
  kind('policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets', { short: ['pdb'], status: true, generation: true }),
  kind('scheduling.k8s.io/v1', 'PriorityClass', 'priorityclasses', { cluster: true, short: ['pc'] }),
  kind('storage.k8s.io/v1', 'StorageClass', 'storageclasses', { cluster: true, short: ['sc'] }),
];

export class Registry {
  constructor(readonly kinds: readonly KindInfo[] = KINDS) {}

  /** Group → versions, in table order (core first). */
  groups(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const k of this.kinds) {
      const versions = out.get(k.group) ?? [];
      if (!versions.includes(k.version)) versions.push(k.version);
      out.set(k.group, versions);
    }
    return out;
  }

  inGroupVersion(group: string, version: string): KindInfo[] {
    return this.kinds.filter((k) => k.group === group && k.version === version);
  }

  byResource(group: string, version: string, plural: string): KindInfo | undefined {
    return this.kinds.find((k) => k.group === group && k.version === version && k.plural === plural);
  }

  byKind(apiVersion: string, kindName: string): KindInfo | undefined {
    return this.kinds.find((k) => apiVersionOf(k) === apiVersion && k.kind === kindName);
  }
}
