// Completion (every default filled, input untouched) and the spec that
// `mooring create cluster` writes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ExitCode, UserError } from '../../shared/errors.js';
import { cloudOf, completeCluster, LOCAL_CLOUD_ANNOTATION, newClusterObjects, type NewClusterOptions } from '../../shared/api/complete.js';
import { fieldsKopsDoesNotDefine } from '../../shared/api/known-fields.js';
import { parseObjects } from '../../shared/api/parse.js';
import type { Cluster, InstanceGroup } from '../../shared/api/types.js';
import { validateCluster } from '../../shared/api/validate.js';

const STORE = 's3://state/demo.example.com';

function minimal(): { cluster: Cluster; instanceGroups: InstanceGroup[] } {
  const ig = (name: string, role: InstanceGroup['spec']['role'], zone: string): InstanceGroup => ({
    apiVersion: 'kops.k8s.io/v1alpha2',
    kind: 'InstanceGroup',
    metadata: { name },
    spec: { role, zones: [zone] },
  });
  return {
    cluster: {
      apiVersion: 'kops.k8s.io/v1alpha2',
      kind: 'Cluster',
      metadata: { name: 'demo.example.com' },
      spec: {
        cloudProvider: 'aws',
        subnets: [
          { name: 'us-east-1a', zone: 'us-east-1a', type: 'Private' },
          { name: 'us-east-1b', zone: 'us-east-1b', type: 'Private', cidr: '172.20.32.0/19' },
          { name: 'utility-us-east-1a', zone: 'us-east-1a', type: 'Utility' },
        ],
      },
    },
    instanceGroups: [ig('control-plane-us-east-1a', 'ControlPlane', 'us-east-1a'), ig('nodes', 'Node', 'us-east-1b'), ig('bastions', 'Bastion', 'us-east-1a')],
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

t.test('every default is filled in', async (t) => {
  const { cluster, instanceGroups } = minimal();
  const done = completeCluster(cluster, instanceGroups, { configBase: `${STORE}/` });
  const spec = done.cluster.spec;
  t.equal(spec.configBase, STORE, 'configBase from the store, trailing slash dropped');
  t.equal(spec.kubernetesVersion, '1.34.10', 'the default: a release in the known-hash table');
  t.equal(spec.cloudProvider, 'aws');
  t.equal(spec.networkCIDR, '172.20.0.0/16');
  t.equal(spec.nonMasqueradeCIDR, '100.64.0.0/10');
  t.equal(spec.podCIDR, '100.96.0.0/11');
  t.equal(spec.serviceClusterIPRange, '100.64.0.0/13');
  t.equal(spec.clusterDNSDomain, 'cluster.local');
  // kOps' kube-dns builder (pkg/model/components/kubedns.go).
  t.same(spec.kubeDNS, {
    provider: 'CoreDNS',
    serverIP: '100.64.0.10',
    domain: 'cluster.local',
    cacheMaxSize: 1000,
    cacheMaxConcurrent: 150,
    memoryRequest: '70Mi',
    cpuRequest: '100m',
    memoryLimit: '170Mi',
    nodeLocalDNS: { enabled: false, memoryRequest: '5Mi', cpuRequest: '25m', image: 'registry.k8s.io/dns/k8s-dns-node-cache:1.26.0' },
  });
  // kOps' kubelet builder for Kubernetes 1.34 (no registerSchedulable from 1.34).
  const kubelet = {
    clusterDNS: '100.64.0.10',
    clusterDomain: 'cluster.local',
    enableDebuggingHandlers: true,
    podManifestPath: '/etc/kubernetes/manifests',
    logLevel: 2,
    evictionHard: 'memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<10%,imagefs.inodesFree<5%',
    kubeconfigPath: '/var/lib/kubelet/kubeconfig',
    cgroupRoot: '/',
    cloudProvider: 'external',
    cgroupDriver: 'systemd',
    protectKernelDefaults: true,
    shutdownGracePeriod: '30s',
    shutdownGracePeriodCriticalPods: '10s',
  };
  t.same(spec.kubelet, kubelet);
  t.same(spec.masterKubelet, { ...kubelet, featureGates: { ImageVolume: 'true' } }, 'control plane: etcd-manager mounts etcd as an image volume (1.32 to 1.35)');
  t.same(spec.subnets?.map((s) => s.cidr), ['172.20.64.0/19', '172.20.32.0/19', '172.20.0.0/22'], 'missing CIDRs carved around the taken one');
  t.same(spec.etcdClusters, [
    {
      name: 'main',
      etcdMembers: [{ name: 'a', instanceGroup: 'control-plane-us-east-1a' }],
      manager: { backupRetentionDays: 90 },
      version: '3.6.12',
      backups: { backupStore: `${STORE}/backups/etcd/main` },
    },
    {
      name: 'events',
      etcdMembers: [{ name: 'a', instanceGroup: 'control-plane-us-east-1a' }],
      manager: { backupRetentionDays: 90 },
      version: '3.6.12',
      backups: { backupStore: `${STORE}/backups/etcd/events` },
    },
  ], 'kOps: etcd 3.6 from Kubernetes 1.34; no ports in the spec (v1alpha2 has none)');
  t.same(done.settings.etcdPorts, {
    main: { clientPort: 4001, peerPort: 2380, grpcPort: 3996, quarantineClientPort: 3994 },
    events: { clientPort: 4002, peerPort: 2381, grpcPort: 3997, quarantineClientPort: 3995 },
  }, 'the ports go to the node configs');
  t.same(spec.kubeAPIServer, {
    apiServerCount: 1,
    storageBackend: 'etcd3',
    kubeletPreferredAddressTypes: ['InternalIP', 'Hostname', 'ExternalIP'],
    authorizationMode: 'Node,RBAC',
    requestheaderAllowedNames: ['aggregator'],
    requestheaderExtraHeaderPrefixes: ['X-Remote-Extra-'],
    requestheaderGroupHeaders: ['X-Remote-Group'],
    requestheaderUsernameHeaders: ['X-Remote-User'],
    image: 'registry.k8s.io/kube-apiserver:v1.34.10',
    logLevel: 2,
    securePort: 443,
    bindAddress: '0.0.0.0',
    allowPrivileged: true,
    serviceClusterIPRange: '100.64.0.0/13',
    etcdServers: ['https://127.0.0.1:4001'],
    etcdServersOverrides: ['/events#https://127.0.0.1:4002'],
    enableAdmissionPlugins: [
      'DefaultStorageClass', 'DefaultTolerationSeconds', 'LimitRanger', 'MutatingAdmissionWebhook', 'NamespaceLifecycle', 'NodeRestriction',
      'ResourceQuota', 'RuntimeClass', 'ServiceAccount', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionWebhook',
    ],
    anonymousAuth: false,
    apiAudiences: ['kubernetes.svc.default'],
    serviceAccountIssuer: 'https://api.internal.demo.example.com',
    serviceAccountJWKSURI: 'https://api.internal.demo.example.com/openid/v1/jwks',
  });
  t.equal(spec.masterInternalName, undefined, 'kOps derives the internal name; it is not written');
  t.equal(done.settings.masterInternalName, 'api.internal.demo.example.com');
  t.equal(spec.masterPublicName, 'api.demo.example.com', 'public DNS topology: the public name, load balancer or not');
  t.same(spec.api, { loadBalancer: { type: 'Public', class: 'Classic' } }, 'a control plane in a private subnet: reached through a load balancer');
  t.same(spec.kubeProxy, { clusterCIDR: '100.96.0.0/11', logLevel: 2, cpuRequest: '100m', image: 'registry.k8s.io/kube-proxy:v1.34.10' });
  t.same(spec.kubeControllerManager, {
    attachDetachReconcileSyncPeriod: '1m0s',
    clusterName: 'demo.example.com',
    cloudProvider: 'external',
    logLevel: 2,
    image: 'registry.k8s.io/kube-controller-manager:v1.34.10',
    leaderElection: { leaderElect: true },
    allocateNodeCIDRs: true,
    clusterCIDR: '100.96.0.0/11',
    configureCloudRoutes: false,
    useServiceAccountCredentials: true,
  });
  t.same(spec.kubeScheduler, { logLevel: 2, image: 'registry.k8s.io/kube-scheduler:v1.34.10', leaderElection: { leaderElect: true } });
  t.same(spec.containerd, { version: '2.3.4', runc: { version: '1.4.3' }, logLevel: 'info', sandboxImage: 'registry.k8s.io/pause:3.10.1' });
  t.same(spec.cloudConfig, { manageStorageClasses: true, awsEBSCSIDriver: { version: 'v1.58.0' } });
  t.same(done.settings.notes, []);

  const [cp, nodes, bastions] = done.instanceGroups;
  t.same(cp.spec, {
    role: 'ControlPlane',
    zones: ['us-east-1a'],
    minSize: 1,
    maxSize: 1,
    machineType: 't3.medium',
    image: 'debian-12',
    subnets: ['us-east-1a'],
    taints: ['node-role.kubernetes.io/control-plane=:NoSchedule'],
  });
  t.same(nodes.spec, { role: 'Node', zones: ['us-east-1b'], minSize: 2, maxSize: 2, machineType: 't3.medium', image: 'debian-12', subnets: ['us-east-1b'] });
  t.same(bastions.spec.subnets, ['utility-us-east-1a'], 'bastions go to utility subnets');
  t.equal(bastions.spec.minSize, 1);
  t.same(validateCluster(done.cluster, done.instanceGroups).map((e) => e.message), [], 'the completed spec is valid');
});

t.test('completion never changes its input', async (t) => {
  const { cluster, instanceGroups } = minimal();
  const snapshot = structuredClone({ cluster, instanceGroups });
  deepFreeze(cluster);
  deepFreeze(instanceGroups);
  const done = completeCluster(cluster, instanceGroups, { configBase: STORE });
  t.same({ cluster, instanceGroups }, snapshot);
  t.not(done.cluster, cluster);
  t.not(done.cluster.spec.subnets, cluster.spec.subnets);
  done.cluster.spec.subnets![0].name = 'changed';
  t.equal(cluster.spec.subnets![0].name, 'us-east-1a');
});

t.test("the user's values win", async (t) => {
  const text = readFileSync(fileURLToPath(new URL('../fixtures/kops-aws-cluster.yaml', import.meta.url)), 'utf8');
  const [cluster, ...igs] = parseObjects(text, 'kops.yaml').map((o) => o.object);
  const done = completeCluster(cluster as Cluster, igs as InstanceGroup[], { configBase: 's3://other/prod.k8s.example.com' });
  const spec = done.cluster.spec;
  t.equal(spec.configBase, 's3://example-kops-state/prod.k8s.example.com', 'spec.configBase beats the store path');
  t.equal(spec.kubernetesVersion, '1.29.3');
  t.equal(spec.masterPublicName, 'api.prod.k8s.example.com');
  t.same(spec.networking, { cilium: { enableNodePort: true, hubble: { enabled: true } } }, 'unknown fields survive');
  t.equal(spec.kubeDNS?.provider, 'CoreDNS');
  t.same(spec.kubeDNS?.nodeLocalDNS, {
    enabled: true,
    memoryRequest: '5Mi',
    localIP: '169.254.20.10',
    forwardToKubeDNS: false,
    cpuRequest: '25m',
    image: 'registry.k8s.io/dns/k8s-dns-node-cache:1.26.0',
  }, "the user's fields kept, kOps' defaults beside them");
  t.equal(spec.kubeAPIServer?.oidcClientID, 'kubernetes');
  t.same(spec.kubeAPIServer?.etcdServers, ['https://127.0.0.1:4001']);
  t.equal(spec.kubelet?.maxPods, 110);
  t.equal(spec.kubelet?.clusterDNS, '169.254.20.10', 'NodeLocal DNS enabled: kubelets hand out its address');
  t.equal(spec.kubelet?.shutdownGracePeriod, '30s');
  t.equal(spec.kubelet?.registerSchedulable, true, 'Kubernetes 1.29: kOps still sets registerSchedulable');
  t.equal(spec.kubeProxy?.enabled, false);
  t.same(spec.iam, { allowContainerRegistry: true, legacy: false, useServiceAccountExternalPermissions: true });
  const main = spec.etcdClusters![0];
  t.same(main.etcdMembers.map((m) => m.name), ['a', 'b', 'c']);
  t.equal(main.backups?.backupStore, 's3://example-kops-state/prod.k8s.example.com/backups/etcd/main');
  t.same(main.manager?.env?.length, 2, 'manager fields are merged, not replaced');
  t.equal(main.cpuRequest, '200m');
  const cp = done.instanceGroups[0];
  t.equal(cp.spec.role, 'Master');
  t.equal(cp.spec.image, '099720109477/ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240301');
  t.same(cp.spec.taints, ['node-role.kubernetes.io/control-plane=:NoSchedule']);
  t.same(done.instanceGroups[3].spec.taints, ['dedicated=general:PreferNoSchedule']);
  t.same(validateCluster(done.cluster, done.instanceGroups).map((e) => e.message), []);
});

t.test('explicit values are never replaced', async (t) => {
  const { cluster, instanceGroups } = minimal();
  Object.assign(cluster.spec, {
    kubernetesVersion: 'v1.31.2',
    nonMasqueradeCIDR: '10.0.0.0/8',
    serviceClusterIPRange: '10.0.0.0/16',
    kubeDNS: { serverIP: '10.0.0.53' },
    clusterDNSDomain: 'corp.internal',
  });
  instanceGroups[0].spec.taints = [];
  instanceGroups[1].spec.minSize = 5;
  instanceGroups[2].spec.maxSize = 0;
  const done = completeCluster(cluster, instanceGroups, { configBase: STORE });
  const spec = done.cluster.spec;
  t.equal(spec.kubernetesVersion, '1.31.2', 'a leading v is dropped, as kOps does');
  t.equal(spec.podCIDR, '10.128.0.0/9', 'pods get the upper half of nonMasqueradeCIDR');
  t.equal(spec.serviceClusterIPRange, '10.0.0.0/16');
  t.equal(spec.kubeDNS?.serverIP, '10.0.0.53');
  t.equal(spec.kubelet?.clusterDNS, '10.0.0.53', "kubelets follow the user's kubeDNS.serverIP");
  t.equal(spec.masterKubelet?.clusterDNS, '10.0.0.53');
  t.equal(spec.kubelet?.clusterDomain, 'corp.internal');
  t.same(done.instanceGroups[0].spec.taints, [], 'an explicit empty taint list stays empty');
  t.same([done.instanceGroups[1].spec.minSize, done.instanceGroups[1].spec.maxSize], [5, 5], 'max never below min');
  t.same([done.instanceGroups[2].spec.minSize, done.instanceGroups[2].spec.maxSize], [0, 0], 'min never above max');
});

t.test('etcd member names and ports', async (t) => {
  const objects = newClusterObjects({ name: 'x.example.com', zones: ['eu-west-1a', 'eu-west-1b'], controlPlaneCount: 3, nodeCount: 0, cloud: 'aws' });
  delete objects.cluster.spec.etcdClusters;
  let done = completeCluster(objects.cluster, objects.instanceGroups, { configBase: STORE });
  t.same(done.cluster.spec.etcdClusters![0].etcdMembers, [
    { name: 'a-1', instanceGroup: 'control-plane-eu-west-1a-1' },
    { name: 'b-1', instanceGroup: 'control-plane-eu-west-1b-1' },
    { name: 'a-2', instanceGroup: 'control-plane-eu-west-1a-2' },
  ]);

  const local = newClusterObjects({ name: 'dev.local', zones: ['local'], controlPlaneCount: 1, nodeCount: 1, cloud: 'local' });
  delete local.cluster.spec.etcdClusters;
  done = completeCluster(local.cluster, local.instanceGroups, { configBase: 'file:///srv/state/dev.local' });
  t.same(done.cluster.spec.etcdClusters![0].etcdMembers, [{ name: 'control-plane-local', instanceGroup: 'control-plane-local' }], 'no zone letter: the group name');
  t.equal(done.instanceGroups[0].spec.machineType, 'local');

  // kOps' well-known ports for main, events, cilium and leases; any other cluster gets the
  // next free port at or above 4003 / 2382 / 3998 / 3990. Ports are not kOps fields: they
  // leave the completed spec for the node configs (settings.etcdPorts).
  const { cluster, instanceGroups } = minimal();
  const member = [{ name: 'a', instanceGroup: 'control-plane-us-east-1a' }];
  cluster.spec.etcdClusters = [
    { name: 'cilium', etcdMembers: member },
    { name: 'main', etcdMembers: member },
    { name: 'extra', etcdMembers: member, clientPort: 4004 },
    { name: 'events', etcdMembers: member },
  ];
  const completed = completeCluster(cluster, instanceGroups, { configBase: STORE });
  t.same(completed.settings.etcdPorts, {
    cilium: { clientPort: 4003, peerPort: 2382, grpcPort: 3991, quarantineClientPort: 3992 },
    main: { clientPort: 4001, peerPort: 2380, grpcPort: 3996, quarantineClientPort: 3994 },
    extra: { clientPort: 4004, peerPort: 2383, grpcPort: 3998, quarantineClientPort: 3990 },
    events: { clientPort: 4002, peerPort: 2381, grpcPort: 3997, quarantineClientPort: 3995 },
  });
  for (const etcd of completed.cluster.spec.etcdClusters ?? []) {
    t.same(['clientPort', 'peerPort', 'grpcPort', 'quarantineClientPort'].filter((f) => f in etcd), [], `${etcd.name}: no port fields in the completed spec`);
  }
});

t.test('what completion cannot do is a UserError', async (t) => {
  const { cluster, instanceGroups } = minimal();
  t.throws(() => completeCluster(cluster, instanceGroups), {
    message: 'cannot complete cluster "demo.example.com": no configBase (set spec.configBase or give the state store)',
    exitCode: ExitCode.InvalidSpec,
  });
  cluster.spec.networkCIDR = '172.20.0.0/24';
  cluster.spec.subnets = Array.from({ length: 9 }, (_, i) => ({ name: `s${i}`, zone: 'us-east-1a' }));
  t.throws(() => completeCluster(cluster, instanceGroups, { configBase: STORE }), {
    message: 'Cluster/demo.example.com: spec.subnets[8].cidr: no free range left in networkCIDR 172.20.0.0/24',
    exitCode: ExitCode.InvalidSpec,
  });
});

t.test('cloudOf reads both forms', async (t) => {
  const { cluster } = minimal();
  t.equal(cloudOf(cluster), 'aws');
  t.equal(cloudOf({ ...cluster, spec: { cloudProvider: { aws: {} } } }), 'aws');
  t.equal(cloudOf({ ...cluster, spec: { cloudProvider: 'local' } }), 'local');
  t.equal(cloudOf({ ...cluster, spec: {} }), '');
  const done = completeCluster({ ...cluster, spec: { ...cluster.spec, cloudProvider: { aws: {} } } }, [], { configBase: STORE });
  t.same(done.cluster.spec.cloudProvider, { aws: {} }, "the user's form is kept");
});

t.test('newClusterObjects writes what kops create cluster writes', async (t) => {
  const { cluster, instanceGroups } = newClusterObjects({
    name: 'demo.example.com',
    zones: ['us-east-1a', 'us-east-1b', 'us-east-1c'],
    controlPlaneCount: 3,
    nodeCount: 5,
    cloud: 'aws',
    kubernetesVersion: '1.31.1',
  });
  t.same(cluster, {
    apiVersion: 'kops.k8s.io/v1alpha2',
    kind: 'Cluster',
    metadata: { name: 'demo.example.com' },
    spec: {
      cloudProvider: 'aws',
      kubernetesVersion: '1.31.1',
      networkCIDR: '172.20.0.0/16',
      nonMasqueradeCIDR: '100.64.0.0/10',
      subnets: [
        { name: 'us-east-1a', zone: 'us-east-1a', type: 'Public', cidr: '172.20.32.0/19' },
        { name: 'us-east-1b', zone: 'us-east-1b', type: 'Public', cidr: '172.20.64.0/19' },
        { name: 'us-east-1c', zone: 'us-east-1c', type: 'Public', cidr: '172.20.96.0/19' },
      ],
      etcdClusters: ['main', 'events'].map((name) => ({
        name,
        cpuRequest: name === 'main' ? '200m' : '100m',
        memoryRequest: '100Mi',
        manager: { backupRetentionDays: 90 },
        etcdMembers: [
          { name: 'a', instanceGroup: 'control-plane-us-east-1a' },
          { name: 'b', instanceGroup: 'control-plane-us-east-1b' },
          { name: 'c', instanceGroup: 'control-plane-us-east-1c' },
        ],
      })),
    },
  });
  t.same(
    instanceGroups.map((ig) => [ig.metadata.name, ig.spec.role, ig.spec.minSize, ig.spec.maxSize, ig.spec.subnets]),
    [
      ['control-plane-us-east-1a', 'ControlPlane', 1, 1, ['us-east-1a']],
      ['control-plane-us-east-1b', 'ControlPlane', 1, 1, ['us-east-1b']],
      ['control-plane-us-east-1c', 'ControlPlane', 1, 1, ['us-east-1c']],
      ['nodes-us-east-1a', 'Node', 2, 2, ['us-east-1a']],
      ['nodes-us-east-1b', 'Node', 2, 2, ['us-east-1b']],
      ['nodes-us-east-1c', 'Node', 1, 1, ['us-east-1c']],
    ],
  );
  t.same(instanceGroups[3], {
    apiVersion: 'kops.k8s.io/v1alpha2',
    kind: 'InstanceGroup',
    metadata: { name: 'nodes-us-east-1a', labels: { 'kops.k8s.io/cluster': 'demo.example.com' } },
    spec: {
      role: 'Node',
      image: 'debian-12',
      machineType: 't3.medium',
      minSize: 2,
      maxSize: 2,
      nodeLabels: { 'kops.k8s.io/instancegroup': 'nodes-us-east-1a' },
      subnets: ['us-east-1a'],
    },
  });
  t.not(cluster.spec.etcdClusters![0].etcdMembers, cluster.spec.etcdClusters![1].etcdMembers, 'member lists are not shared');
  t.same(validateCluster(cluster, instanceGroups), []);
});

t.test('newClusterObjects: one control-plane group, rounds, few nodes, defaults', async (t) => {
  const one = newClusterObjects({ name: 'a.example.com', zones: ['us-east-1a', 'us-east-1b'], controlPlaneCount: 1, nodeCount: 1, cloud: 'aws' });
  t.same(one.instanceGroups.map((ig) => ig.metadata.name), ['control-plane-us-east-1a', 'nodes-us-east-1a'], 'zones left with no node get no group');
  t.equal(one.cluster.spec.kubernetesVersion, '1.34.10');
  t.same(one.cluster.spec.etcdClusters![0].etcdMembers, [{ name: 'a', instanceGroup: 'control-plane-us-east-1a' }]);

  const five = newClusterObjects({ name: 'b.example.com', zones: ['us-east-1a', 'us-east-1b'], controlPlaneCount: 5, nodeCount: 0, cloud: 'aws' });
  t.same(five.instanceGroups.map((ig) => ig.metadata.name), [
    'control-plane-us-east-1a-1',
    'control-plane-us-east-1b-1',
    'control-plane-us-east-1a-2',
    'control-plane-us-east-1b-2',
    'control-plane-us-east-1a-3',
  ]);
  t.same(five.cluster.spec.etcdClusters![0].etcdMembers.map((m) => m.name), ['a-1', 'b-1', 'a-2', 'b-2', 'a-3']);
  t.same(validateCluster(five.cluster, five.instanceGroups), []);

  const local = newClusterObjects({ name: 'dev.local', zones: ['local-a'], controlPlaneCount: 1, nodeCount: 2, cloud: 'local', kubernetesVersion: 'v1.30.0' });
  t.equal(local.cluster.spec.cloudProvider, 'local');
  t.equal(local.cluster.spec.kubernetesVersion, '1.30.0');
  t.same(local.instanceGroups.map((ig) => ig.spec.machineType), ['local', 'local']);
  t.same(local.cluster.spec.etcdClusters![0].etcdMembers, [{ name: 'control-plane-local-a', instanceGroup: 'control-plane-local-a' }]);
});

t.test('newClusterObjects rejects bad options with a usage error', async (t) => {
  const good: NewClusterOptions = { name: 'demo.example.com', zones: ['us-east-1a'], controlPlaneCount: 1, nodeCount: 1, cloud: 'aws' };
  const cases: Array<[Partial<NewClusterOptions>, string]> = [
    [{ name: 'Demo' }, `invalid cluster name "Demo" (want a lowercase DNS name: a-z, 0-9, '-' and '.')`],
    [{ name: '' }, `invalid cluster name "" (want a lowercase DNS name: a-z, 0-9, '-' and '.')`],
    [{ zones: [] }, 'at least one zone is required'],
    [{ zones: ['us-east-1a', 'us-east-1a'] }, 'zone "us-east-1a" is listed twice'],
    [{ zones: ['US East'] }, 'invalid zone "US East" (want a lowercase DNS label such as us-east-1a)'],
    [{ controlPlaneCount: 0 }, 'control-plane count must be a whole number of at least 1 (got 0)'],
    [{ controlPlaneCount: 1.5 }, 'control-plane count must be a whole number of at least 1 (got 1.5)'],
    [{ nodeCount: -1 }, 'node count must be a whole number of at least 0 (got -1)'],
    [{ kubernetesVersion: 'stable' }, 'invalid Kubernetes version "stable" (want e.g. 1.34.10)'],
    [{ zones: ['a1a', 'a1b', 'a1c', 'a1d', 'a1e', 'a1f', 'a1g', 'a1h', 'a1i'] }, 'too many zones (9): networkCIDR 172.20.0.0/16 has room for 8 zone subnets'],
  ];
  for (const [change, message] of cases) {
    t.throws(() => newClusterObjects({ ...good, ...change }), { message, exitCode: ExitCode.Usage }, message);
  }
  try {
    newClusterObjects({ ...good, zones: [] });
  } catch (err) {
    t.ok(err instanceof UserError);
  }
});

t.test('quantities and durations are written as Kubernetes writes them', async (t) => {
  const { cluster, instanceGroups } = minimal();
  cluster.spec.kubeAPIServer = { auditWebhookBatchThrottleQps: '3.14', cpuRequest: '0.5', compactionInterval: '5m' };
  cluster.spec.kubelet = { shutdownGracePeriod: '1m', imageMinimumGCAge: '90s' };
  const spec = completeCluster(cluster, instanceGroups, { configBase: STORE }).cluster.spec;
  t.same([spec.kubeAPIServer?.auditWebhookBatchThrottleQps, spec.kubeAPIServer?.cpuRequest, spec.kubeAPIServer?.compactionInterval], ['3140m', '500m', '5m0s']);
  t.same([spec.kubelet?.shutdownGracePeriod, spec.kubelet?.imageMinimumGCAge], ['1m0s', '1m30s']);
});

t.test('services keep 100.64.0.0/13 when nonMasqueradeCIDR is the VPC range (the AWS VPC CNI)', async (t) => {
  for (const explicit of [false, true]) {
    const { cluster, instanceGroups } = minimal();
    cluster.spec.networking = { amazonvpc: {} };
    if (explicit) cluster.spec.nonMasqueradeCIDR = '172.20.0.0/16';
    const done = completeCluster(cluster, instanceGroups, { configBase: STORE });
    const spec = done.cluster.spec;
    const how = explicit ? 'set by the user' : 'defaulted to networkCIDR';
    t.equal(spec.nonMasqueradeCIDR, '172.20.0.0/16', `nonMasqueradeCIDR ${how}`);
    t.equal(spec.serviceClusterIPRange, '100.64.0.0/13', `${how}: kOps' fixed service range, not a slice of the VPC (was 172.20.0.0/19)`);
    t.equal(spec.kubeDNS?.serverIP, '100.64.0.10', `${how}: cluster DNS at 100.64.0.10 (was 172.20.0.10, an address in the VPC)`);
    t.equal(spec.kubelet?.clusterDNS, '100.64.0.10');
    t.equal(spec.masterKubelet?.clusterDNS, '100.64.0.10');
    t.equal(spec.kubeAPIServer?.serviceClusterIPRange, '100.64.0.0/13');
    t.same(validateCluster(done.cluster, done.instanceGroups).map((e) => e.message), [], `${how}: the completed spec is valid`);
  }
});

t.test("a new cluster's completed spec holds only kOps' fields; the local cloud says where it differs", async (t) => {
  for (const cloud of ['aws', 'local'] as const) {
    const user = newClusterObjects({ name: `${cloud}.example.com`, zones: ['us-east-1a'], controlPlaneCount: 1, nodeCount: 1, cloud });
    // Mooring's own etcd port fields and kOps v1alpha3's names are read, and moved out or renamed.
    user.cluster.spec.etcdClusters![0].clientPort = 4001;
    user.cluster.spec.controlPlaneKubelet = { maxPods: 30 };
    user.cluster.spec.api = { publicName: `api.${cloud}.example.com` };
    const done = completeCluster(user.cluster, user.instanceGroups, { configBase: `s3://state/${cloud}.example.com` });
    t.same(fieldsKopsDoesNotDefine(done.cluster), [], `${cloud}: no field kOps' v1alpha2 lacks`);
    t.equal(done.cluster.spec.masterKubelet?.maxPods, 30, `${cloud}: controlPlaneKubelet becomes masterKubelet`);
    t.equal(done.cluster.spec.masterPublicName, `api.${cloud}.example.com`, `${cloud}: api.publicName becomes masterPublicName`);
    const note = (done.cluster.metadata.annotations as Record<string, string> | undefined)?.[LOCAL_CLOUD_ANNOTATION];
    if (cloud === 'aws') {
      t.equal(note, undefined, 'aws: kOps\' etcd, nothing to say');
      t.same(done.settings.notes, []);
    } else {
      const want = 'etcd 3.4.23 for "main", "events": the local cloud installs Debian 12\'s etcd-server package offline; kOps would use etcd 3.6.12 for Kubernetes 1.34.10';
      t.equal(note, want, 'local: the completed spec says why its etcd is not kOps\'');
      t.same(done.settings.notes, [want], 'and update prints it');
    }
  }
});
