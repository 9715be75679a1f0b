// kubelet: binary asset, KubeletConfiguration, kubeconfig, environment file and unit.
import YAML from 'yaml';
import { FileTask } from '../tasks/file.js';
import { issuedClientCredentials, KubeconfigTask, keypairClientCredentials, type CertRequest, type ClientCredentials } from '../tasks/certificate.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { KUBECTL_ASSET, KUBELET_ASSET } from '../../../shared/api/assets.js';
import { kubeletConfigFields, OWNED_FIELDS } from '../../../shared/api/component-render.js';
import { COMPONENT_STRUCTS, renderComponentFlags } from '../../../shared/api/kops-flags.js';
import { assetTask } from './assets.js';
import { CA_CERT_PATH } from './base.js';
import { assetsByName, isControlPlaneRole, type ModelInput } from './context.js';
import { environmentFile, envRef, execCommand } from './systemd-syntax.js';

export const KUBELET_BIN = '/usr/local/bin/kubelet';
export const KUBECTL_BIN = '/usr/local/bin/kubectl';
export const KUBELET_CONFIG = '/var/lib/kubelet/config.yaml';
export const KUBELET_KUBECONFIG = '/var/lib/kubelet/kubeconfig';
export const KUBELET_ENV = '/etc/sysconfig/kubelet';

/** `key[=value][:Effect]` as a kubelet Taint (kOps' parseTaint). */
function parseTaint(taint: string): { key: string; value?: string; effect: string } {
  const [kv, effect = ''] = taint.split(':');
  const [key, value] = kv.split('=');
  return { key, ...(value !== undefined && value !== '' ? { value } : {}), effect };
}

/** Settings nodeup adds to every kubelet, as kOps' nodeup does (buildKubeletConfigSpec). */
export function effectiveKubelet(input: ModelInput): Record<string, unknown> {
  const kubelet: Record<string, unknown> = { ...input.nodeConfig.kubelet };
  for (const [field, value] of Object.entries(OWNED_FIELDS.kubelet)) kubelet[field] = value;
  kubelet.runtimeRequestTimeout ??= '15m0s';
  kubelet.volumePluginDirectory ??= '/usr/libexec/kubernetes/kubelet-plugins/volume/exec/';
  if (!kubelet.authorizationMode) kubelet.authorizationMode = 'Webhook';
  kubelet.authenticationTokenWebhook ??= true;
  // Said, not left to the config file's default: no anonymous requests unless the spec asks.
  kubelet.anonymousAuth ??= false;
  // Control-plane pods come back faster during bootstrap (kOps, from 1.35).
  const [major, minor] = input.nodeConfig.kubernetesVersion.split('.').map(Number);
  if (isControlPlaneRole(input.nodeConfig) && (major > 1 || minor >= 35)) kubelet.crashLoopBackOffMaxContainerRestartPeriod = '1m0s';
  return kubelet;
}

/** Keys in a fixed order (sorted), so equal settings give equal bytes. */
function sortedDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedDeep);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortedDeep((value as Record<string, unknown>)[k])]));
}

/** The KubeletConfiguration: every config-file field of the spec (kOps' conversions), and what nodeup knows. */
export function kubeletConfiguration(input: ModelInput): string {
  const nc = input.nodeConfig;
  const fields = kubeletConfigFields(effectiveKubelet(input));
  return YAML.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    ...(sortedDeep({
      ...fields,
      containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
      ...(nc.taints.length > 0 ? { registerWithTaints: nc.taints.map(parseTaint) } : {}),
    }) as Record<string, unknown>),
  });
}

/** The API server a node's clients talk to: itself on the control plane, else the internal name. */
export function apiServerURL(input: ModelInput): string {
  return isControlPlaneRole(input.nodeConfig) ? 'https://127.0.0.1' : `https://${input.nodeConfig.masterInternalName}`;
}

/**
 * A node client's credentials: the control plane issues them from the CA it
 * holds; every other node uses the keypair `mooring update cluster` issued into
 * keyset `keyset`, and never sees a CA's private key.
 */
export function clientCredentials(input: ModelInput, keyset: string, req: CertRequest): ClientCredentials {
  if (isControlPlaneRole(input.nodeConfig)) return issuedClientCredentials(input.ca, req);
  return keypairClientCredentials(keyset, input.keypairs, req.ca, input.caCerts[req.ca] ?? '');
}

const NODE_LABELS_VAR = 'KUBELET_NODE_LABELS';

/** `key=value,…` as kubelet's --node-labels takes it; validation keeps ',' and '=' out of keys and values. */
function nodeLabelsFlag(input: ModelInput): string {
  return Object.entries(input.nodeConfig.nodeLabels).map(([k, v]) => `${k}=${v}`).join(',');
}

/** The node's own values, each one variable; the unit passes each as one argument (`${NAME}`), never split. */
export function kubeletEnvironment(input: ModelInput): string {
  const labels = nodeLabelsFlag(input);
  return environmentFile('Written by nodeup. kubelet.service passes each value as one argument.', labels ? { [NODE_LABELS_VAR]: labels } : {});
}

/** kubelet's flags: every spec field with a flag tag, in kOps' formats and order, then nodeup's own. */
export function kubeletFlags(input: ModelInput): string[] {
  const flags = renderComponentFlags(COMPONENT_STRUCTS.kubelet, effectiveKubelet(input)).flags;
  // IPv6-only clusters (kOps: an IPv6 service range): the node's IPv6 address.
  if (input.nodeConfig.serviceClusterIPRange.includes(':')) flags.push('--node-ip=::');
  flags.push(`--config=${KUBELET_CONFIG}`);
  return flags;
}

export function kubeletCommand(input: ModelInput): string {
  const labels = nodeLabelsFlag(input) ? [['--node-labels=', envRef(NODE_LABELS_VAR)]] : [];
  return execCommand([KUBELET_BIN, ...kubeletFlags(input), ...labels]);
}

export function kubeletTasks(input: ModelInput): Task[] {
  const binary = assetTask(input, KUBELET_ASSET, { kind: 'file', path: KUBELET_BIN, mode: 0o755 });
  const config = new FileTask({ path: KUBELET_CONFIG, content: kubeletConfiguration(input), deps: ['Directory:/var/lib/kubelet'] });
  const kubeconfig = new KubeconfigTask(
    { path: KUBELET_KUBECONFIG, server: apiServerURL(input), user: 'kubelet' },
    clientCredentials(input, 'kubelet', { ca: 'kubernetes-ca', commonName: 'kubelet', organization: ['system:nodes'], usage: 'client' }),
  );
  const env = new FileTask({ path: KUBELET_ENV, content: kubeletEnvironment(input) });
  const unit = `# Written by nodeup.
[Unit]
Description=Kubernetes Kubelet Server
Documentation=https://github.com/kubernetes/kubernetes
After=containerd.service

[Service]
EnvironmentFile=${KUBELET_ENV}
ExecStart=${kubeletCommand(input)}
Restart=always
RestartSec=2s
StartLimitInterval=0
KillMode=process

[Install]
WantedBy=multi-user.target
`;
  const service = new ServiceTask({ name: 'kubelet.service', unit, restartOn: [binary.id, config.id, kubeconfig.id, env.id, 'File:' + CA_CERT_PATH] });
  // kOps installs kubectl on every node beside the kubelet, when the node config lists it.
  const kubectl = assetsByName(input).has(KUBECTL_ASSET) ? [assetTask(input, KUBECTL_ASSET, { kind: 'file', path: KUBECTL_BIN, mode: 0o755 })] : [];
  return [binary, ...kubectl, config, kubeconfig, env, service];
}
