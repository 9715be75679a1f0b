// Control-plane static pods (kube-apiserver, kube-controller-manager,
// kube-scheduler) in /etc/kubernetes/manifests, with the certificates,
// keys and kubeconfigs they read. Only control-plane groups get any of this.
import { X509Certificate } from 'node:crypto';
import YAML from 'yaml';
import { dirname } from 'node:path';
import { nthAddressOf } from '../../../shared/api/cidr.js';
import { FileTask } from '../tasks/file.js';
import { CertificateTask, KubeconfigTask, issuedClientCredentials } from '../tasks/certificate.js';
import type { Task } from '../engine/task.js';
import { DEFAULTED_FIELDS, MODEL_FIELDS, OWNED_FIELDS, type ComponentSection } from '../../../shared/api/component-render.js';
import { quantityFlagValue } from '../../../shared/api/k8s-values.js';
import { COMPONENT_STRUCTS, renderComponentFlags } from '../../../shared/api/kops-flags.js';
import { CA_CERT_PATH } from './base.js';
import type { ModelInput } from './context.js';

const PKI = '/srv/kubernetes/kube-apiserver';
export const MANIFESTS = '/etc/kubernetes/manifests';

interface HostPath {
  path: string;
  writable?: boolean;
  /** Where it appears in the container, when not the same path. */
  mountPath?: string;
  type?: 'FileOrCreate' | 'DirectoryOrCreate';
}

export interface PodOptions {
  name: string;
  image: string;
  command: string[];
  hostPaths: Array<string | HostPath>;
  port?: number;
  scheme?: 'HTTPS';
  /** From the spec's cpuRequest, memoryRequest, cpuLimit, memoryLimit. */
  resources?: { requests: Record<string, string>; limits?: Record<string, string> };
  env?: Array<{ name: string; value: string }>;
  privileged?: boolean;
}

/** A static pod as kubelet reads it: hostNetwork, critical priority, host folders mounted (read-only unless said). */
export function staticPod(o: PodOptions): string {
  const paths = o.hostPaths.map((p) => (typeof p === 'string' ? { path: p } : p));
  const volumes = paths.map((p, i) => ({ name: `host-${i}`, hostPath: { path: p.path, ...(p.type ? { type: p.type } : {}) } }));
  const limits = o.resources?.limits && Object.keys(o.resources.limits).length > 0 ? { limits: o.resources.limits } : {};
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: 'kube-system', labels: { 'k8s-app': o.name } },
    spec: {
      hostNetwork: true,
      priorityClassName: 'system-node-critical',
      containers: [{
        name: o.name,
        image: o.image,
        command: o.command,
        ...(o.env && o.env.length > 0 ? { env: o.env } : {}),
        ...(o.port ? { livenessProbe: { httpGet: { host: '127.0.0.1', path: '/healthz', port: o.port, ...(o.scheme ? { scheme: o.scheme } : {}) }, initialDelaySeconds: 15, timeoutSeconds: 15 } } : {}),
        resources: { requests: o.resources?.requests ?? { cpu: '100m' }, ...limits },
        ...(o.privileged ? { securityContext: { privileged: true } } : {}),
        volumeMounts: paths.map((p, i) => ({ name: volumes[i].name, mountPath: p.mountPath ?? p.path, readOnly: !p.writable })),
      }],
      volumes,
    },
  });
}

