// Spec input that must be refused or reported: values that would reach a
// command line or env file with the wrong syntax, unknown fields (kOps' own
// specs have none), forbidden keys, alias bombs, oversized texts, numbers that
// cannot be kept exactly, and node configs that slipped past validation.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { completeCluster, newClusterObjects } from '../../shared/api/complete.js';
import { unknownFields } from '../../shared/api/known-fields.js';
import { buildNodeConfig, parseNodeConfig, serializeNodeConfig } from '../../shared/api/nodeconfig.js';
import { MAX_SPEC_BYTES, parseObjects, SpecError } from '../../shared/api/parse.js';
import type { Cluster, ClusterSpec, InstanceGroup, InstanceGroupSpec } from '../../shared/api/types.js';
import { validateCluster } from '../../shared/api/validate.js';
import { ExitCode } from '../../shared/errors.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/kops-aws-cluster.yaml', import.meta.url));

function specError(fn: () => unknown): SpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpecError) return err;
    throw err;
  }
  throw new Error('expected a SpecError');
}

function base(): { cluster: Cluster; instanceGroups: InstanceGroup[] } {
  return newClusterObjects({ name: 'demo.example.com', zones: ['us-east-1a'], controlPlaneCount: 1, nodeCount: 1, cloud: 'aws' });
}

/** The validation messages after one change. */
function problems(change: (spec: ClusterSpec, nodes: InstanceGroupSpec) => void): string[] {
  const { cluster, instanceGroups } = base();
  change(cluster.spec, instanceGroups[1].spec);
  return validateCluster(cluster, instanceGroups).map((e) => e.message);
}

t.test("kOps' own AWS spec has no unknown field; every field Mooring reads is known", async (t) => {
  for (const parsed of parseObjects(readFileSync(FIXTURE, 'utf8'), FIXTURE)) {
    t.same(unknownFields(parsed.object), [], `${parsed.object.kind}/${parsed.object.metadata.name}`);
  }
  const { cluster, instanceGroups } = base();
  const completed = completeCluster(cluster, instanceGroups, { configBase: 's3://state/demo.example.com' });
  completed.cluster.spec.controlPlaneKubelet = { clusterDNS: '100.64.0.10' };
  completed.cluster.spec.assets = { fileRepository: 'https://mirror.example.com' };
  t.same(unknownFields(completed.cluster), [], 'the completed spec (etcd ports, api.publicName, …)');
  for (const ig of completed.instanceGroups) t.same(unknownFields(ig), [], ig.metadata.name);
});

t.test('unknown fields are found at any depth, by path, including names an object inherits', async (t) => {
  const { cluster, instanceGroups } = base();
  const spec = cluster.spec as Record<string, unknown>;
  spec.typo_cidr = '10.0.0.0/8';
  spec.bogusField = { nested: 1 };
  spec.kubeAPIServer = { securePort: 443, sercurePort: 444 };
  spec.etcdClusters = [{ ...cluster.spec.etcdClusters![0], etcdMembers: [{ name: 'a', instanceGroup: 'x', instanceGrup: 'y' }] }];
  spec.networking = { cilium: { enableNodePort: true, hubbel: {} } };
  (cluster.metadata as Record<string, unknown>).lables = {};
  (cluster as Record<string, unknown>).status = {};
  // A name every object inherits from Object.prototype is still not a field.
  Object.assign(instanceGroups[1].spec, { toString: 'x', nodeLables: {} });
  t.same(unknownFields(cluster).sort(), [
    'metadata.lables',
    'spec.bogusField',
    'spec.etcdClusters[0].etcdMembers[0].instanceGrup',
    'spec.kubeAPIServer.sercurePort',
    'spec.networking.cilium.hubbel',
    'spec.typo_cidr',
    'status',
  ]);
  t.same(unknownFields(instanceGroups[1]), ['spec.toString', 'spec.nodeLables']);
  const fresh = base().instanceGroups[1];
  fresh.spec.nodeLabels = { anything: 'goes' };
  fresh.spec.cloudLabels = { 'any/key': '' };
  t.same(unknownFields(fresh), [], 'maps of labels are free-form');
});

