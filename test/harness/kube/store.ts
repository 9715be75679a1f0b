// What the API server's registry does with objects, in memory: one global
// resourceVersion counter bumped by every write that changes something (a write
// that changes nothing leaves the object and its resourceVersion alone, as the
// real storage layer skips identical updates), the system metadata the server
// owns (uid, creationTimestamp, generation, resourceVersion, managedFields),
// preconditions (409 on a stale resourceVersion), validation (422), namespaces
// that must exist (404), finalizers holding deletion, and the verbs: get, list,
// create, replace, patch in its four forms including server-side apply, delete.
import { randomUUID } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { clone, deepEqual, isObject, metadataOf, stringField, stringMap, type Json, type JsonObject } from './json.js';
import { applyConfig, decodeManagedFields, encodeManagedFields, rfc3339, trackUpdate, type Managers } from './managed-fields.js';
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from './patch.js';
import { apiVersionOf, type KindInfo, type Registry } from './registry.js';
import { fieldsMatch, labelsMatch, parseFieldSelector, parseLabelSelector } from './selectors.js';
import {
  alreadyExists,
  badRequest,
  conflict,
  genericServerResponse,
  invalid,
  notFound,
  OBJECT_MODIFIED,
  successStatus,
  unknownError,
  type FieldError,
  type GroupResource,
} from './status.js';
import { TypedValueError } from './fieldpath.js';
import { validateObjectMeta } from './validation.js';

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;
export type PatchType = (typeof PATCH_TYPES)[keyof typeof PATCH_TYPES];

export interface WriteOptions {
  dryRun: boolean;
  /** The fieldManager query parameter, if given. */
  fieldManager?: string;
  /** The request's User-Agent: without fieldManager, updates are tracked under its part before the first '/'. */
  userAgent: string;
}

export interface PatchOptions extends WriteOptions {
  /** The `force` query parameter as sent (undefined when absent). */
  force?: boolean;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continueToken?: string;
}

export interface WriteResult {
  /** 200, or 201 when the write created the object. */
  code: 200 | 201;
  body: JsonObject;
}

const NAMESPACES: GroupResource = { group: '', resource: 'namespaces' };

const groupResource = (info: KindInfo): GroupResource => ({ group: info.group, resource: info.plural });

/** schema.GroupVersionKind.String(): `apps/v1, Kind=Deployment`, `/v1, Kind=ConfigMap`. */
function gvkString(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return `${group}/${version}, Kind=${kind}`;
}

/** managerOrUserAgent: the fieldManager, else the User-Agent up to its first '/'. */
function managerName(opts: WriteOptions): string {
  return opts.fieldManager && opts.fieldManager !== '' ? opts.fieldManager : opts.userAgent.split('/')[0];
}

/** A resourceVersion given by a client that must match: "" and "0" mean "unconditional". */
function preconditionRV(obj: JsonObject): string | undefined {
  const rv = stringField(isObject(obj.metadata) ? obj.metadata : undefined, 'resourceVersion');
  return rv === undefined || rv === '' || rv === '0' ? undefined : rv;
}

const SERVER_META = ['uid', 'creationTimestamp', 'generation', 'resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink'];

function withoutManagedFields(obj: JsonObject): JsonObject {
  const out = clone(obj);
  if (isObject(out.metadata)) delete out.metadata.managedFields;
  return out;
}

export class ObjectStore {
  private readonly objects = new Map<string, JsonObject>();
  private revision: number;

  constructor(
    readonly registry: Registry,
    private readonly now: () => Date = () => new Date(),
    initialRevision = 100,
  ) {
    this.revision = initialRevision;
  }

  /** The current global resourceVersion (what a list reports). */
  get resourceVersion(): string {
    return String(this.revision);
  }

  private key(info: KindInfo, namespace: string | undefined, name: string): string {
    return `${info.group}/${info.plural}/${info.namespaced ? (namespace ?? '') : ''}/${name}`;
  }

