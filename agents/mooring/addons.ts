// The bootstrap channel `update cluster` writes for protokube, in kOps' layout
// and format: addons/bootstrap-channel.yaml (kind Addons) naming each
// addon's manifest, addons/<addon>/<id>.yaml, with the manifest's sha256. The
// manifests are built as data from the completed spec (CoreDNS: the cluster
// domain and the DNS service IP), so the same spec always gives the same
// bytes and the same hash, and protokube re-applies an addon exactly when
// its manifest changed.
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import { StorePaths, type Cluster } from '../../shared/api/types.js';
import type { DesiredObject } from './store-plan.js';

export const BOOTSTRAP_CHANNEL_PATH = 'addons/bootstrap-channel.yaml';
export const DEFAULT_COREDNS_IMAGE = 'registry.k8s.io/coredns/coredns:v1.11.3';

interface AddonManifest {
  name: string;
  id: string;
  objects: Array<Record<string, unknown>>;
  /** Kinds pruned when an object of them leaves the manifest: [group, kind, namespaced]. */
  prune: Array<[group: string, kind: string, namespaced: boolean]>;
}

function addonLabels(name: string, extra: Record<string, string> = {}): Record<string, string> {
  return { 'k8s-addon': name, 'addon.kops.k8s.io/name': name, 'app.kubernetes.io/managed-by': 'mooring', ...extra };
}

/** CoreDNS for the cluster: service account and RBAC, Corefile, Deployment, the kube-dns Service, a PDB. */
export function coreDNSAddon(cluster: Cluster): AddonManifest {
  const name = 'coredns.addons.k8s.io';
  const spec = cluster.spec;
  const domain = spec.kubeDNS?.domain ?? spec.clusterDNSDomain ?? 'cluster.local';
  const serverIP = spec.kubeDNS?.serverIP ?? spec.kubelet?.clusterDNS;
  if (!serverIP) throw new Error(`cluster "${cluster.metadata.name}" is not completed: spec.kubeDNS.serverIP missing`);
  const image = typeof spec.kubeDNS?.coreDNSImage === 'string' ? spec.kubeDNS.coreDNSImage : DEFAULT_COREDNS_IMAGE;
  const ns = 'kube-system';
  const labels = addonLabels(name);
  const appLabels = { 'k8s-app': 'kube-dns' };
  const corefile = [
    '.:53 {',
    '    errors',
    '    health {',
    '      lameduck 5s',
    '    }',
    '    ready',
    `    kubernetes ${domain} in-addr.arpa ip6.arpa {`,
    '      pods insecure',
    '      fallthrough in-addr.arpa ip6.arpa',
    '      ttl 30',
    '    }',
    '    prometheus :9153',
    '    forward . /etc/resolv.conf {',
    '      max_concurrent 1000',
    '    }',
    '    cache 30',
    '    loop',
    '    reload',
    '    loadbalance',
    '}',
    '',
  ].join('\n');
  return {
    name,
    id: 'k8s-1.12',
    prune: [['', 'ConfigMap', true], ['', 'Service', true], ['', 'ServiceAccount', true], ['apps', 'Deployment', true], ['policy', 'PodDisruptionBudget', true], ['rbac.authorization.k8s.io', 'ClusterRole', false], ['rbac.authorization.k8s.io', 'ClusterRoleBinding', false]],
    objects: [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: ns, labels } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'system:coredns', labels },
        rules: [
          { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'system:coredns', labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
        subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: ns }],
      },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: ns, labels }, data: { Corefile: corefile } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'coredns', namespace: ns, labels: addonLabels(name, appLabels) },
        spec: {
          replicas: 2,
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: '10%' } },
          selector: { matchLabels: appLabels },
          template: {
            metadata: { labels: appLabels },
            spec: {
              serviceAccountName: 'coredns',
              priorityClassName: 'system-cluster-critical',
              dnsPolicy: 'Default',
              nodeSelector: { 'kubernetes.io/os': 'linux' },
              tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }],
              topologySpreadConstraints: [
                { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: appLabels } },
              ],
              containers: [
                {
                  name: 'coredns',
                  image,
                  imagePullPolicy: 'IfNotPresent',
                  args: ['-conf', '/etc/coredns/Corefile'],
                  resources: { limits: { memory: '170Mi' }, requests: { cpu: '100m', memory: '70Mi' } },
                  volumeMounts: [{ name: 'config-volume', mountPath: '/etc/coredns', readOnly: true }],
                  ports: [
                    { name: 'dns', containerPort: 53, protocol: 'UDP' },
                    { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                    { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
                  ],
                  securityContext: { allowPrivilegeEscalation: false, capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] }, readOnlyRootFilesystem: true },
                  livenessProbe: { httpGet: { path: '/health', port: 8080, scheme: 'HTTP' }, initialDelaySeconds: 60, timeoutSeconds: 5, successThreshold: 1, failureThreshold: 5 },
                  readinessProbe: { httpGet: { path: '/ready', port: 8181, scheme: 'HTTP' } },
                },
              ],
              volumes: [{ name: 'config-volume', configMap: { name: 'coredns' } }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'kube-dns', namespace: ns, labels: addonLabels(name, { ...appLabels, 'kubernetes.io/name': 'CoreDNS' }), annotations: { 'prometheus.io/port': '9153', 'prometheus.io/scrape': 'true' } },
        spec: {
          selector: appLabels,
          clusterIP: serverIP,
          ports: [
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'dns-tcp', port: 53, protocol: 'TCP' },
            { name: 'metrics', port: 9153, protocol: 'TCP' },
          ],
        },
      },
      {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'kube-dns', namespace: ns, labels },
        spec: { selector: { matchLabels: appLabels }, maxUnavailable: '50%' },
      },
    ],
  };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** kOps' addon for the cluster's additional objects (the other Kubernetes objects `mooring create -f` keeps with the Cluster). */
