// metadata.managedFields and server-side apply, following the real server's
// pipeline (k8s.io/apimachinery/pkg/util/managedfields/internal over
// structured-merge-diff's merge.Updater):
//   - a manager's identity is its name, operation and, for Update only, the
//     apiVersion (BuildManagerIdentifier), so `foo` applying and `foo` patching
//     are two entries;
//   - Update (create, replace, non-apply patch): the writer gains the fields it
//     added or changed and loses those it removed; other managers lose them too
//     (updates always win). Objects that never had managedFields are not
//     tracked by updates (skipNonApplied).
//   - Apply: merge the configuration over the live object, prune what this
//     manager applied last time and no longer does unless someone else owns it,
//     then refuse (409) if a field another manager owns would change, unless
//     force, which moves those fields to the applier. The first apply to an
//     object without managedFields makes `before-first-apply` own all of it.
//   - apiVersion, kind and the server-owned metadata (name, namespace, uid,
//     resourceVersion, …) are never owned (stripMeta); a manager left owning
//     nothing disappears; the time of an entry moves only when its write changed
//     something.
import { deepEqual, isObject, type Json, type JsonObject } from './json.js';
import { compare, dropNulls, field, FieldSet, merge, pathString, removeItems, toFieldSet, type Path } from './fieldpath.js';
import { applyConflict, type StatusCause } from './status.js';

export type Operation = 'Apply' | 'Update';

export interface ManagerEntry {
  manager: string;
  operation: Operation;
  apiVersion: string;
  /** RFC 3339, seconds. */
  time?: string;
  subresource?: string;
  set: FieldSet;
}

/** BuildManagerIdentifier: the JSON of the entry without fields and time (and without apiVersion for appliers). */
export function managerIdentity(e: Pick<ManagerEntry, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  const id: JsonObject = { manager: e.manager, operation: e.operation };
  if (e.operation === 'Update') id.apiVersion = e.apiVersion;
  if (e.subresource) id.subresource = e.subresource;
  return JSON.stringify(id);
}

export type Managers = Map<string, ManagerEntry>;

export function decodeManagedFields(encoded: Json | undefined): Managers {
  const out: Managers = new Map();
  if (!Array.isArray(encoded)) return out;
  for (const e of encoded) {
    if (!isObject(e) || typeof e.manager !== 'string' || (e.operation !== 'Apply' && e.operation !== 'Update')) continue;
    const entry: ManagerEntry = {
      manager: e.manager,
      operation: e.operation,
      apiVersion: typeof e.apiVersion === 'string' ? e.apiVersion : '',
      time: typeof e.time === 'string' ? e.time : undefined,
      subresource: typeof e.subresource === 'string' && e.subresource !== '' ? e.subresource : undefined,
      set: FieldSet.fromFieldsV1(e.fieldsV1),
    };
    out.set(managerIdentity(entry), entry);
  }
  return out;
}

/** The wire form, sorted as sortEncodedManagedFields sorts it (operation, time, manager, apiVersion, subresource). */
export function encodeManagedFields(managers: Managers): JsonObject[] {
  const entries = [...managers.values()].sort((p, q) => {
    if (p.operation !== q.operation) return p.operation < q.operation ? -1 : 1;
    const pt = p.time ? Date.parse(p.time) / 1000 : 0;
    const qt = q.time ? Date.parse(q.time) / 1000 : 0;
    if (pt !== qt) return pt - qt;
    if (p.manager !== q.manager) return p.manager < q.manager ? -1 : 1;
    if (p.apiVersion !== q.apiVersion) return p.apiVersion < q.apiVersion ? -1 : 1;
    return (p.subresource ?? '') < (q.subresource ?? '') ? -1 : 1;
  });
  return entries.map((e) => {
    const out: JsonObject = { manager: e.manager, operation: e.operation, apiVersion: e.apiVersion };
    if (e.time) out.time = e.time;
    out.fieldsType = 'FieldsV1';
    out.fieldsV1 = e.set.toFieldsV1();
    if (e.subresource) out.subresource = e.subresource;
    return out;
  });
}

