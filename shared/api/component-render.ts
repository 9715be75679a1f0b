// How nodeup renders each component section of the completed spec, as data
// both sides use: nodeup to render, `mooring update cluster` to warn about
// every set field that would not reach its component.
//
// A field reaches its component as one of:
//   - a command-line flag, by its kOps `flag` tag (kops-flags.generated.ts);
//   - a kubelet config-file field (KUBELET_CONFIG_FIELDS, from kOps'
//     nodeup/pkg/model/kubelet.go, which writes every `flag:"-"` field there);
//   - something nodeup's model renders itself (MODEL_FIELDS: images,
//     resources, environment, scheduler settings kept in its config file);
//   - a value nodeup sets itself (OWNED_FIELDS: paths of certificates and
//     kubeconfigs it writes); a spec value for those is not used.
// Anything else is reported by `update` and left out, never silently.
import { COMPONENT_STRUCTS, FlagValueError, renderComponentFlags, type ComponentStruct } from './kops-flags.js';
import { durationFlagValue } from './k8s-values.js';
import { isObject } from './options/merge.js';
import type { Cluster, InstanceGroup } from './types.js';

export type ComponentSection = 'kubeAPIServer' | 'kubeControllerManager' | 'kubeScheduler' | 'kubeProxy' | 'kubelet' | 'masterKubelet' | 'containerd';

const set = (...names: string[]): ReadonlySet<string> => new Set(names);

/** Fields the nodeup model renders other than as flags. */
export const MODEL_FIELDS: Readonly<Record<ComponentSection, ReadonlySet<string>>> = {
  // serviceAccountKeyFile: nodeup's own public key is added to the spec's list (kOps).
  kubeAPIServer: set('image', 'cpuRequest', 'cpuLimit', 'memoryRequest', 'memoryLimit', 'env', 'additionalServiceAccountIssuers', 'appendAdmissionPlugins', 'serviceAccountKeyFile'),
  kubeControllerManager: set('image', 'cpuRequest', 'cpuLimit', 'memoryRequest', 'memoryLimit'),
  kubeScheduler: set('image', 'cpuRequest', 'cpuLimit', 'memoryRequest', 'memoryLimit', 'qps', 'burst', 'maxPersistentVolumes'),
  kubeProxy: set('image', 'cpuRequest', 'cpuLimit', 'memoryRequest', 'memoryLimit', 'enabled'),
  // Node labels and taints reach the kubelet through the node config.
  kubelet: set('nodeLabels', 'taints'),
  masterKubelet: set('nodeLabels', 'taints'),
  // containerd's config.toml, its unit's environment and its release assets.
  containerd: set('version', 'runc', 'packages', 'sandboxImage', 'registryMirrors', 'configAdditions', 'configOverride', 'skipInstall', 'selinuxEnabled', 'nri'),
};

/** Fields nodeup sets when the spec leaves them unset (kOps' nodeup does the same); a spec value wins. */
export const DEFAULTED_FIELDS: Readonly<Partial<Record<ComponentSection, Readonly<Record<string, string>>>>> = {
  kubeAPIServer: {
    clientCAFile: '/srv/kubernetes/ca.crt',
    serviceAccountSigningKeyFile: '/srv/kubernetes/kube-apiserver/service-account.key',
  },
};

/** Fields nodeup sets to the files it writes; a different spec value is not used. */
export const OWNED_FIELDS: Readonly<Record<ComponentSection, Readonly<Record<string, string>>>> = {
  kubeAPIServer: {
    etcdCaFile: '/srv/kubernetes/kube-apiserver/etcd-ca.crt',
    etcdCertFile: '/srv/kubernetes/kube-apiserver/etcd-client.crt',
    etcdKeyFile: '/srv/kubernetes/kube-apiserver/etcd-client.key',
    tlsCertFile: '/srv/kubernetes/kube-apiserver/server.crt',
    tlsPrivateKeyFile: '/srv/kubernetes/kube-apiserver/server.key',
  },
  kubeControllerManager: {
    rootCAFile: '/srv/kubernetes/ca.crt',
    serviceAccountPrivateKeyFile: '/srv/kubernetes/kube-apiserver/service-account.key',
  },
  kubeScheduler: {},
  kubeProxy: {},
  kubelet: { kubeconfigPath: '/var/lib/kubelet/kubeconfig', podManifestPath: '/etc/kubernetes/manifests', clientCaFile: '/srv/kubernetes/ca.crt' },
  masterKubelet: { kubeconfigPath: '/var/lib/kubelet/kubeconfig', podManifestPath: '/etc/kubernetes/manifests', clientCaFile: '/srv/kubernetes/ca.crt' },
  containerd: { address: '/run/containerd/containerd.sock' },
};

