// Addon channels in kOps' format: a channel in kOps' shape loads; every bad
// field is one error naming it and its line; kOps' rule for re-applying; the
// namespace annotation kOps' channels tool writes is read and written as it
// writes it; manifests are checked against their hash, then split into objects.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  decodeChannelVersion,
  encodeChannelVersion,
  parseChannel,
  resolveManifest,
  updateReason,
  type Addon,
} from '../../agents/protokube/channels/channel.js';
import { ManifestHashMismatch, parseManifest, sha256Hex, verifyManifest } from '../../agents/protokube/channels/manifest.js';

const FIXTURE = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'protokube', 'kops-bootstrap-channel.yaml'), 'utf8');
const LOCATION = 's3://state-bucket/kops.example.com/addons/bootstrap-channel.yaml';

t.test('a channel in kOps\' shape loads', async (t) => {
  const channel = parseChannel(FIXTURE, LOCATION);
  t.equal(channel.name, 'bootstrap');
  t.same(channel.addons.map((a) => a.name), ['kops-controller.addons.k8s.io', 'coredns.addons.k8s.io', 'limit-range.addons.k8s.io', 'node-termination-handler.aws', 'networking.amazon-vpc-routed-eni']);
  const [controller, coredns, limitRange, nth, vpc] = channel.addons;
  t.equal(controller.needsRollingUpdate, 'control-plane');
  t.equal(coredns.manifestURL, 's3://state-bucket/kops.example.com/addons/coredns.addons.k8s.io/k8s-1.12.yaml', 'manifest resolved against the channel');
  t.equal(coredns.namespace, 'kube-system', 'kube-system unless given');
  t.equal(limitRange.id, '', 'id is optional');
  t.same(vpc.selector, { 'role.kubernetes.io/networking': '1' });
  t.same(nth.prune?.kinds.map((k) => [k.group, k.kind, k.namespaces]), [
    ['', 'ConfigMap', []],
    ['', 'ServiceAccount', ['kube-system']],
    ['admissionregistration.k8s.io', 'MutatingWebhookConfiguration', []],
    ['apps', 'DaemonSet', []],
    ['rbac.authorization.k8s.io', 'ClusterRoleBinding', []],
  ]);
  t.equal(nth.prune?.kinds[0].labelSelector, 'addon.kops.k8s.io/name=node-termination-handler.aws,app.kubernetes.io/managed-by=kops');
  t.equal(parseChannel(FIXTURE, '/srv/channels/bootstrap-channel.yaml').addons[1].manifestURL, 'file:///srv/channels/coredns.addons.k8s.io/k8s-1.12.yaml', 'a channel given as a path');
  t.equal(resolveManifest(LOCATION, 'https://mirror.example.com/x.yaml'), 'https://mirror.example.com/x.yaml', 'absolute manifest URLs are kept');
});

t.test('every bad field is one error naming the field and its line', async (t) => {
  const addon = (fields: string) => `kind: Addons\nspec:\n  addons:\n  - name: a.example.com\n    manifest: a/v1.yaml\n${fields}`;
  const hash = `    manifestHash: ${'a'.repeat(64)}\n`;
  const cases: Array<[string, string, RegExp]> = [
    ['wrong kind', 'kind: Channel\n', /x\.yaml:1: kind: unknown kind "Channel" \(want Addons\)/],
    ['no hash', addon(''), /spec\.addons\[0\]\.manifestHash: missing: protokube applies only manifests whose sha256 it can check/],
    ['bad hash', addon('    manifestHash: ABC\n'), /x\.yaml:6: spec\.addons\[0\]\.manifestHash: "ABC" is not a sha256/],
    ['twice', `${addon(hash)}  - name: a.example.com\n    manifest: b.yaml\n${hash}`, /x\.yaml:7: spec\.addons\[1\]\.name: "a\.example\.com" is listed twice/],
    ['rolling update', addon(`${hash}    needsRollingUpdate: sometimes\n`), /spec\.addons\[0\]\.needsRollingUpdate: unknown value "sometimes" \(want control-plane, workers, all\)/],
    ['k8s version', addon(`${hash}    kubernetesVersion: ">=1.20"\n`), /spec\.addons\[0\]\.kubernetesVersion: addons in a channel protokube applies must not have a kubernetesVersion/],
    ['namespace', addon(`${hash}    namespace: Kube_System\n`), /spec\.addons\[0\]\.namespace: "Kube_System" is not a namespace name/],
    ['long name', addon(hash).replace('a.example.com', `${'x'.repeat(64)}.example.com`), /spec\.addons\[0\]\.name: .* cannot name the annotation addons\.k8s\.io\/<name>/],
    ['prune kind', addon(`${hash}    prune:\n      kinds:\n      - kind: configmap\n`), /spec\.addons\[0\]\.prune\.kinds\[0\]\.kind: "configmap" is not a kind/],
    ['selector', addon(`${hash}    selector:\n      "bad key!": x\n`), /spec\.addons\[0\]\.selector\["bad key!"\]/],
    ['alias bomb', `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nkind: Addons\n`, /too many YAML aliases/],
  ];
  for (const [name, text, message] of cases) {
    t.throws(() => parseChannel(text, 'x.yaml'), { message, exitCode: 3 }, name);
  }
});

