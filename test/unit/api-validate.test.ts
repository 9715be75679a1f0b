// Validation: every problem is reported at once, with its field path, and
// with the source line when the objects came from a file.
import t from 'tap';
import { newClusterObjects } from '../../shared/api/complete.js';
import { parseObjects, SpecError, stringifyObjects } from '../../shared/api/parse.js';
import type { Cluster, EtcdClusterSpec, InstanceGroup } from '../../shared/api/types.js';
import { validateCluster } from '../../shared/api/validate.js';

function base(): { cluster: Cluster; instanceGroups: InstanceGroup[] } {
  return newClusterObjects({
    name: 'demo.example.com',
    zones: ['us-east-1a', 'us-east-1b', 'us-east-1c'],
    controlPlaneCount: 3,
    nodeCount: 3,
    cloud: 'aws',
  });
}

/** Messages for plain objects: the source is `Kind/name`. */
function problems(cluster: Cluster, instanceGroups: InstanceGroup[]): string[] {
  return validateCluster(cluster, instanceGroups).map((e) => e.message);
}

const C = 'Cluster/demo.example.com';

/** Validates after a change to fresh base objects. */
function after(change: (cluster: Cluster, igs: InstanceGroup[]) => void): string[] {
  const { cluster, instanceGroups } = base();
  change(cluster, instanceGroups);
  return problems(cluster, instanceGroups);
}

t.test('the spec create cluster writes is valid, and so are single-zone and local ones', async (t) => {
  t.same(after(() => {}), []);
  const local = newClusterObjects({ name: 'dev.local', zones: ['local-a'], controlPlaneCount: 1, nodeCount: 0, cloud: 'local' });
  t.same(problems(local.cluster, local.instanceGroups), []);
});

t.test('errors from a file carry source, line and path', async (t) => {
  const text = `apiVersion: kops.k8s.io/v1alpha2
kind: Cluster
metadata:
  name: demo.example.com
spec:
  cloudProvider: aws
  podCIDR: 100.64.0.0/12
  etcdClusters:
  - name: main
    etcdMembers:
    - name: a
      instanceGroup: control-plane-a
    - name: b
      instanceGroup: control-plane-x
    - name: c
      instanceGroup: nodes-a
  subnets:
  - name: us-east-1a
    zone: us-east-1a
---
apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: control-plane-a
spec:
  role: ControlPlane
  subnets: [us-east-1a]
---
apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: nodes-a
spec:
  role: Worker
  subnets: [us-east-1a]
---
apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: nodes-a
spec:
  role: Node
  subnets: [us-east-1a]
`;
  const [cluster, ...igs] = parseObjects(text, 'demo.yaml');
  const errors = validateCluster(cluster, igs);
  t.same(errors.map((e) => e.message), [
    'demo.yaml:7: spec.podCIDR: 100.64.0.0/12 overlaps serviceClusterIPRange 100.64.0.0/13 (default)',
    'demo.yaml:34: spec.role: unknown role "Worker" (want one of ControlPlane, Master, Node, Bastion, APIServer)',
    'demo.yaml:40: metadata.name: duplicate instance group "nodes-a"',
    'demo.yaml:14: spec.etcdClusters[0].etcdMembers[1].instanceGroup: no instance group "control-plane-x"',
    'demo.yaml:16: spec.etcdClusters[0].etcdMembers[2].instanceGroup: instance group "nodes-a" has role Worker (want ControlPlane or Master)',
  ]);
  const [first] = errors;
  t.ok(first instanceof SpecError);
  t.equal(first.source, 'demo.yaml');
  t.equal(first.line, 7);
  t.equal(first.path, 'spec.podCIDR');
  t.equal(first.exitCode, 3);
});

t.test('malformed YAML never reaches validation: parse reports it with its line', async (t) => {
  t.throws(() => parseObjects('kind: Cluster\nspec:\n  subnets:\n  - name: a\n   zone: b\n', 'bad.yaml'), {
    message: 'bad.yaml:5: invalid YAML: Sequence item without - indicator',
  });
});

