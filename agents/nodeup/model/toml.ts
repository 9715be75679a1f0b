// Just enough TOML for containerd's config.toml: nested tables of strings,
// booleans, integers and lists of strings, keys sorted (as kOps' tomlwriter
// does), quoted when they are not bare keys. Values come from the spec, so
// every string is escaped: it can never close its quotes or start a new line.

export type TomlValue = string | number | boolean | string[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

function isTable(value: TomlValue): value is TomlTable {
  return typeof value === 'object' && !Array.isArray(value);
}

function key(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : basicString(name);
}

/** A TOML basic string: JSON's escapes are TOML's (\", \\, \n, \t, \uXXXX, ...). */
function basicString(text: string): string {
  return JSON.stringify(text).replace(/\u007f/g, '\\u007f');
}

function scalar(value: Exclude<TomlValue, TomlTable>): string {
  if (typeof value === 'string') return basicString(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`TOML: ${value} is not an integer`);
    return String(value);
  }
  return `[${value.map(basicString).join(', ')}]`;
}

/** Sets a value at a path of table names, creating tables on the way (a scalar in the way is replaced). */
export function setPath(root: TomlTable, path: readonly string[], value: TomlValue): void {
  let node = root;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    node = next !== undefined && isTable(next) ? next : (node[part] = {});
  }
  node[path[path.length - 1]] = value;
}

export function toToml(root: TomlTable): string {
  const lines: string[] = [];
  const emit = (table: TomlTable, path: string[]) => {
    const keys = Object.keys(table).sort();
    const scalars = keys.filter((k) => !isTable(table[k]));
    const tables = keys.filter((k) => isTable(table[k]));
    if (path.length > 0 && (scalars.length > 0 || tables.length === 0)) {
      if (lines.length > 0) lines.push('');
      lines.push(`[${path.map(key).join('.')}]`);
    }
    for (const k of scalars) lines.push(`${path.length > 0 ? '  ' : ''}${key(k)} = ${scalar(table[k] as Exclude<TomlValue, TomlTable>)}`);
    for (const k of tables) emit(table[k] as TomlTable, [...path, k]);
  };
  emit(root, []);
  return `${lines.join('\n')}\n`;
}
