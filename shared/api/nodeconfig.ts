// The per-group node config (state store: igconfig/<role>/<ig>/nodeupconfig.yaml)
// that nodeup turns into the machine. Built from the *completed* cluster and
// group; serialised with a fixed key order so its hash only changes when its
// content does.
import { ExitCode, UserError } from '../errors.js';
import { CheckedDocument } from './checked-doc.js';
import { parseCIDR, parseIPv6CIDR } from './cidr.js';
import { joinPath } from './fieldpath.js';
import { hostNameProblem, ipAddressProblem, isPort, labelKeyProblem, labelValueProblem, parseTaint, storeURLProblem } from './k8s-syntax.js';
import { KUBERNETES_VERSION } from './names.js';
import { cloudOf } from './cloud.js';
import { nodeConfigNameProblems } from './node-names.js';
import { parseYamlDocuments, SpecError, toYAML } from './parse.js';
import { nodeSysctls } from './sysctls.js';
import { INSTANCE_GROUP_ROLES, isControlPlane, type Cluster, type InstanceGroup, type InstanceGroupRole } from './types.js';
import { assignEtcdPorts } from './etcd.js';
import { flagValueProblems } from './component-render.js';
import { isObject, mergeInto, type JsonObject } from './options/merge.js';
import type { MooringSettings } from './complete.js';

export { buildBootConfig, nodeConfigHash, parseBootConfig, verifyNodeConfigHash, type BootConfig } from './bootconfig.js';

export const NODE_CONFIG_API_VERSION = 'mooring.dev/v1alpha1';

export interface NodeEtcdCluster {
  name: string;
  version: string;
  clientPort: number;
  peerPort: number;
  grpcPort: number;
  quarantineClientPort: number;
  backupStore: string;
  backupRetentionDays: number;
  memberNames: string[];
  /** This group's member, when it hosts one. */
  memberName?: string;
}

export interface NodeAssets {
  /** `sha256@url1,url2` per file, per architecture. */
  amd64: string[];
  arm64: string[];
  /** Files the mirror leaves out on purpose, by file name, with the reason (nodeup skips what needs them). */
  leftOut?: AssetsLeftOut;
}

export type AssetsLeftOut = Partial<Record<'amd64' | 'arm64', Record<string, string>>>;

export interface NodeConfig {
  apiVersion: typeof NODE_CONFIG_API_VERSION;
  kind: 'NodeConfig';
  clusterName: string;
  instanceGroupName: string;
  instanceGroupRole: InstanceGroupRole;
  cloudProvider: string;
  kubernetesVersion: string;
  configBase: string;
  containerdVersion: string;
  serviceClusterIPRange: string;
  /** None on IPv6 clusters: kops-controller hands out node ranges there, not kube-controller-manager. */
  podCIDR?: string;
  clusterDNS: string;
  clusterDomain: string;
  masterInternalName: string;
  /** Keyset name → id of its primary keypair. */
  keypairIDs: Record<string, string>;
  /** Control plane only. */
  etcdClusters?: NodeEtcdCluster[];
  nodeLabels: Record<string, string>;
  /** kOps' merged list: the cluster's, the group's and its kubelet's taints (control plane: kOps' own). */
  taints: string[];
  /**
   * This group's kubelet settings, as kOps builds them (populate_instancegroup_spec.go):
   * spec.kubelet (control plane: spec.masterKubelet) with the group's spec.kubelet over
   * it; node labels and taints are the fields above.
   */
  kubelet: Record<string, unknown>;
  /** Control plane: the KubeSchedulerConfiguration kept with the cluster (kOps' additional object), if any. */
  kubeSchedulerConfig?: Record<string, unknown>;
  assets: NodeAssets;
  /** Absent unless the mirror leaves files out: then nodeup reports the tasks needing them as skipped, with the reason. */
  assetsLeftOut?: AssetsLeftOut;
  sysctls: Record<string, string>;
}

