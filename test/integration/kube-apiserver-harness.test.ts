// The test Kubernetes API server (test/harness/kube-apiserver.ts) driven
// through @kubernetes/client-node exactly as protokube will drive it: answers,
// Status bodies, managedFields and resourceVersions are checked against what a
// real API server sends, and every request is checked as the server recorded
// it (method, path, query, content type).
import t, { type Test } from 'tap';
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { KubeAPIServer, type RecordedRequest } from '../harness/kube-apiserver.js';
import type { JsonObject } from '../harness/kube/json.js';
import { KubeError } from '../harness/kube/status.js';
import { tempDir } from '../harness/tmp.js';
import { createCA, issueCertificate, type CertificateAndKey } from '../../shared/pki/x509.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'kube', 'coredns-addon.yaml');
const SSA = k8s.PatchStrategy.ServerSideApply;
const mergePatchOptions = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

interface Cluster {
  server: KubeAPIServer;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  objects: k8s.KubernetesObjectApi;
}

async function cluster(t: Test, options: Parameters<typeof KubeAPIServer.start>[1] = {}): Promise<Cluster> {
  const server = await KubeAPIServer.start(t, options);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(server.writeKubeconfig(join(tempDir(t, 'kube-harness-'), 'kubeconfig')));
  return { server, kc, core: kc.makeApiClient(k8s.CoreV1Api), objects: k8s.KubernetesObjectApi.makeApiClient(kc) };
}

/** The HTTP code and the parsed Status body of a rejected client call. */
async function apiError(p: Promise<unknown>): Promise<{ code: number; status: JsonObject }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof k8s.ApiException) {
      const body: unknown = err.body;
      return { code: err.code, status: (typeof body === 'string' ? JSON.parse(body) : body) as JsonObject };
    }
    throw err;
  }
  throw new Error('expected the call to be rejected');
}

interface RawResponse {
  status: number;
  contentType: string;
  body: string;
}

/** A request made by hand (for what the generated client cannot send), trusting the server's CA. */
function raw(
  server: KubeAPIServer,
  method: string,
  path: string,
  options: { body?: string; contentType?: string; client?: CertificateAndKey | null; token?: string } = {},
): Promise<RawResponse> {
  const client = options.client === undefined ? server.admin : options.client;
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.contentType) headers['Content-Type'] = options.contentType;
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers,
        ca: server.ca.certPEM,
        cert: client?.certPEM,
        key: client?.keyPEM,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function rv(obj: { metadata?: { resourceVersion?: string } }): string {
  return obj.metadata?.resourceVersion ?? '';
}

function lastRequest(server: KubeAPIServer): RecordedRequest {
  return server.requests[server.requests.length - 1];
}

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string; generation?: number; uid?: string };
  spec?: JsonObject;
};

function deployment(o: { replicas?: number; image?: string; team?: string; tier?: string }): Manifest {
  const labels: Record<string, string> = {};
  if (o.team !== undefined) labels.team = o.team;
  if (o.tier !== undefined) labels.tier = o.tier;
  const spec: JsonObject = {
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image: o.image ?? 'web:1', ports: [{ containerPort: 8080 }] }] },
    },
  };
  if (o.replicas !== undefined) spec.replicas = o.replicas;
  // No `labels: {}` when there are none: an empty map in an applied configuration is a field of its own.
  const metadata = Object.keys(labels).length > 0 ? { name: 'web', namespace: 'apps', labels } : { name: 'web', namespace: 'apps' };
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata, spec };
}

/** What a scaler applies: replicas and nothing else. */
function scale(replicas: number): Manifest {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'apps' }, spec: { replicas } };
}

function managedEntry(obj: JsonObject | undefined, manager: string, operation: 'Apply' | 'Update'): JsonObject | undefined {
  const entries = (obj?.metadata as JsonObject | undefined)?.managedFields;
  if (!Array.isArray(entries)) return undefined;
  return entries.find((e): e is JsonObject => typeof e === 'object' && e !== null && !Array.isArray(e) && e.manager === manager && e.operation === operation);
}