/** metav1.Time on the wire: RFC 3339 in UTC, whole seconds. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const STRIPPED: Path[] = [
  [field('apiVersion')],
  [field('kind')],
  [field('metadata')],
  ...['name', 'namespace', 'creationTimestamp', 'selfLink', 'uid', 'clusterName', 'generation', 'managedFields', 'resourceVersion'].map((f) => [
    field('metadata'),
    field(f),
  ]),
];
const STRIP_SET = new FieldSet(STRIPPED);

/** EnsureNamedFieldsAreMembers, with every field that has children taken as a named (struct) field. */
function ensureNamed(set: FieldSet): FieldSet {
  const out = new FieldSet(set);
  for (const path of set) {
    for (let i = 1; i < path.length; i++) if (path[i - 1].kind === 'field') out.add(path.slice(0, i));
  }
  return out;
}

function copyManagers(m: Managers): Managers {
  return new Map([...m].map(([k, e]) => [k, { ...e }]));
}

interface Conflicts {
  byManager: Map<string, FieldSet>;
}

/** merge.Updater.update: take changed fields from the other managers (or report them as conflicts). */
function takeFromOthers(oldObj: JsonObject, newObj: JsonObject, managers: Managers, self: string, force: boolean): Conflicts {
  const cmp = compare(oldObj, newObj);
  const changed = cmp.modified.union(cmp.added);
  const conflicts: Conflicts = { byManager: new Map() };
  for (const [id, entry] of managers) {
    if (id === self) continue;
    const c = entry.set.intersection(changed);
    if (!c.isEmpty()) conflicts.byManager.set(id, c);
  }
  if (!force && conflicts.byManager.size > 0) return conflicts;
  for (const [id, c] of conflicts.byManager) {
    const entry = managers.get(id)!;
    entry.set = entry.set.difference(c);
  }
  for (const [id, entry] of managers) {
    if (id === self) continue;
    entry.set = entry.set.difference(cmp.removed);
  }
  for (const [id, entry] of managers) if (entry.set.isEmpty()) managers.delete(id);
  return { byManager: new Map() };
}

/** printManager: appliers by name; updaters with `using <apiVersion>`; a subresource named. */
function printManager(e: ManagerEntry): string {
  let s = JSON.stringify(e.manager);
  if (e.subresource) s += ` with subresource ${JSON.stringify(e.subresource)}`;
  if (e.operation === 'Update') s += ` using ${e.apiVersion}`;
  return s;
}

