// Parsing kops.k8s.io/v1alpha2 objects: lines in errors, multi-document
// files, JSON and List forms, and a lossless round trip of a real kOps file.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYAML } from 'yaml';
import { ExitCode, UserError } from '../../shared/errors.js';
import { joinPath, parsePath } from '../../shared/api/fieldpath.js';
import { parseObjects, parseOneObject, SpecError, stringifyObjects, type ParsedObject } from '../../shared/api/parse.js';
import type { Cluster, InstanceGroup } from '../../shared/api/types.js';
import { validateCluster } from '../../shared/api/validate.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/kops-aws-cluster.yaml', import.meta.url));
const fixtureText = readFileSync(FIXTURE, 'utf8');

function specErrorOf(fn: () => unknown): SpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpecError) return err;
    throw err;
  }
  throw new Error('expected a SpecError');
}

const CLUSTER = `apiVersion: kops.k8s.io/v1alpha2
kind: Cluster
metadata:
  name: demo.example.com
spec:
  cloudProvider: aws
  etcdClusters:
  - name: main
    etcdMembers:
    - name: a
      instanceGroup: control-plane-a
    - name: b
      instanceGroup: control-plane-b
  subnets:
  - name: us-east-1a
    zone: us-east-1a
`;

t.test('SpecError formats source, line and path', async (t) => {
  const full = new SpecError('no instance group "x"', { source: 'c.yaml', path: 'spec.a', line: 7 });
  t.equal(full.message, 'c.yaml:7: spec.a: no instance group "x"');
  t.equal(full.exitCode, ExitCode.InvalidSpec);
  t.ok(full instanceof UserError);
  t.equal(full.source, 'c.yaml');
  t.equal(full.line, 7);
  t.equal(full.path, 'spec.a');
  t.equal(full.reason, 'no instance group "x"');
  t.equal(new SpecError('bad', { source: 'c.yaml', path: 'spec.a' }).message, 'c.yaml: spec.a: bad');
  t.equal(new SpecError('bad', { source: 'c.yaml', line: 3 }).message, 'c.yaml:3: bad');
  t.equal(new SpecError('bad', { source: 'c.yaml' }).message, 'c.yaml: bad');
});

t.test('field paths join and split', async (t) => {
  t.equal(joinPath('spec', 'etcdClusters', 0, 'etcdMembers', 1, 'instanceGroup'), 'spec.etcdClusters[0].etcdMembers[1].instanceGroup');
  t.equal(joinPath('metadata', 'labels', 'kops.k8s.io/cluster'), 'metadata.labels["kops.k8s.io/cluster"]');
  t.equal(joinPath('', 'spec'), 'spec');
  t.same(parsePath('spec.etcdClusters[0].etcdMembers[1].instanceGroup'), ['spec', 'etcdClusters', 0, 'etcdMembers', 1, 'instanceGroup']);
  t.same(parsePath('metadata.labels["kops.k8s.io/cluster"]'), ['metadata', 'labels', 'kops.k8s.io/cluster']);
  t.same(parsePath(''), []);
});

t.test('lineOf maps field paths to 1-based lines', async (t) => {
  const [parsed] = parseObjects(CLUSTER, 'demo.yaml');
  t.equal(parsed.object.kind, 'Cluster');
  t.equal(parsed.source, 'demo.yaml');
  t.equal(parsed.lineOf(''), 1);
  t.equal(parsed.lineOf('kind'), 2);
  t.equal(parsed.lineOf('metadata.name'), 4);
  t.equal(parsed.lineOf('spec.etcdClusters'), 7);
  t.equal(parsed.lineOf('spec.etcdClusters[0]'), 8);
  t.equal(parsed.lineOf('spec.etcdClusters[0].etcdMembers[1]'), 12);
  t.equal(parsed.lineOf('spec.etcdClusters[0].etcdMembers[1].instanceGroup'), 13);
  t.equal(parsed.lineOf('spec.subnets[0].zone'), 16);
  // Missing nodes fall back to the nearest parent that exists.
  t.equal(parsed.lineOf('spec.etcdClusters[0].etcdMembers[5].name'), 9, 'missing index → the list');
  t.equal(parsed.lineOf('spec.etcdClusters[0].version'), 8, 'missing key → its object');
  t.equal(parsed.lineOf('spec.podCIDR'), 5);
  t.equal(parsed.lineOf('nope[[['), 1, 'malformed path → the object');
});

t.test('multi-document YAML, empty documents skipped, lines per document', async (t) => {
  const text = `---
# only a comment
---
${CLUSTER}---
---
apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: control-plane-a
spec:
  role: ControlPlane
  subnets: [us-east-1a]
...
`;
  const objects = parseObjects(text, 'all.yaml');
  t.equal(objects.length, 2);
  t.equal(objects[0].object.kind, 'Cluster');
  t.equal(objects[1].object.kind, 'InstanceGroup');
  t.equal(objects[0].lineOf('metadata.name'), 7);
  t.equal(objects[1].lineOf('spec.role'), 27);
  t.same(parseObjects('', 'empty.yaml'), []);
  t.same(parseObjects('---\n---\n', 'empty.yaml'), []);
});

