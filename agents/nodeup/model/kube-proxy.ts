// kube-proxy on every node: a static pod and its kubeconfig. Its flags are the
// spec's kubeProxy section in kOps' formats (shared/api/kops-flags.ts), with
// what kOps' nodeup adds: the API server (this node on the control plane, else
// the internal name), conntrack's per-core default, the kubeconfig.
import { MODEL_FIELDS } from '../../../shared/api/component-render.js';
import { COMPONENT_STRUCTS, renderComponentFlags } from '../../../shared/api/kops-flags.js';
import { FileTask } from '../tasks/file.js';
import { KubeconfigTask } from '../tasks/certificate.js';
import type { Task } from '../engine/task.js';
import { MANIFESTS, podResources, staticPod } from './control-plane.js';
import { apiServerURL, clientCredentials } from './kubelet.js';
import type { ModelInput } from './context.js';

const KUBECONFIG = '/var/lib/kube-proxy/kubeconfig';

function proxySection(input: ModelInput): Record<string, unknown> {
  const value = input.cluster.spec.kubeProxy;
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {};
}

export function kubeProxyCommand(input: ModelInput): string[] {
  const values: Record<string, unknown> = { ...proxySection(input) };
  if (!values.master) values.master = apiServerURL(input);
  values.conntrackMaxPerCore ??= 131072;
  const flags = renderComponentFlags(COMPONENT_STRUCTS.kubeProxy, values, MODEL_FIELDS.kubeProxy).flags;
  return ['/usr/local/bin/kube-proxy', ...flags, `--kubeconfig=${KUBECONFIG}`, '--oom-score-adj=-998'];
}

export function kubeProxyTasks(input: ModelInput): Task[] {
  const spec = proxySection(input);
  // kOps: kubeProxy.enabled=false leaves kube-proxy out (a CNI replaces it).
  if (spec.enabled === false) return [];
  const image = typeof spec.image === 'string' && spec.image !== '' ? spec.image : `registry.k8s.io/kube-proxy:v${input.nodeConfig.kubernetesVersion}`;
  return [
    new KubeconfigTask({ path: KUBECONFIG, server: apiServerURL(input), user: 'kube-proxy' }, clientCredentials(input, 'kube-proxy', { ca: 'kubernetes-ca', commonName: 'system:kube-proxy', usage: 'client' })),
    new FileTask({
      path: `${MANIFESTS}/kube-proxy.manifest`,
      content: staticPod({
        name: 'kube-proxy',
        image,
        hostPaths: [
          '/var/lib/kube-proxy',
          '/lib/modules',
          { path: '/usr/share/ca-certificates', mountPath: '/etc/ssl/certs' },
          { path: '/run/xtables.lock', writable: true, type: 'FileOrCreate' },
        ],
        command: kubeProxyCommand(input),
        port: 10256,
        resources: podResources(spec, '100m'),
        // It programs the node's packet filter.
        privileged: true,
      }),
      deps: ['Directory:/etc/kubernetes/manifests'],
    }),
  ];
}
