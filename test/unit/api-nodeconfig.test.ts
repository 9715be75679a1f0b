// Node config per group and the boot config that pins its hash.
import t from 'tap';
import { createHash } from 'node:crypto';
import { parse as parseYAML } from 'yaml';
import { ExitCode } from '../../shared/errors.js';
import { completeCluster, newClusterObjects } from '../../shared/api/complete.js';
import {
  buildBootConfig,
  buildNodeConfig,
  nodeConfigHash,
  parseBootConfig,
  parseNodeConfig,
  serializeNodeConfig,
  verifyNodeConfigHash,
  type NodeConfig,
} from '../../shared/api/nodeconfig.js';
import { SpecError } from '../../shared/api/parse.js';
import { toYAML } from '../../shared/api/parse.js';

const CONFIG_BASE = 's3://state/demo.example.com';
const KEYPAIRS = {
  'kubernetes-ca': '7318207339045629153',
  'service-account': '7318207339045629154',
  'etcd-clients-ca': '7318207339045629155',
  'etcd-manager-ca-main': '7318207339045629156',
  'etcd-peers-ca-main': '7318207339045629157',
  'etcd-manager-ca-events': '7318207339045629158',
  'etcd-peers-ca-events': '7318207339045629159',
};

function completed(cloud: 'aws' | 'local' = 'aws') {
  const user = newClusterObjects({ name: 'demo.example.com', zones: ['us-east-1a', 'us-east-1b', 'us-east-1c'], controlPlaneCount: 3, nodeCount: 3, cloud });
  user.cluster.spec.sysctlParameters = ['net.core.somaxconn=65535', 'vm.swappiness=1'];
  user.instanceGroups[3].spec.sysctlParameters = ['vm.swappiness=10'];
  user.instanceGroups[3].spec.nodeLabels = { ...user.instanceGroups[3].spec.nodeLabels, team: 'data' };
  user.instanceGroups[3].spec.taints = ['dedicated=data:NoSchedule'];
  return completeCluster(user.cluster, user.instanceGroups, { configBase: CONFIG_BASE });
}

t.test('control-plane node config', async (t) => {
  const { cluster, instanceGroups } = completed();
  const nc = buildNodeConfig(cluster, instanceGroups[1], KEYPAIRS);
  t.match(nc, {
    apiVersion: 'mooring.dev/v1alpha1',
    kind: 'NodeConfig',
    clusterName: 'demo.example.com',
    instanceGroupName: 'control-plane-us-east-1b',
    instanceGroupRole: 'ControlPlane',
    cloudProvider: 'aws',
    kubernetesVersion: '1.34.10',
    configBase: CONFIG_BASE,
    containerdVersion: '2.3.4',
    serviceClusterIPRange: '100.64.0.0/13',
    podCIDR: '100.96.0.0/11',
    clusterDNS: '100.64.0.10',
    clusterDomain: 'cluster.local',
    masterInternalName: 'api.internal.demo.example.com',
    taints: ['node-role.kubernetes.io/control-plane=:NoSchedule'],
    assets: { amd64: [], arm64: [] },
  });
  t.same(nc.keypairIDs, KEYPAIRS, 'the control plane gets every keyset');
  t.same(Object.keys(nc.keypairIDs), Object.keys(KEYPAIRS).sort(), 'sorted by name');
  t.same(nc.etcdClusters, [
    {
      name: 'main',
      version: '3.6.12',
      clientPort: 4001,
      peerPort: 2380,
      grpcPort: 3996,
      quarantineClientPort: 3994,
      backupStore: `${CONFIG_BASE}/backups/etcd/main`,
      backupRetentionDays: 90,
      memberNames: ['a', 'b', 'c'],
      memberName: 'b',
    },
    {
      name: 'events',
      version: '3.6.12',
      clientPort: 4002,
      peerPort: 2381,
      grpcPort: 3997,
      quarantineClientPort: 3995,
      backupStore: `${CONFIG_BASE}/backups/etcd/events`,
      backupRetentionDays: 90,
      memberNames: ['a', 'b', 'c'],
      memberName: 'b',
    },
  ]);
  t.same(nc.nodeLabels, {
    'kops.k8s.io/instancegroup': 'control-plane-us-east-1b',
    'kops.k8s.io/kops-controller-pki': '',
    'node-role.kubernetes.io/control-plane': '',
    'node.kubernetes.io/exclude-from-external-load-balancers': '',
  });
  t.equal(nc.sysctls['net.ipv4.ip_forward'], '1');
  t.equal(nc.sysctls['fs.inotify.max_user_watches'], '524288');
  t.equal(nc.sysctls['fs.inotify.max_user_instances'], '8192');
  t.equal(nc.sysctls['net.ipv4.neigh.default.gc_thresh1'], '0', 'the AWS neighbour table setting');
  t.equal(nc.sysctls['net.core.somaxconn'], '65535', "the cluster's sysctlParameters override the defaults");
  t.equal(nc.sysctls['vm.swappiness'], '1');
});