t.test('names', async (t) => {
  t.same(after((c) => (c.metadata.name = 'Demo_Cluster')), [
    'Cluster/Demo_Cluster: metadata.name: invalid name "Demo_Cluster" (want a lowercase DNS name: a-z, 0-9, \'-\' and \'.\')',
    // The groups' cluster label now names another cluster.
    ...['control-plane-us-east-1a', 'control-plane-us-east-1b', 'control-plane-us-east-1c', 'nodes-us-east-1a', 'nodes-us-east-1b', 'nodes-us-east-1c'].map(
      (ig) => `InstanceGroup/${ig}: metadata.labels["kops.k8s.io/cluster"]: "demo.example.com" does not match cluster name "Demo_Cluster"`,
    ),
  ]);
  t.same(after((_, igs) => (igs[4].metadata.name = 'Nodes B')), [
    'InstanceGroup/Nodes B: metadata.name: invalid name "Nodes B" (want a lowercase DNS name: a-z, 0-9, \'-\' and \'.\')',
  ]);
  t.same(after((_, igs) => delete igs[3].metadata.labels), [], 'the cluster label is optional');
});

t.test('instance group roles', async (t) => {
  t.same(after((_, igs) => (igs[3].spec.role = 'Worker' as never)), [
    'InstanceGroup/nodes-us-east-1a: spec.role: unknown role "Worker" (want one of ControlPlane, Master, Node, Bastion, APIServer)',
  ]);
  t.same(after((_, igs) => delete (igs[3].spec as Partial<InstanceGroup['spec']>).role), [
    'InstanceGroup/nodes-us-east-1a: spec.role: missing (want one of ControlPlane, Master, Node, Bastion, APIServer)',
  ]);
  t.same(after((_, igs) => igs.forEach((ig) => ig.spec.role === 'ControlPlane' && (ig.spec.role = 'Master'))), [], 'Master is the old name of ControlPlane');
});

t.test('duplicate instance groups', async (t) => {
  t.same(after((_, igs) => igs.push(structuredClone(igs[3]))), ['InstanceGroup/nodes-us-east-1a: metadata.name: duplicate instance group "nodes-us-east-1a"']);
});

t.test('at least one control-plane group', async (t) => {
  t.same(after((c, igs) => {
    igs.splice(0, 3);
    delete c.spec.etcdClusters;
  }), [`${C}: no control-plane instance group (want at least one with role ControlPlane)`]);
});

t.test('instance group sizes', async (t) => {
  t.same(after((_, igs) => Object.assign(igs[3].spec, { minSize: 3, maxSize: 1 })), ['InstanceGroup/nodes-us-east-1a: spec.minSize: 3 is greater than spec.maxSize 1']);
  t.same(after((_, igs) => Object.assign(igs[3].spec, { minSize: -1, maxSize: 1.5 })), [
    'InstanceGroup/nodes-us-east-1a: spec.minSize: must be a whole number from 0 to at most 5000 (got -1)',
    'InstanceGroup/nodes-us-east-1a: spec.maxSize: must be a whole number from 0 to at most 5000 (got 1.5)',
  ]);
  t.same(after((_, igs) => Object.assign(igs[3].spec, { minSize: 0, maxSize: 0 })), [], 'zero is a size');
  t.same(after((_, igs) => Object.assign(igs[3].spec, { minSize: undefined, maxSize: undefined })), [], 'sizes are optional');
});

t.test('instance group subnets and zones', async (t) => {
  t.same(after((_, igs) => (igs[3].spec.subnets = ['us-east-1a', 'us-east-1d'])), ['InstanceGroup/nodes-us-east-1a: spec.subnets[1]: no subnet "us-east-1d" in the cluster']);
  t.same(after((_, igs) => {
    delete igs[3].spec.subnets;
    igs[3].spec.zones = ['us-east-1b', 'eu-west-1a'];
  }), ['InstanceGroup/nodes-us-east-1a: spec.zones[1]: no subnet in zone "eu-west-1a" in the cluster']);
  t.same(after((_, igs) => delete igs[3].spec.subnets), ["InstanceGroup/nodes-us-east-1a: spec.subnets: missing (name the cluster's subnets this group runs in)"]);
  t.same(after((_, igs) => ((igs[3].spec as Record<string, unknown>).subnets = 'us-east-1a')), ['InstanceGroup/nodes-us-east-1a: spec.subnets: must be a list']);
});