t.test('namespace and ConfigMap: create, get, list and delete through CoreV1Api', async (t) => {
  const { server, core } = await cluster(t);
  const ns = await core.createNamespace({ body: { metadata: { name: 'apps' } } });
  t.match(lastRequest(server), { method: 'POST', path: '/api/v1/namespaces', contentType: 'application/json', status: 201 });
  t.equal(lastRequest(server).user?.name, 'admin', 'authenticated by the admin client certificate');
  t.same(lastRequest(server).user?.groups, ['system:masters']);
  t.equal(ns.metadata?.labels?.['kubernetes.io/metadata.name'], 'apps', 'namespaces get their name label');
  t.equal(ns.status?.phase, 'Active');
  t.same(ns.spec?.finalizers, ['kubernetes']);
  const nsRV = Number(rv(ns));

  const cm = await core.createNamespacedConfigMap({ namespace: 'apps', body: { metadata: { name: 'settings', labels: { app: 'web' } }, data: { mode: 'fast' } } });
  t.equal(Number(rv(cm)), nsRV + 1, 'every write bumps one global resourceVersion');
  t.ok(cm.metadata?.uid, 'uid assigned');
  t.ok(cm.metadata?.creationTimestamp instanceof Date, 'creationTimestamp assigned');

  const again = await apiError(core.createNamespacedConfigMap({ namespace: 'apps', body: { metadata: { name: 'settings' } } }));
  t.equal(again.code, 409);
  t.same(again.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'configmaps "settings" already exists',
    reason: 'AlreadyExists',
    details: { name: 'settings', kind: 'configmaps' },
    code: 409,
  });

  const read = await core.readNamespacedConfigMap({ namespace: 'apps', name: 'settings' });
  t.same(read.data, { mode: 'fast' });
  t.equal(rv(read), rv(cm));

  const list = await core.listNamespacedConfigMap({ namespace: 'apps' });
  t.same(list.items.map((i) => i.metadata?.name), ['settings']);
  t.equal(list.metadata?.resourceVersion, server.store.resourceVersion, 'a list carries the current resourceVersion');
  const listBody = lastRequest(server).response as JsonObject;
  t.equal(listBody.kind, 'ConfigMapList');
  t.notOk('kind' in ((listBody.items as JsonObject[])[0] ?? {}), 'list items carry no kind, as the real server sends them');

  const deleted = await core.deleteNamespacedConfigMap({ namespace: 'apps', name: 'settings' });
  t.same(lastRequest(server).response, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { name: 'settings', kind: 'configmaps', uid: cm.metadata?.uid ?? '' },
  });
  t.equal(deleted.status, 'Success');
  const gone = await apiError(core.readNamespacedConfigMap({ namespace: 'apps', name: 'settings' }));
  t.equal(gone.code, 404);
  t.same(gone.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'configmaps "settings" not found',
    reason: 'NotFound',
    details: { name: 'settings', kind: 'configmaps' },
    code: 404,
  });

  await core.deleteNamespace({ name: 'apps' });
  t.equal((lastRequest(server).response as JsonObject).kind, 'Namespace', 'deleting a namespace answers the namespace, Terminating');
  t.equal(((lastRequest(server).response as JsonObject).status as JsonObject).phase, 'Terminating');
  t.equal((await apiError(core.readNamespace({ name: 'apps' }))).code, 404);
});

t.test('the same verbs through KubernetesObjectApi, which finds resources by discovery', async (t) => {
  const { server, objects } = await cluster(t);
  await objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } });
  const cmSpec: k8s.KubernetesObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace: 'apps' } };
  const cm = await objects.create(cmSpec);
  t.equal(cm.kind, 'ConfigMap');
  const read = await objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace: 'apps' } });
  t.equal(read.metadata?.uid, cm.metadata?.uid);
  const list = await objects.list('v1', 'ConfigMap', 'apps');
  t.equal(list.items.length, 1);
  await objects.delete({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace: 'apps' } });
  t.same(
    server.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
    [
      'GET /api/v1 200',
      'POST /api/v1/namespaces 201',
      'POST /api/v1/namespaces/apps/configmaps 201',
      'GET /api/v1/namespaces/apps/configmaps/one 200',
      'GET /api/v1/namespaces/apps/configmaps 200',
      'DELETE /api/v1/namespaces/apps/configmaps/one 200',
    ],
    'discovery once per group version, then the resource paths',
  );
  const discovery = server.requests[0].response as JsonObject;
  t.equal(discovery.kind, 'APIResourceList');
  t.match((discovery.resources as JsonObject[]).find((r) => r.kind === 'ConfigMap'), { name: 'configmaps', namespaced: true, singularName: 'configmap' });

  const unknown = objects.read({ apiVersion: 'v1', kind: 'Widget', metadata: { name: 'x', namespace: 'apps' } });
  await t.rejects(unknown, /Unrecognized API version and kind: v1 Widget/, 'a kind discovery does not list is refused by the client');
});

