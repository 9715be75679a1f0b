// The three non-apply patch formats the API server accepts, applied to plain
// JSON: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes'
// strategic merge patch with the directives controllers send ($patch:
// replace|delete|merge, $retainKeys, $deleteFromPrimitiveList/…,
// $setElementOrder/…) and the merge keys of the built-in types' lists.
import { clone, deepEqual, isObject, type Json, type JsonObject } from './json.js';

export class PatchError extends Error {
  constructor(
    /** 400: the patch itself is malformed; 422: it does not apply to the object. */
    readonly kind: 'malformed' | 'inapplicable',
    message: string,
  ) {
    super(message);
  }
}

// ---- JSON merge patch ----

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target ?? null) ? { ...(target as JsonObject) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---- JSON patch ----

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new PatchError('inapplicable', `JSON pointer must start with '/': ${pointer}`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, tokens: string[], op: string, path: string): { container: Json; last: string } {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!Number.isInteger(i) || i < 0 || i >= cur.length) throw new PatchError('inapplicable', `${op} operation does not apply: doc is missing path: ${path}`);
      cur = cur[i];
    } else if (isObject(cur) && Object.hasOwn(cur, t)) {
      cur = cur[t];
    } else {
      throw new PatchError('inapplicable', `${op} operation does not apply: doc is missing path: ${path}`);
    }
  }
  return { container: cur, last: tokens[tokens.length - 1] };
}

function getAt(doc: Json, path: string, op: string): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return doc;
  const { container, last } = parentOf(doc, tokens, op, path);
  if (Array.isArray(container)) {
    const i = Number(last);
    if (!Number.isInteger(i) || i < 0 || i >= container.length) throw new PatchError('inapplicable', `${op} operation does not apply: doc is missing path: ${path}`);
    return container[i];
  }
  if (isObject(container) && Object.hasOwn(container, last)) return container[last];
  throw new PatchError('inapplicable', `${op} operation does not apply: doc is missing key: ${path}: missing value`);
}

function removeAt(doc: Json, path: string, op: string): Json {
  const tokens = parsePointer(path);
  const { container, last } = parentOf(doc, tokens, op, path);
  if (Array.isArray(container)) {
    const i = Number(last);
    if (!Number.isInteger(i) || i < 0 || i >= container.length) throw new PatchError('inapplicable', `Unable to remove nonexistent key: ${last}: missing value`);
    return container.splice(i, 1)[0];
  }
  if (isObject(container) && Object.hasOwn(container, last)) {
    const value = container[last];
    delete container[last];
    return value;
  }
  throw new PatchError('inapplicable', `Unable to remove nonexistent key: ${last}: missing value`);
}

function addAt(doc: Json, path: string, value: Json, op: string, mustExist: boolean): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const { container, last } = parentOf(doc, tokens, op, path);
  if (Array.isArray(container)) {
    if (last === '-' && !mustExist) {
      container.push(value);
      return doc;
    }
    const i = Number(last);
    const limit = mustExist ? container.length - 1 : container.length;
    if (!Number.isInteger(i) || i < 0 || i > limit) throw new PatchError('inapplicable', `${op} operation does not apply: index out of bounds: ${path}`);
    if (mustExist) container[i] = value;
    else container.splice(i, 0, value);
    return doc;
  }
  if (!isObject(container)) throw new PatchError('inapplicable', `${op} operation does not apply: doc is missing path: ${path}`);
  if (mustExist && !Object.hasOwn(container, last)) throw new PatchError('inapplicable', `replace operation does not apply: doc is missing key: ${path}: missing value`);
  container[last] = value;
  return doc;
}

/** Applies an RFC 6902 patch. A body that is not an array of operations is malformed (400). */
export function jsonPatch(target: Json, patch: Json): Json {
  if (!Array.isArray(patch)) {
    throw new PatchError('malformed', `json: cannot unmarshal ${isObject(patch) ? 'object' : typeof patch} into Go value of type jsonpatch.Patch`);
  }
  let doc = clone(target);
  for (const raw of patch) {
    if (!isObject(raw) || typeof raw.op !== 'string') throw new PatchError('malformed', 'json: cannot unmarshal operation');
    const path = typeof raw.path === 'string' ? raw.path : '';
    const from = typeof raw.from === 'string' ? raw.from : '';
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, path, clone(raw.value ?? null), 'add', false);
        break;
      case 'replace':
        doc = addAt(doc, path, clone(raw.value ?? null), 'replace', true);
        break;
      case 'remove':
        removeAt(doc, path, 'remove');
        break;
      case 'move': {
        const value = removeAt(doc, from, 'move');
        doc = addAt(doc, path, value, 'move', false);
        break;
      }
      case 'copy':
        doc = addAt(doc, path, clone(getAt(doc, from, 'copy')), 'copy', false);
        break;
      case 'test':
        if (!deepEqual(getAt(doc, path, 'test'), raw.value ?? null)) throw new PatchError('inapplicable', `testing value ${path} failed: test failed`);
        break;
      default:
        throw new PatchError('inapplicable', `Unexpected kind: ${raw.op}`);
    }
  }
  return doc;
}

