// Field paths and field sets as structured-merge-diff (sigs.k8s.io/
// structured-merge-diff) defines them, which is what server-side apply's
// managedFields are made of:
//   - a path element is a field (`f:name`), an associative-list key
//     (`k:{"name":"x"}`, key fields sorted), a set value (`v:"x"`) or an index;
//   - a set serialises as fieldsV1: a tree of those elements, `{}` for a leaf
//     and `".": {}` where a path is itself a member and has children;
//   - ToFieldSet, Compare, Merge and RemoveItems walk objects the same way SMD
//     does (leaves, atomic lists as leaves, list items as members, empty maps
//     as leaves).
// What SMD takes from the OpenAPI schema comes from a small table here instead:
// which lists are associative (and their keys, with defaults), which are sets;
// every other list is atomic, as it is for built-in types without a list-type
// marker; which maps are atomic (label selectors and the like). Other maps are
// treated as structs (their fields are not members themselves).
import { deepEqual, isObject, type Json, type JsonObject } from './json.js';

export type PathElement =
  | { kind: 'field'; name: string }
  | { kind: 'key'; fields: [string, Json][] }
  | { kind: 'value'; value: Json }
  | { kind: 'index'; index: number };

export type Path = readonly PathElement[];

export const field = (name: string): PathElement => ({ kind: 'field', name });

