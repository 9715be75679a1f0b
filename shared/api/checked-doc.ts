// Reads fields of a parsed document with type checks; the first problem is a
// SpecError with the field's path and line. For Mooring's own formats (node
// config, boot config), which a program wrote and nobody hand-edits.
import { parsePath } from './fieldpath.js';
import { SpecError, type ParsedDocument } from './parse.js';

export class CheckedDocument {
  constructor(private readonly doc: ParsedDocument) {}

  fail(path: string, reason: string): never {
    throw new SpecError(reason, { source: this.doc.source, path, line: this.doc.lineOf(path) });
  }

  /** The value at a field path (`etcdClusters[0].name`); undefined when absent. */
  at(path: string): unknown {
    let value: unknown = this.doc.value;
    for (const segment of parsePath(path)) {
      if (typeof segment === 'number') value = Array.isArray(value) ? value[segment] : undefined;
      else value = isRecord(value) ? value[segment] : undefined;
    }
    return value;
  }

  list(path: string): unknown[] {
    const value = this.at(path);
    if (!Array.isArray(value)) this.fail(path, value === undefined ? 'missing' : 'must be a list');
    return value;
  }

  record(path: string): Record<string, unknown> {
    const value = this.at(path);
    if (!isRecord(value)) this.fail(path, value === undefined ? 'missing' : 'must be an object');
    return value;
  }

  string(path: string): string {
    const value = this.at(path);
    if (typeof value !== 'string' || value === '') this.fail(path, value === undefined ? 'missing' : `must be a non-empty string (got ${JSON.stringify(value)})`);
    return value;
  }

  oneOf<T extends string>(path: string, allowed: readonly T[]): T {
    const value = this.string(path);
    if (!(allowed as readonly string[]).includes(value)) this.fail(path, `unknown value ${JSON.stringify(value)} (want one of ${allowed.join(', ')})`);
    return value as T;
  }

  integer(path: string): number {
    const value = this.at(path);
    if (typeof value !== 'number' || !Number.isInteger(value)) this.fail(path, value === undefined ? 'missing' : `must be a whole number (got ${JSON.stringify(value)})`);
    return value;
  }

  stringList(path: string): string[] {
    const value = this.list(path);
    value.forEach((item: unknown, i) => {
      if (typeof item !== 'string') this.fail(`${path}[${i}]`, `must be a string (got ${JSON.stringify(item)})`);
    });
    return value as string[];
  }

  stringRecord(path: string): Record<string, string> {
    const value = this.record(path);
    for (const [key, item] of Object.entries(value)) {
      if (typeof item !== 'string') this.fail(`${path}[${JSON.stringify(key)}]`, `must be a string (got ${JSON.stringify(item)})`);
    }
    return value as Record<string, string>;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
