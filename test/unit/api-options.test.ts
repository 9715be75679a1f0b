// kOps' option builders one by one (shared/api/options/), each for several
// Kubernetes minors: what each fills in, where it switches by version, and that
// the user's values win (kOps' options loader: builders, then the user's spec
// merged over them, until nothing changes).
import t from 'tap';
import type { EtcdPorts } from '../../shared/api/defaults.js';
import { buildDiscoveryOptions, buildKubeAPIServerOptions } from '../../shared/api/options/apiserver.js';
import { newOptionsContext, type OptionsContext } from '../../shared/api/options/context.js';
import { buildKubeControllerManagerOptions, buildKubeProxyOptions, buildKubeSchedulerOptions, OptionsError } from '../../shared/api/options/controller-manager.js';
import { buildEtcdManagerOptions, buildEtcdOptions } from '../../shared/api/options/etcd.js';
import { buildOptions, OPTIONS_BUILDERS } from '../../shared/api/options/index.js';
import { buildKubeletOptions } from '../../shared/api/options/kubelet.js';
import { buildCloudConfigOptions, buildContainerdOptions, buildKubeDNSOptions } from '../../shared/api/options/runtime.js';
import type { Cluster, ClusterSpec } from '../../shared/api/types.js';

/** Minors either side of every switch kOps makes: 1.33 (apiserver cloud provider), 1.34 (etcd 3.6, registerSchedulable), 1.35, 1.36 (ImageVolume), 1.37 (etcd 3.7). */
const MINORS = ['1.32.13', '1.33.13', '1.34.10', '1.35.7', '1.36.3', '1.37.0'] as const;

const PORTS = new Map<string, EtcdPorts>([
  ['main', { clientPort: 4001, peerPort: 2380, grpcPort: 3996, quarantineClientPort: 3994 }],
  ['events', { clientPort: 4002, peerPort: 2381, grpcPort: 3997, quarantineClientPort: 3995 }],
  ['leases', { clientPort: 4004, peerPort: 2383, grpcPort: 4006, quarantineClientPort: 4005 }],
]);

/** A cluster as completion hands it to the builders: networks assigned, etcd members known. */
function cluster(version: string, spec: Partial<ClusterSpec> = {}): Cluster {
  const members = [{ name: 'a', instanceGroup: 'control-plane-a' }];
  return {
    apiVersion: 'kops.k8s.io/v1alpha2',
    kind: 'Cluster',
    metadata: { name: 'opts.example.com' },
    spec: {
      cloudProvider: 'aws',
      kubernetesVersion: version,
      configBase: 's3://state/opts.example.com',
      networkCIDR: '172.20.0.0/16',
      nonMasqueradeCIDR: '100.64.0.0/10',
      podCIDR: '100.96.0.0/11',
      serviceClusterIPRange: '100.64.0.0/13',
      clusterDNSDomain: 'cluster.local',
      authorization: { rbac: {} },
      etcdClusters: [
        { name: 'main', etcdMembers: members },
        { name: 'events', etcdMembers: members },
      ],
      ...spec,
    },
  };
}

function ipv6(version: string): Cluster {
  return cluster(version, { nonMasqueradeCIDR: '::/0', podCIDR: undefined, serviceClusterIPRange: 'fd00:5e4f:ce::/108' });
}

const ctx = (c: Cluster): OptionsContext => newOptionsContext(c, PORTS);
const run = (build: (c: Cluster, o: OptionsContext) => void, c: Cluster): Cluster => {
  build(c, ctx(c));
  return c;
};
const minorOf = (v: string): number => Number(v.split('.')[1]);

