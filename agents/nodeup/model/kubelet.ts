// kubelet: binary asset, KubeletConfiguration, kubeconfig, environment file and unit.
import YAML from 'yaml';
import { FileTask } from '../tasks/file.js';
import { issuedClientCredentials, KubeconfigTask, keypairClientCredentials, type CertRequest, type ClientCredentials } from '../tasks/certificate.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { KUBELET_ASSET } from '../../../shared/api/assets.js';
import { assetTask } from './assets.js';
import { CA_CERT_PATH } from './base.js';
import { isControlPlaneRole, type ModelInput } from './context.js';
import { environmentFile, envRef, execCommand } from './systemd-syntax.js';

export const KUBELET_BIN = '/usr/local/bin/kubelet';
export const KUBELET_CONFIG = '/var/lib/kubelet/config.yaml';
export const KUBELET_KUBECONFIG = '/var/lib/kubelet/kubeconfig';
export const KUBELET_ENV = '/etc/sysconfig/kubelet';

/** `key=value:Effect` (or `key:Effect`) as a kubelet Taint. */
function parseTaint(taint: string): { key: string; value?: string; effect: string } {
  const [kv, effect = 'NoSchedule'] = taint.split(':');
  const [key, value] = kv.split('=');
  return { key, ...(value !== undefined ? { value } : {}), effect };
}

export function kubeletConfiguration(input: ModelInput): string {
  const nc = input.nodeConfig;
  return YAML.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: CA_CERT_PATH } },
    authorization: { mode: 'Webhook' },
    cgroupDriver: 'systemd',
    clusterDNS: [nc.clusterDNS],
    clusterDomain: nc.clusterDomain,
    containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
    staticPodPath: '/etc/kubernetes/manifests',
    ...(nc.taints.length > 0 ? { registerWithTaints: nc.taints.map(parseTaint) } : {}),
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

export function kubeletCommand(input: ModelInput): string {
  const labels = nodeLabelsFlag(input) ? [['--node-labels=', envRef(NODE_LABELS_VAR)]] : [];
  return execCommand([KUBELET_BIN, `--config=${KUBELET_CONFIG}`, `--kubeconfig=${KUBELET_KUBECONFIG}`, ...labels]);
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
  return [binary, config, kubeconfig, env, service];
}