  /** The stored object, or undefined (no copy: for the harness's own assertions use `peek`). */
  private find(info: KindInfo, namespace: string | undefined, name: string): JsonObject | undefined {
    return this.objects.get(this.key(info, namespace, name));
  }

  private namespaceExists(namespace: string): boolean {
    const ns = this.registry.byKind('v1', 'Namespace');
    return ns !== undefined && this.find(ns, undefined, namespace) !== undefined;
  }

  /** A copy of a stored object, for assertions. */
  peek(apiVersion: string, kind: string, namespace: string | undefined, name: string): JsonObject | undefined {
    const info = this.registry.byKind(apiVersion, kind);
    if (!info) return undefined;
    const obj = this.find(info, namespace, name);
    return obj ? clone(obj) : undefined;
  }

  /** Copies of every stored object. */
  all(): JsonObject[] {
    return [...this.objects.values()].map((o) => clone(o));
  }

  // ---- reads ----

  get(info: KindInfo, namespace: string | undefined, name: string): JsonObject {
    const obj = this.find(info, namespace, name);
    if (!obj) throw notFound(groupResource(info), name);
    return clone(obj);
  }

  list(info: KindInfo, namespace: string | undefined, opts: ListOptions): JsonObject {
    const labelSel = parseLabelSelector(opts.labelSelector ?? '');
    const fieldSel = parseFieldSelector(opts.fieldSelector ?? '');
    const prefix = `${info.group}/${info.plural}/${info.namespaced && namespace !== undefined ? `${namespace}/` : ''}`;
    let keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    if (opts.continueToken) {
      let start: string;
      try {
        const token: unknown = JSON.parse(Buffer.from(opts.continueToken, 'base64url').toString('utf8'));
        if (!isObject(token as Json) || typeof (token as JsonObject).start !== 'string') throw new Error('bad token');
        start = (token as JsonObject).start as string;
      } catch {
        throw badRequest('continue key is not valid: invalid continue token');
      }
      keys = keys.filter((k) => k > start);
    }
    const matching = keys
      .map((k) => this.objects.get(k)!)
      .filter((o) => {
        const meta = isObject(o.metadata) ? o.metadata : {};
        return labelsMatch(labelSel, stringMap(meta, 'labels')) && fieldsMatch(fieldSel, stringField(meta, 'name') ?? '', stringField(meta, 'namespace') ?? '');
      });
    const limit = opts.limit && opts.limit > 0 ? opts.limit : undefined;
    const page = limit ? matching.slice(0, limit) : matching;
    const metadata: JsonObject = { resourceVersion: this.resourceVersion };
    if (limit && matching.length > limit) {
      const lastKey = keys.find((k) => this.objects.get(k) === page[page.length - 1])!;
      metadata.continue = Buffer.from(JSON.stringify({ start: lastKey })).toString('base64url');
      metadata.remainingItemCount = matching.length - limit;
    }
    // Items of a list carry no apiVersion/kind: the real server encodes them from typed lists.
    const items = page.map((o) => {
      const item = clone(o);
      delete item.apiVersion;
      delete item.kind;
      return item;
    });
    return { kind: `${info.kind}List`, apiVersion: apiVersionOf(info), metadata, items };
  }

  // ---- the common tail of every write ----

  /**
   * The server's part of every write: type and identity, system metadata kept
   * from the live object (or made for a new one), status kept for kinds with a
   * status subresource, the strategy's own fields, generation.
   */
  private stamp(info: KindInfo, next: JsonObject, live: JsonObject | undefined, namespace: string | undefined, name: string): void {
    next.apiVersion = apiVersionOf(info);
    next.kind = info.kind;
    const meta = metadataOf(next);
    meta.name = name;
    if (info.namespaced) meta.namespace = namespace ?? '';
    else delete meta.namespace;
    for (const f of SERVER_META) delete meta[f];
    if (live) {
      const liveMeta = metadataOf(live);
      for (const f of SERVER_META) if (liveMeta[f] !== undefined) meta[f] = clone(liveMeta[f]);
    } else {
      meta.uid = randomUUID();
      meta.creationTimestamp = rfc3339(this.now());
    }
    if (info.statusSubresource) {
      if (live && live.status !== undefined) next.status = clone(live.status);
      else delete next.status;
    }
    info.prepare?.(next);
    if (info.generation) {
      const liveGen = live ? Number(metadataOf(live).generation ?? 1) : 0;
      const specChanged = !live || !deepEqual(specPart(live), specPart(next));
      meta.generation = specChanged ? liveGen + 1 : liveGen;
    }
  }

