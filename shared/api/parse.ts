// Reading and writing kops.k8s.io/v1alpha2 objects. Objects stay plain JS
// values (unknown fields kept as written); each parsed object remembers where
// its nodes were in the source so that every error can name file and line.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, stringify, type Document, type Node } from 'yaml';
import { ExitCode, UserError } from '../errors.js';
import { joinPath, parsePath, type PathSegment } from './fieldpath.js';
import { isAdditionalObject, type AdditionalObject } from './additional-objects.js';
import { MAX_SPEC_BYTES, MAX_SPEC_SIZE_TEXT } from './limits.js';
import { API_VERSION, type ApiObject, type Cluster, type InstanceGroup } from './types.js';

/** A problem in a spec file: `<source>:<line>: <path>: <what>`. */
export class SpecError extends UserError {
  readonly source: string;
  readonly path: string;
  readonly line?: number;

  constructor(
    /** What is wrong, without source, line or path. */
    readonly reason: string,
    where: { source: string; path?: string; line?: number },
  ) {
    super(formatSpecMessage(where.source, where.path ?? '', reason, where.line), ExitCode.InvalidSpec);
    this.name = 'SpecError';
    this.source = where.source;
    this.path = where.path ?? '';
    this.line = where.line;
  }
}

function formatSpecMessage(source: string, path: string, reason: string, line?: number): string {
  const where = line === undefined ? source : `${source}:${line}`;
  return path === '' ? `${where}: ${reason}` : `${where}: ${path}: ${reason}`;
}

export interface ParsedObject<T extends ApiObject = ApiObject> {
  object: T;
  source: string;
  /** 1-based line of the node at a field path, else of its nearest existing parent. */
  lineOf(path: string): number | undefined;
}

/** One YAML/JSON document with its line look-up; for formats beside the kOps objects. */
export interface ParsedDocument {
  value: unknown;
  source: string;
  lineOf(path: string): number | undefined;
}

type LineOf = (path: string) => number | undefined;

function lineLookup(doc: Document, root: Node, lines: LineCounter): LineOf {
  const lineAt = (node: Node | null | undefined): number | undefined =>
    node?.range ? lines.linePos(node.range[0]).line : undefined;
  return (path) => {
    let segments: PathSegment[];
    try {
      segments = parsePath(path);
    } catch {
      return lineAt(root);
    }
    let node: Node | null | undefined = root;
    let line = lineAt(root);
    for (const segment of segments) {
      if (isAlias(node)) node = node.resolve(doc);
      if (typeof segment === 'number' && isSeq(node)) {
        const item: unknown = node.items[segment];
        if (!item) break;
        node = item as Node;
        line = lineAt(node) ?? line;
      } else if (typeof segment === 'string' && isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === segment);
        if (!pair) break;
        line = lineAt(pair.key as Node) ?? line;
        node = pair.value as Node | null;
      } else {
        break;
      }
    }
    return line;
  };
}

/** Drops the code frame and position yaml appends: we print our own. */
function shortYamlMessage(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

function isEmptyDocument(doc: Document): boolean {
  return doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null);
}

export { MAX_SPEC_BYTES, MAX_SPEC_SIZE_TEXT } from './limits.js';

export function tooLarge(source: string, bytes: number | undefined): SpecError {
  const size = bytes === undefined ? '' : ` (${(bytes / 1024 / 1024).toFixed(1)} MiB)`;
  return new SpecError(`larger than ${MAX_SPEC_SIZE_TEXT}${size}; refused before parsing`, { source });
}