t.test('merge patch annotates a namespace; the generated client sends JSON patch unless told otherwise', async (t) => {
  const { server, core } = await cluster(t);
  await core.createNamespace({ body: { metadata: { name: 'kube-system' } } });
  const annotation = { metadata: { annotations: { 'addons.k8s.io/coredns': '{"version":"1.11.3","manifestHash":"abc"}' } } };

  const patched = await core.patchNamespace({ name: 'kube-system', body: annotation, fieldManager: 'protokube' }, mergePatchOptions);
  t.match(lastRequest(server), { method: 'PATCH', path: '/api/v1/namespaces/kube-system', contentType: 'application/merge-patch+json', query: { fieldManager: ['protokube'] } });
  t.equal(patched.metadata?.annotations?.['addons.k8s.io/coredns'], annotation.metadata.annotations['addons.k8s.io/coredns']);
  const entry = managedEntry(server.object('v1', 'Namespace', undefined, 'kube-system'), 'protokube', 'Update');
  t.same(entry?.fieldsV1, { 'f:metadata': { 'f:annotations': { '.': {}, 'f:addons.k8s.io/coredns': {} } } }, 'the patcher owns what it added, as an Update');
  t.equal(entry?.apiVersion, 'v1');

  const same = await core.patchNamespace({ name: 'kube-system', body: annotation, fieldManager: 'protokube' }, mergePatchOptions);
  t.equal(rv(same), rv(patched), 'a patch that changes nothing does not bump the resourceVersion');

  // Without the header, CoreV1Api.patchNamespace picks application/json-patch+json, whose body must be an array.
  const wrongType = await apiError(core.patchNamespace({ name: 'kube-system', body: annotation }));
  t.equal(lastRequest(server).contentType, 'application/json-patch+json');
  t.equal(wrongType.code, 400);
  t.match(wrongType.status, { reason: 'BadRequest', message: 'json: cannot unmarshal object into Go value of type jsonpatch.Patch' });

  const jsonPatch = await core.patchNamespace({
    name: 'kube-system',
    body: [{ op: 'add', path: '/metadata/labels/tier', value: 'system' }],
  });
  t.equal(jsonPatch.metadata?.labels?.tier, 'system', 'a JSON patch (the default content type) applies');
  const failedTest = await apiError(core.patchNamespace({ name: 'kube-system', body: [{ op: 'test', path: '/metadata/labels/tier', value: 'other' }] }));
  t.same(failedTest, {
    code: 422,
    status: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server rejected our request due to an error in our request',
      reason: 'Invalid',
      details: {},
      code: 422,
    },
  });

  const strategic = await core.patchNamespace(
    { name: 'kube-system', body: { metadata: { labels: { tier: null, zone: 'a' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
  );
  t.same(strategic.metadata?.labels, { 'kubernetes.io/metadata.name': 'kube-system', zone: 'a' }, 'strategic merge patch: null deletes');

  const forced = await apiError(core.patchNamespace({ name: 'kube-system', body: annotation, force: true }, mergePatchOptions));
  t.same(forced.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch',
    reason: 'Invalid',
    details: { group: 'meta.k8s.io', kind: 'PatchOptions', causes: [{ reason: 'FieldValueForbidden', message: 'Forbidden: may not be specified for non-apply patch', field: 'force' }] },
    code: 422,
  });

  const missing = await apiError(core.patchNamespace({ name: 'nowhere', body: annotation }, mergePatchOptions));
  t.match(missing, { code: 404, status: { message: 'namespaces "nowhere" not found', reason: 'NotFound', details: { name: 'nowhere', kind: 'namespaces' } } });
});

t.test('server-side apply: managedFields, no-op re-apply, conflicts, force, and fields a manager stops applying', async (t) => {
  const { server, objects, core } = await cluster(t);
  await core.createNamespace({ body: { metadata: { name: 'apps' } } });

  const first = await objects.patch(deployment({ replicas: 2, team: 'a' }), undefined, undefined, 'A', false, SSA);
  const applyRequest = lastRequest(server);
  t.match(applyRequest, {
    method: 'PATCH',
    path: '/apis/apps/v1/namespaces/apps/deployments/web',
    contentType: 'application/apply-patch+yaml',
    query: { fieldManager: ['A'], force: ['false'] },
    status: 201,
  });
  t.same(JSON.parse(applyRequest.body).spec.replicas, 2, 'client-node 1.4 sends the configuration as JSON under the apply-patch+yaml type');
  t.equal(first.metadata?.generation, 1);
  const stored = server.object('apps/v1', 'Deployment', 'apps', 'web');
  const a = managedEntry(stored, 'A', 'Apply');
  t.equal(a?.apiVersion, 'apps/v1');
  t.equal(a?.fieldsType, 'FieldsV1');
  t.same(a?.fieldsV1, {
    'f:metadata': { 'f:labels': { 'f:team': {} } },
    'f:spec': {
      'f:replicas': {},
      'f:selector': {},
      'f:template': {
        'f:metadata': { 'f:labels': { 'f:app': {} } },
        'f:spec': {
          'f:containers': {
            'k:{"name":"web"}': {
              '.': {},
              'f:image': {},
              'f:name': {},
              'f:ports': { 'k:{"containerPort":8080,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {} } },
            },
          },
        },
      },
    },
  }, 'owned leaves; containers and ports keyed as associative lists (protocol defaulted in the key); label selectors atomic');

  const again = await objects.patch(deployment({ replicas: 2, team: 'a' }), undefined, undefined, 'A', false, SSA);
  t.equal(lastRequest(server).status, 200);
  t.equal(rv(again), rv(first), 'an apply that changes nothing keeps the resourceVersion');
  t.same(server.object('apps/v1', 'Deployment', 'apps', 'web'), stored, 'and the stored object, managedFields times included');

  const conflict = await apiError(objects.patch(scale(3), undefined, undefined, 'B', false, SSA));
  t.same(conflict, {
    code: 409,
    status: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Apply failed with 1 conflict: conflict with "A": .spec.replicas',
      reason: 'Conflict',
      details: { causes: [{ reason: 'FieldManagerConflict', message: 'conflict with "A"', field: '.spec.replicas' }] },
      code: 409,
    },
  });
  t.same(server.object('apps/v1', 'Deployment', 'apps', 'web'), stored, 'a refused apply changes nothing');

  const forced = await objects.patch(scale(3), undefined, undefined, 'B', true, SSA);
  t.equal((forced.spec as JsonObject).replicas, 3);
  t.equal(forced.metadata?.generation, 2, 'a spec change moves the generation');
  const afterForce = server.object('apps/v1', 'Deployment', 'apps', 'web');
  t.notOk('f:replicas' in ((managedEntry(afterForce, 'A', 'Apply')?.fieldsV1 as JsonObject)['f:spec'] as JsonObject), 'A lost .spec.replicas');
  t.ok('f:replicas' in ((managedEntry(afterForce, 'B', 'Apply')?.fieldsV1 as JsonObject)['f:spec'] as JsonObject), 'B owns it');

  const back = await apiError(objects.patch(deployment({ replicas: 2, team: 'a' }), undefined, undefined, 'A', false, SSA));
  t.equal(back.status.message, 'Apply failed with 1 conflict: conflict with "B": .spec.replicas', 'now A conflicts with B');

  // A drops its label and replicas: the label goes (A alone owned it), replicas stays (B owns it).
  const dropped = await objects.patch(deployment({}), undefined, undefined, 'A', false, SSA);
  t.same(dropped.metadata?.labels ?? {}, {}, 'a field only the applier owned is removed when it stops applying it');
  t.equal((dropped.spec as JsonObject).replicas, 3, 'a field another manager owns stays');
  t.equal(dropped.metadata?.generation, 2, 'metadata changes do not move the generation');

  // Two managers, two fields: the grouped message.
  const two = await apiError(objects.patch(deployment({ replicas: 4, image: 'web:2' }), undefined, undefined, 'C', false, SSA));
  t.equal(two.status.message, 'Apply failed with 2 conflicts: conflicts with "A":\n- .spec.template.spec.containers[name="web"].image\nconflicts with "B":\n- .spec.replicas');
  t.same((two.status.details as JsonObject).causes, [
    { reason: 'FieldManagerConflict', message: 'conflict with "A"', field: '.spec.template.spec.containers[name="web"].image' },
    { reason: 'FieldManagerConflict', message: 'conflict with "B"', field: '.spec.replicas' },
  ]);

  // An Update manager (a merge patch with a fieldManager) is named with the apiVersion it wrote through.
  await objects.patch(deployment({ tier: 'front' }), undefined, undefined, 'kubectl-edit', undefined, k8s.PatchStrategy.MergePatch);
  const edited = await apiError(objects.patch(deployment({ tier: 'back' }), undefined, undefined, 'A', false, SSA));
  t.equal(edited.status.message, 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .metadata.labels.tier');

  const image = await objects.patch(deployment({ image: 'web:2' }), undefined, undefined, 'A', false, SSA);
  t.equal(image.metadata?.generation, 3, 'A alone owns the image and changes it');

  const noManager = await apiError(objects.patch(deployment({}), undefined, undefined, undefined, undefined, SSA));
  t.same(noManager.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    reason: 'Invalid',
    details: { group: 'meta.k8s.io', kind: 'PatchOptions', causes: [{ reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager' }] },
    code: 422,
  });

  const before = server.store.resourceVersion;
  const dry = await objects.patch(deployment({ image: 'web:3' }), undefined, 'All', 'A', false, SSA);
  t.match(lastRequest(server).query, { dryRun: ['All'] });
  t.match(dry.spec, { template: { spec: { containers: [{ name: 'web', image: 'web:3' }] } } }, 'a dry run answers the result');
  t.equal(server.store.resourceVersion, before, 'and stores nothing');
  t.match(server.object('apps/v1', 'Deployment', 'apps', 'web'), { spec: { template: { spec: { containers: [{ image: 'web:2' }] } } } });
});

t.test('replace with a stale resourceVersion, strategic merge of keyed lists, finalizers holding a delete', async (t) => {
  const { server, core, objects } = await cluster(t);
  await core.createNamespace({ body: { metadata: { name: 'apps' } } });
  const cm = await core.createNamespacedConfigMap({ namespace: 'apps', body: { metadata: { name: 'c' }, data: { a: '1' } } });
  const replaced = await core.replaceNamespacedConfigMap({ namespace: 'apps', name: 'c', body: { ...cm, data: { a: '2' } } });
  t.equal(Number(rv(replaced)), Number(rv(cm)) + 1);
  const stale = await apiError(core.replaceNamespacedConfigMap({ namespace: 'apps', name: 'c', body: { ...cm, data: { a: '3' } } }));
  t.same(stale, {
    code: 409,
    status: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'c', kind: 'configmaps' },
      code: 409,
    },
  });
  const renamed = await apiError(core.replaceNamespacedConfigMap({ namespace: 'apps', name: 'c', body: { metadata: { name: 'd' } } }));
  t.match(renamed, { code: 400, status: { reason: 'BadRequest', message: 'the name of the object (d) does not match the name on the URL (c)' } });

  await objects.patch(deployment({ replicas: 1 }), undefined, undefined, 'A', false, SSA);
  const smp = await objects.patch(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'apps' },
      spec: { template: { spec: { containers: [{ name: 'sidecar', image: 'side:1' }, { name: 'web', image: 'web:9' }] } } },
    },
    undefined,
    undefined,
    'kubectl-patch',
    undefined,
    k8s.PatchStrategy.StrategicMergePatch,
  );
  t.match(smp.spec, { template: { spec: { containers: [{ name: 'web', image: 'web:9', ports: [{ containerPort: 8080 }] }, { name: 'sidecar', image: 'side:1' }] } } }, 'containers merged by name');
  t.match(lastRequest(server), { contentType: 'application/strategic-merge-patch+json', status: 200 });

  await core.createNamespacedConfigMap({ namespace: 'apps', body: { metadata: { name: 'held', finalizers: ['example.com/hold'] } } });
  await core.deleteNamespacedConfigMap({ namespace: 'apps', name: 'held' });
  const held = await core.readNamespacedConfigMap({ namespace: 'apps', name: 'held' });
  t.ok(held.metadata?.deletionTimestamp, 'a finalizer holds the object, marked for deletion');
  await core.patchNamespacedConfigMap({ namespace: 'apps', name: 'held', body: { metadata: { finalizers: null } } }, mergePatchOptions);
  t.equal((await apiError(core.readNamespacedConfigMap({ namespace: 'apps', name: 'held' }))).code, 404, 'gone once its finalizers are');
});

t.test('apply to an object that has no managedFields: before-first-apply owns what was there', async (t) => {
  const { server, objects } = await cluster(t);
  server.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } });
  server.seed(deployment({ replicas: 1 }), { trackManagedFields: false });
  const conflict = await apiError(objects.patch(deployment({ replicas: 2 }), undefined, undefined, 'protokube', false, SSA));
  t.equal(conflict.status.message, 'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas');
  const forced = await objects.patch(deployment({ replicas: 2 }), undefined, undefined, 'protokube', true, SSA);
  t.equal((forced.spec as JsonObject).replicas, 2);
});