t.test('etcd: 3.5 up to Kubernetes 1.33, 3.6 from 1.34, 3.7 from 1.37; the local cloud has Debian 12 etcd', async (t) => {
  for (const v of MINORS) {
    const want = minorOf(v) < 34 ? '3.5.31' : minorOf(v) < 37 ? '3.6.12' : '3.7.0';
    const c = run(buildEtcdOptions, cluster(v));
    t.same(c.spec.etcdClusters!.map((e) => e.version), [want, want], `${v}: etcd ${want}`);
    const local = run(buildEtcdOptions, cluster(v, { cloudProvider: 'local' }));
    t.same(local.spec.etcdClusters!.map((e) => e.version), ['3.4.23', '3.4.23'], `${v}, local cloud: 3.4.23`);
  }
  const own = cluster('1.34.10');
  own.spec.etcdClusters![0].version = '3.5.21';
  t.same(run(buildEtcdOptions, own).spec.etcdClusters!.map((e) => e.version), ['3.5.21', '3.6.12'], "a version the user set stays");
});

t.test('etcd-manager: backup stores; the ImageVolume gate on control-plane kubelets from 1.32 until 1.36', async (t) => {
  for (const v of MINORS) {
    const c = run(buildEtcdManagerOptions, cluster(v));
    t.same(c.spec.etcdClusters!.map((e) => e.backups?.backupStore), ['s3://state/opts.example.com/backups/etcd/main', 's3://state/opts.example.com/backups/etcd/events'], `${v}: backups under configBase`);
    const gate = (c.spec.masterKubelet as { featureGates?: Record<string, string> } | undefined)?.featureGates?.ImageVolume;
    t.equal(gate, minorOf(v) < 36 ? 'true' : undefined, `${v}: ImageVolume ${gate ?? 'not set'}`);
  }
  const off = cluster('1.34.10', { masterKubelet: { featureGates: { ImageVolume: 'false' } } });
  t.same(run(buildEtcdManagerOptions, off).spec.masterKubelet, { featureGates: { ImageVolume: 'false' } }, "the user's gate stays");
});

t.test('kube-apiserver by version, network and spec', async (t) => {
  for (const v of MINORS) {
    const api = run(buildKubeAPIServerOptions, cluster(v)).spec.kubeAPIServer!;
    t.equal(api.image, `registry.k8s.io/kube-apiserver:v${v}`, `${v}: image`);
    t.equal(api.cloudProvider, minorOf(v) < 33 ? 'external' : undefined, `${v}: --cloud-provider=external only before 1.33`);
    t.same([api.apiServerCount, api.authorizationMode, api.bindAddress, api.securePort, api.logLevel, api.anonymousAuth], [1, 'Node,RBAC', '0.0.0.0', 443, 2, false], `${v}: count, authorization, bind address, port, log level, anonymous auth`);
    t.same([api.etcdServers, api.etcdServersOverrides], [['https://127.0.0.1:4001'], ['/events#https://127.0.0.1:4002']]);
    t.equal((api.enableAdmissionPlugins as string[]).length, 11, "kOps' eleven admission plugins");
  }
  const withEtcdVersion = cluster('1.34.10');
  withEtcdVersion.spec.etcdClusters![0].version = '3.6.12';
  t.equal(run(buildKubeAPIServerOptions, withEtcdVersion).spec.kubeAPIServer!.storageBackend, 'etcd3', 'storage backend from the first etcd version');
  t.equal(run(buildKubeAPIServerOptions, ipv6('1.34.10')).spec.kubeAPIServer!.bindAddress, '::', 'IPv6: binds ::');
  const extra = cluster('1.33.13', {
    kubeAPIServer: { appendAdmissionPlugins: ['PodNodeSelector'], insecurePort: 8080 },
    authorization: { alwaysAllow: {} },
    metricsServer: { enabled: true },
    authentication: { kopeio: {} },
  });
  extra.spec.etcdClusters!.push({ name: 'leases', etcdMembers: [] });
  const api = run(buildKubeAPIServerOptions, extra).spec.kubeAPIServer!;
  t.equal((api.enableAdmissionPlugins as string[]).at(-1), 'PodNodeSelector', 'appendAdmissionPlugins go after kOps\' list');
  t.equal(api.authorizationMode, 'AlwaysAllow');
  t.equal(api.enableAggregatorRouting, true, 'metrics-server: aggregator routing');
  t.equal(api.insecurePort, undefined, 'no insecure port');
  t.equal(api.authenticationTokenWebhookConfigFile, '/etc/kubernetes/authn.config', 'kopeio authentication');
  t.same(api.etcdServersOverrides, ['/events#https://127.0.0.1:4002', 'coordination.k8s.io/leases#https://127.0.0.1:4004'], 'a leases etcd cluster');
  const proxied = cluster('1.34.10', { assets: { containerProxy: 'proxy.example.com' } });
  t.equal(run(buildKubeAPIServerOptions, proxied).spec.kubeAPIServer!.image, 'proxy.example.com/kube-apiserver:v1.34.10', 'containerProxy replaces the registry');
  const mirrored = cluster('1.34.10', { assets: { containerRegistry: 'registry.example.com' } });
  t.equal(run(buildKubeAPIServerOptions, mirrored).spec.kubeAPIServer!.image, 'registry.example.com/kube-apiserver:v1.34.10', 'containerRegistry mirrors it');
});