  private validate(info: KindInfo, next: JsonObject, live: JsonObject | undefined): void {
    const errors: FieldError[] = [...validateObjectMeta(metadataOf(next), info.nameRule), ...(info.validate?.(next, live) ?? [])];
    if (errors.length > 0) throw invalid({ group: info.group, kind: info.kind }, stringField(metadataOf(next), 'name') ?? '', errors);
  }

  /** Stores `next` (with managedFields already set) unless it equals `live`; returns what the client gets back. */
  private commit(info: KindInfo, namespace: string | undefined, name: string, live: JsonObject | undefined, next: JsonObject, dryRun: boolean): JsonObject {
    const meta = metadataOf(next);
    if (Array.isArray(meta.managedFields) && meta.managedFields.length === 0) delete meta.managedFields;
    if (live && deepEqual(live, next)) return clone(live);
    const finalizing = live && metadataOf(live).deletionTimestamp !== undefined && !(Array.isArray(meta.finalizers) && meta.finalizers.length > 0);
    if (dryRun) {
      if (!live) delete meta.resourceVersion;
      return clone(next);
    }
    this.revision++;
    meta.resourceVersion = String(this.revision);
    const key = this.key(info, namespace, name);
    if (finalizing) this.objects.delete(key);
    else this.objects.set(key, next);
    return clone(next);
  }