/** How a kubelet spec value becomes its KubeletConfiguration value (kOps' conversions). */
export type KubeletConfigConversion = 'value' | 'duration' | 'single-list' | 'map<' | 'map=' | 'bool-map' | 'comma-list';

/** kOps' spec field → KubeletConfiguration (kubelet.config.k8s.io/v1beta1) field path and conversion. */
export const KUBELET_CONFIG_FIELDS: Readonly<Record<string, readonly [string, KubeletConfigConversion]>> = {
  anonymousAuth: ['authentication.anonymous.enabled', 'value'],
  clientCaFile: ['authentication.x509.clientCAFile', 'value'],
  podManifestPath: ['staticPodPath', 'value'],
  tlsCertFile: ['tlsCertFile', 'value'],
  tlsPrivateKeyFile: ['tlsPrivateKeyFile', 'value'],
  authenticationTokenWebhook: ['authentication.webhook.enabled', 'value'],
  authorizationMode: ['authorization.mode', 'value'],
  cgroupDriver: ['cgroupDriver', 'value'],
  cgroupRoot: ['cgroupRoot', 'value'],
  tlsCipherSuites: ['tlsCipherSuites', 'value'],
  tlsMinVersion: ['tlsMinVersion', 'value'],
  clusterDNS: ['clusterDNS', 'single-list'],
  clusterDomain: ['clusterDomain', 'value'],
  enableDebuggingHandlers: ['enableDebuggingHandlers', 'value'],
  hairpinMode: ['hairpinMode', 'value'],
  volumePluginDirectory: ['volumePluginDir', 'value'],
  kubeletCgroups: ['kubeletCgroups', 'value'],
  systemCgroups: ['systemCgroups', 'value'],
  podCIDR: ['podCIDR', 'value'],
  resolvConf: ['resolvConf', 'value'],
  serializeImagePulls: ['serializeImagePulls', 'value'],
  maxParallelImagePulls: ['maxParallelImagePulls', 'value'],
  allowedUnsafeSysctls: ['allowedUnsafeSysctls', 'value'],
  cpuCFSQuota: ['cpuCFSQuota', 'value'],
  cpuCFSQuotaPeriod: ['cpuCFSQuotaPeriod', 'duration'],
  cpuManagerPolicy: ['cpuManagerPolicy', 'value'],
  registryPullQPS: ['registryPullQPS', 'value'],
  topologyManagerPolicy: ['topologyManagerPolicy', 'value'],
  rotateCertificates: ['rotateCertificates', 'value'],
  containerLogMaxSize: ['containerLogMaxSize', 'value'],
  containerLogMaxFiles: ['containerLogMaxFiles', 'value'],
  podPidsLimit: ['podPidsLimit', 'value'],
  imageGCHighThresholdPercent: ['imageGCHighThresholdPercent', 'value'],
  imageGCLowThresholdPercent: ['imageGCLowThresholdPercent', 'value'],
  imageMaximumGCAge: ['imageMaximumGCAge', 'duration'],
  nodeStatusUpdateFrequency: ['nodeStatusUpdateFrequency', 'duration'],
  nodeLeaseDurationSeconds: ['nodeLeaseDurationSeconds', 'value'],
  seccompDefault: ['seccompDefault', 'value'],
  kubeReserved: ['kubeReserved', 'value'],
  kubeReservedCgroup: ['kubeReservedCgroup', 'value'],
  systemReserved: ['systemReserved', 'value'],
  systemReservedCgroup: ['systemReservedCgroup', 'value'],
  failSwapOn: ['failSwapOn', 'value'],
  evictionPressureTransitionPeriod: ['evictionPressureTransitionPeriod', 'duration'],
  evictionMaxPodGracePeriod: ['evictionMaxPodGracePeriod', 'value'],
  eventRecordQPS: ['eventRecordQPS', 'value'],
  // kOps' older name wins over eventRecordQPS when both are set.
  eventQPS: ['eventRecordQPS', 'value'],
  protectKernelDefaults: ['protectKernelDefaults', 'value'],
  kernelMemcgNotification: ['kernelMemcgNotification', 'value'],
  maxPods: ['maxPods', 'value'],
  readOnlyPort: ['readOnlyPort', 'value'],
  memorySwapBehavior: ['memorySwap.swapBehavior', 'value'],
  logFormat: ['logging.format', 'value'],
  crashLoopBackOffMaxContainerRestartPeriod: ['crashLoopBackOff.maxContainerRestartPeriod', 'duration'],
  shutdownGracePeriod: ['shutdownGracePeriod', 'duration'],
  shutdownGracePeriodCriticalPods: ['shutdownGracePeriodCriticalPods', 'duration'],
  evictionHard: ['evictionHard', 'map<'],
  evictionSoft: ['evictionSoft', 'map<'],
  evictionSoftGracePeriod: ['evictionSoftGracePeriod', 'map='],
  evictionMinimumReclaim: ['evictionMinimumReclaim', 'map='],
  featureGates: ['featureGates', 'bool-map'],
  enforceNodeAllocatable: ['enforceNodeAllocatable', 'comma-list'],
};

