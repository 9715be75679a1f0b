// Spec input (issue 7, items 2, 6 and 10): values that would reach a kubelet,
// API server or etcd-manager command line or environment file, unknown and
// dangerous keys, oversized and self-expanding files, state URLs that do not
// name a store directory, and exit codes that must match the README's table.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { HostileCase, World } from '../case.js';

const INJECTION = 'a --authorization-mode=AlwaysAllow --anonymous-auth=true';

/** The stored object at `path` (below the cluster's folder), as a YAML document to edit. */
function stored(w: World, path: string) {
  return parseDocument(readFileSync(join(w.storeDir, w.cluster, path), 'utf8'));
}

/** A file holding the stored Cluster with one value set (a path of keys below the object). */
function clusterWith(w: World, keys: Array<string | number>, value: unknown, name = 'edited.yaml'): string {
  const doc = stored(w, 'config');
  doc.setIn(keys, value);
  return w.file(name, String(doc));
}

/** A file holding the stored worker group with one value set. */
function workersWith(w: World, keys: Array<string | number>, value: unknown): string {
  const doc = stored(w, 'instancegroup/nodes-local-a');
  doc.setIn(keys, value);
  return w.file('edited.yaml', String(doc));
}

function replace(w: World, file: string, ...extra: string[]) {
  return { args: ['--state', w.storeURL, 'replace', '-f', file, ...extra] };
}

/** Layer 1: one field that reaches a command line or an env file, set to something it must not be. */
function badClusterValue(name: string, keys: Array<string | number>, value: unknown, message: RegExp): HostileCase {
  return {
    name,
    program: 'mooring',
    prepare: (w) => replace(w, clusterWith(w, keys, value)),
    exit: 3,
    message,
  };
}

function badGroupValue(name: string, keys: Array<string | number>, value: unknown, message: RegExp): HostileCase {
  return {
    name,
    program: 'mooring',
    prepare: (w) => replace(w, workersWith(w, keys, value)),
    exit: 3,
    message,
  };
}

const billionLaughs = [
  'apiVersion: kops.k8s.io/v1alpha2',
  'kind: Cluster',
  'metadata: {name: bomb.example.com}',
  'spec:',
  '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  '  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  '  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  '  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  '  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  '  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  '  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  '',
].join('\n');

