// kOps' way of layering the user's spec over defaults (reflectutils.JSONMergeStruct:
// the source marshalled to JSON with omitempty, unmarshalled over the destination).
// A value the user left empty (absent, null, "", [] or {}) never replaces a
// default; an object is merged key by key (so a map such as featureGates keeps
// the default's other keys); a list is merged item by item and cut to the
// user's length, as Go's decoder does with a slice it reuses.

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What omitempty leaves out of the user's JSON. */
function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  return false;
}

function mergeValue(dest: unknown, src: unknown): unknown {
  if (isObject(src)) {
    const target = isObject(dest) ? dest : {};
    mergeInto(target, src);
    return target;
  }
  if (Array.isArray(src)) {
    const target = Array.isArray(dest) ? dest : [];
    const merged = src.map((item: unknown, i) => (isObject(item) && isObject(target[i]) ? mergeValue(target[i], item) : structuredClone(item)));
    return merged;
  }
  return src;
}

/** Merges `src` over `dest` in place, kOps-style. */
export function mergeInto(dest: JsonObject, src: JsonObject): void {
  for (const [key, value] of Object.entries(src)) {
    if (isEmpty(value)) continue;
    dest[key] = mergeValue(Object.hasOwn(dest, key) ? dest[key] : undefined, value);
  }
}

/** The object under `key`, created when absent (the `if x == nil { x = &T{} }` of kOps' builders). */
export function child(parent: JsonObject, key: string): JsonObject {
  const value = parent[key];
  if (isObject(value)) return value;
  const created: JsonObject = {};
  parent[key] = created;
  return created;
}

export function stringField(section: JsonObject | undefined, key: string): string | undefined {
  const value = section?.[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