t.test('labels, taints and sysctls', async (t) => {
  t.same(after((_, igs) => (igs[3].spec.nodeLabels = { team: 7 as unknown as string })), ['InstanceGroup/nodes-us-east-1a: spec.nodeLabels.team: must be a string (got 7)']);
  // kOps accepts a taint without an effect or with any effect word (util.ParseTaint); `update`
  // warns that kubelet takes neither, and nodes leave them out.
  t.same(after((_, igs) => (igs[3].spec.taints = ['dedicated=gpu:NoSchedule', 'spot:NoExecute', 'broken', 'x=y:Sometimes'])), []);
  t.same(after((_, igs) => (igs[3].spec.taints = ['a:b:NoSchedule', 'k=v=w:NoSchedule', 'bad key:NoSchedule', 'k=a b:NoSchedule'])), [
    'InstanceGroup/nodes-us-east-1a: spec.taints[0]: invalid taint "a:b:NoSchedule": more than one \':\' (want key[=value]:NoSchedule|PreferNoSchedule|NoExecute)',
    'InstanceGroup/nodes-us-east-1a: spec.taints[1]: invalid taint "k=v=w:NoSchedule": more than one \'=\' (want key[=value]:NoSchedule|PreferNoSchedule|NoExecute)',
    'InstanceGroup/nodes-us-east-1a: spec.taints[2]: invalid taint "bad key:NoSchedule": key "bad key": name part must be letters, digits, \'-\', \'_\' or \'.\', starting and ending with a letter or digit',
    'InstanceGroup/nodes-us-east-1a: spec.taints[3]: invalid taint "k=a b:NoSchedule": value "a b": want letters, digits, \'-\', \'_\' or \'.\', starting and ending with a letter or digit',
  ], 'what kOps itself refuses, or what would break kubelet\'s config, is still refused');
  t.same(after((c) => (c.spec.sysctlParameters = ['net.core.somaxconn=1024', 'nonsense'])), [`${C}: spec.sysctlParameters[1]: invalid sysctl "nonsense" (want key=value on one line, the key letters, digits, '_', '.', '/' or '-')`]);
});

t.test('cluster fields', async (t) => {
  t.same(after((c) => delete c.spec.cloudProvider), [`${C}: spec.cloudProvider: missing (want aws or local)`]);
  t.same(after((c) => (c.spec.cloudProvider = 'gce')), [`${C}: spec.cloudProvider: unsupported cloud "gce" (want aws or local)`]);
  t.same(after((c) => (c.spec.cloudProvider = { aws: {} })), [], 'the newer object form is accepted');
  t.same(after((c) => (c.spec.cloudProvider = { openstack: {} })), [`${C}: spec.cloudProvider: unsupported cloud "openstack" (want aws or local)`]);
  t.same(after((c) => (c.spec.kubernetesVersion = 1.3 as unknown as string)), [`${C}: spec.kubernetesVersion: invalid version 1.3 (want a string such as "1.30.5")`]);
  t.same(after((c) => (c.spec.kubernetesVersion = 'latest')), [`${C}: spec.kubernetesVersion: invalid version "latest" (want a string such as "1.30.5")`]);
  t.same(after((c) => (c.spec.kubernetesVersion = 'v1.31.0-rc.1')), []);
  t.same(after((c) => (c.spec.configBase = 5 as unknown as string)), [`${C}: spec.configBase: must be a string (got 5)`]);
});