t.test('service-account issuer (discovery)', async (t) => {
  for (const v of MINORS) {
    const api = run(buildDiscoveryOptions, cluster(v)).spec.kubeAPIServer!;
    t.same([api.apiAudiences, api.serviceAccountIssuer, api.serviceAccountJWKSURI], [['kubernetes.svc.default'], 'https://api.internal.opts.example.com', 'https://api.internal.opts.example.com/openid/v1/jwks'], `${v}: the internal name`);
  }
  const publicJWKS = cluster('1.34.10', { kubeAPIServer: { anonymousAuth: true }, kubernetesApiAccess: ['0.0.0.0/0'], masterPublicName: 'api.opts.example.com' });
  t.equal(run(buildDiscoveryOptions, publicJWKS).spec.kubeAPIServer!.serviceAccountIssuer, 'https://api.opts.example.com', 'public JWKS: the public name');
  const store = cluster('1.34.10', { serviceAccountIssuerDiscovery: { discoveryStore: 'memfs://discovery.example.com/x' } });
  t.equal(run(buildDiscoveryOptions, store).spec.kubeAPIServer!.serviceAccountIssuer, 'https://discovery.example.com/x');
});

t.test('kubelet: nodes and control plane, by version and cloud', async (t) => {
  for (const v of MINORS) {
    const c = run(buildKubeletOptions, cluster(v));
    for (const section of ['kubelet', 'masterKubelet'] as const) {
      const k = c.spec[section]!;
      t.same(
        [k.cgroupDriver, k.cgroupRoot, k.cloudProvider, k.clusterDNS, k.clusterDomain, k.logLevel, k.protectKernelDefaults, k.shutdownGracePeriod, k.shutdownGracePeriodCriticalPods],
        ['systemd', '/', 'external', '100.64.0.10', 'cluster.local', 2, true, '30s', '10s'],
        `${v} ${section}: kOps' settings`,
      );
      t.equal(k.registerSchedulable, minorOf(v) < 34 ? true : undefined, `${v} ${section}: registerSchedulable only before 1.34`);
    }
  }
  const local = run(buildKubeletOptions, cluster('1.34.10', { cloudProvider: 'local' }));
  t.equal(local.spec.kubelet!.cloudProvider, undefined, 'local cloud: no --cloud-provider (nothing would initialise the node)');
  const vpc = run(buildKubeletOptions, cluster('1.33.13', { networking: { amazonvpc: {} } }));
  t.same([vpc.spec.kubelet!.shutdownGracePeriod, vpc.spec.kubelet!.shutdownGracePeriodCriticalPods], ['0s', '0s'], 'AWS VPC CNI: no graceful shutdown (it leaks ENIs)');
  const nodeLocal = run(buildKubeletOptions, cluster('1.35.7', { kubeDNS: { nodeLocalDNS: { enabled: true, localIP: '169.254.20.10' } } }));
  t.equal(nodeLocal.spec.kubelet!.clusterDNS, '169.254.20.10', 'NodeLocal DNS: its address');
  const isolated = run(buildKubeletOptions, cluster('1.34.10', { networking: { isolateMasters: true } }));
  t.same([isolated.spec.masterKubelet!.enableDebuggingHandlers, isolated.spec.masterKubelet!.hairpinMode], [false, 'none']);
  const own = run(buildKubeletOptions, cluster('1.34.10', { kubelet: { evictionHard: 'memory.available<1Gi', allowPrivileged: true, clusterDNS: '100.64.0.53' } }));
  t.same([own.spec.kubelet!.evictionHard, own.spec.kubelet!.allowPrivileged, own.spec.kubelet!.clusterDNS], ['memory.available<1Gi', undefined, '100.64.0.53'], "the user's eviction and DNS stay; allowPrivileged (gone from kubelet) is dropped");
});

