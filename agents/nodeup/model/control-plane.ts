// Control-plane static pods (kube-apiserver, kube-controller-manager,
// kube-scheduler) in /etc/kubernetes/manifests, with the certificates,
// keys and kubeconfigs they read. Only control-plane groups get any of this.
import { X509Certificate } from 'node:crypto';
import YAML from 'yaml';
import { nthAddress } from '../../../shared/api/cidr.js';
import { FileTask } from '../tasks/file.js';
import { CertificateTask, KubeconfigTask, issuedClientCredentials } from '../tasks/certificate.js';
import type { Task } from '../engine/task.js';
import { CA_CERT_PATH } from './base.js';
import type { ModelInput } from './context.js';

const PKI = '/srv/kubernetes/kube-apiserver';
export const MANIFESTS = '/etc/kubernetes/manifests';

interface PodOptions {
  name: string;
  image: string;
  command: string[];
  hostPaths: string[];
  port?: number;
  scheme?: 'HTTPS';
}

/** A static pod as kubelet reads it: hostNetwork, critical priority, host folders mounted read-only. */
export function staticPod(o: PodOptions): string {
  const volumes = o.hostPaths.map((path, i) => ({ name: `host-${i}`, hostPath: { path } }));
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
        ...(o.port ? { livenessProbe: { httpGet: { host: '127.0.0.1', path: '/healthz', port: o.port, ...(o.scheme ? { scheme: o.scheme } : {}) }, initialDelaySeconds: 15, timeoutSeconds: 15 } } : {}),
        resources: { requests: { cpu: '100m' } },
        volumeMounts: volumes.map((v) => ({ name: v.name, mountPath: v.hostPath.path, readOnly: true })),
      }],
      volumes,
    },
  });
}

function image(input: ModelInput, component: string): string {
  return `registry.k8s.io/${component}:v${input.nodeConfig.kubernetesVersion}`;
}

export function apiServerCommand(input: ModelInput): string[] {
  const nc = input.nodeConfig;
  const api = input.cluster.spec.kubeAPIServer ?? {};
  const main = nc.etcdClusters?.find((e) => e.name === 'main');
  const events = nc.etcdClusters?.find((e) => e.name === 'events');
  const etcdServers = api.etcdServers ?? (main ? [`https://127.0.0.1:${main.clientPort}`] : []);
  const overrides = api.etcdServersOverrides ?? (events ? [`/events#https://127.0.0.1:${events.clientPort}`] : []);
  return [
    '/usr/local/bin/kube-apiserver',
    `--allow-privileged=${api.allowPrivileged ?? true}`,
    '--authorization-mode=Node,RBAC',
    `--client-ca-file=${CA_CERT_PATH}`,
    `--etcd-cafile=${PKI}/etcd-ca.crt`,
    `--etcd-certfile=${PKI}/etcd-client.crt`,
    `--etcd-keyfile=${PKI}/etcd-client.key`,
    `--etcd-servers=${etcdServers.join(',')}`,
    ...(overrides.length > 0 ? [`--etcd-servers-overrides=${overrides.join(',')}`] : []),
    `--secure-port=${api.securePort ?? 443}`,
    `--service-account-issuer=https://${nc.masterInternalName}`,
    `--service-account-key-file=${PKI}/service-account.pub`,
    `--service-account-signing-key-file=${PKI}/service-account.key`,
    `--service-cluster-ip-range=${api.serviceClusterIPRange ?? nc.serviceClusterIPRange}`,
    `--tls-cert-file=${PKI}/server.crt`,
    `--tls-private-key-file=${PKI}/server.key`,
  ];
}

function componentCommand(binary: string, kubeconfig: string, extra: string[]): string[] {
  return [binary, `--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`, '--leader-elect=true', ...extra];
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
    ipAddresses: [nthAddress(nc.serviceClusterIPRange, 1), '127.0.0.1'],
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
  tasks.push(new FileTask({
    path: `${MANIFESTS}/kube-apiserver.manifest`,
    content: staticPod({ name: 'kube-apiserver', image: image(input, 'kube-apiserver'), command: apiServerCommand(input), hostPaths: ['/srv/kubernetes', '/etc/ssl/certs'], port: spec.kubeAPIServer?.securePort ?? 443, scheme: 'HTTPS' }),
    deps: ['Directory:/etc/kubernetes/manifests'],
  }));

  const kcmConfig = '/var/lib/kube-controller-manager/kubeconfig';
  tasks.push(new KubeconfigTask({ path: kcmConfig, server: 'https://127.0.0.1', user: 'kube-controller-manager' }, issuedClientCredentials(input.ca, { ca: 'kubernetes-ca', commonName: 'system:kube-controller-manager', usage: 'client' })));
  tasks.push(new FileTask({
    path: `${MANIFESTS}/kube-controller-manager.manifest`,
    content: staticPod({
      name: 'kube-controller-manager', image: image(input, 'kube-controller-manager'), port: 10257, scheme: 'HTTPS',
      hostPaths: ['/srv/kubernetes', '/var/lib/kube-controller-manager', '/etc/ssl/certs'],
      command: componentCommand('/usr/local/bin/kube-controller-manager', kcmConfig, [
        '--allocate-node-cidrs=true',
        `--cluster-cidr=${spec.kubeControllerManager?.clusterCIDR ?? nc.podCIDR}`,
        `--cluster-name=${nc.clusterName}`,
        `--cluster-signing-cert-file=${CA_CERT_PATH}`,
        `--root-ca-file=${CA_CERT_PATH}`,
        `--service-account-private-key-file=${PKI}/service-account.key`,
        `--service-cluster-ip-range=${nc.serviceClusterIPRange}`,
        '--use-service-account-credentials=true',
      ]),
    }),
    deps: ['Directory:/etc/kubernetes/manifests'],
  }));

  const schedConfig = '/var/lib/kube-scheduler/kubeconfig';
  tasks.push(new KubeconfigTask({ path: schedConfig, server: 'https://127.0.0.1', user: 'kube-scheduler' }, issuedClientCredentials(input.ca, { ca: 'kubernetes-ca', commonName: 'system:kube-scheduler', usage: 'client' })));
  tasks.push(new FileTask({
    path: `${MANIFESTS}/kube-scheduler.manifest`,
    content: staticPod({
      name: 'kube-scheduler', image: image(input, 'kube-scheduler'), port: 10259, scheme: 'HTTPS',
      hostPaths: ['/var/lib/kube-scheduler'],
      command: componentCommand('/usr/local/bin/kube-scheduler', schedConfig, []),
    }),
    deps: ['Directory:/etc/kubernetes/manifests'],
  }));
  return tasks;
}