/** Go's encoding/json escapes <, > and & (jsoniter's standard-library mode too). */
function goJSON(value: Json): string {
  return JSON.stringify(value).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

export function serializeElement(pe: PathElement): string {
  switch (pe.kind) {
    case 'field':
      return `f:${pe.name}`;
    case 'key':
      return `k:{${pe.fields.map(([k, v]) => `${goJSON(k)}:${goJSON(v)}`).join(',')}}`;
    case 'value':
      return `v:${goJSON(pe.value)}`;
    case 'index':
      return `i:${pe.index}`;
  }
}

export function parseElement(s: string): PathElement {
  const type = s.slice(0, 2);
  const rest = s.slice(2);
  switch (type) {
    case 'f:':
      return { kind: 'field', name: rest };
    case 'k:': {
      const parsed: unknown = JSON.parse(rest);
      if (!isObject(parsed as Json)) throw new Error(`bad key element ${s}`);
      const fields = Object.entries(parsed as JsonObject).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return { kind: 'key', fields };
    }
    case 'v:':
      return { kind: 'value', value: JSON.parse(rest) as Json };
    case 'i:':
      return { kind: 'index', index: Number(rest) };
    default:
      throw new Error(`unknown path element type in ${JSON.stringify(s)}`);
  }
}

/** value.ToString: strings quoted, numbers and booleans bare. */
function valueString(v: Json): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(valueString).join(',')}]`;
  return Object.entries(v)
    .map(([k, x]) => `${k}=${valueString(x)}`)
    .join('');
}

/** PathElement.String(): `.name`, `[name="x"]`, `[="v"]`, `[3]`. */
export function elementString(pe: PathElement): string {
  switch (pe.kind) {
    case 'field':
      return `.${pe.name}`;
    case 'key':
      return `[${pe.fields.map(([k, v]) => `${k}=${valueString(v)}`).join(',')}]`;
    case 'value':
      return `[=${valueString(pe.value)}]`;
    case 'index':
      return `[${pe.index}]`;
  }
}

/** Path.String(): what conflict messages and causes print, e.g. `.spec.template.spec.containers[name="dns"].image`. */
export function pathString(path: Path): string {
  return path.map(elementString).join('');
}

const KIND_ORDER: Record<PathElement['kind'], number> = { field: 0, key: 1, value: 2, index: 3 };

function compareValues(a: Json, b: Json): number {
  const rank = (v: Json) => (v === null ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2 : typeof v === 'string' ? 3 : Array.isArray(v) ? 4 : 5);
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = JSON.stringify(a);
  const sb = JSON.stringify(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** PathElement.Compare: fields, then keys, then values, then indexes. */
export function compareElements(a: PathElement, b: PathElement): number {
  if (a.kind !== b.kind) return KIND_ORDER[a.kind] - KIND_ORDER[b.kind];
  if (a.kind === 'field' && b.kind === 'field') return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  if (a.kind === 'key' && b.kind === 'key') {
    for (let i = 0; ; i++) {
      if (i >= a.fields.length && i >= b.fields.length) return 0;
      if (i >= a.fields.length) return -1;
      if (i >= b.fields.length) return 1;
      const [an, av] = a.fields[i];
      const [bn, bv] = b.fields[i];
      if (an !== bn) return an < bn ? -1 : 1;
      const c = compareValues(av, bv);
      if (c !== 0) return c;
    }
  }
  if (a.kind === 'value' && b.kind === 'value') return compareValues(a.value, b.value);
  if (a.kind === 'index' && b.kind === 'index') return a.index - b.index;
  return 0;
}

const pathKey = (path: Path): string => JSON.stringify(path.map(serializeElement));

/** A set of field paths (fieldpath.Set), with the operations managedFields needs. */
export class FieldSet {
  private readonly paths = new Map<string, Path>();

  constructor(paths: Iterable<Path> = []) {
    for (const p of paths) this.add(p);
  }

  add(path: Path): void {
    if (path.length > 0) this.paths.set(pathKey(path), path);
  }

  has(path: Path): boolean {
    return this.paths.has(pathKey(path));
  }

  get size(): number {
    return this.paths.size;
  }

  isEmpty(): boolean {
    return this.paths.size === 0;
  }

  [Symbol.iterator](): IterableIterator<Path> {
    return this.paths.values();
  }

  union(other: FieldSet): FieldSet {
    return new FieldSet([...this, ...other]);
  }

  difference(other: FieldSet): FieldSet {
    return new FieldSet([...this].filter((p) => !other.has(p)));
  }

  intersection(other: FieldSet): FieldSet {
    return new FieldSet([...this].filter((p) => other.has(p)));
  }

  equals(other: FieldSet): boolean {
    return this.size === other.size && [...this].every((p) => other.has(p));
  }

  /** The paths below `pe`, with `pe` taken off the front. */
  withPrefix(pe: PathElement): FieldSet {
    const head = serializeElement(pe);
    const out = new FieldSet();
    for (const p of this) if (p.length > 1 && serializeElement(p[0]) === head) out.add(p.slice(1));
    return out;
  }

  /** Paths sorted as SMD orders them (element by element). */
  sorted(): Path[] {
    return [...this].sort((a, b) => {
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        const c = compareElements(a[i], b[i]);
        if (c !== 0) return c;
      }
      return a.length - b.length;
    });
  }

  /** The fieldsV1 encoding. */
  toFieldsV1(): JsonObject {
    return emit(buildTrie(this), false);
  }

  static fromFieldsV1(encoded: Json | undefined): FieldSet {
    const set = new FieldSet();
    const walk = (node: JsonObject, prefix: PathElement[]) => {
      for (const [key, value] of Object.entries(node)) {
        if (key === '.') {
          set.add(prefix);
          continue;
        }
        const path = [...prefix, parseElement(key)];
        if (isObject(value) && Object.keys(value).length > 0) walk(value, path);
        else set.add(path);
      }
    };
    if (isObject(encoded)) walk(encoded, []);
    return set;
  }
}

interface TrieNode {
  members: Map<string, PathElement>;
  children: Map<string, { pe: PathElement; node: TrieNode }>;
}

const newNode = (): TrieNode => ({ members: new Map(), children: new Map() });

function buildTrie(set: FieldSet): TrieNode {
  const root = newNode();
  for (const path of set) {
    let node = root;
    path.forEach((pe, i) => {
      const key = serializeElement(pe);
      if (i === path.length - 1) {
        node.members.set(key, pe);
        return;
      }
      let next = node.children.get(key);
      if (!next) {
        next = { pe, node: newNode() };
        node.children.set(key, next);
      }
      node = next.node;
    });
  }
  return root;
}

function emit(node: TrieNode, includeSelf: boolean): JsonObject {
  const out: JsonObject = {};
  if (includeSelf && (node.members.size > 0 || node.children.size > 0)) out['.'] = {};
  const elements = new Map<string, PathElement>();
  for (const [k, pe] of node.members) elements.set(k, pe);
  for (const [k, c] of node.children) elements.set(k, c.pe);
  const ordered = [...elements.entries()].sort(([, a], [, b]) => compareElements(a, b));
  for (const [key] of ordered) {
    const childNode = node.children.get(key);
    out[key] = childNode ? emit(childNode.node, node.members.has(key)) : {};
  }
  return out;
}

// ---- list semantics (the part of the OpenAPI schema SMD would consult) ----

interface KeyField {
  name: string;
  default?: Json;
}

export type ListType = { type: 'atomic' } | { type: 'set' } | { type: 'map'; keys: KeyField[] };

const ATOMIC: ListType = { type: 'atomic' };
const byName: ListType = { type: 'map', keys: [{ name: 'name' }] };

/** `+listType=map` lists of the built-in types (with their `+listMapKey`s), by field name. */
const ASSOCIATIVE: Record<string, ListType> = {
  containers: byName,
  initContainers: byName,
  ephemeralContainers: byName,
  env: byName,
  volumes: byName,
  imagePullSecrets: byName,
  resourceClaims: byName,
  volumeMounts: { type: 'map', keys: [{ name: 'mountPath' }] },
  volumeDevices: { type: 'map', keys: [{ name: 'devicePath' }] },
  hostAliases: { type: 'map', keys: [{ name: 'ip' }] },
  ownerReferences: { type: 'map', keys: [{ name: 'uid' }] },
  topologySpreadConstraints: { type: 'map', keys: [{ name: 'topologyKey' }, { name: 'whenUnsatisfiable' }] },
  conditions: { type: 'map', keys: [{ name: 'type' }] },
};

const CONTAINER_PORTS: ListType = { type: 'map', keys: [{ name: 'containerPort' }, { name: 'protocol', default: 'TCP' }] };
const SERVICE_PORTS: ListType = { type: 'map', keys: [{ name: 'port' }, { name: 'protocol', default: 'TCP' }] };

/** The list semantics at `path` (the path of the list itself). */
export function listTypeAt(path: Path): ListType {
  const last = path[path.length - 1];
  if (!last || last.kind !== 'field') return ATOMIC;
  const parent = path[path.length - 2];
  if (last.name === 'finalizers' && parent?.kind === 'field' && parent.name === 'metadata' && path.length === 2) return { type: 'set' };
  if (last.name === 'podCIDRs' || last.name === 'clusterIPs') return { type: 'set' };
  // Ports inside a container (a keyed list item) are container ports; elsewhere (Service.spec) service ports.
  if (last.name === 'ports') return parent?.kind === 'key' ? CONTAINER_PORTS : SERVICE_PORTS;
  return ASSOCIATIVE[last.name] ?? ATOMIC;
}

/**
 * Maps the built-in types mark atomic (`+structType=atomic`, `+mapType=atomic`):
 * label selectors (so managedFields show `f:selector: {}`), Service and Pod
 * selectors, key references; and the items of imagePullSecrets.
 */
const ATOMIC_MAPS = new Set(['selector', 'labelSelector', 'namespaceSelector', 'nodeSelector', 'configMapKeyRef', 'secretKeyRef', 'fieldRef', 'resourceFieldRef']);

export function mapIsAtomic(path: Path): boolean {
  const last = path[path.length - 1];
  if (!last) return false;
  if (last.kind === 'field') return ATOMIC_MAPS.has(last.name);
  const parent = path[path.length - 2];
  return last.kind === 'key' && parent?.kind === 'field' && parent.name === 'imagePullSecrets';
}

/** An error SMD reports while typing an object (missing or duplicate list keys). */
export class TypedValueError extends Error {}

/** The path element of a list item, or the error SMD gives for it. */
export function itemElement(type: ListType, item: Json, index: number, listPath: Path): PathElement {
  if (type.type === 'set') return { kind: 'value', value: item };
  if (type.type === 'atomic') return { kind: 'index', index };
  if (!isObject(item)) throw new TypedValueError(`${pathString(listPath)}: element ${index}: associative list with keys has an element that is not a map`);
  const fields: [string, Json][] = [];
  for (const key of type.keys) {
    const value = item[key.name] ?? key.default;
    if (value === undefined) {
      throw new TypedValueError(
        `${pathString(listPath)}: element ${index}: associative list with keys has an element that omits key field "${key.name}" (and doesn't have default value)`,
      );
    }
    fields.push([key.name, value]);
  }
  fields.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { kind: 'key', fields };
}