t.test('JSON input, with lines', async (t) => {
  const text = JSON.stringify(parseYAML(CLUSTER), null, 2);
  const [parsed] = parseObjects(text, 'demo.json');
  t.same(parsed.object, parseYAML(CLUSTER));
  t.equal(parsed.lineOf('metadata.name'), 5);
});

t.test('a missing spec becomes an empty one; unknown top-level fields are kept', async (t) => {
  const [parsed] = parseObjects('apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: {name: x}\nstatus: {phase: Ready}\n', 'x.yaml');
  t.same(parsed.object, { apiVersion: 'kops.k8s.io/v1alpha2', kind: 'Cluster', metadata: { name: 'x' }, status: { phase: 'Ready' }, spec: {} });
});

t.test('malformed YAML is a SpecError with the line', async (t) => {
  const err = specErrorOf(() => parseObjects('apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: x: y\n', 'bad.yaml'));
  t.equal(err.message, 'bad.yaml:4: invalid YAML: Nested mappings are not allowed in compact mappings');
  t.equal(err.exitCode, ExitCode.InvalidSpec);
  t.equal(err.line, 4);
  const tab = specErrorOf(() => parseObjects('kind: Cluster\n\tspec: {}\n', 'tab.yaml'));
  t.equal(tab.message, 'tab.yaml:2: invalid YAML: Tabs are not allowed as indentation');
  const dup = specErrorOf(() => parseObjects('{"kind": "Cluster",\n "kind": "Cluster"}', 'dup.json'));
  t.equal(dup.message, 'dup.json:2: invalid YAML: Map keys must be unique');
});

t.test('apiVersion, kind and metadata.name are required', async (t) => {
  const cases: Array<[string, string]> = [
    ['kind: Cluster\nmetadata: {name: x}\n', 'c.yaml:1: apiVersion: missing (want kops.k8s.io/v1alpha2)'],
    ['apiVersion: kops.k8s.io/v1alpha3\nkind: Cluster\nmetadata: {name: x}\n', 'c.yaml:1: apiVersion: unsupported apiVersion "kops.k8s.io/v1alpha3" (want kops.k8s.io/v1alpha2)'],
    ['apiVersion: kops.k8s.io/v1alpha2\nmetadata: {name: x}\n', 'c.yaml:1: kind: missing (want Cluster or InstanceGroup)'],
    ['apiVersion: kops.k8s.io/v1alpha2\nkind: Keyset\nmetadata: {name: x}\n', 'c.yaml:2: kind: unknown kind "Keyset" (want Cluster or InstanceGroup)'],
    ['apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\n', 'c.yaml:1: metadata: missing (want an object with a name)'],
    ['apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  labels: {}\n', 'c.yaml:3: metadata.name: missing'],
    ['apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: 12\n', 'c.yaml:4: metadata.name: must be a string (got 12)'],
    ['apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: {name: x}\nspec: [1]\n', 'c.yaml:4: spec: must be an object'],
    ['- just\n- a list\n', 'c.yaml:1: expected a kops.k8s.io/v1alpha2 Cluster or InstanceGroup object'],
  ];
  for (const [text, message] of cases) t.equal(specErrorOf(() => parseObjects(text, 'c.yaml')).message, message);
});