/** kOps' parseKeyValueList: "a<b,c<d" → {a: b, c: d}, blanks around keys and values trimmed. */
function keyValueList(field: string, text: string, separator: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const at = pair.indexOf(separator);
    if (at < 0) throw new FlagValueError(field, `invalid key/value pair ${JSON.stringify(pair)} (expected separator ${JSON.stringify(separator)})`);
    out[pair.slice(0, at).trim()] = pair.slice(at + separator.length).trim();
  }
  return out;
}

/** strconv.ParseBool's words. */
function parseGoBool(field: string, name: string, value: unknown): boolean {
  const text = String(value);
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  throw new FlagValueError(field, `invalid feature gate value ${JSON.stringify(name)}=${JSON.stringify(text)} (want true or false)`);
}

/** One kubelet spec value as its KubeletConfiguration value. */
export function kubeletConfigValue(field: string, conversion: KubeletConfigConversion, value: unknown): unknown {
  switch (conversion) {
    case 'value':
      return value;
    case 'duration':
      try {
        return durationFlagValue(String(value));
      } catch (err) {
        throw new FlagValueError(field, (err as Error).message);
      }
    case 'single-list':
      return [value];
    case 'map<':
    case 'map=':
      return value === '' ? undefined : keyValueList(field, String(value), conversion.slice(3));
    case 'bool-map': {
      if (!isObject(value)) throw new FlagValueError(field, 'must be a map of feature gates');
      const entries = Object.entries(value);
      return entries.length === 0 ? undefined : Object.fromEntries(entries.map(([k, v]) => [k, parseGoBool(field, k, v)]));
    }
    case 'comma-list':
      return value === '' ? undefined : String(value).split(',');
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    node = isObject(next) ? next : (node[part] = {});
  }
  node[parts[parts.length - 1]] = value;
}

/** The KubeletConfiguration fields a kubelet section sets (kOps' conversions); a malformed value throws FlagValueError. */
export function kubeletConfigFields(kubelet: Record<string, unknown>): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  // eventQPS after eventRecordQPS: the older name wins, as in kOps.
  const fields = Object.keys(kubelet).sort((a, b) => Number(a === 'eventQPS') - Number(b === 'eventQPS'));
  for (const field of fields) {
    const value = kubelet[field];
    if (value === undefined || value === null) continue;
    const target = Object.hasOwn(KUBELET_CONFIG_FIELDS, field) ? KUBELET_CONFIG_FIELDS[field] : undefined;
    if (!target) continue;
    const converted = kubeletConfigValue(field, target[1], value);
    if (converted !== undefined) setPath(config, target[0], converted);
  }
  return config;
}