/**
 * Keys that would reach an object's prototype in code that copies specs
 * around: refused wherever they appear, whatever the object.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function refuseForbiddenKeys(node: unknown, path: string, source: string, lines: LineCounter): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      const at = key === undefined ? path : joinPath(path, key);
      if (key !== undefined && FORBIDDEN_KEYS.has(key)) {
        const line = isScalar(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : undefined;
        throw new SpecError(`the key ${JSON.stringify(key)} is not allowed anywhere in a spec`, { source, path: at, line });
      }
      refuseForbiddenKeys(pair.value, at, source, lines);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => refuseForbiddenKeys(item, joinPath(path, i), source, lines));
  }
}

/**
 * Parses every non-empty document of a YAML or JSON text. Malformed input → SpecError with the line;
 * so are a text over MAX_SPEC_BYTES, a forbidden key and an alias bomb.
 */
export function parseYamlDocuments(text: string, source: string): ParsedDocument[] {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_SPEC_BYTES) throw tooLarge(source, bytes);
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines });
  const result: ParsedDocument[] = [];
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) throw new SpecError(`invalid YAML: ${shortYamlMessage(error.message)}`, { source, line: error.linePos?.[0].line });
    if (isEmptyDocument(doc) || !doc.contents) continue;
    refuseForbiddenKeys(doc.contents, '', source, lines);
    result.push({ value: expand(doc, source), source, lineOf: lineLookup(doc, doc.contents, lines) });
  }
  return result;
}

/** The document as plain values; yaml refuses aliases that expand past its limit (a "billion laughs" bomb). */
function expand(doc: Document, source: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) {
      throw new SpecError(`too many YAML aliases: they would expand past ${MAX_ALIAS_COUNT} copies (refused as a resource exhaustion attack)`, { source });
    }
    throw new SpecError(`invalid YAML: ${shortYamlMessage((err as Error).message)}`, { source });
  }
}

/** yaml's own default: a spec never needs anywhere near as many alias expansions. */
const MAX_ALIAS_COUNT = 100;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Narrows a path's line look-up to one item of a `kind: List` document. */
function itemLineOf(parent: LineOf, base: string): LineOf {
  return (path) => parent(path === '' ? base : base + (path.startsWith('[') ? '' : '.') + path);
}

/** kOps' own legacy group name for the same v1alpha2 API (still decoded by kOps). */
const LEGACY_API_VERSION = 'kops/v1alpha2';

function checkObject(value: unknown, source: string, lineOf: LineOf, base: string): ParsedObject {
  const fail = (path: string, reason: string): SpecError => {
    const full = base === '' ? path : path === '' ? base : `${base}.${path}`;
    return new SpecError(reason, { source, path: full, line: lineOf(path) });
  };
  if (!isRecord(value)) throw fail('', `expected a ${API_VERSION} Cluster or InstanceGroup object`);
  if (value.apiVersion === undefined) throw fail('apiVersion', `missing (want ${API_VERSION})`);
  if (value.apiVersion === LEGACY_API_VERSION) value.apiVersion = API_VERSION;
  if (value.apiVersion !== API_VERSION) {
    throw fail('apiVersion', `unsupported apiVersion ${JSON.stringify(value.apiVersion)} (want ${API_VERSION})`);
  }
  if (value.kind === undefined) throw fail('kind', 'missing (want Cluster or InstanceGroup)');
  if (value.kind !== 'Cluster' && value.kind !== 'InstanceGroup') {
    throw fail('kind', `unknown kind ${JSON.stringify(value.kind)} (want Cluster or InstanceGroup)`);
  }
  if (!isRecord(value.metadata)) throw fail('metadata', 'missing (want an object with a name)');
  const name = value.metadata.name;
  if (name === undefined || name === null || name === '') throw fail('metadata.name', 'missing');
  if (typeof name !== 'string') throw fail('metadata.name', `must be a string (got ${JSON.stringify(name)})`);
  // kOps accepts an object without spec; give it an empty one so code can rely on it.
  if (value.spec === undefined || value.spec === null) value.spec = {};
  if (!isRecord(value.spec)) throw fail('spec', 'must be an object');
  return { object: value as unknown as Cluster | InstanceGroup, source, lineOf };
}

/** Another Kubernetes object in a spec file (kOps' additional objects), with where it came from. */
export interface ParsedAdditionalObject {
  object: AdditionalObject;
  source: string;
  lineOf(path: string): number | undefined;
}