t.test('kube-controller-manager, kube-scheduler, kube-proxy', async (t) => {
  for (const v of MINORS) {
    const kcm = run(buildKubeControllerManagerOptions, cluster(v)).spec.kubeControllerManager!;
    t.same(
      [kcm.image, kcm.cloudProvider, kcm.clusterName, kcm.clusterCIDR, kcm.allocateNodeCIDRs, kcm.configureCloudRoutes, kcm.attachDetachReconcileSyncPeriod, kcm.useServiceAccountCredentials, kcm.leaderElection],
      [`registry.k8s.io/kube-controller-manager:v${v}`, 'external', 'opts.example.com', '100.96.0.0/11', true, false, '1m0s', true, { leaderElect: true }],
      `${v}: controller manager`,
    );
    const scheduler = run(buildKubeSchedulerOptions, cluster(v)).spec.kubeScheduler as Record<string, unknown>;
    t.same([scheduler.image, scheduler.logLevel, scheduler.leaderElection], [`registry.k8s.io/kube-scheduler:v${v}`, 2, { leaderElect: true }], `${v}: scheduler`);
    const withKCM = run(buildKubeControllerManagerOptions, cluster(v));
    const proxy = run(buildKubeProxyOptions, withKCM).spec.kubeProxy!;
    t.same([proxy.image, proxy.cpuRequest, proxy.logLevel, proxy.clusterCIDR], [`registry.k8s.io/kube-proxy:v${v}`, '100m', 2, '100.96.0.0/11'], `${v}: kube-proxy`);
  }
  const v6 = run(buildKubeControllerManagerOptions, ipv6('1.34.10')).spec.kubeControllerManager!;
  t.same([v6.allocateNodeCIDRs, v6.clusterCIDR, v6.controllers], [false, undefined, ['*', '-nodeipam']], 'IPv6: kops-controller allocates node ranges');
  const v6cidr = run(buildKubeControllerManagerOptions, cluster('1.34.10', { kubeControllerManager: { clusterCIDR: 'fd00:10:96::/48' } })).spec.kubeControllerManager!;
  t.equal(v6cidr.nodeCIDRMaskSize, 64, 'an IPv6 cluster range: half the remaining bits, at most 16 (48 + 16)');
  t.equal(run(buildKubeControllerManagerOptions, cluster('1.34.10', { networking: { kubenet: {} } })).spec.kubeControllerManager!.configureCloudRoutes, true, 'kubenet: cloud routes');
  t.throws(() => run(buildKubeControllerManagerOptions, cluster('1.34.10', { kubeControllerManager: { attachDetachReconcileSyncPeriod: '500ms' } })), OptionsError, 'below one second is refused');
  t.equal(run(buildKubeControllerManagerOptions, cluster('1.34.10', { kubeControllerManager: { attachDetachReconcileSyncPeriod: '0s' } })).spec.kubeControllerManager!.attachDetachReconcileSyncPeriod, '1m0s', '0s means the default');
  const vpc = run(buildKubeProxyOptions, run(buildKubeControllerManagerOptions, cluster('1.34.10', { networking: { amazonvpc: {} } })));
  t.equal(vpc.spec.kubeProxy!.clusterCIDR, undefined, 'AWS VPC CNI: pods have VPC addresses, kube-proxy gets no cluster range');
});

