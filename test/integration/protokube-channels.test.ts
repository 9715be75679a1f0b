// Addon channels against the test Kubernetes API server (test/harness/kube-apiserver.ts),
// through protokube's real binary (or source) and @kubernetes/client-node:
// first apply; a rerun applies nothing; one manifest changed re-applies that
// addon only; an object that left its manifest is pruned; --dry-run changes
// nothing; a manifest whose hash does not match is refused and nothing of it
// applied. Then the daemon: an API server down at first, then up; /readyz,
// /metrics and `protokube status` showing a failing addon (logged once) and its
// recovery; the node's labels and taints put back after they were removed.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYAML } from 'yaml';
import { KubeAPIServer, type RecordedRequest } from '../harness/kube-apiserver.js';
import type { JsonObject } from '../harness/kube/json.js';
import { freePort, waitFor } from '../harness/net.js';
import { runProtokube, startProtokube } from '../harness/protokube.js';
import { tempDir, type Teardown } from '../harness/tmp.js';

const CORE_DNS = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'kube', 'coredns-addon.yaml'), 'utf8');
const COREDNS = 'coredns.addons.k8s.io';
const SETTINGS = 'settings.addons.example.com';
const SETTINGS_LABEL = 'addon.example.com/name=settings';
const APPLY = 'application/apply-patch+yaml';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface AddonDef {
  name: string;
  id: string;
  manifest: string;
  prune?: JsonObject;
  /** A hash other than the manifest's (the refused case). */
  hash?: string;
  needsRollingUpdate?: string;
}

/** Writes the manifests and a channel in kOps' shape (channels/pkg/api: kind Addons); returns the channel's path. */
function writeChannel(dir: string, addons: AddonDef[]): string {
  const entries = addons.map((a) => {
    const manifest = `${a.name}/${a.id}.yaml`;
    mkdirSync(join(dir, a.name), { recursive: true });
    writeFileSync(join(dir, manifest), a.manifest);
    return {
      id: a.id,
      manifest,
      manifestHash: a.hash ?? sha256(a.manifest),
      name: a.name,
      ...(a.needsRollingUpdate ? { needsRollingUpdate: a.needsRollingUpdate } : {}),
      ...(a.prune ? { prune: a.prune } : {}),
      selector: { 'k8s-addon': a.name },
    };
  });
  const path = join(dir, 'bootstrap-channel.yaml');
  writeFileSync(path, toYAML({ kind: 'Addons', metadata: { name: 'bootstrap' }, spec: { addons: entries } }));
  return path;
}

/** A small addon: ConfigMaps settings-a (and settings-b) and a ServiceAccount, all labelled, in kube-system. */
function settingsManifest(o: { mode: string; withB: boolean }): string {
  const labels = { 'addon.example.com/name': 'settings' };
  const docs: JsonObject[] = [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings-a', namespace: 'kube-system', labels }, data: { mode: o.mode } },
    ...(o.withB ? [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings-b', namespace: 'kube-system', labels }, data: { extra: 'yes' } }] : []),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'settings', namespace: 'kube-system', labels } },
  ];
  return docs.map((d) => toYAML(d)).join('---\n');
}

const SETTINGS_PRUNE = {
  kinds: [
    { kind: 'ConfigMap', labelSelector: SETTINGS_LABEL, namespaces: ['kube-system'] },
    { kind: 'ServiceAccount', labelSelector: SETTINGS_LABEL, namespaces: ['kube-system'] },
  ],
};

function settings(o: { mode: string; withB: boolean }, extra: Partial<AddonDef> = {}): AddonDef {
  return { name: SETTINGS, id: 'v1', manifest: settingsManifest(o), prune: SETTINGS_PRUNE, ...extra };
}

const coredns: AddonDef = { name: COREDNS, id: 'k8s-1.12', manifest: CORE_DNS, needsRollingUpdate: 'control-plane' };

async function cluster(t: Teardown) {
  const dir = tempDir(t, 'protokube-channels-');
  const server = await KubeAPIServer.start(t);
  server.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } }, { manager: 'kube-apiserver' });
  const kubeconfig = server.writeKubeconfig(join(dir, 'kubeconfig'));
  const channelDir = join(dir, 'channel');
  mkdirSync(channelDir);
  return { dir, server, kubeconfig, channelDir };
}

function since(server: KubeAPIServer, mark: number): RecordedRequest[] {
  return server.requests.slice(mark);
}

function applies(requests: RecordedRequest[]): string[] {
  return requests.filter((r) => r.method === 'PATCH' && r.contentType === APPLY && r.query.dryRun === undefined).map((r) => r.path);
}