t.test('CIDRs must parse', async (t) => {
  t.same(after((c) => (c.spec.networkCIDR = '172.20.0.0')), [`${C}: spec.networkCIDR: invalid CIDR "172.20.0.0" (want IPv4 a.b.c.d/n)`]);
  t.same(after((c) => (c.spec.podCIDR = '100.96.0.1/11')), [`${C}: spec.podCIDR: invalid CIDR "100.96.0.1/11" (host bits set; did you mean 100.96.0.0/11?)`]);
  t.same(after((c) => (c.spec.serviceClusterIPRange = 42 as unknown as string)), [`${C}: spec.serviceClusterIPRange: must be a CIDR string such as "10.0.0.0/16" (got 42)`]);
  t.same(after((c) => (c.spec.kubeProxy = { clusterCIDR: 'x' })), [`${C}: spec.kubeProxy.clusterCIDR: invalid CIDR "x" (want IPv4 a.b.c.d/n)`]);
  t.same(after((c) => (c.spec.subnets![0].cidr = '172.20.32.0/33')), [`${C}: spec.subnets[0].cidr: invalid CIDR "172.20.32.0/33" (want IPv4 a.b.c.d/n)`]);
});

t.test('the default ranges nest legally; pod and service ranges must not overlap', async (t) => {
  const explicit = (c: Cluster) =>
    Object.assign(c.spec, { nonMasqueradeCIDR: '100.64.0.0/10', podCIDR: '100.96.0.0/11', serviceClusterIPRange: '100.64.0.0/13' });
  t.same(after(explicit), [], 'nonMasqueradeCIDR containing pod and service ranges is the default');
  t.same(after((c) => Object.assign(c.spec, { podCIDR: '100.64.0.0/11', serviceClusterIPRange: '100.64.0.0/13' })), [
    `${C}: spec.serviceClusterIPRange: 100.64.0.0/13 overlaps spec.podCIDR 100.64.0.0/11`,
  ]);
  t.same(after((c) => (c.spec.serviceClusterIPRange = '100.96.0.0/13')), [`${C}: spec.serviceClusterIPRange: 100.96.0.0/13 overlaps podCIDR 100.96.0.0/11 (default)`]);
  // A user nonMasqueradeCIDR moves the derived ranges with it: still valid.
  t.same(after((c) => (c.spec.nonMasqueradeCIDR = '10.0.0.0/8')), []);
});

t.test('the network must stay clear of pods and services', async (t) => {
  t.same(after((c) => {
    c.spec.networkCIDR = '100.64.0.0/16';
    c.spec.subnets!.forEach((s) => delete s.cidr);
  }), [
    `${C}: spec.networkCIDR: 100.64.0.0/16 overlaps spec.nonMasqueradeCIDR 100.64.0.0/10`,
    `${C}: spec.networkCIDR: 100.64.0.0/16 overlaps serviceClusterIPRange 100.64.0.0/13 (default)`,
  ]);
  t.same(after((c) => (c.spec.podCIDR = '172.20.0.0/16')), [
    `${C}: spec.podCIDR: 172.20.0.0/16 is not inside spec.nonMasqueradeCIDR 100.64.0.0/10`,
    `${C}: spec.networkCIDR: 172.20.0.0/16 overlaps spec.podCIDR 172.20.0.0/16`,
  ]);
  // kOps checks only the pod range against nonMasqueradeCIDR (its service range is a fixed
  // 100.64.0.0/13 whatever nonMasqueradeCIDR is).
  t.same(after((c) => {
    delete c.spec.nonMasqueradeCIDR;
    c.spec.serviceClusterIPRange = '10.0.0.0/16';
  }), []);
  t.same(after((c) => (c.spec.nonMasqueradeCIDR = '10.0.0.0/8')), [], 'pod and service ranges follow a user nonMasqueradeCIDR');
  t.same(after((c) => Object.assign(c.spec, { nonMasqueradeCIDR: '10.0.0.0/8', podCIDR: '100.96.0.0/11' })), [
    `${C}: spec.podCIDR: 100.96.0.0/11 is not inside spec.nonMasqueradeCIDR 10.0.0.0/8`,
  ]);
  t.same(after((c) => {
    c.spec.networkCIDR = '100.64.0.0/16';
    c.spec.subnets!.forEach((s) => delete s.cidr);
    c.spec.networking = { amazonvpc: {} };
  }), [], 'the AWS VPC CNI shares the VPC range on purpose');
});