t.test('list with label and field selectors, at namespace and cluster scope', async (t) => {
  const { server, core, objects } = await cluster(t);
  for (const ns of ['one', 'two']) await core.createNamespace({ body: { metadata: { name: ns } } });
  const make = (namespace: string, name: string, labels: Record<string, string>) =>
    core.createNamespacedConfigMap({ namespace, body: { metadata: { name, labels } } });
  await make('one', 'a', { addon: 'coredns', tier: 'system' });
  await make('one', 'b', { addon: 'dns-controller' });
  await make('one', 'c', {});
  await make('two', 'd', { addon: 'coredns' });

  const names = (l: { items: { metadata?: { name?: string } }[] }) => l.items.map((i) => i.metadata?.name);
  t.same(names(await core.listNamespacedConfigMap({ namespace: 'one', labelSelector: 'addon=coredns' })), ['a']);
  t.same(names(await core.listNamespacedConfigMap({ namespace: 'one', labelSelector: 'addon in (coredns,dns-controller)' })), ['a', 'b']);
  t.same(names(await core.listNamespacedConfigMap({ namespace: 'one', labelSelector: '!addon' })), ['c']);
  t.same(names(await core.listNamespacedConfigMap({ namespace: 'one', labelSelector: 'addon!=coredns' })), ['b', 'c']);
  t.same(names(await core.listNamespacedConfigMap({ namespace: 'one', labelSelector: 'addon,tier=system' })), ['a']);
  t.same(names(await core.listNamespacedConfigMap({ namespace: 'one', fieldSelector: 'metadata.name=b' })), ['b']);
  t.match(lastRequest(server).query, { fieldSelector: ['metadata.name=b'] });
  t.same(names(await objects.list('v1', 'ConfigMap', undefined, undefined, undefined, undefined, undefined, 'addon=coredns')), ['a', 'd'], 'cluster-wide list');
  t.equal(lastRequest(server).path, '/api/v1/configmaps');

  const page = await core.listNamespacedConfigMap({ namespace: 'one', limit: 2 });
  t.same(names(page), ['a', 'b']);
  t.ok(page.metadata?._continue, 'a limited list hands out a continue token');
  const rest = await core.listNamespacedConfigMap({ namespace: 'one', limit: 2, _continue: page.metadata?._continue });
  t.same(names(rest), ['c']);

  const bad = await apiError(core.listNamespacedConfigMap({ namespace: 'one', fieldSelector: 'spec.foo=bar' }));
  t.match(bad, { code: 400, status: { reason: 'BadRequest', message: 'field label not supported: spec.foo' } });
});