  private checkBodyNamespace(info: KindInfo, body: JsonObject, namespace: string | undefined): void {
    const bodyNs = stringField(isObject(body.metadata) ? body.metadata : undefined, 'namespace');
    if (info.namespaced && bodyNs !== undefined && bodyNs !== '' && bodyNs !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
  }

  private checkBodyType(info: KindInfo, body: JsonObject): void {
    const apiVersion = body.apiVersion;
    const kind = body.kind;
    if (typeof apiVersion === 'string' && apiVersion !== '' && apiVersion !== apiVersionOf(info)) {
      throw badRequest(`the API version in the data (${apiVersion}) does not match the expected API version (${apiVersionOf(info)})`);
    }
    if (typeof kind === 'string' && kind !== '' && kind !== info.kind) {
      throw badRequest(`the kind in the data (${kind}) does not match the expected kind (${info.kind})`);
    }
  }

  private checkName(body: JsonObject, name: string): void {
    const bodyName = stringField(isObject(body.metadata) ? body.metadata : undefined, 'name');
    if (bodyName !== undefined && bodyName !== '' && bodyName !== name) {
      throw badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
    }
  }

  private managersFor(next: JsonObject, live: JsonObject | undefined): Managers {
    // decodeLiveOrNew: managedFields sent by the client win if non-empty and decodable; else the live ones.
    const sent = metadataOf(next).managedFields;
    if (Array.isArray(sent) && sent.length === 0) return new Map();
    const decoded = decodeManagedFields(sent);
    if (decoded.size > 0) return decoded;
    return decodeManagedFields(live ? metadataOf(live).managedFields : undefined);
  }

  /** create, replace and non-apply patches end here: managedFields as an Update, validation, commit. */
  private finishUpdate(info: KindInfo, namespace: string | undefined, name: string, live: JsonObject | undefined, next: JsonObject, opts: WriteOptions): JsonObject {
    const managers = this.managersFor(next, live);
    info.defaults?.(next);
    const decoded = withoutManagedFields(next);
    this.stamp(info, next, live, namespace, name);
    this.validate(info, next, live);
    // Storage answers AlreadyExists only after validation passed.
    if (!live && this.find(info, namespace, name)) throw alreadyExists(groupResource(info), name);
    // Ownership is worked out on the request as decoded, before the strategy's
    // own changes; `status` is a reset field for kinds with a status subresource.
    const liveBare = live ? withoutManagedFields(live) : {};
    if (info.statusSubresource) {
      delete liveBare.status;
      delete decoded.status;
    }
    const tracked = trackUpdate({
      live: liveBare,
      next: decoded,
      managers,
      manager: managerName(opts),
      apiVersion: apiVersionOf(info),
      isCreate: !live,
      now: this.now(),
    });
    metadataOf(next).managedFields = encodeManagedFields(tracked);
    return this.commit(info, namespace, name, live, next, opts.dryRun);
  }

  // ---- writes ----

  create(info: KindInfo, namespace: string | undefined, body: Json, opts: WriteOptions): WriteResult {
    if (!isObject(body)) throw badRequest('the object provided is unrecognized (must be of type Object)');
    this.checkBodyType(info, body);
    this.checkBodyNamespace(info, body, namespace);
    const next = clone(body);
    const meta = metadataOf(next);
    if ((meta.name === undefined || meta.name === '') && typeof meta.generateName === 'string' && meta.generateName !== '') {
      meta.name = `${meta.generateName}${randomSuffix()}`;
    }
    const name = stringField(meta, 'name') ?? '';
    if (preconditionRV(next) !== undefined) throw unknownError('resourceVersion should not be set on objects to be created');
    if (name === '') this.validate(info, { ...next, metadata: { ...meta, name: '' } }, undefined);
    if (info.namespaced && namespace !== undefined && !this.namespaceExists(namespace)) throw notFound(NAMESPACES, namespace);
    return { code: 201, body: this.finishUpdate(info, namespace, name, undefined, next, opts) };
  }

  replace(info: KindInfo, namespace: string | undefined, name: string, body: Json, opts: WriteOptions): WriteResult {
    if (!isObject(body)) throw badRequest('the object provided is unrecognized (must be of type Object)');
    this.checkBodyType(info, body);
    this.checkBodyNamespace(info, body, namespace);
    this.checkName(body, name);
    const live = this.find(info, namespace, name);
    if (!live) throw notFound(groupResource(info), name);
    const rv = preconditionRV(body);
    if (rv !== undefined && rv !== stringField(metadataOf(live), 'resourceVersion')) throw conflict(groupResource(info), name, OBJECT_MODIFIED);
    return { code: 200, body: this.finishUpdate(info, namespace, name, live, clone(body), opts) };
  }

  patch(info: KindInfo, namespace: string | undefined, name: string, type: PatchType, raw: string, opts: PatchOptions): WriteResult {
    // ValidatePatchOptions runs before the object is even looked up.
    const optionErrors: FieldError[] = [];
    if (type !== PATCH_TYPES.apply && opts.force !== undefined) {
      optionErrors.push({ type: 'FieldValueForbidden', field: 'force', detail: 'may not be specified for non-apply patch' });
    }
    if (type === PATCH_TYPES.apply && !opts.fieldManager) {
      optionErrors.push({ type: 'FieldValueRequired', field: 'fieldManager', detail: 'is required for apply patch' });
    }
    if (opts.fieldManager && Buffer.byteLength(opts.fieldManager) > 128) {
      optionErrors.push({ type: 'FieldValueTooLong', field: 'fieldManager', detail: 'may not be more than 128 bytes', badValue: opts.fieldManager });
    }
    if (optionErrors.length > 0) throw invalid({ group: 'meta.k8s.io', kind: 'PatchOptions' }, '', optionErrors);
    if (type === PATCH_TYPES.apply) return this.apply(info, namespace, name, raw, opts);
    const live = this.find(info, namespace, name);
    if (!live) throw notFound(groupResource(info), name);
    let patched: Json;
    try {
      let patchBody: Json;
      try {
        patchBody = JSON.parse(raw) as Json;
      } catch (err) {
        throw new PatchError('malformed', type === PATCH_TYPES.merge ? 'Invalid JSON Patch' : `invalid character in patch: ${(err as Error).message}`);
      }
      if (type === PATCH_TYPES.merge) {
        if (!isObject(patchBody)) throw new PatchError('malformed', 'Invalid JSON Patch');
        patched = mergePatch(live, patchBody);
      } else if (type === PATCH_TYPES.json) {
        patched = jsonPatch(live, patchBody);
      } else {
        patched = strategicMergePatch(live, patchBody);
      }
    } catch (err) {
      if (!(err instanceof PatchError)) throw err;
      if (err.kind === 'malformed') throw badRequest(err.message);
      throw genericServerResponse(422, err.message);
    }
    if (!isObject(patched)) throw badRequest('the patched object is not an object');
    this.checkBodyType(info, patched);
    this.checkName(patched, name);
    this.checkBodyNamespace(info, patched, namespace);
    const rv = preconditionRV(patched);
    if (rv !== undefined && rv !== stringField(metadataOf(live), 'resourceVersion')) throw conflict(groupResource(info), name, OBJECT_MODIFIED);
    return { code: 200, body: this.finishUpdate(info, namespace, name, live, patched, opts) };
  }

  private apply(info: KindInfo, namespace: string | undefined, name: string, raw: string, opts: PatchOptions): WriteResult {
    let config: Json;
    try {
      const docs = parseAllDocuments(raw);
      if (docs.length !== 1) throw new Error(docs.length === 0 ? 'empty document' : 'expected one YAML document');
      const doc = docs[0];
      if (doc.errors.length > 0) throw doc.errors[0];
      config = doc.toJSON() as Json;
    } catch (err) {
      throw badRequest(`error decoding YAML: ${(err as Error).message}`);
    }
    if (!isObject(config)) throw badRequest('error decoding YAML: the applied configuration is not an object');
    const gvk = gvkString(typeof config.apiVersion === 'string' ? config.apiVersion : '', typeof config.kind === 'string' ? config.kind : '');
    if (config.apiVersion !== apiVersionOf(info) || config.kind !== info.kind) throw badRequest(`invalid object type: ${gvk}`);
    const meta = isObject(config.metadata) ? config.metadata : {};
    if (meta.managedFields !== undefined && meta.managedFields !== null) throw badRequest('metadata.managedFields must be nil');
    this.checkName(config, name);
    this.checkBodyNamespace(info, config, namespace);
    const live = this.find(info, namespace, name);
    const rv = preconditionRV(config);
    if (!live) {
      if (rv !== undefined) throw unknownError('resourceVersion should not be set on objects to be created');
      if (info.namespaced && namespace !== undefined && !this.namespaceExists(namespace)) throw notFound(NAMESPACES, namespace);
    } else if (rv !== undefined && rv !== stringField(metadataOf(live), 'resourceVersion')) {
      throw conflict(groupResource(info), name, OBJECT_MODIFIED);
    }
    const applied = clone(config);
    if (info.statusSubresource) delete applied.status;
    const liveBare = live ? withoutManagedFields(live) : undefined;
    let result;
    try {
      result = applyConfig({
        live: liveBare,
        config: applied,
        managers: decodeManagedFields(live ? metadataOf(live).managedFields : undefined),
        manager: opts.fieldManager ?? '',
        apiVersion: apiVersionOf(info),
        force: opts.force === true,
        now: this.now(),
      });
    } catch (err) {
      if (err instanceof TypedValueError) {
        const where = `${info.namespaced ? (namespace ?? '') : ''}/${name}`;
        throw unknownError(`failed to create typed patch object (${where}; ${gvkString(apiVersionOf(info), info.kind)}): ${err.message}`);
      }
      throw err;
    }
    const next = result.object;
    this.stamp(info, next, live, namespace, name);
    this.validate(info, next, live);
    metadataOf(next).managedFields = encodeManagedFields(result.managers);
    const body = this.commit(info, namespace, name, live, next, opts.dryRun);
    return { code: live ? 200 : 201, body };
  }

  delete(info: KindInfo, namespace: string | undefined, name: string, options: Json | undefined, dryRun: boolean): JsonObject {
    const live = this.find(info, namespace, name);
    if (!live) throw notFound(groupResource(info), name);
    const liveMeta = metadataOf(live);
    const preconditions = isObject(options ?? null) && isObject((options as JsonObject).preconditions) ? ((options as JsonObject).preconditions as JsonObject) : {};
    if (typeof preconditions.resourceVersion === 'string' && preconditions.resourceVersion !== liveMeta.resourceVersion) {
      throw conflict(
        groupResource(info),
        name,
        `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${String(liveMeta.resourceVersion)}`,
      );
    }
    if (typeof preconditions.uid === 'string' && preconditions.uid !== liveMeta.uid) {
      throw conflict(groupResource(info), name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${String(liveMeta.uid)}`);
    }
    const key = this.key(info, namespace, name);
    const finalizers = liveMeta.finalizers;
    const isNamespace = info.group === '' && info.kind === 'Namespace';
    if ((Array.isArray(finalizers) && finalizers.length > 0) || isNamespace) {
      const next = clone(live);
      const meta = metadataOf(next);
      if (meta.deletionTimestamp === undefined) {
        meta.deletionTimestamp = rfc3339(this.now());
        meta.deletionGracePeriodSeconds = 0;
      }
      if (isNamespace) {
        const status = isObject(next.status) ? next.status : {};
        status.phase = 'Terminating';
        next.status = status;
      }
      if (dryRun) return next;
      this.revision++;
      meta.resourceVersion = String(this.revision);
      if (isNamespace && !(Array.isArray(finalizers) && finalizers.length > 0)) {
        // No namespace controller here: its content and the namespace go at once.
        for (const k of [...this.objects.keys()]) {
          const obj = this.objects.get(k)!;
          if (stringField(metadataOf(obj), 'namespace') === name) this.objects.delete(k);
        }
        this.objects.delete(key);
      } else {
        this.objects.set(key, next);
      }
      return clone(next);
    }
    if (!dryRun) {
      this.objects.delete(key);
      this.revision++;
    }
    return successStatus({ name, group: info.group, kind: info.plural, uid: stringField(liveMeta, 'uid') });
  }

  // ---- for tests: objects as other components would have made them ----

  /**
   * Stores an object as if a component (kubelet for a Node, say) had created it
   * through the API as `manager`, and written its status if it has one;
   * `trackManagedFields: false` stores it without managedFields, like an object
   * created before server-side apply existed.
   */
  seed(obj: JsonObject, options: { manager?: string; trackManagedFields?: boolean } = {}): JsonObject {
    const apiVersion = typeof obj.apiVersion === 'string' ? obj.apiVersion : '';
    const kind = typeof obj.kind === 'string' ? obj.kind : '';
    const info = this.registry.byKind(apiVersion, kind);
    if (!info) throw new Error(`seed: unknown kind ${apiVersion} ${kind}`);
    const meta = isObject(obj.metadata) ? obj.metadata : {};
    const namespace = info.namespaced ? (stringField(meta, 'namespace') ?? 'default') : undefined;
    const created = this.create(info, namespace, obj, { dryRun: false, fieldManager: options.manager ?? 'test-seed', userAgent: 'test-seed' }).body;
    const stored = this.find(info, namespace, stringField(metadataOf(created), 'name') ?? '')!;
    if (info.statusSubresource && obj.status !== undefined) {
      // As if the component had then written its status subresource (a write of its own).
      stored.status = clone(obj.status);
      this.revision++;
      metadataOf(stored).resourceVersion = String(this.revision);
    }
    if (options.trackManagedFields === false) delete metadataOf(stored).managedFields;
    return clone(stored);
  }
}

/** Everything but metadata and status: what metadata.generation counts. */
function specPart(obj: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) if (k !== 'metadata' && k !== 'status' && k !== 'apiVersion' && k !== 'kind') out[k] = v;
  return out;
}

const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += SUFFIX_ALPHABET[Math.floor(Math.random() * SUFFIX_ALPHABET.length)];
  return s;
}