const addon = (o: Partial<Addon> = {}): Addon => ({
  name: 'coredns.addons.k8s.io', namespace: 'kube-system', selector: {}, manifest: 'm.yaml', manifestURL: 'file:///m.yaml', manifestHash: 'b'.repeat(64), id: 'k8s-1.12', ...o,
});

t.test('kOps\' rule: applied when the id or the hash differs, or the annotation predates prune', async (t) => {
  t.equal(updateReason(addon(), undefined), 'not installed');
  t.match(updateReason(addon(), { id: 'k8s-1.9', manifestHash: 'b'.repeat(64), systemGeneration: 1 }), /^id "k8s-1\.9" → "k8s-1\.12"$/);
  t.match(updateReason(addon(), { id: 'k8s-1.12', manifestHash: 'c'.repeat(64), systemGeneration: 1 }), /^manifest sha256:cccccccccccc → sha256:bbbbbbbbbbbb$/);
  t.match(updateReason(addon(), { id: 'k8s-1.12', manifestHash: 'b'.repeat(64) }), /older channels tool \(systemGeneration 0\)/);
  t.equal(updateReason(addon(), { id: 'k8s-1.12', manifestHash: 'b'.repeat(64), systemGeneration: 1 }), undefined);
  t.equal(updateReason(addon(), { id: 'k8s-1.12', manifestHash: 'b'.repeat(64), systemGeneration: 2 }), undefined, 'a newer tool applied it: left alone, as kOps does');
});

t.test('the namespace annotation, as kOps\' channels tool writes and reads it', async (t) => {
  // What kOps writes (Go's encoding/json of ChannelVersion: channel, id, manifestHash, systemGeneration).
  const fromKops = `{"channel":"s3://state-bucket/kops.example.com/addons/bootstrap-channel.yaml","id":"k8s-1.12","manifestHash":"${'b'.repeat(64)}","systemGeneration":1}`;
  t.equal(updateReason(addon(), decodeChannelVersion(fromKops)), undefined, 'an addon kOps applied with the same manifest is up to date');
  t.equal(encodeChannelVersion('s3://state-bucket/kops.example.com/addons/bootstrap-channel.yaml', addon()), fromKops, 'and ours is byte for byte what kOps writes');
  t.equal(encodeChannelVersion('c', addon({ id: '' })), `{"channel":"c","manifestHash":"${'b'.repeat(64)}","systemGeneration":1}`, 'an empty id is omitted, as omitempty does');
  t.equal(decodeChannelVersion('not json'), undefined, 'unreadable: applied again');
  t.equal(decodeChannelVersion('[1]'), undefined);
});

t.test('manifests: hash checked before parsing, objects in the order they must go', async (t) => {
  const text = [
    'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: demo}',
    'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b, namespace: demo}',
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}',
    '',
    'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: things.example.com}',
  ].join('\n---\n');
  t.same(parseManifest(text, 'm.yaml').map((o) => `${o.kind}/${o.metadata.name}`), ['Namespace/demo', 'CustomResourceDefinition/things.example.com', 'ServiceAccount/a', 'ConfigMap/b']);
  t.doesNotThrow(() => verifyManifest('m.yaml', Buffer.from(text), sha256Hex(Buffer.from(text))));
  t.throws(() => verifyManifest('m.yaml', Buffer.from(text + ' '), sha256Hex(Buffer.from(text))), ManifestHashMismatch);
  t.throws(() => parseManifest('apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n', 'm.yaml'), /m\.yaml:1: document 1: metadata\.name: missing/);
  t.throws(() => parseManifest('kind: ConfigMap\nmetadata: {name: x}\n', 'm.yaml'), /document 1: apiVersion: missing/);
  t.throws(() => parseManifest('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, __proto__: {}}\n', 'm.yaml'), /"__proto__" is not allowed/);
});