export interface ParsedSpecFile {
  objects: ParsedObject[];
  additional: ParsedAdditionalObject[];
}

/** A document of kOps' own API group (any version or kind) is never an additional object. */
function isKopsDocument(value: unknown): boolean {
  return isRecord(value) && typeof value.apiVersion === 'string' && (value.apiVersion.startsWith('kops.k8s.io/') || value.apiVersion.startsWith('kops/'));
}

/**
 * Parses a spec file: Cluster and InstanceGroup objects from YAML or JSON (single or
 * multi-document, or a `kind: List` wrapper), and, as kOps does, any other object
 * with an apiVersion and a kind as an additional object.
 */
export function parseSpecFile(text: string, source: string): ParsedSpecFile {
  const objects: ParsedObject[] = [];
  const additional: ParsedAdditionalObject[] = [];
  const take = (value: unknown, lineOf: LineOf, base: string) => {
    if (!isKopsDocument(value) && isAdditionalObject(value) && value.apiVersion !== LEGACY_API_VERSION) {
      additional.push({ object: value, source, lineOf });
    } else {
      objects.push(checkObject(value, source, lineOf, base));
    }
  };
  for (const doc of parseYamlDocuments(text, source)) {
    const value = doc.value;
    if (isRecord(value) && value.kind === 'List' && 'items' in value) {
      if (!Array.isArray(value.items)) throw new SpecError('must be a list', { source, path: 'items', line: doc.lineOf('items') });
      value.items.forEach((item: unknown, i: number) => {
        const base = joinPath('items', i);
        take(item, itemLineOf(doc.lineOf, base), base);
      });
    } else {
      take(value, doc.lineOf, '');
    }
  }
  return { objects, additional };
}

/** Parses Cluster and InstanceGroup objects only: any other object is an error naming it. */
export function parseObjects(text: string, source: string): ParsedObject[] {
  const { objects, additional } = parseSpecFile(text, source);
  const first = additional[0];
  if (first) {
    const { apiVersion, kind } = first.object;
    throw new SpecError(`unsupported apiVersion ${JSON.stringify(apiVersion)} (kind ${kind}; want ${API_VERSION})`, { source, path: 'apiVersion', line: first.lineOf('apiVersion') });
  }
  return objects;
}

/** Parses a text that must hold exactly one object of the given kind (e.g. the store's `config`). */
export function parseOneObject<K extends ApiObject['kind']>(
  text: string,
  source: string,
  kind: K,
): ParsedObject<Extract<ApiObject, { kind: K }>> {
  const objects = parseObjects(text, source);
  if (objects.length !== 1) throw new SpecError(`expected one ${kind} object, found ${objects.length}`, { source });
  const [parsed] = objects;
  if (parsed.object.kind !== kind) {
    throw new SpecError(`expected ${kind}, found ${parsed.object.kind}`, { source, path: 'kind', line: parsed.lineOf('kind') });
  }
  return parsed as ParsedObject<Extract<ApiObject, { kind: K }>>;
}

export function isCluster(object: ApiObject): object is Cluster {
  return object.kind === 'Cluster';
}

export function isInstanceGroup(object: ApiObject): object is InstanceGroup {
  return object.kind === 'InstanceGroup';
}

/** YAML in kOps' style (sequences not indented under their key, no line folding). */
export function toYAML(value: unknown): string {
  return stringify(value, { indentSeq: false, lineWidth: 0, aliasDuplicateObjects: false });
}

/**
 * yaml: documents joined by `---`. json: one object as itself, several as a
 * `{"apiVersion":"v1","kind":"List","items":[…]}` (parseObjects reads both back).
 */
export function stringifyObjects(objects: ApiObject[], format: 'yaml' | 'json'): string {
  if (format === 'yaml') return objects.map(toYAML).join('---\n');
  const value = objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
  return `${JSON.stringify(value, null, 2)}\n`;
}