t.test('a worker gets no control-plane material', async (t) => {
  const { cluster, instanceGroups } = completed();
  const nc = buildNodeConfig(cluster, instanceGroups[3], KEYPAIRS);
  t.equal(nc.instanceGroupRole, 'Node');
  t.notOk('etcdClusters' in nc, 'no etcd section');
  t.same(nc.keypairIDs, { 'kubernetes-ca': KEYPAIRS['kubernetes-ca'] }, 'only the cluster CA');
  t.same(nc.taints, ['dedicated=data:NoSchedule']);
  t.same(nc.nodeLabels, { 'kops.k8s.io/instancegroup': 'nodes-us-east-1a', 'node-role.kubernetes.io/node': '', team: 'data' });
  t.equal(nc.sysctls['vm.swappiness'], '10', "the group's sysctlParameters win over the cluster's");
  const text = serializeNodeConfig(nc);
  t.notMatch(text, /etcd/);
  t.notMatch(text, /service-account/);
});

t.test('local clusters: no AWS sysctls; not completed input is refused', async (t) => {
  const { cluster, instanceGroups } = completed('local');
  const nc = buildNodeConfig(cluster, instanceGroups[0], KEYPAIRS);
  t.equal(nc.cloudProvider, 'local');
  t.notOk('net.ipv4.neigh.default.gc_thresh1' in nc.sysctls);
  const user = newClusterObjects({ name: 'demo.example.com', zones: ['us-east-1a'], controlPlaneCount: 1, nodeCount: 0, cloud: 'aws' });
  t.throws(() => buildNodeConfig(user.cluster, user.instanceGroups[0], KEYPAIRS), {
    message: 'cluster "demo.example.com" is not completed: spec.configBase missing (complete it first)',
    exitCode: ExitCode.InvalidSpec,
  });
});

t.test('serialisation is deterministic and parses back', async (t) => {
  const { cluster, instanceGroups } = completed();
  const nc = buildNodeConfig(cluster, instanceGroups[0], KEYPAIRS);
  const text = serializeNodeConfig(nc);
  t.match(text, /^apiVersion: mooring\.dev\/v1alpha1\nkind: NodeConfig\nclusterName: demo\.example\.com\n/);
  // Same content in another key order gives the same bytes.
  const shuffled = Object.fromEntries(Object.entries(nc).reverse()) as unknown as NodeConfig;
  shuffled.sysctls = Object.fromEntries(Object.entries(nc.sysctls).reverse());
  shuffled.keypairIDs = Object.fromEntries(Object.entries(nc.keypairIDs).reverse());
  t.equal(serializeNodeConfig(shuffled), text);
  t.same(parseNodeConfig(text, 'nodeupconfig.yaml'), nc);
  t.same(parseYAML(text), nc);
  const worker = buildNodeConfig(cluster, instanceGroups[4], KEYPAIRS);
  t.same(parseNodeConfig(serializeNodeConfig(worker), 'w.yaml'), worker);
});

