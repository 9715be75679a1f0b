// kOps' etcd-manager writes its store files (`_etcd_backup.meta`,
// `control/etcd-cluster-spec`, `_command.json`) with golang/protobuf's jsonpb
// Marshaler{Indent: "  "} (pkg/apis/etcd/json.go). This module writes that form
// byte for byte and reads it leniently.
//
// Writing, as jsonpb v1.4 does: fields in proto field-number order under their
// lowerCamel JSON names; fields holding the zero value ("" / 0 / absent message)
// left out; int64 as a quoted decimal string, int32 as a bare number; each level
// indented two spaces, `"name": value` with one space, no trailing newline.
//
// Reading: kOps' reader (jsonpb.Unmarshal, AllowUnknownFields false) accepts a
// field under its JSON name or its proto name, and integers as numbers or
// strings; it refuses unknown fields. Ours accepts the same and ignores unknown
// fields, so files written by other tools still load.

export type JsonpbValue =
  | { kind: 'string'; value: string | undefined }
  | { kind: 'int32'; value: number | undefined }
  | { kind: 'int64'; value: bigint | undefined }
  | { kind: 'message'; value: JsonpbField[] | undefined };

/** One field: its JSON (lowerCamel) name and value, listed in field-number order. */
export type JsonpbField = [jsonName: string, value: JsonpbValue];

function isZero(v: JsonpbValue): boolean {
  switch (v.kind) {
    case 'string':
      return v.value === undefined || v.value === '';
    case 'int32':
      return v.value === undefined || v.value === 0;
    case 'int64':
      return v.value === undefined || v.value === 0n;
    case 'message':
      return v.value === undefined; // an empty message that is set is still written, as {}
  }
}

function writeMessage(fields: JsonpbField[], indent: string): string {
  const present = fields.filter(([, v]) => !isZero(v));
  if (present.length === 0) return `{\n${indent}}`;
  const inner = indent + '  ';
  const lines = present.map(([name, v]) => `${inner}${JSON.stringify(name)}: ${writeValue(v, inner)}`);
  return `{\n${lines.join(',\n')}\n${indent}}`;
}

/** Go's json.Marshal of a string: like JSON.stringify, but <, >, & and U+2028/9 escaped (HTML-safe). */
export function goJSONString(value: string): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function writeValue(v: JsonpbValue, indent: string): string {
  switch (v.kind) {
    case 'string':
      return goJSONString(v.value ?? '');
    case 'int32':
      return String(v.value);
    case 'int64':
      return `"${String(v.value)}"`;
    case 'message':
      return writeMessage(v.value ?? [], indent);
  }
}

/** The exact text jsonpb.Marshaler{Indent: "  "} writes for this message. */
export function formatJsonpb(fields: JsonpbField[]): string {
  return writeMessage(fields, '');
}

/** A JSON object's field by its JSON name or its proto (snake_case) name; the JSON name wins, like jsonpb. */
export function field(obj: Record<string, unknown>, jsonName: string, protoName: string): unknown {
  return obj[jsonName] !== undefined && obj[jsonName] !== null ? obj[jsonName] : obj[protoName] ?? undefined;
}

export class JsonpbError extends Error {}

/** Parses text as a JSON object; JsonpbError naming `what` otherwise. */
export function parseObject(text: string, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new JsonpbError(`${what}: not JSON (${(err as Error).message})`);
  }
  if (!isRecord(doc)) throw new JsonpbError(`${what}: want a JSON object`);
  return doc;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A string field (absent → undefined). */
export function readString(v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new JsonpbError(`${what}: want a string, got ${JSON.stringify(v)}`);
  return v;
}

/** An int32 as a number or a decimal string (absent → undefined). */
export function readInt32(v: unknown, what: string): number | undefined {
  const n = readInt64(v, what);
  if (n === undefined) return undefined;
  if (n < -(2n ** 31n) || n >= 2n ** 31n) throw new JsonpbError(`${what}: ${String(n)} does not fit in int32`);
  return Number(n);
}

/** An int64 as a number or a decimal string (absent → undefined). Numbers beyond 2^53 lose precision in JSON.parse: pass strings. */
export function readInt64(v: unknown, what: string): bigint | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) {
    const n = BigInt(v);
    if (n < -(2n ** 63n) || n >= 2n ** 63n) throw new JsonpbError(`${what}: ${v} does not fit in int64`);
    return n;
  }
  throw new JsonpbError(`${what}: want an integer (a number or a decimal string), got ${JSON.stringify(v)}`);
}