function annotation(server: KubeAPIServer, addon: string): JsonObject | undefined {
  const ns = server.object('v1', 'Namespace', undefined, 'kube-system');
  const value = ((ns?.metadata as JsonObject | undefined)?.annotations as Record<string, string> | undefined)?.[`addons.k8s.io/${addon}`];
  return value === undefined ? undefined : (JSON.parse(value) as JsonObject);
}

t.test('channels apply: first apply, a rerun applies nothing, a changed manifest, prune, dry run, a hash that does not match', async (t) => {
  const { server, kubeconfig, channelDir } = await cluster(t);
  const apply = (...extra: string[]) => runProtokube(['channels', 'apply', join(channelDir, 'bootstrap-channel.yaml'), `--kubeconfig=${kubeconfig}`, ...extra]);

  // First apply: every object, by server-side apply as protokube, forced; then the annotations.
  writeChannel(channelDir, [coredns, settings({ mode: 'fast', withB: true })]);
  let mark = server.requests.length;
  let r = await apply();
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stderr);
  t.match(r.stdout, new RegExp(`${COREDNS}: applied \\(not installed\\)`));
  t.match(r.stdout, new RegExp(`${SETTINGS}: applied \\(not installed\\)`));
  const first = since(server, mark).filter((x) => x.contentType === APPLY);
  t.equal(first.length, 6 + 3, 'six CoreDNS objects and three settings objects applied');
  for (const x of first) {
    t.same(x.query, { fieldManager: ['protokube'], force: ['true'] }, `${x.path}: field manager protokube, force`);
    t.equal(x.status < 300, true, `${x.path}: ${x.status}`);
  }
  const cm = server.object('v1', 'ConfigMap', 'kube-system', 'settings-a');
  t.same(cm?.data, { mode: 'fast' });
  t.ok(((cm?.metadata as JsonObject).managedFields as JsonObject[]).some((e) => e.manager === 'protokube' && e.operation === 'Apply'), 'owned by protokube\'s apply');
  const deployment = server.object('apps/v1', 'Deployment', 'kube-system', 'coredns');
  t.ok(deployment, 'CoreDNS deployment created');
  t.same(annotation(server, SETTINGS), { channel: `file://${join(channelDir, 'bootstrap-channel.yaml')}`, id: 'v1', manifestHash: sha256(settingsManifest({ mode: 'fast', withB: true })), systemGeneration: 1 }, 'the annotation kOps\' channels tool writes');
  t.equal(annotation(server, COREDNS)?.id, 'k8s-1.12');
  const annotationPatches = since(server, mark).filter((x) => x.method === 'PATCH' && x.path === '/api/v1/namespaces/kube-system');
  t.ok(annotationPatches.every((x) => x.contentType === 'application/merge-patch+json'), 'annotations written with a merge patch');
  t.ok(r.logs.some((l) => l.event === 'addon-applied' && l.addon === SETTINGS), 'an addon-applied event per addon');

  // Rerun: nothing applied, nothing written.
  mark = server.requests.length;
  r = await apply();
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stderr);
  t.match(r.stdout, new RegExp(`${COREDNS}: up to date`));
  t.match(r.stdout, new RegExp(`${SETTINGS}: up to date`));
  t.same(since(server, mark).filter((x) => x.method !== 'GET').map((x) => `${x.method} ${x.path}`), [], 'a rerun sends no write at all');

  // One manifest changed: only that addon is applied again.
  const rv = (o: JsonObject | undefined) => (o?.metadata as JsonObject | undefined)?.resourceVersion;
  const corednsRV = rv(server.object('apps/v1', 'Deployment', 'kube-system', 'coredns'));
  writeChannel(channelDir, [coredns, settings({ mode: 'slow', withB: true })]);
  mark = server.requests.length;
  r = await apply();
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stderr);
  t.match(r.stdout, new RegExp(`${SETTINGS}: applied \\(manifest sha256:`));
  t.match(r.stdout, new RegExp(`${COREDNS}: up to date`));
  t.same(applies(since(server, mark)).sort(), [
    '/api/v1/namespaces/kube-system/configmaps/settings-a',
    '/api/v1/namespaces/kube-system/configmaps/settings-b',
    '/api/v1/namespaces/kube-system/serviceaccounts/settings',
  ], 'only the changed addon\'s objects are applied');
  t.same(server.object('v1', 'ConfigMap', 'kube-system', 'settings-a')?.data, { mode: 'slow' });
  t.equal(rv(server.object('apps/v1', 'Deployment', 'kube-system', 'coredns')), corednsRV, 'CoreDNS untouched');

  // Prune: settings-b leaves the manifest; objects the prune spec does not cover are kept.
  server.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'elsewhere' } });
  server.seed({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'same-label-elsewhere', namespace: 'elsewhere', labels: { 'addon.example.com/name': 'settings' } } });
  server.seed({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'not-labelled', namespace: 'kube-system' } });
  writeChannel(channelDir, [coredns, settings({ mode: 'slow', withB: false })]);
  mark = server.requests.length;
  r = await apply();
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stderr);
  t.match(r.stdout, /pruned v1\/ConfigMap kube-system\/settings-b/);
  t.same(since(server, mark).filter((x) => x.method === 'DELETE').map((x) => x.path), ['/api/v1/namespaces/kube-system/configmaps/settings-b'], 'exactly the object that left the manifest is deleted');
  t.notOk(server.object('v1', 'ConfigMap', 'kube-system', 'settings-b'), 'settings-b is gone');
  t.ok(server.object('v1', 'ConfigMap', 'kube-system', 'settings-a'), 'settings-a stays');
  t.ok(server.object('v1', 'ConfigMap', 'elsewhere', 'same-label-elsewhere'), 'a namespace the prune spec does not list is left alone');
  t.ok(server.object('v1', 'ConfigMap', 'kube-system', 'not-labelled'), 'an object outside the label selector is left alone');
  t.ok(r.logs.some((l) => l.event === 'addon-pruned' && l.object === 'v1/ConfigMap kube-system/settings-b'));

  // Dry run: lists what would change, the server is asked with dryRun=All, nothing is stored.
  const before = JSON.stringify([server.object('v1', 'ConfigMap', 'kube-system', 'settings-a'), server.object('v1', 'Namespace', undefined, 'kube-system')]);
  writeChannel(channelDir, [coredns, settings({ mode: 'dry', withB: false })]);
  mark = server.requests.length;
  r = await apply('--dry-run');
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stderr);
  t.match(r.stdout, /dry run: nothing changed/);
  t.match(r.stdout, new RegExp(`${SETTINGS}: would apply`));
  t.match(r.stdout, /would apply v1\/ConfigMap kube-system\/settings-a/);
  const dry = since(server, mark).filter((x) => x.method !== 'GET');
  t.ok(dry.length > 0 && dry.every((x) => x.method === 'PATCH' && x.contentType === APPLY && x.query.dryRun?.[0] === 'All'), 'every write is a server-side dry run');
  t.equal(JSON.stringify([server.object('v1', 'ConfigMap', 'kube-system', 'settings-a'), server.object('v1', 'Namespace', undefined, 'kube-system')]), before, 'nothing stored changed');

  // A manifest whose hash does not match: refused before anything of it is applied; the other addon is unaffected.
  const annotationBefore = annotation(server, SETTINGS);
  writeChannel(channelDir, [coredns, settings({ mode: 'tampered', withB: false }, { hash: sha256(settingsManifest({ mode: 'dry', withB: false })) })]);
  mark = server.requests.length;
  r = await apply();
  t.equal(r.code, 1, 'a refused addon fails the run');
  t.match(r.stdout, new RegExp(`${SETTINGS}: FAILED \\(manifest .* has sha256 [0-9a-f]{64}, the channel says [0-9a-f]{64}: refused, nothing applied\\)`));
  t.match(r.stdout, new RegExp(`${COREDNS}: up to date`));
  t.same(since(server, mark).filter((x) => x.method !== 'GET').map((x) => `${x.method} ${x.path}`), [], 'nothing applied, no annotation written');
  t.same(server.object('v1', 'ConfigMap', 'kube-system', 'settings-a')?.data, { mode: 'slow' }, 'the stored object is what the last good manifest said');
  t.same(annotation(server, SETTINGS), annotationBefore, 'the annotation still names the last applied manifest');
});