t.test('subnets', async (t) => {
  t.same(after((c) => (c.spec.subnets![1].cidr = '172.20.32.0/20')), [`${C}: spec.subnets[1].cidr: 172.20.32.0/20 overlaps spec.subnets[0].cidr 172.20.32.0/19`]);
  t.same(after((c) => (c.spec.subnets![2].cidr = '10.1.0.0/19')), [`${C}: spec.subnets[2].cidr: 10.1.0.0/19 is not inside spec.networkCIDR 172.20.0.0/16`]);
  t.same(after((c) => {
    c.spec.subnets![2].cidr = '10.1.0.0/19';
    c.spec.additionalNetworkCIDRs = ['10.1.0.0/16'];
  }), [], 'additionalNetworkCIDRs hold subnets too');
  t.same(after((c) => {
    delete c.spec.networkCIDR;
    c.spec.subnets![2].cidr = '172.21.0.0/19';
  }), [`${C}: spec.subnets[2].cidr: 172.21.0.0/19 is not inside networkCIDR 172.20.0.0/16 (default)`]);
  t.same(after((c) => {
    c.spec.subnets![1].name = 'us-east-1a';
    delete c.spec.subnets![2].zone;
  }), [
    `${C}: spec.subnets[1].name: duplicate subnet "us-east-1a"`,
    `${C}: spec.subnets[2].zone: missing`,
    // Groups that named the renamed subnet now name nothing.
    'InstanceGroup/control-plane-us-east-1b: spec.subnets[0]: no subnet "us-east-1b" in the cluster',
    'InstanceGroup/nodes-us-east-1b: spec.subnets[0]: no subnet "us-east-1b" in the cluster',
  ]);
  t.same(after((c, igs) => {
    c.spec.subnets = [];
    igs.forEach((ig) => (ig.spec.subnets = []));
  }), [`${C}: spec.subnets: at least one subnet required`]);
  t.same(after((c) => c.spec.subnets!.forEach((s) => delete s.cidr)), [], 'completion assigns missing CIDRs');
});

t.test('etcd clusters', async (t) => {
  const main = (c: Cluster) => c.spec.etcdClusters![0];
  t.same(after((c) => (main(c).etcdMembers[1].instanceGroup = 'control-plane-x')), [
    `${C}: spec.etcdClusters[0].etcdMembers[1].instanceGroup: no instance group "control-plane-x"`,
  ]);
  t.same(after((c) => (main(c).etcdMembers[1].instanceGroup = 'nodes-us-east-1a')), [
    `${C}: spec.etcdClusters[0].etcdMembers[1].instanceGroup: instance group "nodes-us-east-1a" has role Node (want ControlPlane or Master)`,
  ]);
  t.same(after((c) => (main(c).etcdMembers[2].instanceGroup = 'control-plane-us-east-1a')), [
    `${C}: spec.etcdClusters[0].etcdMembers[2].instanceGroup: instance group "control-plane-us-east-1a" already hosts member "a"`,
  ]);
  t.same(after((c) => (main(c).etcdMembers[2].name = 'a')), [`${C}: spec.etcdClusters[0].etcdMembers[2].name: duplicate member "a"`]);
  t.same(after((c) => (main(c).etcdMembers[2].name = '')), [`${C}: spec.etcdClusters[0].etcdMembers[2].name: missing`]);
  t.same(after((c) => (c.spec.etcdClusters![1].name = 'main')), [`${C}: spec.etcdClusters[1].name: duplicate etcd cluster "main"`]);
  t.same(after((c) => (main(c).name = 'primary')), [`${C}: spec.etcdClusters: no etcd cluster named "main" (the API server keeps its data there)`]);
  t.same(after((c) => (main(c).etcdMembers = [])), [`${C}: spec.etcdClusters[0].etcdMembers: at least one member required`]);
  t.same(after((c) => main(c).etcdMembers.pop()), [`${C}: spec.etcdClusters[0].etcdMembers: 2 members; etcd needs an odd number for quorum`]);
  t.same(after((c) => delete (main(c) as Partial<EtcdClusterSpec>).etcdMembers), [
    `${C}: spec.etcdClusters[0].etcdMembers: missing (list one member per control-plane instance group)`,
  ]);
  t.same(after((c) => (main(c).version = '3.5')), [`${C}: spec.etcdClusters[0].version: invalid etcd version "3.5" (want e.g. 3.4.23)`]);
  t.same(after((c) => (main(c).manager = { backupRetentionDays: -2 })), [`${C}: spec.etcdClusters[0].manager.backupRetentionDays: must be a whole number of days, at most 36500 (got -2)`]);
  t.same(after((c) => delete c.spec.etcdClusters), [], 'absent: completion creates main and events');
  t.same(after((c) => (c.spec.etcdClusters = [])), [], 'empty is absent (kOps omits empty lists)');
});