// ---- ToFieldSet ----

/** Every field path an object sets (typed.TypedValue.ToFieldSet). Throws TypedValueError on bad list keys. */
export function toFieldSet(obj: JsonObject): FieldSet {
  const set = new FieldSet();
  const walk = (value: Json, path: PathElement[]) => {
    if (Array.isArray(value)) {
      const type = listTypeAt(path);
      if (type.type === 'atomic') {
        set.add(path);
        return;
      }
      const seen = new Set<string>();
      const duplicates = new Set<string>();
      const elements = value.map((item, i) => itemElement(type, item, i, path));
      for (const pe of elements) {
        const key = serializeElement(pe);
        if (seen.has(key)) {
          if (!duplicates.has(key)) set.add([...path, pe]);
          duplicates.add(key);
        } else seen.add(key);
      }
      value.forEach((item, i) => {
        const pe = elements[i];
        if (duplicates.has(serializeElement(pe))) return;
        const itemPath = [...path, pe];
        if (isObject(item) && !mapIsAtomic(itemPath)) walkMap(item, itemPath);
        set.add(itemPath);
      });
      return;
    }
    if (isObject(value)) {
      if (Object.keys(value).length === 0 || mapIsAtomic(path)) set.add(path);
      else walkMap(value, path);
      return;
    }
    set.add(path);
  };
  const walkMap = (m: JsonObject, path: PathElement[]) => {
    for (const [k, v] of Object.entries(m)) walk(v, [...path, field(k)]);
  };
  walkMap(obj, []);
  return set;
}