/** Keysets a group may know about: the control plane all, others only what they use. */
const KEYSETS_BY_ROLE: Partial<Record<InstanceGroupRole, readonly string[]>> = {
  // kubelet and kube-proxy: client keypairs issued by `update cluster`, so these nodes never need a CA's key.
  Node: ['kubernetes-ca', 'kubelet', 'kube-proxy'],
  Bastion: ['kubernetes-ca', 'kubelet', 'kube-proxy'],
  APIServer: ['kubernetes-ca', 'service-account', 'etcd-clients-ca', 'kubelet', 'kube-proxy'],
};

const CONTROL_PLANE_LABELS: Record<string, string> = {
  'node-role.kubernetes.io/control-plane': '',
  'node.kubernetes.io/exclude-from-external-load-balancers': '',
  'kops.k8s.io/kops-controller-pki': '',
};
/** kOps' role labels; the group's own nodeLabels win over them. */
const ROLE_LABELS: Record<InstanceGroupRole, Record<string, string>> = {
  ControlPlane: CONTROL_PLANE_LABELS,
  Master: CONTROL_PLANE_LABELS,
  Node: { 'node-role.kubernetes.io/node': '' },
  APIServer: { 'node-role.kubernetes.io/api-server': '' },
  Bastion: {},
};

function notCompleted(cluster: Cluster, what: string): UserError {
  return new UserError(`cluster "${cluster.metadata.name}" is not completed: ${what} missing (complete it first)`, ExitCode.InvalidSpec);
}