t.test('a realistic kOps AWS file loads, validates and round-trips losslessly', async (t) => {
  const objects = parseObjects(fixtureText, FIXTURE);
  t.same(objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`), [
    'Cluster/prod.k8s.example.com',
    'InstanceGroup/control-plane-eu-west-1a',
    'InstanceGroup/control-plane-eu-west-1b',
    'InstanceGroup/control-plane-eu-west-1c',
    'InstanceGroup/nodes-eu-west-1a',
    'InstanceGroup/bastions',
  ]);
  const cluster = objects[0].object as Cluster;
  // Fields Mooring does not model are still there.
  t.same(cluster.spec.networking, { cilium: { enableNodePort: true, hubble: { enabled: true } } });
  t.same(cluster.spec.kubernetesApiAccess, ['0.0.0.0/0', '::/0']);
  t.equal(cluster.spec.kubeAPIServer?.oidcIssuerURL, 'https://sso.example.com/realms/ops');
  t.equal(cluster.metadata.creationTimestamp, '2024-03-18T09:41:07Z');
  t.equal(cluster.metadata.generation, 3);
  t.equal(cluster.spec.kubernetesVersion, '1.29.3');
  t.same(cluster.spec.etcdClusters?.[0].manager?.env?.[1], { name: 'ETCD_METRICS', value: 'basic' });
  const nodes = objects[4].object as InstanceGroup;
  t.same(nodes.spec.cloudLabels, { 'k8s.io/cluster-autoscaler/enabled': '', 'k8s.io/cluster-autoscaler/prod.k8s.example.com': '' });
  t.equal(objects[5].object.metadata.creationTimestamp, null);
  // Lines count in the whole file, not per document.
  t.equal(objects[4].lineOf('spec.mixedInstancesPolicy.instances[1]'), fixtureText.split('\n').indexOf('    - m5.large') + 1);

  t.same(validateCluster(objects[0], objects.slice(1)).map((e) => e.message), [], 'the kOps file is valid');

  const plain = objects.map((o) => o.object);
  const yamlAgain = stringifyObjects(plain, 'yaml');
  t.same(parseObjects(yamlAgain, 'again.yaml').map((o) => o.object), plain, 'YAML round trip keeps every field');
  t.equal(stringifyObjects(parseObjects(yamlAgain, 'again.yaml').map((o) => o.object), 'yaml'), yamlAgain, 'YAML output is stable');
  t.same(parseObjects(stringifyObjects(plain, 'json'), 'again.json').map((o) => o.object), plain, 'JSON round trip keeps every field');
  // Same layout as kOps writes: sequences not indented under their key.
  t.match(yamlAgain, /\n {2}kubernetesApiAccess:\n {2}- 0\.0\.0\.0\/0\n/);
  // Comparing text with comments and quoting aside: every line of the fixture comes back.
  const normalise = (text: string) => text.split('\n').filter((l) => l !== '' && l !== '---').map((l) => l.replace(/"/g, ''));
  t.same(normalise(yamlAgain), normalise(fixtureText));
});

t.test('stringifyObjects: YAML documents, a JSON object, or a JSON List', async (t) => {
  const objects = parseObjects(fixtureText, FIXTURE).map((o) => o.object);
  const [cluster, ig] = objects;
  const yaml = stringifyObjects([cluster, ig], 'yaml');
  t.equal(yaml.split(/^---$/m).length, 2);
  t.match(yaml, /^apiVersion: kops\.k8s\.io\/v1alpha2\nkind: Cluster\n/);
  t.same(JSON.parse(stringifyObjects([cluster], 'json')), cluster);
  const list = JSON.parse(stringifyObjects([cluster, ig], 'json')) as { apiVersion: string; kind: string; items: unknown[] };
  t.equal(list.apiVersion, 'v1');
  t.equal(list.kind, 'List');
  t.same(list.items, [cluster, ig]);
  t.equal(stringifyObjects([], 'yaml'), '');
  t.same(JSON.parse(stringifyObjects([], 'json')), { apiVersion: 'v1', kind: 'List', items: [] });
});

t.test('a List reads back, with lines relative to each item', async (t) => {
  const [cluster, ig] = parseObjects(fixtureText, FIXTURE).map((o) => o.object);
  const text = stringifyObjects([cluster, ig], 'json');
  const parsed: ParsedObject[] = parseObjects(text, 'list.json');
  t.same(parsed.map((p) => p.object), [cluster, ig]);
  const nameLine = text.split('\n').findIndex((l) => l.includes('"control-plane-eu-west-1a"') && !l.includes('instanceGroup')) + 1;
  t.equal(parsed[1].lineOf('metadata.name'), nameLine);
  t.equal(parsed[1].lineOf(''), text.split('\n').lastIndexOf('    {') + 1, 'the item starts the second object');
  const bad = specErrorOf(() => parseObjects('apiVersion: v1\nkind: List\nitems:\n- kind: Cluster\n  metadata: {name: x}\n', 'l.yaml'));
  t.equal(bad.message, 'l.yaml:4: items[0].apiVersion: missing (want kops.k8s.io/v1alpha2)');
  t.equal(specErrorOf(() => parseObjects('kind: List\nitems: 3\n', 'l.yaml')).message, 'l.yaml:2: items: must be a list');
});

t.test('parseOneObject wants exactly one object of the kind', async (t) => {
  const cluster = parseOneObject(CLUSTER, 'config', 'Cluster');
  t.equal(cluster.object.spec.cloudProvider, 'aws');
  t.equal(specErrorOf(() => parseOneObject(CLUSTER, 'config', 'InstanceGroup')).message, 'config:2: kind: expected InstanceGroup, found Cluster');
  t.equal(specErrorOf(() => parseOneObject(`${CLUSTER}---\n${CLUSTER}`, 'config', 'Cluster')).message, 'config: expected one Cluster object, found 2');
  t.equal(specErrorOf(() => parseOneObject('', 'config', 'Cluster')).message, 'config: expected one Cluster object, found 0');
});