// ---- Compare ----

export interface Comparison {
  added: FieldSet;
  removed: FieldSet;
  modified: FieldSet;
}

type Shape = 'absent' | 'map' | 'list' | 'scalar';
const shapeOf = (v: Json | undefined): Shape => (v === undefined ? 'absent' : Array.isArray(v) ? 'list' : isObject(v) ? 'map' : 'scalar');
const isEmptyContainer = (v: Json | undefined): boolean =>
  v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);

/** typed.TypedValue.Compare: which paths the change from lhs to rhs adds, removes and modifies. */
export function compare(lhs: JsonObject, rhs: JsonObject): Comparison {
  const out: Comparison = { added: new FieldSet(), removed: new FieldSet(), modified: new FieldSet() };
  const leaf = (l: Json | undefined, r: Json | undefined, path: Path) => {
    if (l === undefined) out.added.add(path);
    else if (r === undefined) out.removed.add(path);
    else if (!deepEqual(l, r)) out.modified.add(path);
  };
  const walk = (l: Json | undefined, r: Json | undefined, path: PathElement[]) => {
    const ls = shapeOf(l);
    const rs = shapeOf(r);
    if (ls !== 'absent' && rs !== 'absent' && ls !== rs) {
      leaf(l, r, path);
      return;
    }
    const shape = ls === 'absent' ? rs : ls;
    if (shape === 'scalar' || (shape === 'map' && mapIsAtomic(path)) || (shape !== 'absent' && isEmptyContainer(l) && isEmptyContainer(r))) {
      leaf(l, r, path);
      return;
    }
    if (shape === 'list') {
      const type = listTypeAt(path);
      if (type.type === 'atomic') {
        leaf(l, r, path);
        return;
      }
      const index = (list: Json | undefined) => {
        const m = new Map<string, { pe: PathElement; value: Json }>();
        if (Array.isArray(list)) list.forEach((item, i) => {
          const pe = itemElement(type, item, i, path);
          const key = serializeElement(pe);
          if (!m.has(key)) m.set(key, { pe, value: item });
        });
        return m;
      };
      const li = index(l);
      const ri = index(r);
      for (const key of new Set([...li.keys(), ...ri.keys()])) {
        const pe = (li.get(key) ?? ri.get(key))!.pe;
        walk(li.get(key)?.value, ri.get(key)?.value, [...path, pe]);
      }
    } else if (shape === 'map') {
      const lm = isObject(l) ? l : {};
      const rm = isObject(r) ? r : {};
      for (const k of new Set([...Object.keys(lm), ...Object.keys(rm)])) walk(lm[k], rm[k], [...path, field(k)]);
    }
    if (l === undefined) out.added.add(path);
    else if (r === undefined) out.removed.add(path);
  };
  walk(lhs, rhs, []);
  return out;
}

// ---- Merge (apply) ----

/** typed.TypedValue.Merge: the applied configuration laid over the live object. */
export function merge(lhs: Json | undefined, rhs: Json | undefined, path: PathElement[] = []): Json | undefined {
  if (rhs === undefined) return lhs;
  if (lhs === undefined || lhs === null || rhs === null) return structuredClone(rhs);
  if (isObject(lhs) && isObject(rhs)) {
    if (mapIsAtomic(path)) return structuredClone(rhs);
    const out: JsonObject = { ...lhs };
    for (const [k, v] of Object.entries(rhs)) {
      const merged = merge(lhs[k], v, [...path, field(k)]);
      if (merged !== undefined) out[k] = merged;
    }
    return out;
  }
  if (Array.isArray(lhs) && Array.isArray(rhs)) {
    const type = listTypeAt(path);
    if (type.type === 'atomic') return structuredClone(rhs);
    return mergeList(type, lhs, rhs, path);
  }
  return structuredClone(rhs);
}