function section(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** The image the spec names (completion fills it), else the component's upstream image. */
function image(input: ModelInput, component: string, spec: Record<string, unknown>): string {
  return typeof spec.image === 'string' && spec.image !== '' ? spec.image : `registry.k8s.io/${component}:v${input.nodeConfig.kubernetesVersion}`;
}

/** A quantity as the spec wrote it, for a pod's resources. */
function quantity(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

/** The spec's cpuRequest, memoryRequest, cpuLimit and memoryLimit, with kOps' default cpu request. */
export function podResources(spec: Record<string, unknown>, defaultCPU: string): NonNullable<PodOptions['resources']> {
  const requests: Record<string, string> = { cpu: quantity(spec.cpuRequest) ?? defaultCPU };
  const memory = quantity(spec.memoryRequest);
  if (memory) requests.memory = memory;
  const limits: Record<string, string> = {};
  const cpuLimit = quantity(spec.cpuLimit);
  const memoryLimit = quantity(spec.memoryLimit);
  if (cpuLimit) limits.cpu = cpuLimit;
  if (memoryLimit) limits.memory = memoryLimit;
  return { requests, limits };
}

/** The spec's environment for a container (kubeAPIServer.env): name/value pairs only. */
function podEnv(value: unknown): Array<{ name: string; value: string }> {
  if (!Array.isArray(value)) return [];
  return value
    .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && typeof (e as Record<string, unknown>).name === 'string')
    .map((e) => ({ name: String(e.name), value: e.value === undefined ? '' : String(e.value) }));
}

/** A section's values with nodeup's own: those it always sets, and those it sets when the spec does not. */
function withNodeupValues(section: ComponentSection, spec: Record<string, unknown>): Record<string, unknown> {
  const values: Record<string, unknown> = { ...DEFAULTED_FIELDS[section], ...spec };
  for (const [field, value] of Object.entries(OWNED_FIELDS[section])) values[field] = value;
  return values;
}

/** A section's flags in kOps' formats and order; fields the model renders another way are left to it. */
function componentFlags(section: ComponentSection, values: Record<string, unknown>): string[] {
  return renderComponentFlags(COMPONENT_STRUCTS[section], values, MODEL_FIELDS[section]).flags;
}

export function apiServerCommand(input: ModelInput): string[] {
  const nc = input.nodeConfig;
  const spec = section(input.cluster.spec.kubeAPIServer);
  const values = withNodeupValues('kubeAPIServer', spec);
  const main = nc.etcdClusters?.find((e) => e.name === 'main');
  const events = nc.etcdClusters?.find((e) => e.name === 'events');
  if (!Array.isArray(values.etcdServers) && main) values.etcdServers = [`https://127.0.0.1:${main.clientPort}`];
  if (!Array.isArray(values.etcdServersOverrides) && events) values.etcdServersOverrides = [`/events#https://127.0.0.1:${events.clientPort}`];
  values.serviceClusterIPRange ??= nc.serviceClusterIPRange;
  values.securePort ??= 443;
  // kOps: --admission-control and --enable-admission-plugins cannot both be given; the older name wins.
  if (Array.isArray(values.admissionControl) && values.admissionControl.length > 0) {
    values.enableAdmissionPlugins = values.admissionControl;
    delete values.admissionControl;
  }
  const flags = componentFlags('kubeAPIServer', values);
  const keyFiles = [...(Array.isArray(spec.serviceAccountKeyFile) ? spec.serviceAccountKeyFile.map(String) : []), `${PKI}/service-account.pub`];
  flags.push(...keyFiles.map((f) => `--service-account-key-file=${f}`));
  const issuers = Array.isArray(spec.additionalServiceAccountIssuers) ? spec.additionalServiceAccountIssuers.map(String) : [];
  return ['/usr/local/bin/kube-apiserver', ...flags.sort(), ...issuers.map((i) => `--service-account-issuer=${i}`)];
}

export function controllerManagerCommand(input: ModelInput, kubeconfig: string): string[] {
  const values = withNodeupValues('kubeControllerManager', section(input.cluster.spec.kubeControllerManager));
  const flags = componentFlags('kubeControllerManager', values);
  for (const prefix of ['', 'authentication-', 'authorization-']) flags.push(`--${prefix}kubeconfig=${kubeconfig}`);
  flags.push(`--cluster-signing-cert-file=${CA_CERT_PATH}`);
  flags.push(`--flex-volume-plugin-dir=${String(input.nodeConfig.kubelet.volumePluginDirectory ?? '/usr/libexec/kubernetes/kubelet-plugins/volume/exec/')}`);
  return ['/usr/local/bin/kube-controller-manager', ...flags];
}

export const SCHEDULER_CONFIG = '/var/lib/kube-scheduler/config.yaml';
const SCHEDULER_KUBECONFIG = '/var/lib/kube-scheduler/kubeconfig';

export function schedulerCommand(input: ModelInput): string[] {
  const flags = componentFlags('kubeScheduler', section(input.cluster.spec.kubeScheduler));
  flags.push(`--config=${SCHEDULER_CONFIG}`, '--authentication-tolerate-lookup-failure=false', '--authentication-skip-lookup=false');
  for (const prefix of ['authentication-', 'authorization-']) flags.push(`--${prefix}kubeconfig=${SCHEDULER_KUBECONFIG}`);
  return ['/usr/local/bin/kube-scheduler', ...flags];
}

/**
 * kube-scheduler's config file: the cluster's KubeSchedulerConfiguration (kOps'
 * additional object) or kOps' empty one, with nodeup's kubeconfig and the spec's
 * qps and burst (kOps' `config` tags).
 */
export function schedulerConfiguration(input: ModelInput): string {
  const spec = section(input.cluster.spec.kubeScheduler);
  const config: Record<string, unknown> = structuredClone(input.nodeConfig.kubeSchedulerConfig ?? { apiVersion: 'kubescheduler.config.k8s.io/v1', kind: 'KubeSchedulerConfiguration' });
  const connection = section(config.clientConnection);
  connection.kubeconfig = SCHEDULER_KUBECONFIG;
  if (spec.qps !== undefined) connection.qps = Number(quantityFlagValue(String(spec.qps)));
  if (typeof spec.burst === 'number' && spec.burst !== 0) connection.burst = spec.burst;
  config.clientConnection = connection;
  return YAML.stringify(config);
}

export function controlPlaneTasks(input: ModelInput): Task[] {
  const nc = input.nodeConfig;
  const spec = input.cluster.spec;
  const tasks: Task[] = [];
  const domain = nc.clusterDomain;
  const serverCert = new CertificateTask(`${PKI}/server.crt`, `${PKI}/server.key`, {
    ca: 'kubernetes-ca',
    commonName: 'kubernetes-master',
    dnsNames: [
      'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', `kubernetes.default.svc.${domain}`,
      nc.masterInternalName, ...(spec.masterPublicName ? [spec.masterPublicName] : []),
    ],
    ipAddresses: [nthAddressOf(nc.serviceClusterIPRange, 1), '127.0.0.1'],
    usage: 'server',
  }, input.ca);
  const etcdClient = new CertificateTask(`${PKI}/etcd-client.crt`, `${PKI}/etcd-client.key`, {
    ca: 'etcd-clients-ca', commonName: 'kube-apiserver', usage: 'client',
  }, input.ca);
  const etcdCA = new FileTask({ path: `${PKI}/etcd-ca.crt`, content: input.caCerts['etcd-clients-ca'] ?? '' });
  tasks.push(serverCert, etcdClient, etcdCA);
  if (input.serviceAccount) {
    const pub = new X509Certificate(input.serviceAccount.certPEM).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    tasks.push(new FileTask({ path: `${PKI}/service-account.key`, content: input.serviceAccount.keyPEM, mode: 0o600, secret: true }));
    tasks.push(new FileTask({ path: `${PKI}/service-account.pub`, content: pub }));
  }
  const api = section(spec.kubeAPIServer);
  tasks.push(new FileTask({
    path: `${MANIFESTS}/kube-apiserver.manifest`,
    content: staticPod({
      name: 'kube-apiserver',
      image: image(input, 'kube-apiserver', api),
      command: apiServerCommand(input),
      hostPaths: ['/srv/kubernetes', '/etc/ssl/certs', ...auditHostPaths(api)],
      port: typeof api.securePort === 'number' ? api.securePort : 443,
      scheme: 'HTTPS',
      resources: podResources(api, '150m'),
      env: podEnv(api.env),
    }),
    deps: ['Directory:/etc/kubernetes/manifests'],
  }));

  const kcmConfig = '/var/lib/kube-controller-manager/kubeconfig';
  const kcm = section(spec.kubeControllerManager);
  tasks.push(new KubeconfigTask({ path: kcmConfig, server: 'https://127.0.0.1', user: 'kube-controller-manager' }, issuedClientCredentials(input.ca, { ca: 'kubernetes-ca', commonName: 'system:kube-controller-manager', usage: 'client' })));
  tasks.push(new FileTask({
    path: `${MANIFESTS}/kube-controller-manager.manifest`,
    content: staticPod({
      name: 'kube-controller-manager', image: image(input, 'kube-controller-manager', kcm), port: 10257, scheme: 'HTTPS',
      hostPaths: ['/srv/kubernetes', '/var/lib/kube-controller-manager', '/etc/ssl/certs'],
      command: controllerManagerCommand(input, kcmConfig),
      resources: podResources(kcm, '100m'),
    }),
    deps: ['Directory:/etc/kubernetes/manifests'],
  }));

  const scheduler = section(spec.kubeScheduler);
  const schedulerEnv = typeof scheduler.maxPersistentVolumes === 'number' ? [{ name: 'KUBE_MAX_PD_VOLS', value: String(scheduler.maxPersistentVolumes) }] : [];
  tasks.push(new KubeconfigTask({ path: SCHEDULER_KUBECONFIG, server: 'https://127.0.0.1', user: 'kube-scheduler' }, issuedClientCredentials(input.ca, { ca: 'kubernetes-ca', commonName: 'system:kube-scheduler', usage: 'client' })));
  tasks.push(new FileTask({ path: SCHEDULER_CONFIG, content: schedulerConfiguration(input), mode: 0o400 }));
  tasks.push(new FileTask({
    path: `${MANIFESTS}/kube-scheduler.manifest`,
    content: staticPod({
      name: 'kube-scheduler', image: image(input, 'kube-scheduler', scheduler), port: 10259, scheme: 'HTTPS',
      hostPaths: ['/var/lib/kube-scheduler'],
      command: schedulerCommand(input),
      resources: podResources(scheduler, '100m'),
      env: schedulerEnv,
    }),
    deps: ['Directory:/etc/kubernetes/manifests'],
  }));
  return tasks;
}

/** kOps mounts the audit log's folder (written) and the audit policy's folder into the API server. */
function auditHostPaths(api: Record<string, unknown>): HostPath[] {
  const paths: HostPath[] = [];
  const log = typeof api.auditLogPath === 'string' ? api.auditLogPath : '';
  if (log !== '' && log !== '-') paths.push({ path: dirname(log), writable: true });
  const policy = typeof api.auditPolicyFile === 'string' ? api.auditPolicyFile : '';
  if (policy !== '' && dirname(policy) !== PKI && !paths.some((p) => p.path === dirname(policy))) paths.push({ path: dirname(policy) });
  return paths.filter((p) => p.path !== '/srv/kubernetes' && !p.path.startsWith('/srv/kubernetes/'));
}