t.test('error shapes: 404 for objects, namespaces, resources and groups; 422 with causes; 401; 403; 415', async (t) => {
  const { server, core, objects } = await cluster(t, {
    tokens: { 'viewer-token': { name: 'viewer', groups: ['viewers'] } },
    authorize: (r) => r.user.name !== 'viewer' || r.verb === 'get' || r.verb === 'list',
  });
  await core.createNamespace({ body: { metadata: { name: 'apps' } } });

  t.same((await apiError(objects.read(deployment({})))).status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'deployments.apps "web" not found',
    reason: 'NotFound',
    details: { name: 'web', group: 'apps', kind: 'deployments' },
    code: 404,
  });
  t.same((await apiError(core.createNamespacedConfigMap({ namespace: 'ghost', body: { metadata: { name: 'x' } } }))).status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'namespaces "ghost" not found',
    reason: 'NotFound',
    details: { name: 'ghost', kind: 'namespaces' },
    code: 404,
  });

  const badName = await apiError(core.createNamespacedConfigMap({ namespace: 'apps', body: { metadata: { name: 'Bad_Name' } } }));
  const subdomain =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  t.same(badName, {
    code: 422,
    status: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ${subdomain}`,
      reason: 'Invalid',
      details: { name: 'Bad_Name', kind: 'ConfigMap', causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: "Bad_Name": ${subdomain}`, field: 'metadata.name' }] },
      code: 422,
    },
  });
  const noName = await apiError(objects.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { namespace: 'apps' } }));
  t.equal(noName.status.message, 'Role.rbac.authorization.k8s.io "" is invalid: metadata.name: Required value: name or generateName is required');
  t.same((noName.status.details as JsonObject).causes, [{ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' }]);
  const nsName = await apiError(core.createNamespace({ body: { metadata: { name: 'has.dot' } } }));
  t.match(nsName.status.message, /^Namespace "has.dot" is invalid: metadata.name: Invalid value: "has.dot": a lowercase RFC 1123 label must consist of/);
  const badLabel = await apiError(core.patchNamespace({ name: 'apps', body: { metadata: { labels: { 'node-role.kubernetes.io/control plane': '' } } } }, mergePatchOptions));
  t.match(badLabel.status, { code: 422, message: /metadata.labels: Invalid value: "node-role.kubernetes.io\/control plane": name part must consist of/ });
  const noSelector = await apiError(objects.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'bare', namespace: 'apps' }, spec: {} }, undefined, undefined, 'A', true, SSA));
  t.equal(noSelector.status.message, 'Deployment.apps "bare" is invalid: [spec.selector: Required value, spec.template.spec.containers: Required value]');
  const noKey = await apiError(
    objects.patch(
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'nokey', namespace: 'apps' }, spec: { template: { spec: { containers: [{ image: 'x' }] } } } },
      undefined,
      undefined,
      'A',
      true,
      SSA,
    ),
  );
  t.same(noKey, {
    code: 500,
    status: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'failed to create typed patch object (apps/nokey; apps/v1, Kind=Deployment): .spec.template.spec.containers: element 0: associative list with keys has an element that omits key field "name" (and doesn\'t have default value)',
      code: 500,
    },
  });

  const unknownResource = await raw(server, 'GET', '/api/v1/widgets');
  t.equal(unknownResource.status, 404);
  t.same(JSON.parse(unknownResource.body), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'the server could not find the requested resource',
    reason: 'NotFound',
    details: {},
    code: 404,
  });
  const unknownGroup = await raw(server, 'GET', '/apis/example.com/v1/widgets');
  t.same(unknownGroup, { status: 404, contentType: 'text/plain; charset=utf-8', body: '404 page not found\n' });

  const badType = await raw(server, 'PATCH', '/api/v1/namespaces/apps', { body: '{}', contentType: 'application/x-www-form-urlencoded' });
  t.same(JSON.parse(badType.body), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: '415: Unsupported Media Type',
    reason: 'UnsupportedMediaType',
    details: {},
    code: 415,
  });

  const anonymous = await raw(server, 'GET', '/api/v1/namespaces', { client: null });
  t.equal(anonymous.status, 401);
  t.same(JSON.parse(anonymous.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  t.equal((await raw(server, 'GET', '/readyz', { client: null })).body, 'ok', 'health checks need no credentials');
  t.equal((await raw(server, 'GET', '/api/v1/namespaces', { client: null, token: 'wrong' })).status, 401);

  const viewer = await raw(server, 'GET', '/api/v1/namespaces/apps', { client: null, token: 'viewer-token' });
  t.equal(viewer.status, 200, 'a bearer token authenticates');
  const denied = await raw(server, 'DELETE', '/api/v1/namespaces/apps/configmaps/x', { client: null, token: 'viewer-token' });
  t.same(JSON.parse(denied.body), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'configmaps "x" is forbidden: User "viewer" cannot delete resource "configmaps" in API group "" in the namespace "apps"',
    reason: 'Forbidden',
    details: { name: 'x', kind: 'configmaps' },
    code: 403,
  });

  const otherCA = await createCA('another-ca', 1, { keyAlgorithm: 'ECDSA-P256' });
  const stranger = await issueCertificate(otherCA, { commonName: 'admin', organization: ['system:masters'], usage: 'client', validityDays: 1, keyAlgorithm: 'ECDSA-P256' });
  await t.rejects(raw(server, 'GET', '/api/v1/namespaces', { client: stranger }), 'a client certificate from another CA fails the handshake');
});