t.test('forbidden keys, alias bombs and oversized texts are SpecErrors (exit 3) naming the file', async (t) => {
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    const err = specError(() => parseObjects(`apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: {name: x}\nspec:\n  kubelet:\n    ${key}: {polluted: true}\n`, 'f.yaml'));
    t.equal(err.exitCode, ExitCode.InvalidSpec);
    t.equal(err.line, 6);
    t.match(err.message, new RegExp(`^f\\.yaml:6: spec\\.kubelet\\.${key}: the key "${key}" is not allowed`));
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched');
  t.match(specError(() => parseObjects('{"apiVersion":"kops.k8s.io/v1alpha2","kind":"Cluster","metadata":{"name":"x","labels":{"constructor":"x"}},"spec":{}}', 'f.json')).message, /^f\.json:1: metadata\.labels\.constructor: /);

  const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', ...'bcdefg'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`)].join('\n');
  const err = specError(() => parseObjects(bomb, 'bomb.yaml'));
  t.equal(err.exitCode, ExitCode.InvalidSpec);
  t.match(err.message, /^bomb\.yaml: too many YAML aliases/);
  t.same(parseObjects('apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: {name: x}\nspec:\n  a: &a [1]\n  b: *a\n', 'ok.yaml')[0].object.spec, { a: [1], b: [1] }, 'a few aliases are fine');

  const big = `apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: {name: x}\nspec: {}\n#${'x'.repeat(MAX_SPEC_BYTES)}\n`;
  t.match(specError(() => parseObjects(big, 'big.yaml')).message, /^big\.yaml: larger than 4 MiB \(4\.0 MiB\)/);
  t.match(specError(() => parseObjects('#'.repeat(MAX_SPEC_BYTES / 2 + 1).replace(/#/g, 'é'), 'wide.yaml')).message, /larger than 4 MiB/, 'counted in bytes, not characters');
});

t.test('labels and taints: Kubernetes syntax, one error naming the field', async (t) => {
  const injection = 'a --authorization-mode=AlwaysAllow --anonymous-auth=true';
  t.same(problems((_, n) => (n.nodeLabels = { workload: injection })), [
    `InstanceGroup/nodes-us-east-1a: spec.nodeLabels.workload: invalid label value ${JSON.stringify(injection)}: want letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
  ]);
  t.match(problems((_, n) => (n.nodeLabels = { 'bad key': 'x' })), [/spec\.nodeLabels\["bad key"\]: invalid label key "bad key": name part must be/]);
  t.match(problems((_, n) => (n.nodeLabels = { 'Example.COM/x': 'y' })), [/invalid label key "Example\.COM\/x": prefix "Example\.COM" must be a lowercase DNS subdomain/]);
  t.same(problems((_, n) => (n.nodeLabels = { 'kops.k8s.io/instancegroup': 'nodes-us-east-1a', 'example.com/team': 'A.b_c', empty: '' })), []);
  t.match(problems((_, n) => (n.taints = ['dedicated=a b:NoSchedule'])), [/spec\.taints\[0\]: invalid taint "dedicated=a b:NoSchedule": value "a b"/]);
  t.same(problems((_, n) => (n.taints = ['node-role.kubernetes.io/control-plane=:NoSchedule', 'spot:NoExecute'])), []);
  t.match(problems((_, n) => (n.sysctlParameters = ['net.core.somaxconn=1\nkernel.panic=0'])), [/spec\.sysctlParameters\[0\]: invalid sysctl/]);
  t.same(problems((s) => (s.sysctlParameters = ['net.ipv4.tcp_rmem=4096 87380 16777216'])), [], 'values with spaces are fine');
});

t.test('an instance group name must fit the kops.k8s.io/instancegroup label', async (t) => {
  const { cluster, instanceGroups } = base();
  const name = `nodes-${'x'.repeat(30)}.${'y'.repeat(30)}`;
  instanceGroups[1].metadata.name = name;
  t.same(validateCluster(cluster, instanceGroups).map((e) => e.message), [
    `InstanceGroup/${name}: metadata.name: "${name}" is 67 characters: at most 63, as nodes carry it as the kops.k8s.io/instancegroup label`,
  ]);
});

t.test('every cluster value nodeup renders is checked', async (t) => {
  const cases: Array<[string, (s: ClusterSpec) => void, RegExp]> = [
    ['containerd version', (s) => (s.containerd = { version: '1.7.24 --debug' }), /spec\.containerd\.version: invalid version/],
    ['etcd server', (s) => (s.kubeAPIServer = { etcdServers: ['https://127.0.0.1:4001 --x'] }), /spec\.kubeAPIServer\.etcdServers\[0\]: invalid URL/],
    ['etcd override', (s) => (s.kubeAPIServer = { etcdServersOverrides: ['https://127.0.0.1:4002'] }), /etcdServersOverrides\[0\]: invalid override/],
    ['API port', (s) => (s.kubeAPIServer = { securePort: 0 }), /securePort: must be a port number 1-65535 \(got 0\)/],
    ['allowPrivileged', (s) => (s.kubeAPIServer = { allowPrivileged: 'yes' as unknown as boolean }), /allowPrivileged: must be true or false/],
    ['internal name', (s) => (s.masterInternalName = 'api internal'), /spec\.masterInternalName: invalid name/],
    ['public name', (s) => (s.masterPublicName = 'API.example.com'), /spec\.masterPublicName: invalid name/],
    ['api.publicName', (s) => (s.api = { publicName: 'a b' }), /spec\.api\.publicName: invalid name/],
    ['configBase', (s) => (s.configBase = 'file:///x\nPROTOKUBE_EVIL=1'), /spec\.configBase: invalid state store URL/],
    ['configBase type', (s) => (s.configBase = 5 as unknown as string), /spec\.configBase: must be a string \(got 5\)/],
    ['cluster name flag', (s) => (s.kubeControllerManager = { clusterName: 'a --leader-elect=false' }), /kubeControllerManager\.clusterName: invalid name/],
    ['cluster DNS', (s) => (s.kubelet = { clusterDNS: '100.64.0.10 evil' }), /spec\.kubelet\.clusterDNS: invalid IP address/],
    ['control-plane cluster DNS', (s) => (s.masterKubelet = { clusterDNS: 'x' }), /spec\.masterKubelet\.clusterDNS: invalid IP address/],
    ['cluster domain', (s) => (s.kubelet = { clusterDomain: 'cluster.local --x' }), /spec\.kubelet\.clusterDomain: invalid name/],
    ['DNS domain', (s) => (s.clusterDNSDomain = 'a b'), /spec\.clusterDNSDomain: invalid name/],
    ['DNS server', (s) => (s.kubeDNS = { serverIP: 'x' }), /spec\.kubeDNS\.serverIP: invalid IP address/],
    ['backup store', (s) => (s.etcdClusters![0].backups = { backupStore: 's3://b/x ETCD_MANAGER_X=1' }), /spec\.etcdClusters\[0\]\.backups\.backupStore: invalid state store URL/],
    ['manager env name', (s) => (s.etcdClusters![0].manager = { env: [{ name: 'A B', value: '1' }] }), /manager\.env\[0\]\.name: invalid environment variable name "A B"/],
    ['manager env value', (s) => (s.etcdClusters![0].manager = { env: [{ name: 'A', value: 'x\ny' }] }), /manager\.env\[0\]\.value: must be a string on one line/],
    ['mirror', (s) => (s.assets = { fileRepository: 'https://a.example.com/x,https://evil.example.com' }), /spec\.assets\.fileRepository: invalid mirror URL/],
    ['mirror scheme', (s) => (s.assets = { fileRepository: 'ftp://mirror.example.com' }), /spec\.assets\.fileRepository: invalid mirror URL/],
    ['retention', (s) => (s.etcdClusters![0].manager = { backupRetentionDays: 1e20 }), /backupRetentionDays: must be a whole number of days, at most 36500 \(got 100000000000000000000\)/],
  ];
  for (const [what, change, want] of cases) {
    const found = problems(change);
    t.equal(found.length, 1, `${what}: one problem (${found.join(' | ')})`);
    t.match(found[0], want, what);
  }
  t.same(problems((s) => {
    s.kubeAPIServer = { etcdServers: ['https://127.0.0.1:4001'], etcdServersOverrides: ['/events#https://127.0.0.1:4002'], securePort: 443, allowPrivileged: true };
    s.containerd = { version: '1.7.24' };
    s.configBase = 's3://state/demo.example.com';
    s.kubelet = { clusterDNS: '100.64.0.10', clusterDomain: 'cluster.local' };
    s.assets = { fileRepository: 'https://mirror.example.com:8443/kops/' };
  }), [], 'the values completion writes are valid');
});

t.test('sizes and numbers are bounded', async (t) => {
  t.same(problems((_, n) => (n.maxSize = 1e20)), ['InstanceGroup/nodes-us-east-1a: spec.maxSize: must be a whole number from 0 to at most 5000 (got 100000000000000000000)']);
  t.same(problems((_, n) => Object.assign(n, { minSize: 6000, maxSize: 7000 })), [
    'InstanceGroup/nodes-us-east-1a: spec.minSize: must be a whole number from 0 to at most 5000 (got 6000)',
    'InstanceGroup/nodes-us-east-1a: spec.maxSize: must be a whole number from 0 to at most 5000 (got 7000)',
  ]);
  t.same(problems((_, n) => Object.assign(n, { minSize: 5000, maxSize: 5000 })), []);
  t.same(problems((_, n) => ((n as Record<string, unknown>).rootVolumeSize = 1e20)), [
    'InstanceGroup/nodes-us-east-1a: spec.rootVolumeSize: 100000000000000000000 is too large to keep exactly (at most 9007199254740991)',
  ]);
  t.same(problems((s) => ((s as Record<string, unknown>).anything = [{ deep: -1e300 }])), [
    'Cluster/demo.example.com: spec.anything[0].deep: -1e+300 is too large to keep exactly (at most 9007199254740991)',
  ]);
});

t.test('nodeup refuses a node config whose rendered values slipped past validation', async (t) => {
  const { cluster, instanceGroups } = base();
  const completed = completeCluster(cluster, instanceGroups, { configBase: 's3://state/demo.example.com' });
  const text = serializeNodeConfig(buildNodeConfig(completed.cluster, completed.instanceGroups[0], { 'kubernetes-ca': '1' }));
  t.ok(parseNodeConfig(text, 'nc.yaml'), 'as written, it is fine');
  const edits: Array<[Array<string | number>, unknown, RegExp]> = [
    [['nodeLabels', 'workload'], 'a --anonymous-auth=true', /^nc\.yaml:\d+: nodeLabels\.workload: invalid label value/],
    [['nodeLabels', 'bad key'], 'x', /nodeLabels\["bad key"\]: invalid label key/],
    [['taints', 0], 'a b:NoSchedule', /taints\[0\]: invalid taint/],
    [['containerdVersion'], '1.7 --debug', /containerdVersion: invalid value "1\.7 --debug" \(want a release version/],
    [['configBase'], 's3://b/x Y=1', /configBase: invalid state store URL/],
    [['masterInternalName'], 'a b', /masterInternalName: invalid value "a b" \(want a lowercase DNS name\)/],
    [['clusterDNS'], 'x', /clusterDNS: invalid IP address/],
    [['podCIDR'], '10.0.0.0/8 x', /podCIDR: invalid CIDR/],
    [['sysctls', 'kernel.panic'], '1\nvm.x=2', /sysctls\["kernel\.panic"\]: invalid sysctl/],
    [['etcdClusters', 0, 'backupStore'], 'file:///x y', /etcdClusters\[0\]\.backupStore: invalid state store URL/],
    [['etcdClusters', 0, 'clientPort'], 70000, /etcdClusters\[0\]\.clientPort: must be a port number/],
    [['etcdClusters', 0, 'version'], '3.5 x', /etcdClusters\[0\]\.version: invalid value "3\.5 x" \(want an etcd version/],
    [['etcdClusters', 0, 'memberNames', 0], 'A B', /etcdClusters\[0\]\.memberNames\[0\]: invalid value "A B" \(want a lowercase DNS label\)/],
  ];
  for (const [keys, value, want] of edits) {
    const doc = parseDocument(text);
    doc.setIn(keys, value);
    const err = specError(() => parseNodeConfig(String(doc), 'nc.yaml'));
    t.equal(err.exitCode, ExitCode.InvalidSpec);
    t.match(err.message, want, keys.join('.'));
  }
});