t.test('etcd ports must not clash', async (t) => {
  t.same(after((c) => (c.spec.etcdClusters![1].clientPort = 4001)), [`${C}: spec.etcdClusters[1].clientPort: port 4001 is also etcd cluster "main" clientPort`]);
  t.same(after((c) => (c.spec.etcdClusters![0].peerPort = 70000)), [`${C}: spec.etcdClusters[0].peerPort: must be a port number 1-65535 (got 70000)`]);
  t.same(after((c) => {
    const cilium = structuredClone(c.spec.etcdClusters![1]);
    cilium.name = 'cilium';
    cilium.grpcPort = 3996;
    c.spec.etcdClusters!.push(cilium);
  }), [`${C}: spec.etcdClusters[2].grpcPort: port 3996 is also etcd cluster "main" grpcPort`]);
});

t.test('every problem at once, in a stable order', async (t) => {
  const messages = after((c, igs) => {
    c.spec.kubernetesVersion = 'latest';
    igs[3].spec.role = 'Worker' as never;
    igs[4].spec.minSize = -1;
  });
  t.equal(messages.length, 3);
  t.same(messages, after((c, igs) => {
    c.spec.kubernetesVersion = 'latest';
    igs[3].spec.role = 'Worker' as never;
    igs[4].spec.minSize = -1;
  }));
  // A cloud the agents do not run is the one thing said: the rest would only follow from it.
  t.same(after((c, igs) => {
    c.spec.cloudProvider = 'gce';
    igs[3].spec.role = 'Worker' as never;
    igs[4].spec.minSize = -1;
  }), [`${C}: spec.cloudProvider: unsupported cloud "gce" (want aws or local)`]);
});

t.test('a wrong kind in either position is reported, not thrown', async (t) => {
  const { cluster, instanceGroups } = base();
  const [clusterAsParsed] = parseObjects(stringifyObjects([cluster], 'yaml'), 'c.yaml');
  t.same(validateCluster(instanceGroups[0] as unknown as Cluster, []).map((e) => e.message), [
    'InstanceGroup/control-plane-us-east-1a: kind: expected Cluster, found "InstanceGroup"',
  ]);
  t.same(validateCluster(clusterAsParsed, [cluster as unknown as InstanceGroup, ...instanceGroups]).map((e) => e.message), [
    `${C}: kind: expected InstanceGroup, found "Cluster"`,
  ]);
});

t.test("a group's own kubelet settings have the formats the cluster's have", async (t) => {
  t.same(after((_, igs) => (igs[3].spec.kubelet = { featureGates: { A: 'maybe' }, clusterDNS: 'x', taints: ['a:b:c'], maxPods: 50 })), [
    'InstanceGroup/nodes-us-east-1a: spec.kubelet.featureGates: invalid feature gate value "A"="maybe" (want true or false)',
    'InstanceGroup/nodes-us-east-1a: spec.kubelet.clusterDNS: invalid IP address "x" (want an IPv4 or IPv6 address)',
    "InstanceGroup/nodes-us-east-1a: spec.kubelet.taints[0]: invalid taint \"a:b:c\": more than one ':' (want key[=value]:NoSchedule|PreferNoSchedule|NoExecute)",
  ]);
  t.same(after((_, igs) => (igs[3].spec.kubelet = 'big' as never)), ['InstanceGroup/nodes-us-east-1a: spec.kubelet: must be an object']);
});