t.test('kubeconfig variants: files beside it, a bearer token, another user\'s certificate', async (t) => {
  const server = await KubeAPIServer.start(t, {
    tokens: { 'viewer-token': { name: 'viewer', groups: [] } },
    authorize: (r) => r.user.name !== 'viewer' || r.verb === 'get' || r.verb === 'list',
  });
  const dir = tempDir(t, 'kube-harness-');
  const load = (path: string) => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(path);
    return kc.makeApiClient(k8s.CoreV1Api);
  };
  const files = load(server.writeKubeconfig(join(dir, 'files', 'kubeconfig'), { files: true }));
  await files.createNamespace({ body: { metadata: { name: 'apps' } } });
  t.equal(lastRequest(server).user?.name, 'admin');
  t.match(readFileSync(join(dir, 'files', 'kubeconfig'), 'utf8'), /client-key: .*client\.key/);

  const viewer = load(server.writeKubeconfig(join(dir, 'token', 'kubeconfig'), { token: 'viewer-token' }));
  t.equal((await viewer.readNamespace({ name: 'apps' })).metadata?.name, 'apps');
  t.same(lastRequest(server).user, { name: 'viewer', groups: [] });
  const denied = await apiError(viewer.deleteNamespace({ name: 'apps' }));
  t.equal(denied.status.message, 'namespaces "apps" is forbidden: User "viewer" cannot delete resource "namespaces" in API group "" at the cluster scope');

  const nodeCert = await server.issueClientCertificate('system:node:i-0123', ['system:nodes']);
  const node = load(server.writeKubeconfig(join(dir, 'node', 'kubeconfig'), { client: nodeCert }));
  await node.listNamespace();
  t.same(lastRequest(server).user, { name: 'system:node:i-0123', groups: ['system:nodes'] });
});

