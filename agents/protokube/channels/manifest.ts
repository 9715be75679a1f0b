// An addon's manifest: its bytes checked against the channel's sha256 before
// anything is parsed, then every Kubernetes object in it (multi-document YAML
// or JSON, `kind: List` wrappers opened), each with apiVersion, kind and
// metadata.name, in the order it must be applied.
import { createHash } from 'node:crypto';
import { parseYamlDocuments, SpecError } from '../../../shared/api/parse.js';
import type { ManifestObject } from '../kube/api.js';

export class ManifestHashMismatch extends Error {
  constructor(readonly url: string, readonly actual: string, readonly expected: string) {
    super(`manifest ${url} has sha256 ${actual}, the channel says ${expected}: refused, nothing applied`);
    this.name = 'ManifestHashMismatch';
  }
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function verifyManifest(url: string, data: Buffer, expected: string): void {
  const actual = sha256Hex(data);
  if (actual !== expected) throw new ManifestHashMismatch(url, actual, expected);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Kinds others depend on go first (a namespace before what lives in it, a CRD before its objects); the rest keep their order. */
const FIRST = ['Namespace', 'CustomResourceDefinition'];

export function parseManifest(text: string, source: string): ManifestObject[] {
  const objects: ManifestObject[] = [];
  const take = (value: unknown, where: string, line: number | undefined) => {
    const fail = (path: string, reason: string): never => {
      throw new SpecError(reason, { source, path: `${where}${path}`, line });
    };
    if (!isRecord(value)) fail('', 'not a Kubernetes object');
    const object = value as Record<string, unknown>;
    if (typeof object.apiVersion !== 'string' || object.apiVersion === '') fail('apiVersion', 'missing');
    if (typeof object.kind !== 'string' || object.kind === '') fail('kind', 'missing');
    if (/List$/.test(object.kind as string) && Array.isArray(object.items)) {
      object.items.forEach((item: unknown, i: number) => take(item, `${where}items[${i}].`, line));
      return;
    }
    if (!isRecord(object.metadata)) fail('metadata', 'missing');
    const metadata = object.metadata as Record<string, unknown>;
    if (typeof metadata.name !== 'string' || metadata.name === '') fail('metadata.name', 'missing (generateName is not applied by protokube)');
    if (metadata.namespace !== undefined && typeof metadata.namespace !== 'string') fail('metadata.namespace', 'must be a string');
    objects.push(object as unknown as ManifestObject);
  };
  parseYamlDocuments(text, source).forEach((doc, i) => take(doc.value, `document ${i + 1}: `, doc.lineOf('')));
  const rank = (o: ManifestObject) => {
    const i = FIRST.indexOf(o.kind);
    return i === -1 ? FIRST.length : i;
  };
  return objects.map((o, i) => ({ o, i })).sort((a, b) => rank(a.o) - rank(b.o) || a.i - b.i).map(({ o }) => o);
}

/** The API group of an apiVersion ('' for the core group's `v1`). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}