export const CLUSTER_ADDONS_NAME = 'cluster-addons.kops.k8s.io';

/**
 * The manifests, then the channel naming them with their hashes (a reader never
 * finds a channel whose manifest is not there yet). `clusterAddons`, the
 * cluster's additional objects as YAML, becomes kOps' addon
 * cluster-addons.kops.k8s.io (manifest at StorePaths.clusterAddonsManifest):
 * applied as given, no id, nothing pruned, as kOps' bootstrap channel does.
 */
export function bootstrapChannelObjects(cluster: Cluster, clusterAddons?: string): DesiredObject[] {
  const addons = [coreDNSAddon(cluster)];
  const objects: DesiredObject[] = [];
  const entries: Array<Record<string, unknown>> = addons.map((addon) => {
    const manifestPath = `${addon.name}/${addon.id}.yaml`;
    const content = addon.objects.map((o) => YAML.stringify(o)).join('---\n');
    objects.push({ path: `addons/${manifestPath}`, content });
    const selector = `addon.kops.k8s.io/name=${addon.name},app.kubernetes.io/managed-by=mooring`;
    return {
      id: addon.id,
      manifest: manifestPath,
      manifestHash: sha256(content),
      name: addon.name,
      prune: {
        kinds: addon.prune.map(([group, kind, namespaced]) => ({
          ...(group !== '' ? { group } : {}),
          kind,
          labelSelector: selector,
          ...(namespaced ? { namespaces: ['kube-system'] } : {}),
        })),
      },
      selector: { 'k8s-addon': addon.name },
    };
  });
  if (clusterAddons !== undefined) {
    const manifestPath = StorePaths.clusterAddonsManifest.slice('addons/'.length);
    objects.push({ path: StorePaths.clusterAddonsManifest, content: clusterAddons });
    entries.push({ manifest: manifestPath, manifestHash: sha256(clusterAddons), name: CLUSTER_ADDONS_NAME, selector: { 'k8s-addon': CLUSTER_ADDONS_NAME } });
  }
  objects.push({ path: BOOTSTRAP_CHANNEL_PATH, content: YAML.stringify({ kind: 'Addons', metadata: { name: 'bootstrap' }, spec: { addons: entries } }) });
  return objects;
}