export const cases: HostileCase[] = [
  // --- item 2, layer 1: validation names the field -------------------------------------------
  badGroupValue('a node label value that carries kubelet flags', ['spec', 'nodeLabels', 'workload'], INJECTION,
    /spec\.nodeLabels\.workload: invalid label value/),
  badGroupValue('a node label key with a space', ['spec', 'nodeLabels', 'bad key'], 'x',
    /spec\.nodeLabels\["bad key"\]: invalid label key/),
  badGroupValue('a node label key whose prefix is not a DNS subdomain', ['spec', 'nodeLabels', 'Example.COM/x'], 'y',
    /spec\.nodeLabels\["Example\.COM\/x"\]: invalid label key/),
  badGroupValue('a node label value longer than 63 characters', ['spec', 'nodeLabels', 'workload'], 'v'.repeat(64),
    /spec\.nodeLabels\.workload: invalid label value .*63/),
  badGroupValue('a taint whose value carries a space', ['spec', 'taints'], ['dedicated=a b:NoSchedule'],
    /spec\.taints\[0\]: invalid taint/),
  // kOps takes any effect word, so an unknown one is a warning at update (spec-fidelity.ts); a taint
  // kOps itself refuses is still refused.
  badGroupValue('a taint with two effects', ['spec', 'taints'], ['dedicated=x:NoSchedule:NoExecute'],
    /spec\.taints\[0\]: invalid taint/),
  badGroupValue('a sysctl whose value carries a second line', ['spec', 'sysctlParameters'], ['net.core.somaxconn=1\nkernel.panic=0'],
    /spec\.sysctlParameters\[0\]: invalid sysctl/),
  badClusterValue('a containerd version that carries a flag (it is part of ExecStart)', ['spec', 'containerd', 'version'], '1.7.24 --debug',
    /spec\.containerd\.version: invalid version/),
  badClusterValue('an etcd server URL with a second flag in it', ['spec', 'kubeAPIServer', 'etcdServers'], ['https://127.0.0.1:4001 --anonymous-auth=true'],
    /spec\.kubeAPIServer\.etcdServers\[0\]: invalid URL/),
  badClusterValue('an etcd server list smuggled in through a comma', ['spec', 'kubeAPIServer', 'etcdServers'], ['https://127.0.0.1:4001,https://203.0.113.9:2379'],
    /spec\.kubeAPIServer\.etcdServers\[0\]: invalid URL/),
  badClusterValue('an etcd servers override without a resource', ['spec', 'kubeAPIServer', 'etcdServersOverrides'], ['https://127.0.0.1:4002'],
    /spec\.kubeAPIServer\.etcdServersOverrides\[0\]: invalid override/),
  badClusterValue('an API server port that is not a port', ['spec', 'kubeAPIServer', 'securePort'], 70000,
    /spec\.kubeAPIServer\.securePort: must be a port number/),
  badClusterValue('allowPrivileged that is not a boolean', ['spec', 'kubeAPIServer', 'allowPrivileged'], 'true --anonymous-auth=true',
    /spec\.kubeAPIServer\.allowPrivileged: must be true or false/),
  badClusterValue('an internal API name with a space (env file, /etc/hosts, issuer URL)', ['spec', 'masterInternalName'], 'api.internal x',
    /spec\.masterInternalName: invalid name/),
  badClusterValue('a public API name that is not a DNS name', ['spec', 'masterPublicName'], 'api example',
    /spec\.masterPublicName: invalid name/),
  badClusterValue('a configBase with a second line (protokube env file)', ['spec', 'configBase'], 'file:///x\nPROTOKUBE_EVIL=1',
    /spec\.configBase: invalid state store URL/),
  badClusterValue('an etcd backup store with a space (etcd-manager env file)', ['spec', 'etcdClusters', 0, 'backups'], { backupStore: 's3://bucket/x ETCD_MANAGER_X=1' },
    /spec\.etcdClusters\[0\]\.backups\.backupStore: invalid state store URL/),
  badClusterValue('a controller-manager cluster name with a space', ['spec', 'kubeControllerManager', 'clusterName'], 'a --leader-elect=false',
    /spec\.kubeControllerManager\.clusterName: invalid name/),
  badClusterValue('a cluster DNS address that is not an IP', ['spec', 'kubelet', 'clusterDNS'], '100.64.0.10 evil',
    /spec\.kubelet\.clusterDNS: invalid IP address/),
  badClusterValue('a cluster domain that is not a DNS name', ['spec', 'clusterDNSDomain'], 'cluster.local --x',
    /spec\.clusterDNSDomain: invalid name/),
  badClusterValue('an etcd-manager env name that is not a variable name', ['spec', 'etcdClusters', 0, 'manager', 'env'], [{ name: 'A B', value: '1' }],
    /spec\.etcdClusters\[0\]\.manager\.env\[0\]\.name: invalid environment variable name/),
  {
    name: 'an instance group name too long to be the kops.k8s.io/instancegroup label',
    program: 'mooring',
    prepare: (w) => {
      const doc = stored(w, 'instancegroup/nodes-local-a');
      // A valid DNS name (labels of at most 63), but 67 characters in all.
      doc.setIn(['metadata', 'name'], `nodes-${'x'.repeat(30)}.${'y'.repeat(30)}`);
      return { args: ['--state', w.storeURL, 'create', '-f', w.file('edited.yaml', String(doc))] };
    },
    exit: 3,
    message: /metadata\.name: .*63/,
  },
  // --- item 2, a node config that slipped past validation ---------------------------------------
  {
    name: 'nodeup reads a node config whose label value carries kubelet flags',
    program: 'nodeup',
    prepare: async (w) => {
      const path = join(w.cluster, 'igconfig/node/nodes-local-a/nodeupconfig.yaml');
      const doc = parseDocument(readFileSync(join(w.storeDir, path), 'utf8'));
      doc.setIn(['nodeLabels', 'workload'], INJECTION);
      w.file(join('state', path), String(doc));
      // The boot config carries the hash of the edited bytes, as if the store had been written that way.
      return { args: ['--conf', await w.bootConfig('nodes-local-a'), '--root', w.root, '--dry-run'] };
    },
    exit: 3,
    message: /nodeupconfig\.yaml:\d+: nodeLabels\.workload: invalid label value/,
  },
  // --- item 6: unknown and dangerous keys, size ----------------------------------------------------
  {
    name: 'replace --strict with a misspelt field',
    program: 'mooring',
    prepare: (w) => replace(w, clusterWith(w, ['spec', 'typo_cidr'], '10.0.0.0/8'), '--strict'),
    exit: 3,
    message: /edited\.yaml:\d+: spec\.typo_cidr: unknown field/,
  },
  {
    name: 'create -f --strict with an unknown field in an instance group',
    program: 'mooring',
    prepare: (w) => {
      const doc = stored(w, 'instancegroup/nodes-local-a');
      doc.setIn(['metadata', 'name'], 'more-nodes');
      doc.setIn(['spec', 'nodeLabels', 'kops.k8s.io/instancegroup'], 'more-nodes');
      doc.setIn(['spec', 'bogusField'], 1);
      return { args: ['--state', w.storeURL, 'create', '-f', w.file('edited.yaml', String(doc)), '--strict'] };
    },
    exit: 3,
    message: /spec\.bogusField: unknown field/,
  },
  {
    name: 'replace without --strict warns about a misspelt field (and keeps it)',
    program: 'mooring',
    prepare: (w) => replace(w, clusterWith(w, ['spec', 'kubeAPIServer', 'typo_port'], 1)),
    exit: 0,
    message: /^warning: .*edited\.yaml:\d+: spec\.kubeAPIServer\.typo_port: unknown field/,
    mayChange: /^state\/hostile\.example\.com\/config$/,
    after: (w) => {
      if (!readFileSync(join(w.storeDir, w.cluster, 'config'), 'utf8').includes('typo_port')) throw new Error('the unknown field was not kept');
    },
  },
  ...(['__proto__', 'constructor', 'prototype'] as const).map((key): HostileCase => ({
    name: `a spec with a ${key} key`,
    program: 'mooring',
    prepare: (w) => replace(w, clusterWith(w, ['spec', 'kubelet', key], { polluted: true })),
    exit: 3,
    message: new RegExp(`spec\\.kubelet(\\.|\\[")${key}("\\])?: .*not allowed`),
  })),
  {
    name: 'a JSON spec with a __proto__ key at the top',
    program: 'mooring',
    prepare: (w) => ({
      args: ['--state', w.storeURL, 'create', '-f', w.file('proto.json', '{"apiVersion":"kops.k8s.io/v1alpha2","kind":"Cluster","__proto__":{"x":1},"metadata":{"name":"p.example.com"},"spec":{}}')],
    }),
    exit: 3,
    message: /proto\.json:1: __proto__: .*not allowed/,
  },
  {
    name: 'a spec file of 8 MiB',
    program: 'mooring',
    prepare: (w) => {
      const padding = `# ${'x'.repeat(1021)}\n`.repeat(8 * 1024);
      return replace(w, w.file('huge.yaml', `${readFileSync(join(w.storeDir, w.cluster, 'config'), 'utf8')}${padding}`));
    },
    exit: 3,
    message: /huge\.yaml: .*larger than 4 MiB/,
  },
  {
    name: 'a spec of 8 MiB on stdin',
    program: 'mooring',
    prepare: (w) => ({
      args: ['--state', w.storeURL, 'replace', '-f', '-'],
      stdin: `${readFileSync(join(w.storeDir, w.cluster, 'config'), 'utf8')}${`# ${'x'.repeat(1021)}\n`.repeat(8 * 1024)}`,
    }),
    exit: 3,
    message: /<stdin>: .*larger than 4 MiB/,
  },
  // --- item 10: exit codes, state URLs, bounds ---------------------------------------------------
  {
    name: 'a YAML bomb (billion laughs)',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'create', '-f', w.file('bomb.yaml', billionLaughs)] }),
    exit: 3,
    message: /bomb\.yaml: .*aliases/,
  },
  {
    name: 'nodeup --root with a relative path',
    program: 'nodeup',
    prepare: async (w) => ({ args: ['--conf', await w.bootConfig('nodes-local-a'), '--root', 'relative/path', '--dry-run'] }),
    exit: 2,
    message: /--root must be an absolute path/,
  },
  {
    name: 'an s3:// store with no credentials anywhere',
    program: 'mooring',
    prepare: () => ({
      args: ['--state', 's3://mooring-hostile/state', 'get', 'clusters'],
      // No instance metadata (it is not ours to ask), and an endpoint on loopback that nobody serves.
      env: { AWS_EC2_METADATA_DISABLED: 'true', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', AWS_REGION: 'us-east-1' },
    }),
    exit: 5,
    message: /s3:\/\/mooring-hostile\/state: no AWS credentials/,
  },
  {
    name: '--state file:s1 (a relative file URL)',
    program: 'mooring',
    prepare: () => ({ args: ['--state', 'file:s1', 'get', 'clusters'] }),
    exit: 2,
    message: /file:s1: .*file:\/\/\/absolute/,
  },
  {
    name: '--state file:/s1 (one slash)',
    program: 'mooring',
    prepare: () => ({ args: ['--state', 'file:/s1', 'get', 'clusters'] }),
    exit: 2,
    message: /file:\/s1: .*file:\/\/\/absolute/,
  },
  {
    name: 'a state URL that names a regular file',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', `file://${w.file('not-a-dir', 'hello\n')}`, 'get', 'clusters'] }),
    exit: 2,
    message: /not-a-dir: .*not a directory/,
  },
  {
    name: 'a state store path that names a regular file, as a plain path',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.file('not-a-dir', 'hello\n'), 'get', 'cluster', 'x.example.com'] }),
    exit: 2,
    message: /not-a-dir: .*not a directory/,
  },
  {
    name: 'create cluster --control-plane-count 100000000000000000000',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'create', 'cluster', 'big.example.com', '--cloud', 'local', '--control-plane-count', '100000000000000000000'] }),
    exit: 2,
    message: /--control-plane-count: .*at most 7/,
  },
  {
    name: 'create cluster --node-count 99999999999',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'create', 'cluster', 'big.example.com', '--cloud', 'local', '--node-count', '99999999999'] }),
    exit: 2,
    message: /--node-count: .*at most 5000/,
  },
  badGroupValue('maxSize: 1e20 in an instance group', ['spec', 'maxSize'], 1e20, /spec\.maxSize: .*at most 5000/),
  badGroupValue('minSize: 6000 in an instance group', ['spec', 'minSize'], 6000, /spec\.minSize: .*at most 5000/),
  badClusterValue('a number too large to keep exactly anywhere in a spec', ['spec', 'etcdClusters', 0, 'manager', 'backupRetentionDays'], 1e20,
    /spec\.etcdClusters\[0\]\.manager\.backupRetentionDays: /),
];