t.test('parseNodeConfig checks what nodeup relies on', async (t) => {
  const { cluster, instanceGroups } = completed();
  const nc = buildNodeConfig(cluster, instanceGroups[0], KEYPAIRS);
  const broken = (change: (doc: Record<string, unknown>) => void): string => {
    const doc = structuredClone(nc) as unknown as Record<string, unknown>;
    change(doc);
    return toYAML(doc);
  };
  const errorOf = (text: string): SpecError => {
    try {
      parseNodeConfig(text, 'nc.yaml');
    } catch (err) {
      if (err instanceof SpecError) return err;
      throw err;
    }
    throw new Error('expected a SpecError');
  };
  t.equal(errorOf(broken((d) => (d.apiVersion = 'v1'))).message, 'nc.yaml:1: apiVersion: unknown value "v1" (want one of mooring.dev/v1alpha1)');
  t.equal(errorOf(broken((d) => delete d.clusterDNS)).message, 'nc.yaml:1: clusterDNS: missing');
  t.match(errorOf(broken((d) => (d.podCIDR = '100.96.0.0/33'))).message, /podCIDR: invalid CIDR "100\.96\.0\.0\/33"/, 'podCIDR is optional (IPv6 clusters have none) but checked when there');
  t.doesNotThrow(() => parseNodeConfig(broken((d) => {
    delete d.podCIDR;
    d.serviceClusterIPRange = 'fd00:5e4f:ce::/108';
    d.clusterDNS = 'fd00:5e4f:ce::a';
  }), 'nc.yaml'), 'an IPv6 node config');
  t.equal(errorOf(broken((d) => (d.instanceGroupRole = 'Worker'))).message, 'nc.yaml:5: instanceGroupRole: unknown value "Worker" (want one of ControlPlane, Master, Node, Bastion, APIServer)');
  t.equal(errorOf(broken((d) => ((d.sysctls as Record<string, unknown>)['kernel.panic'] = 10))).message.replace(/:\d+:/, ':N:'), 'nc.yaml:N: sysctls["kernel.panic"]: must be a string (got 10)');
  const portLine = errorOf(broken((d) => ((d.etcdClusters as Array<Record<string, unknown>>)[1].peerPort = '2381')));
  t.equal(portLine.path, 'etcdClusters[1].peerPort');
  t.equal(portLine.reason, 'must be a whole number (got "2381")');
  t.equal(portLine.line, toYAML(nc).split('\n').indexOf('  peerPort: 2381') + 1);
  t.equal(errorOf('').message, 'nc.yaml: expected one NodeConfig document, found 0');
  t.equal(errorOf('[1, 2]\n').message, 'nc.yaml:1: must be an object');
});

t.test('the boot config pins the node config by hash', async (t) => {
  const { cluster, instanceGroups } = completed();
  const ig = instanceGroups[3];
  const bytes = serializeNodeConfig(buildNodeConfig(cluster, ig, KEYPAIRS));
  const boot = buildBootConfig(cluster, ig, bytes, CONFIG_BASE);
  const hex = createHash('sha256').update(Buffer.from(bytes, 'utf8')).digest('hex');
  t.same(boot, {
    cloudProvider: 'aws',
    clusterName: 'demo.example.com',
    configBase: CONFIG_BASE,
    instanceGroupName: 'nodes-us-east-1a',
    instanceGroupRole: 'Node',
    nodeupConfigHash: `sha256:${hex}`,
  });
  t.equal(buildBootConfig(cluster, ig, Buffer.from(bytes), CONFIG_BASE).nodeupConfigHash, boot.nodeupConfigHash, 'Buffer and string agree');
  t.equal(nodeConfigHash(bytes), `sha256:${hex}`);
  t.doesNotThrow(() => verifyNodeConfigHash(boot, Buffer.from(bytes), 'nodeupconfig.yaml'));
  t.throws(() => verifyNodeConfigHash(boot, `${bytes}# changed\n`, 's3://state/x/nodeupconfig.yaml'), {
    message: new RegExp(`^s3://state/x/nodeupconfig\\.yaml: node config hash sha256:[0-9a-f]{64} does not match the boot config's sha256:${hex}$`),
    exitCode: ExitCode.InvalidSpec,
  });
  const text = toYAML(boot);
  t.same(parseBootConfig(text, 'kube_env.yaml'), boot);
  t.same(parseBootConfig(toYAML({ ...boot, apiServerIPs: ['172.20.32.10'] }), 'kube_env.yaml').apiServerIPs, ['172.20.32.10']);
});