t.test('containerd, cluster DNS and cloud config', async (t) => {
  for (const v of MINORS) {
    t.same(run(buildContainerdOptions, cluster(v)).spec.containerd, { version: '2.3.4', runc: { version: '1.4.3' }, logLevel: 'info', sandboxImage: 'registry.k8s.io/pause:3.10.1' }, `${v}: containerd`);
    const dns = run(buildKubeDNSOptions, cluster(v)).spec.kubeDNS!;
    t.same([dns.provider, dns.serverIP, dns.domain], ['CoreDNS', '100.64.0.10', 'cluster.local'], `${v}: CoreDNS at the 10th service address`);
    t.same(run(buildCloudConfigOptions, cluster(v)).spec.cloudConfig, { manageStorageClasses: true, awsEBSCSIDriver: { version: 'v1.58.0' } }, `${v}: cloud config`);
  }
  t.same(run(buildContainerdOptions, cluster('1.34.10', { containerd: { version: '1.7.24' } })).spec.containerd!.runc, undefined, "a containerd version of the user's own: no runc from kOps");
  const v6 = ipv6('1.34.10');
  const dns = run(buildKubeDNSOptions, v6).spec.kubeDNS!;
  t.same([dns.serverIP, dns.upstreamNameservers], ['fd00:5e4f:ce::a', ['fd00:ec2::253']], 'IPv6 on AWS: the 10th service address and the VPC resolver');
  t.same((run(buildCloudConfigOptions, ipv6('1.34.10')).spec.cloudConfig as Record<string, unknown>).nodeIPFamilies, ['ipv6', 'ipv4']);
  t.same(run(buildCloudConfigOptions, cluster('1.34.10', { cloudProvider: 'local' })).spec.cloudConfig, { manageStorageClasses: true }, 'no EBS driver off AWS');
  const nodeLocal = run(buildKubeDNSOptions, cluster('1.34.10', { kubeDNS: { nodeLocalDNS: { enabled: true } } })).spec.kubeDNS!.nodeLocalDNS as Record<string, unknown>;
  t.same([nodeLocal.localIP, nodeLocal.forwardToKubeDNS], ['169.254.20.10', false]);
});

t.test("the loader: every builder, the user's values over them, until nothing changes", async (t) => {
  for (const v of MINORS) {
    const user = cluster(v, {
      kubelet: { maxPods: 50, featureGates: { Foo: 'true' }, clusterDNS: '' },
      kubeAPIServer: { logLevel: 4, oidcIssuerURL: 'https://sso.example.com' },
    });
    const done = buildOptions(user, ctx(user));
    t.equal(done.spec.kubelet!.maxPods, 50, `${v}: the user's maxPods`);
    t.same(done.spec.kubelet!.featureGates, { Foo: 'true' });
    t.equal(done.spec.kubeAPIServer!.logLevel, 4, `${v}: the user's log level wins over kOps' 2`);
    t.equal(done.spec.kubeAPIServer!.oidcIssuerURL, 'https://sso.example.com');
    t.equal(done.spec.kubelet!.clusterDNS, '100.64.0.10', 'an empty user value does not replace the default (omitempty)');
    t.same(buildOptions(done, ctx(done)), done, 'completing a completed spec changes nothing');
    const masterGates = done.spec.masterKubelet!.featureGates as Record<string, string> | undefined;
    t.equal(masterGates?.ImageVolume, minorOf(v) < 36 ? 'true' : undefined, `${v}: the control plane's gates`);
  }
  t.equal(OPTIONS_BUILDERS.length, 12, "kOps' builders that concern nodes, in kOps' order");
});