t.test('node: read, label and taint with apply, labels re-applied after someone removes them', async (t) => {
  const { server, core, objects } = await cluster(t);
  server.seed(
    {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'i-0123', labels: { 'kubernetes.io/hostname': 'i-0123', 'topology.kubernetes.io/zone': 'us-test-1a' } },
      spec: { podCIDR: '100.96.1.0/24' },
      status: { addresses: [{ type: 'InternalIP', address: '172.20.1.10' }] },
    },
    { manager: 'kubelet' },
  );
  const node = await core.readNode({ name: 'i-0123' });
  t.equal(node.metadata?.labels?.['topology.kubernetes.io/zone'], 'us-test-1a');
  t.same(node.status?.addresses, [{ type: 'InternalIP', address: '172.20.1.10' }], 'seeded with its status');

  const desired = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'i-0123', labels: { 'node-role.kubernetes.io/control-plane': '', 'node.kubernetes.io/exclude-from-external-load-balancers': '' } },
    spec: { taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] },
  };
  const labelled = await objects.patch({ ...desired, status: { addresses: [] } }, undefined, undefined, 'protokube', true, SSA);
  t.same((labelled as JsonObject).status, { addresses: [{ type: 'InternalIP', address: '172.20.1.10' }] }, 'status in an applied configuration is ignored');
  t.same(labelled.metadata?.labels, {
    'kubernetes.io/hostname': 'i-0123',
    'topology.kubernetes.io/zone': 'us-test-1a',
    'node-role.kubernetes.io/control-plane': '',
    'node.kubernetes.io/exclude-from-external-load-balancers': '',
  });
  t.same((labelled.spec as JsonObject).taints, [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }]);
  t.equal(lastRequest(server).path, '/api/v1/nodes/i-0123');
  const stored = server.object('v1', 'Node', undefined, 'i-0123');
  t.same(managedEntry(stored, 'protokube', 'Apply')?.fieldsV1, {
    'f:metadata': { 'f:labels': { 'f:node-role.kubernetes.io/control-plane': {}, 'f:node.kubernetes.io/exclude-from-external-load-balancers': {} } },
    'f:spec': { 'f:taints': {} },
  }, 'taints are an atomic list');
  t.ok(managedEntry(stored, 'kubelet', 'Update'), 'the kubelet keeps its entry');

  await core.patchNode(
    { name: 'i-0123', body: { metadata: { labels: { 'node-role.kubernetes.io/control-plane': null } } }, fieldManager: 'kubectl-label' },
    mergePatchOptions,
  );
  t.notOk((await core.readNode({ name: 'i-0123' })).metadata?.labels?.['node-role.kubernetes.io/control-plane'] !== undefined, 'label removed by hand');
  const relabelled = await objects.patch(desired, undefined, undefined, 'protokube', true, SSA);
  t.equal(relabelled.metadata?.labels?.['node-role.kubernetes.io/control-plane'], '', 're-applying puts it back');
});

t.test('down then up: connections refused, then 503 while starting, then served on the same URL', async (t) => {
  const { server, core } = await cluster(t);
  await core.createNamespace({ body: { metadata: { name: 'kube-system' } } });
  const url = server.url;

  await server.down('refused');
  t.equal(server.state, 'refused');
  const refused = await core.readNamespace({ name: 'kube-system' }).then(
    () => undefined,
    (err: unknown) => err as { code?: string },
  );
  t.equal(refused?.code, 'ECONNREFUSED', 'the client sees a refused connection');

  await server.down('unavailable');
  const starting = await apiError(core.readNamespace({ name: 'kube-system' }));
  t.same(starting, {
    code: 503,
    status: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the request has been made before all known HTTP paths have been installed, please try again',
      reason: 'ServiceUnavailable',
      details: { retryAfterSeconds: 5 },
      code: 503,
    },
  });
  const readyz = await raw(server, 'GET', '/readyz', { client: null });
  t.equal(readyz.status, 500);
  t.match(readyz.body, /readyz check failed/);

  await server.up();
  t.equal(server.url, url, 'same address after coming back');
  t.equal((await core.readNamespace({ name: 'kube-system' })).metadata?.name, 'kube-system');
  t.equal((await raw(server, 'GET', '/readyz', { client: null })).body, 'ok');

  // Down for a while: a client that retries with backoff gets through once it is back.
  await server.down('refused', 300);
  const failures: string[] = [];
  let read: k8s.V1Namespace | undefined;
  for (let attempt = 0; attempt < 100 && !read; attempt++) {
    try {
      read = await core.readNamespace({ name: 'kube-system' });
    } catch (err) {
      failures.push(String((err as { code?: string }).code));
      await new Promise((resolve) => setTimeout(resolve, Math.min(20 * 2 ** attempt, 200)));
    }
  }
  t.equal(read?.metadata?.name, 'kube-system', 'served again after the outage');
  t.ok(failures.length > 0 && failures.every((c) => c === 'ECONNREFUSED'), `refused while down (${failures.length} attempts)`);

  // A failure injected for chosen requests only.
  let injected = 0;
  server.beforeRequest = (r) => {
    if (r.method !== 'PATCH' || injected > 0) return undefined;
    injected++;
    return new KubeError(500, 'InternalError', 'Internal error occurred: etcdserver: request timed out');
  };
  const body = { metadata: { annotations: { a: 'b' } } };
  const failed = await apiError(core.patchNamespace({ name: 'kube-system', body }, mergePatchOptions));
  t.match(failed, { code: 500, status: { reason: 'InternalError', message: 'Internal error occurred: etcdserver: request timed out' } });
  t.equal((await core.patchNamespace({ name: 'kube-system', body }, mergePatchOptions)).metadata?.annotations?.a, 'b', 'the next one goes through');
});