t.test('channels apply: an unreadable or invalid channel, a server that does not answer', async (t) => {
  const { dir, server, kubeconfig, channelDir } = await cluster(t);
  const missing = await runProtokube(['channels', 'apply', join(channelDir, 'nope.yaml'), `--kubeconfig=${kubeconfig}`]);
  t.equal(missing.code, 4, 'missing channel: not found');
  t.match(missing.stderr, /nope\.yaml: no such file/);
  const bad = join(dir, 'bad-channel.yaml');
  writeFileSync(bad, toYAML({ kind: 'Addons', spec: { addons: [{ name: 'x', manifest: 'x.yaml', manifestHash: 'not-a-hash' }] } }));
  const invalid = await runProtokube(['channels', 'apply', bad, `--kubeconfig=${kubeconfig}`]);
  t.equal(invalid.code, 3, 'invalid channel: exit 3');
  t.match(invalid.stderr, /bad-channel\.yaml:\d+: spec\.addons\[0\]\.manifestHash: "not-a-hash" is not a sha256/, 'one line naming file, line and field');
  writeChannel(channelDir, [settings({ mode: 'fast', withB: false })]);
  await server.down('refused');
  const down = await runProtokube(['channels', 'apply', join(channelDir, 'bootstrap-channel.yaml'), `--kubeconfig=${kubeconfig}`]);
  t.equal(down.code, 1);
  t.match(down.stderr, /^protokube: GET namespaces\/kube-system: cannot reach the API server at https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/m);
});