/** SMD's list merge order: items of both in the config's order, live-only items kept where they were. */
function mergeList(type: ListType, lhs: Json[], rhs: Json[], path: PathElement[]): Json[] {
  const lPEs = lhs.map((item, i) => serializeElement(itemElement(type, item, i, path)));
  const rElements = rhs.map((item, i) => itemElement(type, item, i, path));
  const rPEs = rElements.map(serializeElement);
  const rItems = new Map<string, Json>();
  rPEs.forEach((key, i) => {
    if (rItems.has(key)) throw new TypedValueError(`${pathString(path)}: duplicate entries for key ${elementString(rElements[i])}`);
    rItems.set(key, rhs[i]);
  });
  const lItems = new Map<string, Json>();
  lPEs.forEach((key, i) => {
    if (!lItems.has(key)) lItems.set(key, lhs[i]);
  });
  const shared = rPEs.filter((key) => lItems.has(key));
  let nextShared = shared.shift();
  const mergedR = new Set<string>();
  const out: Json[] = [];
  const push = (value: Json | undefined) => {
    if (value !== undefined) out.push(value);
  };
  const itemPath = (key: string, i: number, fromRight: boolean): PathElement[] => [
    ...path,
    fromRight ? rElements[i] : itemElement(type, lhs[i], i, path),
  ];
  let l = 0;
  let r = 0;
  while (l < lPEs.length || r < rPEs.length) {
    if (l < lPEs.length && r < rPEs.length) {
      const key = lPEs[l];
      if (key === rPEs[r]) {
        mergedR.add(key);
        push(merge(lItems.get(key), rItems.get(key), itemPath(key, r, true)));
        l++;
        r++;
        nextShared = shared.shift();
        continue;
      }
      if (rItems.has(key) && nextShared !== undefined && nextShared !== key) {
        l++;
        continue;
      }
    }
    if (l < lPEs.length) {
      const key = lPEs[l];
      if (!rItems.has(key)) {
        push(structuredClone(lhs[l]));
        l++;
        continue;
      } else if (mergedR.has(key)) {
        l++;
      }
    }
    if (r < rPEs.length) {
      const key = rPEs[r];
      mergedR.add(key);
      push(merge(lItems.get(key), rItems.get(key), itemPath(key, r, true)));
      r++;
      if (nextShared !== undefined && nextShared === key) nextShared = shared.shift();
    }
  }
  return out;
}

// ---- RemoveItems ----

/**
 * typed.TypedValue.RemoveItems: the object without the given paths. A map or
 * list left empty by the removal goes too (in the real server it becomes null
 * and the typed round trip drops it).
 */
export function removeItems(value: JsonObject, toRemove: FieldSet): JsonObject {
  const walk = (v: Json, set: FieldSet, path: PathElement[]): Json | undefined => {
    if (Array.isArray(v)) {
      const type = listTypeAt(path);
      if (v.length === 0 || type.type === 'atomic') return v;
      const items: Json[] = [];
      v.forEach((item, i) => {
        const pe = itemElement(type, item, i, path);
        if (set.has([pe])) return;
        const sub = set.withPrefix(pe);
        const kept = sub.isEmpty() ? item : walk(item, sub, [...path, pe]);
        if (kept !== undefined) items.push(kept);
      });
      return items.length > 0 ? items : undefined;
    }
    if (isObject(v)) {
      if (Object.keys(v).length === 0 || mapIsAtomic(path)) return v;
      const out: JsonObject = {};
      for (const [k, x] of Object.entries(v)) {
        const pe = field(k);
        if (set.has([pe])) continue;
        const sub = set.withPrefix(pe);
        const kept = sub.isEmpty() ? x : walk(x, sub, [...path, pe]);
        if (kept !== undefined) out[k] = kept;
      }
      return Object.keys(out).length > 0 ? out : undefined;
    }
    return v;
  };
  const result = walk(value, toRemove, []);
  return isObject(result ?? null) ? (result as JsonObject) : {};
}

/** Map entries whose value is null: the typed round trip of the real server drops them. */
export function dropNulls(value: Json): Json {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
    return out;
  }
  return value;
}
