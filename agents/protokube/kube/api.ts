// The calls protokube makes to the API server, through @kubernetes/client-node
// (loaded here, on first use only: the worker's names-only daemon never
// imports it, and it costs tens of MiB). Everything else in protokube talks to
// this narrow interface, with plain objects and one error type that says
// what failed in one line.
//
// Wire facts that matter (test/harness/kube/README.md): the generated
// CoreV1Api.patchNamespace/patchNode default to JSON patch, so the merge-patch
// content type is set explicitly; server-side apply goes through
// KubernetesObjectApi.patch with application/apply-patch+yaml.
import type { KubernetesObject } from '@kubernetes/client-node';

export const FIELD_MANAGER = 'protokube';

/** A manifest object as protokube handles it: JSON-shaped, with the fields every object has. */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface NodeTaint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

export interface NodeState {
  labels: Record<string, string>;
  taints: NodeTaint[];
  resourceVersion: string;
}

/** An API call that failed: the HTTP code (0: no answer), the Status reason, and a one-line message. */
export class KubeCallError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubeCallError';
  }

  get unreachable(): boolean {
    return this.code === 0 || this.code === 503;
  }
}

export interface KubeAPI {
  /** Where the kubeconfig points (for messages). */
  readonly server: string;
  /** Throws unless the API server answers GET /api/v1/namespaces/kube-system (what kOps waited for). */
  ping(): Promise<void>;
  /** The namespace's annotations; undefined when it does not exist. */
  namespaceAnnotations(name: string): Promise<Record<string, string> | undefined>;
  /** Merge-patches annotations onto a namespace. */
  annotateNamespace(name: string, annotations: Record<string, string>): Promise<void>;
  /** Server-side apply, field manager protokube, force. With dryRun the server changes nothing. */
  apply(object: ManifestObject, dryRun: boolean): Promise<void>;
  /** The preferred version of an API group ('' is the core group: v1). */
  preferredVersion(group: string): Promise<string>;
  /** Objects of a kind, in one namespace or all, matching the selectors. */
  list(apiVersion: string, kind: string, namespace: string | undefined, selectors: { label?: string; field?: string }): Promise<ObjectRef[]>;
  remove(ref: ObjectRef): Promise<void>;
  /** The node's labels and taints; undefined when it is not registered (yet). */
  node(name: string): Promise<NodeState | undefined>;
  /** Merge-patches a node (labels, and taints as a whole list guarded by resourceVersion). */
  patchNode(name: string, patch: { labels?: Record<string, string>; taints?: NodeTaint[]; resourceVersion?: string }): Promise<void>;
}

type ClientModule = typeof import('@kubernetes/client-node');

let loaded: Promise<ClientModule> | undefined;

/** @kubernetes/client-node, imported once, on first use. */
export function loadClientModule(): Promise<ClientModule> {
  return (loaded ??= import('@kubernetes/client-node'));
}

function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Any failure of a client call as a KubeCallError naming what was asked. */
export function toKubeError(err: unknown, what: string, server: string, k8s: ClientModule): KubeCallError {
  if (err instanceof KubeCallError) return err;
  if (err instanceof k8s.ApiException) {
    const raw: unknown = err.body;
    let status: { reason?: string; message?: string } = {};
    try {
      status = (typeof raw === 'string' ? JSON.parse(raw) : raw) as typeof status;
    } catch {
      status = { message: typeof raw === 'string' ? raw.trim() : undefined };
    }
    const code = Number(err.code);
    const reason = status?.reason ?? '';
    const message = status?.message ?? (typeof raw === 'string' ? raw.trim() : `HTTP ${code}`);
    return new KubeCallError(code, reason, `${what}: ${code}${reason ? ` ${reason}` : ''}: ${message}`, { cause: err });
  }
  const errno = errnoOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  return new KubeCallError(0, errno ?? 'Unreachable', `${what}: cannot reach the API server at ${server}: ${errno ? `${errno} ` : ''}${detail}`, { cause: err });
}

function refOf(apiVersion: string, kind: string, item: KubernetesObject): ObjectRef {
  return { apiVersion, kind, name: item.metadata?.name ?? '', ...(item.metadata?.namespace ? { namespace: item.metadata.namespace } : {}) };
}