// ---- strategic merge patch ----

/** patchStrategy:"merge" lists of the built-in types and their patchMergeKey ('' for lists of primitives). */
function mergeKeyAt(path: string[]): string | undefined {
  const name = path[path.length - 1];
  const parent = path[path.length - 2];
  switch (name) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'volumeDevices':
      return 'devicePath';
    case 'hostAliases':
      return 'ip';
    case 'ownerReferences':
      return 'uid';
    case 'conditions':
    case 'addresses':
      return 'type';
    case 'topologySpreadConstraints':
      return 'topologyKey';
    case 'ports':
      // Container ports sit in a list item (path element '[]'); Service ports under spec.
      return parent === '[]' ? 'containerPort' : 'port';
    case 'finalizers':
      return path.length === 2 && parent === 'metadata' ? '' : undefined;
    default:
      return undefined;
  }
}

const DIRECTIVE = '$patch';
const RETAIN_KEYS = '$retainKeys';
const DELETE_PRIMITIVE = '$deleteFromPrimitiveList/';
const ELEMENT_ORDER = '$setElementOrder/';

export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) throw new PatchError('malformed', 'invalid JSON document');
  return smpMap(isObject(target ?? null) ? (target as JsonObject) : {}, patch, []) ?? {};
}

function smpMap(original: JsonObject, patch: JsonObject, path: string[]): JsonObject | undefined {
  const directive = patch[DIRECTIVE];
  if (directive === 'delete') return undefined;
  if (directive === 'replace') {
    const replaced: JsonObject = {};
    for (const [k, v] of Object.entries(patch)) if (k !== DIRECTIVE) replaced[k] = clone(v);
    return replaced;
  }
  if (directive !== undefined && directive !== 'merge') throw new PatchError('malformed', `Unrecognized $patch directive: ${String(directive)}`);
  const out: JsonObject = { ...original };
  for (const [k, v] of Object.entries(patch)) {
    if (k === DIRECTIVE || k === RETAIN_KEYS || k.startsWith(ELEMENT_ORDER)) continue;
    if (k.startsWith(DELETE_PRIMITIVE)) {
      const fieldName = k.slice(DELETE_PRIMITIVE.length);
      const current = out[fieldName];
      if (Array.isArray(current) && Array.isArray(v)) out[fieldName] = current.filter((item) => !v.some((d) => deepEqual(d, item)));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const childPath = [...path, k];
    const current = out[k];
    if (isObject(v)) {
      const merged = smpMap(isObject(current ?? null) ? (current as JsonObject) : {}, v, childPath);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else if (Array.isArray(v)) {
      out[k] = smpList(Array.isArray(current) ? current : [], v, childPath);
    } else {
      out[k] = v;
    }
  }
  const order = Object.entries(patch).filter(([k]) => k.startsWith(ELEMENT_ORDER));
  for (const [k, v] of order) {
    const fieldName = k.slice(ELEMENT_ORDER.length);
    const list = out[fieldName];
    if (Array.isArray(list) && Array.isArray(v)) out[fieldName] = reorder(list, v, mergeKeyAt([...path, fieldName]));
  }
  const retain = patch[RETAIN_KEYS];
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  return out;
}

function reorder(list: Json[], order: Json[], key: string | undefined): Json[] {
  const id = (item: Json) => (key && isObject(item) ? item[key] : item);
  const rank = (item: Json) => {
    const i = order.findIndex((o) => deepEqual(isObject(o) && key ? o[key] : o, id(item)));
    return i < 0 ? order.length : i;
  };
  return [...list].sort((a, b) => rank(a) - rank(b));
}

function smpList(original: Json[], patch: Json[], path: string[]): Json[] {
  const key = mergeKeyAt(path);
  if (key === undefined) {
    return patch.filter((item) => !(isObject(item) && item[DIRECTIVE] !== undefined)).map((item) => clone(item));
  }
  if (patch.some((item) => isObject(item) && item[DIRECTIVE] === 'replace')) {
    return patch.filter((item) => !(isObject(item) && item[DIRECTIVE] === 'replace')).map((item) => clone(item));
  }
  if (key === '') {
    const out = [...original];
    for (const item of patch) if (!out.some((o) => deepEqual(o, item))) out.push(clone(item));
    return out;
  }
  const out = original.map((item) => clone(item));
  for (const item of patch) {
    if (!isObject(item)) throw new PatchError('malformed', `found non-map element in a list with merge key ${key}`);
    const id = item[key];
    const at = out.findIndex((o) => isObject(o) && deepEqual(o[key], id));
    if (item[DIRECTIVE] === 'delete') {
      if (at >= 0) out.splice(at, 1);
      continue;
    }
    if (at >= 0) {
      const merged = smpMap(out[at] as JsonObject, item, [...path, '[]']);
      if (merged === undefined) out.splice(at, 1);
      else out[at] = merged;
    } else {
      out.push(smpMap({}, item, [...path, '[]']) ?? {});
    }
  }
  return out;
}