t.test('a CoreDNS-like addon manifest applied object by object, re-applied, changed and pruned', async (t) => {
  const { server, core, objects } = await cluster(t);
  await core.createNamespace({ body: { metadata: { name: 'kube-system' } } });
  const manifest = k8s.loadAllYaml(readFileSync(FIXTURE, 'utf8')) as (k8s.KubernetesObject & JsonObject)[];
  t.same(
    manifest.map((o) => o.kind),
    ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'Service'],
  );
  const start = server.requests.length;
  for (const obj of manifest) await objects.patch(obj, undefined, undefined, 'protokube', true, SSA);
  t.same(
    server.requests.slice(start).map((r) => `${r.method} ${r.path} ${r.status}`),
    [
      'GET /api/v1 200',
      'PATCH /api/v1/namespaces/kube-system/serviceaccounts/coredns 201',
      'GET /apis/rbac.authorization.k8s.io/v1 200',
      // client-node percent-encodes the name, then lower-cases the whole path.
      'PATCH /apis/rbac.authorization.k8s.io/v1/clusterroles/system%3acoredns 201',
      'PATCH /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system%3acoredns 201',
      'PATCH /api/v1/namespaces/kube-system/configmaps/coredns 201',
      'GET /apis/apps/v1 200',
      'PATCH /apis/apps/v1/namespaces/kube-system/deployments/coredns 201',
      'PATCH /api/v1/namespaces/kube-system/services/kube-dns 201',
    ],
  );
  for (const r of server.requests.slice(start).filter((r) => r.method === 'PATCH')) {
    t.equal(r.contentType, 'application/apply-patch+yaml');
    t.same(r.query, { fieldManager: ['protokube'], force: ['true'] });
  }
  const svc = managedEntry(server.object('v1', 'Service', 'kube-system', 'kube-dns'), 'protokube', 'Apply')?.fieldsV1 as JsonObject;
  t.same(Object.keys((svc['f:spec'] as JsonObject)['f:ports'] as JsonObject), [
    'k:{"port":53,"protocol":"TCP"}',
    'k:{"port":53,"protocol":"UDP"}',
    'k:{"port":9153,"protocol":"TCP"}',
  ], 'service ports keyed by port and protocol, sorted as SMD sorts them');

  const rvAfterFirst = server.store.resourceVersion;
  for (const obj of manifest) await objects.patch(obj, undefined, undefined, 'protokube', true, SSA);
  t.equal(server.store.resourceVersion, rvAfterFirst, 'applying the same manifest again writes nothing');
  t.ok(server.requests.slice(-6).every((r) => r.status === 200));

  const changed = manifest.map((o) => structuredClone(o));
  const dep = changed.find((o) => o.kind === 'Deployment')!;
  (((dep.spec as JsonObject).template as JsonObject).spec as JsonObject).containers = [
    { ...((((dep.spec as JsonObject).template as JsonObject).spec as JsonObject).containers as JsonObject[])[0], image: 'registry.k8s.io/coredns/coredns:v1.12.0' },
  ];
  const before = new Map(manifest.map((o) => [o.kind, rv(server.object(String(o.apiVersion), String(o.kind), o.metadata?.namespace, String(o.metadata?.name)) ?? {})]));
  for (const obj of changed) await objects.patch(obj, undefined, undefined, 'protokube', true, SSA);
  for (const obj of changed) {
    const now = rv(server.object(String(obj.apiVersion), String(obj.kind), obj.metadata?.namespace, String(obj.metadata?.name)) ?? {});
    if (obj.kind === 'Deployment') t.not(now, before.get(obj.kind), 'the changed Deployment is written');
    else t.equal(now, before.get(obj.kind), `${obj.kind} untouched`);
  }
  t.equal(server.object('apps/v1', 'Deployment', 'kube-system', 'coredns')?.metadata && (server.object('apps/v1', 'Deployment', 'kube-system', 'coredns')!.metadata as JsonObject).generation, 2);

  const roleRef = changed.find((o) => o.kind === 'ClusterRoleBinding')!;
  const movedRef = await apiError(
    objects.patch({ ...roleRef, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'other' } }, undefined, undefined, 'protokube', true, SSA),
  );
  t.match(movedRef, { code: 422, status: { reason: 'Invalid', message: /^ClusterRoleBinding.rbac.authorization.k8s.io "system:coredns" is invalid: roleRef: Invalid value: .*: cannot change roleRef$/ } });

  // Prune: the Service left the manifest; find it by the addon label and delete it.
  const services = await objects.list('v1', 'Service', 'kube-system', undefined, undefined, undefined, undefined, 'addon.mooring.test/name=coredns');
  t.same(services.items.map((i) => i.metadata?.name), ['kube-dns']);
  await objects.delete({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' } });
  t.equal((await apiError(objects.read({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' } }))).code, 404);
  t.equal((await apiError(objects.delete({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' } }))).status.message, 'services "kube-dns" not found');
});