export function describeRef(ref: { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string }; name?: string; namespace?: string }): string {
  const name = ref.metadata?.name ?? ref.name ?? '';
  const namespace = ref.metadata?.namespace ?? ref.namespace;
  return `${ref.apiVersion}/${ref.kind} ${namespace ? `${namespace}/` : ''}${name}`;
}

/** A KubeAPI on the kubeconfig at `path`. Loads the client library. */
export async function connectKube(path: string): Promise<KubeAPI> {
  const k8s = await loadClientModule();
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new KubeCallError(0, 'Kubeconfig', `kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
  }
  const server = kc.getCurrentCluster()?.server ?? '(no server in the kubeconfig)';
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apis = kc.makeApiClient(k8s.ApisApi);
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw toKubeError(err, what, server, k8s);
    }
  };
  const isNotFound = (err: unknown) => err instanceof KubeCallError && err.code === 404;
  let groups: Promise<Map<string, string>> | undefined;

  return {
    server,
    async ping() {
      await call('GET namespaces/kube-system', () => core.readNamespace({ name: 'kube-system' }));
    },
    async namespaceAnnotations(name) {
      try {
        const ns = await call(`GET namespaces/${name}`, () => core.readNamespace({ name }));
        return ns.metadata?.annotations ?? {};
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async annotateNamespace(name, annotations) {
      await call(`PATCH namespaces/${name}`, () => core.patchNamespace({ name, body: { metadata: { annotations } }, fieldManager: FIELD_MANAGER }, mergePatch));
    },
    async apply(object, dryRun) {
      await call(`apply ${describeRef(object)}`, () => objects.patch(object as KubernetesObject, undefined, dryRun ? 'All' : undefined, FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply));
    },
    async preferredVersion(group) {
      if (group === '') return 'v1';
      groups ??= call('GET /apis', () => apis.getAPIVersions()).then(
        (list) => new Map(list.groups.map((g) => [g.name, g.preferredVersion?.version ?? g.versions[0]?.version ?? ''])),
        (err: unknown) => {
          groups = undefined; // ask again next time
          throw err;
        },
      );
      const version = (await groups).get(group);
      if (!version) {
        groups = undefined; // a group that appears later (a CRD's) is found on the next pass
        throw new KubeCallError(404, 'NotFound', `the API server serves no group ${JSON.stringify(group)}`);
      }
      return version;
    },
    async list(apiVersion, kind, namespace, selectors) {
      const found: ObjectRef[] = [];
      let token: string | undefined;
      do {
        const page = await call(`list ${apiVersion}/${kind}${namespace ? ` in ${namespace}` : ''}`, () =>
          objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, selectors.field, selectors.label, 500, token),
        );
        for (const item of page.items) found.push(refOf(apiVersion, kind, item));
        token = page.metadata?._continue || undefined;
      } while (token);
      return found;
    },
    async remove(ref) {
      try {
        await call(`delete ${describeRef(ref)}`, () => objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } }));
      } catch (err) {
        if (!isNotFound(err)) throw err; // already gone is what was wanted
      }
    },
    async node(name) {
      try {
        const node = await call(`GET nodes/${name}`, () => core.readNode({ name }));
        const taints = (node.spec?.taints ?? []).map((t) => ({
          key: t.key,
          ...(t.value !== undefined ? { value: t.value } : {}),
          effect: t.effect,
          ...(t.timeAdded ? { timeAdded: new Date(t.timeAdded).toISOString() } : {}),
        }));
        return { labels: node.metadata?.labels ?? {}, taints, resourceVersion: node.metadata?.resourceVersion ?? '' };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async patchNode(name, patch) {
      const metadata: Record<string, unknown> = {};
      if (patch.labels) metadata.labels = patch.labels;
      if (patch.resourceVersion) metadata.resourceVersion = patch.resourceVersion;
      const body: Record<string, unknown> = { metadata };
      if (patch.taints) body.spec = { taints: patch.taints };
      await call(`PATCH nodes/${name}`, () => core.patchNode({ name, body, fieldManager: FIELD_MANAGER }, mergePatch));
    },
  };
}