function conflictError(conflicts: Conflicts, managers: Managers): Error {
  const ids = [...conflicts.byManager.keys()].sort();
  const list: { manager: ManagerEntry; path: Path }[] = [];
  for (const id of ids) for (const path of conflicts.byManager.get(id)!.sorted()) list.push({ manager: managers.get(id)!, path });
  const causes: StatusCause[] = list.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with ${printManager(c.manager)}`, field: pathString(c.path) }));
  let message: string;
  if (list.length === 1) {
    message = `Apply failed with 1 conflict: conflict with ${printManager(list[0].manager)}: ${pathString(list[0].path)}`;
  } else {
    const lines: string[] = [];
    for (const id of ids) {
      lines.push(`conflicts with ${printManager(managers.get(id)!)}:`);
      for (const path of conflicts.byManager.get(id)!.sorted()) lines.push(`- ${pathString(path)}`);
    }
    message = `Apply failed with ${list.length} conflicts: ${lines.join('\n')}`;
  }
  return applyConflict(causes, message);
}

export interface UpdateRequest {
  /** The stored object before the write ({} for a create), without managedFields. */
  live: JsonObject;
  /** The object about to be stored, without managedFields. */
  next: JsonObject;
  managers: Managers;
  manager: string;
  apiVersion: string;
  isCreate: boolean;
  now: Date;
}

/** A non-apply write's effect on managedFields (Update operation). */
export function trackUpdate(r: UpdateRequest): Managers {
  if (r.managers.size === 0 && !r.isCreate) return r.managers;
  const managers = copyManagers(r.managers);
  const selfId = managerIdentity({ manager: r.manager, operation: 'Update', apiVersion: r.apiVersion });
  const current = '{"current-operation":true}';
  let cmp;
  try {
    takeFromOthers(r.live, r.next, managers, current, true);
    cmp = compare(r.live, r.next);
  } catch {
    // UpdateNoErrors: a typing error keeps the managedFields as they were.
    return r.managers;
  }
  const taken = cmp.modified.union(cmp.added).difference(cmp.removed).difference(STRIP_SET);
  if (taken.isEmpty()) return managers;
  const previous = managers.get(selfId);
  managers.set(selfId, {
    manager: r.manager,
    operation: 'Update',
    apiVersion: r.apiVersion,
    time: rfc3339(r.now),
    set: previous ? previous.set.union(taken) : taken,
  });
  return managers;
}

export interface ApplyRequest {
  /** The stored object (without managedFields), undefined when apply creates it. */
  live: JsonObject | undefined;
  /** The applied configuration (status already dropped for kinds with a status subresource). */
  config: JsonObject;
  managers: Managers;
  manager: string;
  apiVersion: string;
  force: boolean;
  now: Date;
}

export interface ApplyResult {
  object: JsonObject;
  managers: Managers;
  /** False when the merge left the object exactly as it was. */
  changed: boolean;
}

/** Server-side apply. Throws the 409 conflict KubeError, or TypedValueError for bad list keys. */
export function applyConfig(r: ApplyRequest): ApplyResult {
  const live = r.live ?? {};
  let managers = copyManagers(r.managers);
  if (managers.size === 0 && r.live !== undefined) {
    // skipNonApplied: whatever the object holds belongs to `before-first-apply` from now on.
    const before = compare({}, live);
    const set = before.added.difference(STRIP_SET);
    if (!set.isEmpty()) {
      const entry: ManagerEntry = { manager: 'before-first-apply', operation: 'Update', apiVersion: r.apiVersion, time: rfc3339(r.now), set };
      managers.set(managerIdentity(entry), entry);
    }
  }
  const selfId = managerIdentity({ manager: r.manager, operation: 'Apply', apiVersion: r.apiVersion });
  const merged = merge(live, r.config);
  const mergedObj: JsonObject = isObject(merged ?? null) ? (merged as JsonObject) : {};
  const lastSet = managers.get(selfId)?.set;
  const previousTime = managers.get(selfId)?.time;
  const appliedSet = toFieldSet(r.config);
  managers.set(selfId, { manager: r.manager, operation: 'Apply', apiVersion: r.apiVersion, time: previousTime, set: appliedSet });

  const pruned = prune(mergedObj, managers, lastSet);
  const conflicts = takeFromOthers(live, pruned, managers, selfId, r.force);
  if (conflicts.byManager.size > 0) throw conflictError(conflicts, managers);

  const self = managers.get(selfId)!;
  self.set = self.set.difference(STRIP_SET);
  if (self.set.isEmpty()) managers.delete(selfId);
  const object = dropNulls(pruned) as JsonObject;
  const changed = !deepEqual(live, object);
  if (changed && managers.has(selfId)) managers.get(selfId)!.time = rfc3339(r.now);
  managers = new Map([...managers].filter(([, e]) => !e.set.isEmpty()));
  return { object, managers, changed };
}

/** merge.Updater.prune: drop what the applier owned last time and not now, unless anyone still owns it. */
function prune(merged: JsonObject, managers: Managers, lastSet: FieldSet | undefined): JsonObject {
  if (!lastSet || lastSet.isEmpty()) return merged;
  const last = ensureNamed(lastSet);
  let pruned = removeItems(merged, last);
  // addBackOwnedItems
  let owned = new FieldSet();
  for (const e of managers.values()) owned = owned.union(e.set);
  const mergedSet = ensureNamed(toFieldSet(merged));
  pruned = removeItems(merged, mergedSet.difference(ensureNamed(toFieldSet(pruned)).union(ensureNamed(owned))));
  // addBackDanglingItems: only what this applier owned may go.
  return removeItems(merged, mergedSet.difference(ensureNamed(toFieldSet(pruned))).intersection(last));
}
