// kube-apiserver's settings (kOps pkg/model/components/apiserver.go and discovery.go).
import type { Cluster } from '../types.js';
import type { OptionsContext } from './context.js';
import { child, isObject, type JsonObject } from './merge.js';

/** The admission plugins kOps enables (its comment: Kubernetes' recommended set). */
export const DEFAULT_ADMISSION_PLUGINS = [
  'DefaultStorageClass',
  'DefaultTolerationSeconds',
  'LimitRanger',
  'MutatingAdmissionWebhook',
  'NamespaceLifecycle',
  'NodeRestriction',
  'ResourceQuota',
  'RuntimeClass',
  'ServiceAccount',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionWebhook',
] as const;

export function isIPv6Only(cluster: Cluster): boolean {
  return String(cluster.spec.nonMasqueradeCIDR ?? '').includes(':');
}

function authorizationMode(spec: JsonObject): string | undefined {
  const auth = spec.authorization;
  if (!isObject(auth) || Object.keys(auth).length === 0) return undefined;
  if (auth.alwaysAllow !== undefined) return 'AlwaysAllow';
  if (auth.rbac !== undefined) return 'Node,RBAC';
  return undefined;
}

export function buildKubeAPIServerOptions(cluster: Cluster, ctx: OptionsContext): void {
  const spec = cluster.spec;
  const api = child(spec, 'kubeAPIServer');
  const etcdClusters = spec.etcdClusters ?? [];
  // kOps takes the size of the main etcd cluster as the number of API servers.
  if (api.apiServerCount === undefined) api.apiServerCount = etcdClusters.find((e) => e.name === 'main')?.etcdMembers.length ?? 0;
  if (api.storageBackend === undefined && etcdClusters[0]?.version) api.storageBackend = `etcd${etcdClusters[0].version.split('.')[0]}`;
  if (api.kubeletPreferredAddressTypes === undefined) api.kubeletPreferredAddressTypes = ['InternalIP', 'Hostname', 'ExternalIP'];
  // kOps' kopeio authenticator answers the API server's token webhook.
  const authentication = spec.authentication;
  if (isObject(authentication) && authentication.kopeio !== undefined) api.authenticationTokenWebhookConfigFile = '/etc/kubernetes/authn.config';
  const mode = authorizationMode(spec);
  if (mode) api.authorizationMode = mode;
  api.requestheaderAllowedNames = ['aggregator'];
  api.requestheaderExtraHeaderPrefixes = ['X-Remote-Extra-'];
  api.requestheaderGroupHeaders = ['X-Remote-Group'];
  api.requestheaderUsernameHeaders = ['X-Remote-User'];
  api.image = ctx.componentImage('kube-apiserver');
  if (ctx.isLT('1.33')) api.cloudProvider = 'external';
  api.logLevel = 2;
  api.securePort = 443;
  api.bindAddress = isIPv6Only(cluster) ? '::' : '0.0.0.0';
  api.allowPrivileged = true;
  api.serviceClusterIPRange = spec.serviceClusterIPRange;
  const servers: string[] = [];
  const overrides: string[] = [];
  for (const etcd of etcdClusters) {
    const port = ctx.etcdPorts.get(etcd.name)?.clientPort;
    if (port === undefined) continue;
    if (etcd.name === 'main') servers.push(`https://127.0.0.1:${port}`);
    else if (etcd.name === 'events') overrides.push(`/events#https://127.0.0.1:${port}`);
    else if (etcd.name === 'leases') overrides.push(`coordination.k8s.io/leases#https://127.0.0.1:${port}`);
  }
  api.etcdServers = servers;
  api.etcdServersOverrides = overrides;
  const append = Array.isArray(api.appendAdmissionPlugins) ? (api.appendAdmissionPlugins as unknown[]) : [];
  api.enableAdmissionPlugins = [...DEFAULT_ADMISSION_PLUGINS, ...append];
  api.anonymousAuth = false;
  // kOps probes through its health-check sidecar: no insecure port.
  delete api.insecureBindAddress;
  delete api.insecurePort;
  const metricsServer = spec.metricsServer;
  if (isObject(metricsServer) && metricsServer.enabled === true && api.enableAggregatorRouting === undefined) api.enableAggregatorRouting = true;
}

/** Service-account issuer and audiences (kOps' DiscoveryOptionsBuilder). */
export function buildDiscoveryOptions(cluster: Cluster, ctx: OptionsContext): void {
  const spec = cluster.spec;
  const api = child(spec, 'kubeAPIServer');
  if (!Array.isArray(api.apiAudiences) || api.apiAudiences.length === 0) api.apiAudiences = ['kubernetes.svc.default'];
  if (api.serviceAccountIssuer === undefined) {
    const said = isObject(spec.serviceAccountIssuerDiscovery) ? spec.serviceAccountIssuerDiscovery : undefined;
    const service = isObject(said?.discoveryService) ? said.discoveryService : undefined;
    const store = typeof said?.discoveryStore === 'string' ? said.discoveryStore : undefined;
    let issuer: string | undefined;
    if (store?.startsWith('memfs://')) issuer = store.replace('memfs://', 'https://');
    else if (typeof service?.url === 'string' && service.url !== '') issuer = service.url;
    else if (store === undefined) {
      const access = Array.isArray(spec.kubernetesApiAccess) ? spec.kubernetesApiAccess : [];
      const publicJWKS = api.anonymousAuth === true && access.some((c) => c === '0.0.0.0/0' || c === '::/0');
      const publicName = typeof spec.masterPublicName === 'string' ? spec.masterPublicName : '';
      issuer = publicJWKS && publicName !== '' ? `https://${publicName}` : `https://api.internal.${ctx.clusterName}`;
    }
    // An s3:// discovery store names a bucket URL only AWS knows the region of: set serviceAccountIssuer.
    if (issuer !== undefined) api.serviceAccountIssuer = issuer;
  }
  if (typeof api.serviceAccountIssuer === 'string') api.serviceAccountJWKSURI = `${api.serviceAccountIssuer}/openid/v1/jwks`;
}