export interface SectionReport {
  /** Set fields that reach their component nowhere: left out, with a warning at update. */
  unrendered: string[];
  /** Set fields nodeup sets itself to another value: the spec's value is not used. */
  overridden: string[];
}

/** What of a component section nodeup renders, as data: the warnings `update` prints. */
export function sectionReport(section: ComponentSection, value: Record<string, unknown> | undefined): SectionReport {
  const struct: ComponentStruct = COMPONENT_STRUCTS[section];
  const owned = OWNED_FIELDS[section];
  const handled = new Set([...MODEL_FIELDS[section], ...Object.keys(owned)]);
  if (section === 'kubelet' || section === 'masterKubelet') for (const f of Object.keys(KUBELET_CONFIG_FIELDS)) handled.add(f);
  const { unrendered } = renderComponentFlags(struct, value, handled);
  if (section === 'kubelet' || section === 'masterKubelet') kubeletConfigFields(value ?? {});
  const overridden = Object.entries(owned)
    .filter(([field, path]) => value?.[field] !== undefined && value[field] !== path && !(Array.isArray(value[field]) && (value[field] as unknown[]).length === 0))
    .map(([field]) => field);
  return { unrendered, overridden };
}

/** Each set field of a section whose value has not the format its flag or config field takes. */
export function flagValueProblems(section: ComponentSection, value: Record<string, unknown>): Array<{ field: string; reason: string }> {
  const problems: Array<{ field: string; reason: string }> = [];
  for (const [field, fieldValue] of Object.entries(value)) {
    try {
      sectionReport(section, { [field]: fieldValue });
    } catch (err) {
      if (!(err instanceof FlagValueError)) throw err;
      problems.push({ field: err.field, reason: err.message.slice(err.field.length + 2) });
    }
  }
  return problems;
}

/** The warnings about one section, its fields named from `where` (e.g. `spec.kubelet`). */
function sectionWarnings(section: ComponentSection, value: Record<string, unknown>, where: string): string[] {
  let report: SectionReport;
  try {
    report = sectionReport(section, value);
  } catch (err) {
    if (err instanceof FlagValueError) return [`warning: ${where}.${err.message}; nodes leave it out`];
    throw err;
  }
  return [
    ...report.unrendered.map((field) => `warning: ${where}.${field} is set but nodeup has no way to pass it to ${componentName(section)}; nodes leave it out`),
    ...report.overridden.map((field) => `warning: ${where}.${field} is set but nodeup sets it to ${OWNED_FIELDS[section][field]} (the file it writes); nodes do not use the spec's value`),
  ];
}

/**
 * Every warning about spec fields nodes would not get, by spec path: the cluster's
 * component sections, and each instance group's own kubelet settings.
 */
export function renderWarnings(completed: Cluster, groups: readonly InstanceGroup[] = []): string[] {
  const warnings: string[] = [];
  for (const section of Object.keys(MODEL_FIELDS) as ComponentSection[]) {
    const value = completed.spec[section];
    if (isObject(value)) warnings.push(...sectionWarnings(section, value, `spec.${section}`));
  }
  for (const ig of groups) {
    const kubelet = ig.spec.kubelet;
    if (isObject(kubelet)) warnings.push(...sectionWarnings('kubelet', kubelet, `instance group "${ig.metadata.name}": spec.kubelet`));
  }
  return warnings;
}

function componentName(section: ComponentSection): string {
  switch (section) {
    case 'kubeAPIServer':
      return 'kube-apiserver';
    case 'kubeControllerManager':
      return 'kube-controller-manager';
    case 'kubeScheduler':
      return 'kube-scheduler';
    case 'kubeProxy':
      return 'kube-proxy';
    case 'kubelet':
    case 'masterKubelet':
      return 'the kubelet';
    case 'containerd':
      return 'containerd';
  }
}