t.test('parseBootConfig refuses incomplete or wrong fields', async (t) => {
  const good = {
    cloudProvider: 'aws',
    clusterName: 'demo.example.com',
    configBase: CONFIG_BASE,
    instanceGroupName: 'nodes-us-east-1a',
    instanceGroupRole: 'Node',
    nodeupConfigHash: `sha256:${'ab'.repeat(32)}`,
  };
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ...good, configBase: undefined }, 'kube_env.yaml:1: configBase: missing'],
    [{ ...good, nodeupConfigHash: 'ab'.repeat(32) }, 'kube_env.yaml:6: nodeupConfigHash: must be sha256:<64 lowercase hex digits>'],
    [{ ...good, instanceGroupRole: 'node' }, 'kube_env.yaml:5: instanceGroupRole: unknown value "node" (want one of ControlPlane, Master, Node, Bastion, APIServer)'],
    [{ ...good, apiServerIPs: '10.0.0.1' }, 'kube_env.yaml:7: apiServerIPs: must be a list'],
    [{ ...good, clusterName: 42 }, 'kube_env.yaml:2: clusterName: must be a non-empty string (got 42)'],
  ];
  for (const [doc, message] of cases) t.throws(() => parseBootConfig(toYAML(doc), 'kube_env.yaml'), { message }, message);
  t.throws(() => parseBootConfig('a: [', 'kube_env.yaml'), { message: /^kube_env\.yaml:1: invalid YAML: / });
});

t.test("a group's kubelet: the cluster's (control plane: masterKubelet) with the group's own over it", async (t) => {
  const user = newClusterObjects({ name: 'demo.example.com', zones: ['us-east-1a'], controlPlaneCount: 1, nodeCount: 1, cloud: 'aws' });
  user.cluster.spec.kubelet = { maxPods: 50, anonymousAuth: false, taints: ['cluster=wide:NoSchedule'], featureGates: { A: 'true' } };
  user.cluster.spec.masterKubelet = { maxPods: 30 };
  const [cp, nodes] = user.instanceGroups;
  nodes.spec.kubelet = { maxPods: 70, featureGates: { B: 'false' }, taints: ['own=kubelet:NoExecute'] };
  nodes.spec.taints = ['dedicated=gpu:NoSchedule', 'odd=x:Sometimes'];
  cp.spec.taints = [];
  const done = completeCluster(user.cluster, user.instanceGroups, { configBase: CONFIG_BASE });
  const node = buildNodeConfig(done.cluster, done.instanceGroups[1], KEYPAIRS);
  t.equal(node.kubelet.maxPods, 70, "the group's value wins");
  t.same(node.kubelet.featureGates, { A: 'true', B: 'false' }, 'maps merge key by key');
  t.same(node.taints, ['cluster=wide:NoSchedule', 'dedicated=gpu:NoSchedule', 'own=kubelet:NoExecute'], "taints are the union (sorted); kubelet's refused effect is left out");
  t.notOk('taints' in node.kubelet || 'nodeLabels' in node.kubelet, 'taints and labels live in their own fields');
  const control = buildNodeConfig(done.cluster, done.instanceGroups[0], KEYPAIRS);
  t.equal(control.kubelet.maxPods, 30, 'the control plane starts from masterKubelet (itself the nodes\' kubelet with its own settings over it)');
  t.equal(control.kubelet.anonymousAuth, false, "the nodes' anonymousAuth=false holds on the control plane too");
  t.same(control.kubelet.featureGates, { A: 'true', ImageVolume: 'true' });
});
