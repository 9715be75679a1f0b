// kube-proxy on every node: a static pod and its kubeconfig.
import { FileTask } from '../tasks/file.js';
import { KubeconfigTask } from '../tasks/certificate.js';
import type { Task } from '../engine/task.js';
import { MANIFESTS, staticPod } from './control-plane.js';
import { apiServerURL, clientCredentials } from './kubelet.js';
import type { ModelInput } from './context.js';

export function kubeProxyTasks(input: ModelInput): Task[] {
  const kubeconfig = '/var/lib/kube-proxy/kubeconfig';
  const clusterCIDR = input.cluster.spec.kubeProxy?.clusterCIDR ?? input.nodeConfig.podCIDR;
  return [
    new KubeconfigTask({ path: kubeconfig, server: apiServerURL(input), user: 'kube-proxy' }, clientCredentials(input, 'kube-proxy', { ca: 'kubernetes-ca', commonName: 'system:kube-proxy', usage: 'client' })),
    new FileTask({
      path: `${MANIFESTS}/kube-proxy.manifest`,
      content: staticPod({
        name: 'kube-proxy',
        image: `registry.k8s.io/kube-proxy:v${input.nodeConfig.kubernetesVersion}`,
        hostPaths: ['/var/lib/kube-proxy', '/lib/modules', '/run/xtables.lock'],
        command: ['/usr/local/bin/kube-proxy', `--kubeconfig=${kubeconfig}`, `--cluster-cidr=${clusterCIDR}`, '--conntrack-max-per-core=131072', '--v=2'],
        port: 10256,
      }),
      deps: ['Directory:/etc/kubernetes/manifests'],
    }),
  ];
}