async function readyz(port: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: await res.text() };
}

async function metric(port: number, line: RegExp): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split('\n').find((l) => line.test(l));
}

t.test('daemon: API server down at first, then up; a failing addon on /readyz, /metrics and status, logged once, then recovered; labels and taints put back', async (t) => {
  const { dir, server, kubeconfig, channelDir } = await cluster(t);
  const channel = writeChannel(channelDir, [coredns, settings({ mode: 'fast', withB: true })]);
  server.seed(
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'cp-node', labels: { 'kubernetes.io/hostname': 'cp-node' } }, spec: { taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }] } },
    { manager: 'kubelet' },
  );
  await server.down('refused');
  const port = await freePort('127.0.0.1');
  const statusFile = join(dir, 'status.json');
  const daemon = startProtokube(t, [
    '--cluster=chan.example.com', `--config-base=file://${dir}/store/chan.example.com`, '--address=127.0.0.1', '--instance-name=cp-a',
    `--hosts-file=${join(dir, 'hosts')}`, `--kubeconfig=${kubeconfig}`, `--channel=${channel}`, '--sync-interval=1s', '--poll-interval=1s',
    '--node-name=cp-node', '--node-taint=node-role.kubernetes.io/control-plane=:NoSchedule', `--status-port=${port}`, `--status-file=${statusFile}`,
  ]);
  const status = () => runProtokube(['status', `--status-file=${statusFile}`]);

  // Refused, then answering 503 as a server still starting does: protokube keeps asking, and says so once.
  await daemon.waitForEvent('apiserver-unavailable');
  t.equal((await readyz(port)).status, 503);
  t.match((await readyz(port)).body, /^apiserver: waiting for the API server: GET namespaces\/kube-system: cannot reach the API server/m);
  await server.down('unavailable');
  await waitFor('two attempts answered 503', async () => server.requestsMatching({ path: '/api/v1/namespaces/kube-system' }).filter((r) => r.status === 503).length >= 2 || undefined, 60_000);
  await server.up();
  await daemon.waitForEvent('apiserver-ready');
  t.equal(daemon.events('apiserver-unavailable').length, 2, 'logged once when refused and once when it answered 503 (a new reason), not once per attempt');
  await daemon.waitForEvent('addon-applied', { match: (l) => l.addon === SETTINGS });
  await daemon.waitForEvent('addon-applied', { match: (l) => l.addon === COREDNS });
  await daemon.waitForEvent('node-labels-applied');
  await waitFor('/readyz 200', async () => (await readyz(port)).status === 200 || undefined);
  const node = server.object('v1', 'Node', undefined, 'cp-node');
  t.same((node?.metadata as JsonObject).labels, {
    'kubernetes.io/hostname': 'cp-node',
    'node-role.kubernetes.io/control-plane': '',
    'node.kubernetes.io/exclude-from-external-load-balancers': '',
  }, 'control-plane labels added, the kubelet\'s kept');
  t.same((node?.spec as JsonObject).taints, [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }, { key: 'node-role.kubernetes.io/control-plane', value: '', effect: 'NoSchedule' }], 'the group\'s taint added, the node controller\'s kept');
  t.equal((await status()).code, 0, 'status: healthy');

  // Labels and taints removed by hand come back at the next pass.
  const patches = server.requestsMatching({ method: 'PATCH', path: '/api/v1/nodes/cp-node' }).length;
  const { request } = await import('node:https');
  await new Promise<void>((resolve, reject) => {
    const url = new URL(server.url);
    const req = request({ host: url.hostname, port: url.port, method: 'PATCH', path: '/api/v1/nodes/cp-node?fieldManager=kubectl-edit', ca: server.ca.certPEM, cert: server.admin.certPEM, key: server.admin.keyPEM, headers: { 'content-type': 'application/merge-patch+json' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PATCH node: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ metadata: { labels: { 'node-role.kubernetes.io/control-plane': null } }, spec: { taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }] } }));
  });
  const reapplied = await daemon.waitForEvent('node-labels-applied', { n: 2 });
  t.same(reapplied.changes, ['label node-role.kubernetes.io/control-plane added', 'taint added node-role.kubernetes.io/control-plane=:NoSchedule'], 'the event says what was put back');
  const again = server.object('v1', 'Node', undefined, 'cp-node');
  t.equal(((again?.metadata as JsonObject).labels as JsonObject)['node-role.kubernetes.io/control-plane'], '', 'label back');
  t.same((again?.spec as JsonObject).taints, [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }, { key: 'node-role.kubernetes.io/control-plane', value: '', effect: 'NoSchedule' }], 'taint back, the other kept');
  const nodePatches = server.requestsMatching({ method: 'PATCH', path: '/api/v1/nodes/cp-node' }).slice(patches);
  t.ok(nodePatches.every((x) => x.contentType === 'application/merge-patch+json'), 'node patches are merge patches');
  t.match(JSON.parse(nodePatches[nodePatches.length - 1].body), { metadata: { resourceVersion: /\d+/ } }, 'the taint list is written guarded by the resourceVersion it was read at');

  // A new hash in the channel, but a manifest that does not match it: /readyz names the addon and why, logged once for many passes.
  writeChannel(channelDir, [coredns, settings({ mode: 'tampered', withB: true }, { hash: sha256(settingsManifest({ mode: 'reviewed', withB: true })) })]);
  const failed = await daemon.waitForEvent('addon-failed');
  t.equal(failed.addon, SETTINGS);
  t.match(failed.reason, /has sha256 [0-9a-f]{64}, the channel says [0-9a-f]{64}: refused, nothing applied/);
  const notReady = await waitFor('/readyz 503', async () => {
    const r = await readyz(port);
    return r.status === 503 ? r : undefined;
  });
  t.match(notReady.body, new RegExp(`^addon ${SETTINGS.replace(/\./g, '\\.')}: manifest .* has sha256`, 'm'), '/readyz: the failing addon and the reason');
  t.equal(await metric(port, new RegExp(`^protokube_addon_ok\\{addon="${SETTINGS}"\\}`)), `protokube_addon_ok{addon="${SETTINGS}"} 0`);
  t.equal(await metric(port, /^protokube_ready /), 'protokube_ready 0');
  const passes = server.requestsMatching({ method: 'GET', path: '/api/v1/nodes/cp-node' }).length;
  await waitFor('three more passes', async () => server.requestsMatching({ method: 'GET', path: '/api/v1/nodes/cp-node' }).length >= passes + 3 || undefined, 60_000, 100);
  t.equal(daemon.events('addon-failed').length, 1, 'one log line for a failure that lasts several passes');
  const failing = await status();
  t.equal(failing.code, 1, 'status: exit 1 while something fails');
  t.match(failing.stdout, new RegExp(`FAIL addon ${SETTINGS.replace(/\./g, '\\.')} +manifest .* has sha256`));
  t.same(server.object('v1', 'ConfigMap', 'kube-system', 'settings-a')?.data, { mode: 'fast' }, 'nothing of the refused manifest was applied');

  // Fixed: applied, recovered (logged once), ready again.
  writeChannel(channelDir, [coredns, settings({ mode: 'fixed', withB: true })]);
  await daemon.waitForEvent('addon-recovered');
  await waitFor('/readyz 200 again', async () => (await readyz(port)).status === 200 || undefined);
  t.same(server.object('v1', 'ConfigMap', 'kube-system', 'settings-a')?.data, { mode: 'fixed' });
  t.equal(await metric(port, new RegExp(`^protokube_addon_ok\\{addon="${SETTINGS}"\\}`)), `protokube_addon_ok{addon="${SETTINGS}"} 1`);
  t.match(await metric(port, new RegExp(`^protokube_addon_applies_total\\{addon="${SETTINGS}"\\}`)), / 2$/, 'applied twice in all');
  const healthy = await status();
  t.equal(healthy.code, 0, healthy.stdout);
  t.match(healthy.stdout, /: ready \(/);
  t.equal(daemon.events('addon-recovered').length, 1);
  t.same(await daemon.stop(), { code: 0, signal: null });
});