function required<T>(cluster: Cluster, value: T | undefined, path: string): T {
  if (value === undefined || value === null || value === '') throw notCompleted(cluster, path);
  return value;
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** What node configs need beside the completed spec (completeCluster's settings and the kept objects). */
export interface NodeConfigExtras {
  settings?: MooringSettings;
  /** The cluster's KubeSchedulerConfiguration (an additional object), for control-plane groups. */
  kubeSchedulerConfig?: Record<string, unknown>;
}

/** kOps: a group's kubelet is the cluster's (control plane: masterKubelet) with the group's own over it. */
export function groupKubelet(completed: Cluster, ig: InstanceGroup): { kubelet: JsonObject; taints: string[]; refusedTaints: string[] } {
  const spec = completed.spec;
  const base = isControlPlane(ig) ? spec.masterKubelet : spec.kubelet;
  const kubelet: JsonObject = structuredClone(isObject(base) ? base : {});
  // kOps: the nodes' anonymousAuth=false also holds for the control plane.
  if (isControlPlane(ig) && isObject(spec.kubelet) && spec.kubelet.anonymousAuth === false) kubelet.anonymousAuth = false;
  const listOf = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);
  const own = isObject(ig.spec.kubelet) ? ig.spec.kubelet : undefined;
  // Taints are merged, not replaced (kOps keeps the union, sorted).
  const taints = new Set([...listOf(kubelet.taints), ...listOf(ig.spec.taints), ...listOf(own?.taints), ...listOf(isObject(spec.kubelet) ? spec.kubelet.taints : undefined)]);
  if (own) mergeInto(kubelet, own);
  delete kubelet.taints;
  delete kubelet.nodeLabels;
  // kOps also takes taints kubelet refuses (no effect, an unknown one): `update` names them; nodes leave them out.
  const all = [...taints].sort();
  const refusedTaints = all.filter((t) => typeof parseTaint(t) === 'string');
  return { kubelet, taints: all.filter((t) => !refusedTaints.includes(t)), refusedTaints };
}

/**
 * `completed` and `ig` must be the output of completeCluster; `extras.settings` its
 * settings (without them the ports are derived again from the completed spec).
 * `assets`: the group's `sha256@url` entries (shared/api/assets.ts); none when omitted.
 */
export function buildNodeConfig(completed: Cluster, ig: InstanceGroup, keypairIDs: Record<string, string>, assets?: NodeAssets, extras: NodeConfigExtras = {}): NodeConfig {
  const spec = completed.spec;
  const need = <T>(value: T | undefined, path: string): T => required(completed, value, path);
  const controlPlane = isControlPlane(ig);
  const controlPlaneKubelet = controlPlane ? (spec.masterKubelet ?? spec.controlPlaneKubelet) : undefined;
  const { kubelet, taints } = groupKubelet(completed, ig);
  const allowed = KEYSETS_BY_ROLE[ig.spec.role];
  const keys = allowed ? Object.fromEntries(Object.entries(keypairIDs).filter(([name]) => allowed.includes(name))) : keypairIDs;
  const config: NodeConfig = {
    apiVersion: NODE_CONFIG_API_VERSION,
    kind: 'NodeConfig',
    clusterName: completed.metadata.name,
    instanceGroupName: ig.metadata.name,
    instanceGroupRole: ig.spec.role,
    cloudProvider: cloudOf(completed),
    kubernetesVersion: need(spec.kubernetesVersion, 'spec.kubernetesVersion'),
    configBase: need(spec.configBase, 'spec.configBase'),
    containerdVersion: need(spec.containerd?.version, 'spec.containerd.version'),
    serviceClusterIPRange: need(spec.serviceClusterIPRange, 'spec.serviceClusterIPRange'),
    ...(spec.nonMasqueradeCIDR?.includes(':') && spec.podCIDR === undefined ? {} : { podCIDR: need(spec.podCIDR, 'spec.podCIDR') }),
    clusterDNS: need(controlPlaneKubelet?.clusterDNS ?? spec.kubelet?.clusterDNS, 'spec.kubelet.clusterDNS'),
    clusterDomain: need(controlPlaneKubelet?.clusterDomain ?? spec.kubelet?.clusterDomain, 'spec.kubelet.clusterDomain'),
    masterInternalName: need(extras.settings?.masterInternalName ?? spec.masterInternalName ?? `api.internal.${completed.metadata.name}`, 'spec.masterInternalName'),
    keypairIDs: sortedRecord(keys),
    nodeLabels: sortedRecord({ ...ROLE_LABELS[ig.spec.role], ...ig.spec.nodeLabels, 'kops.k8s.io/instancegroup': ig.metadata.name }),
    taints,
    kubelet,
    assets: { amd64: [...(assets?.amd64 ?? [])], arm64: [...(assets?.arm64 ?? [])] },
    sysctls: sortedRecord(nodeSysctls(cloudOf(completed), spec.sysctlParameters, ig.spec.sysctlParameters)),
  };
  if (assets?.leftOut && Object.keys(assets.leftOut).length > 0) config.assetsLeftOut = assets.leftOut;
  if (controlPlane) {
    config.etcdClusters = nodeEtcdClusters(completed, ig.metadata.name, extras.settings);
    if (extras.kubeSchedulerConfig) config.kubeSchedulerConfig = structuredClone(extras.kubeSchedulerConfig);
  }
  // Never written with a name nodeup would refuse (or turn into a path out of its root).
  const problem = nodeConfigNameProblems(config)[0];
  if (problem) {
    throw new UserError(`cluster "${completed.metadata.name}", node config of instance group "${ig.metadata.name}": ${problem.path}: ${problem.reason}`, ExitCode.InvalidSpec);
  }
  return config;
}

function nodeEtcdClusters(completed: Cluster, groupName: string, settings: MooringSettings | undefined): NodeEtcdCluster[] {
  const etcdClusters = required(completed, completed.spec.etcdClusters, 'spec.etcdClusters');
  // Ports are not part of kOps' spec: completion hands them over in its settings.
  const derived = structuredClone(etcdClusters);
  assignEtcdPorts(derived);
  return etcdClusters.map((etcd, i) => {
    const need = <T>(value: T | undefined, field: string): T => required(completed, value, `spec.etcdClusters[${i}].${field}`);
    const member = etcd.etcdMembers.find((m) => m.instanceGroup === groupName);
    const ports = settings?.etcdPorts[etcd.name] ?? derived[i];
    return {
      name: etcd.name,
      version: need(etcd.version, 'version'),
      clientPort: need(ports.clientPort, 'clientPort'),
      peerPort: need(ports.peerPort, 'peerPort'),
      grpcPort: need(ports.grpcPort, 'grpcPort'),
      quarantineClientPort: need(ports.quarantineClientPort, 'quarantineClientPort'),
      backupStore: need(etcd.backups?.backupStore, 'backups.backupStore'),
      backupRetentionDays: need(etcd.manager?.backupRetentionDays, 'manager.backupRetentionDays'),
      memberNames: etcd.etcdMembers.map((m) => m.name),
      ...(member ? { memberName: member.name } : {}),
    };
  });
}

const KEY_ORDER: readonly (keyof NodeConfig)[] = [
  'apiVersion', 'kind', 'clusterName', 'instanceGroupName', 'instanceGroupRole', 'cloudProvider',
  'kubernetesVersion', 'configBase', 'containerdVersion', 'serviceClusterIPRange', 'podCIDR',
  'clusterDNS', 'clusterDomain', 'masterInternalName', 'keypairIDs', 'etcdClusters', 'nodeLabels',
  'taints', 'kubelet', 'kubeSchedulerConfig', 'assets', 'assetsLeftOut', 'sysctls',
];
const ETCD_KEY_ORDER: readonly (keyof NodeEtcdCluster)[] = [
  'name', 'version', 'clientPort', 'peerPort', 'grpcPort', 'quarantineClientPort', 'backupStore',
  'backupRetentionDays', 'memberNames', 'memberName',
];

/** Known keys in their order, then any others sorted, so added fields are never dropped. */
function ordered<T extends object>(value: T, order: readonly (keyof T)[]): Partial<T> {
  const rest = (Object.keys(value) as (keyof T)[]).filter((key) => !order.includes(key)).sort();
  const result: Partial<T> = {};
  for (const key of [...order, ...rest]) if (value[key] !== undefined) result[key] = value[key];
  return result;
}

/** YAML with a fixed key order and sorted maps: equal configs give equal bytes. */
export function serializeNodeConfig(nc: NodeConfig): string {
  return toYAML({
    ...ordered(nc, KEY_ORDER),
    keypairIDs: sortedRecord(nc.keypairIDs),
    ...(nc.etcdClusters ? { etcdClusters: nc.etcdClusters.map((e) => ordered(e, ETCD_KEY_ORDER)) } : {}),
    nodeLabels: sortedRecord(nc.nodeLabels),
    assets: { amd64: nc.assets.amd64, arm64: nc.assets.arm64 },
    ...(nc.assetsLeftOut ? { assetsLeftOut: Object.fromEntries(Object.entries(nc.assetsLeftOut).map(([arch, files]) => [arch, sortedRecord(files ?? {})])) } : {}),
    sysctls: sortedRecord(nc.sysctls),
  });
}

/** Reads a node config, checking every field nodeup relies on. */
export function parseNodeConfig(text: string, source: string): NodeConfig {
  const docs = parseYamlDocuments(text, source);
  if (docs.length !== 1) throw new SpecError(`expected one NodeConfig document, found ${docs.length}`, { source });
  const d = new CheckedDocument(docs[0]);
  d.record('');
  d.oneOf('apiVersion', [NODE_CONFIG_API_VERSION]);
  d.oneOf('kind', ['NodeConfig']);
  for (const key of [
    'clusterName', 'instanceGroupName', 'cloudProvider', 'kubernetesVersion', 'configBase', 'containerdVersion',
    'serviceClusterIPRange', 'clusterDNS', 'clusterDomain', 'masterInternalName',
  ]) {
    d.string(key);
  }
  if (d.at('podCIDR') !== undefined) d.string('podCIDR');
  d.oneOf('instanceGroupRole', INSTANCE_GROUP_ROLES);
  d.stringRecord('keypairIDs');
  d.stringRecord('nodeLabels');
  d.stringList('taints');
  // Node configs written before kubelet settings were carried have none: the kubelet's defaults then.
  if (d.at('kubelet') === undefined) (docs[0].value as Record<string, unknown>).kubelet = {};
  d.record('kubelet');
  if (d.at('kubeSchedulerConfig') !== undefined) d.record('kubeSchedulerConfig');
  d.record('assets');
  d.stringList('assets.amd64');
  d.stringList('assets.arm64');
  if (d.at('assetsLeftOut') !== undefined) {
    d.record('assetsLeftOut');
    for (const arch of ['amd64', 'arm64']) if (d.at(`assetsLeftOut.${arch}`) !== undefined) d.stringRecord(`assetsLeftOut.${arch}`);
  }
  d.stringRecord('sysctls');
  checkEtcdSections(d);
  // Names become paths, unit names and store keys on the node: checked as names before anything uses them.
  const problem = nodeConfigNameProblems(docs[0].value as NodeConfig)[0];
  if (problem) d.fail(problem.path, problem.reason);
  checkRenderedValues(d);
  return docs[0].value as NodeConfig;
}

/**
 * The values nodeup writes into command lines, environment files, sysctl.d and
 * /etc/hosts, checked again here with the rules `mooring` validated them by: a
 * node config from an older writer or a tampered store is refused, not rendered.
 */
function checkRenderedValues(d: CheckedDocument): void {
  const syntax = (path: string, problem: (v: string) => string | undefined, what: string) => {
    const value = d.string(path);
    const reason = problem(value);
    if (reason) d.fail(path, `invalid ${what} ${JSON.stringify(value)} (${reason})`);
  };
  // Names (cluster, group, etcd, versions that become paths, sysctl keys) are nodeConfigNameProblems' part.
  syntax('instanceGroupName', labelValueProblem, 'name (it is the kops.k8s.io/instancegroup label)');
  syntax('kubernetesVersion', (v) => (KUBERNETES_VERSION.test(v) ? undefined : 'want e.g. 1.30.5'), 'version');
  syntax('configBase', storeURLProblem, 'state store URL');
  syntax('clusterDomain', hostNameProblem, 'name');
  syntax('clusterDNS', ipAddressProblem, 'IP address');
  syntax('serviceClusterIPRange', cidrProblem, 'CIDR');
  if (d.at('podCIDR') !== undefined) syntax('podCIDR', cidrProblem, 'CIDR');
  for (const [key, value] of Object.entries(d.stringRecord('nodeLabels'))) {
    const path = joinPath('nodeLabels', key);
    const reason = labelKeyProblem(key);
    if (reason) d.fail(path, `invalid label key ${JSON.stringify(key)}: ${reason}`);
    const valueReason = labelValueProblem(value);
    if (valueReason) d.fail(path, `invalid label value ${JSON.stringify(value)}: ${valueReason}`);
  }
  d.stringList('taints').forEach((taint, i) => {
    const parsed = parseTaint(taint);
    if (typeof parsed === 'string') d.fail(`taints[${i}]`, `invalid taint ${JSON.stringify(taint)}: ${parsed}`);
  });
  // Every kubelet setting must have the format its flag or config field takes.
  const problem = flagValueProblems('kubelet', d.record('kubelet'))[0];
  if (problem) d.fail(joinPath('kubelet', problem.field), problem.reason);
  for (const [key, value] of Object.entries(d.stringRecord('sysctls'))) {
    if (/\p{Cc}/u.test(value)) d.fail(joinPath('sysctls', key), `invalid sysctl ${JSON.stringify(`${key}=${value}`)} (want key=value on one line)`);
  }
  if (d.at('etcdClusters') === undefined) return;
  d.list('etcdClusters').forEach((_, i) => {
    const path = `etcdClusters[${i}]`;
    syntax(`${path}.backupStore`, storeURLProblem, 'state store URL');
    for (const key of ['clientPort', 'peerPort', 'grpcPort', 'quarantineClientPort']) {
      if (!isPort(d.integer(`${path}.${key}`))) d.fail(`${path}.${key}`, 'must be a port number 1-65535');
    }
  });
}

function cidrProblem(value: string): string | undefined {
  try {
    if (value.includes(':')) parseIPv6CIDR(value);
    else parseCIDR(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function checkEtcdSections(d: CheckedDocument): void {
  if (d.at('etcdClusters') === undefined) return;
  d.list('etcdClusters').forEach((_, i) => {
    const path = `etcdClusters[${i}]`;
    d.record(path);
    for (const key of ['name', 'version', 'backupStore']) d.string(`${path}.${key}`);
    for (const key of ['clientPort', 'peerPort', 'grpcPort', 'quarantineClientPort', 'backupRetentionDays']) {
      d.integer(`${path}.${key}`);
    }
    d.stringList(`${path}.memberNames`);
    if (d.at(`${path}.memberName`) !== undefined) d.string(`${path}.memberName`);
  });
}
