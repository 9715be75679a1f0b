// Path rules every backend applies the same way, so a store behaves alike on
// file://, s3:// and memfs:// (a path valid on one is valid on all).
import { StoreError } from './types.js';

/** Name of the temporary file an atomic file:// write goes through. */
export function tempNameFor(name: string, random: string): string {
  // Cut long names so the temp name stays under the 255-byte file name limit.
  return `.${name.slice(0, 128)}.tmp-${process.pid}-${random}`;
}

/** Name of the guard file that serialises conditional operations on one file:// object. */
export function guardNameFor(name: string): string {
  return `.${name.slice(0, 128)}.cas-guard`;
}

const TEMP_NAME = /^\..*\.(tmp-\d+-[0-9a-f]{8,}|cas-guard)$/;

/** True for names of in-flight (or crash-leftover) temp files and guard files: never objects. */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

function invalid(baseURL: string, path: string, why: string): StoreError {
  return new StoreError('InvalidURL', baseURL, `invalid path "${path}": ${why}`);
}

function checkSegments(baseURL: string, path: string, segments: string[]): void {
  for (const segment of segments) {
    if (segment === '') throw invalid(baseURL, path, 'empty path segment');
    if (segment === '.' || segment === '..') throw invalid(baseURL, path, `"${segment}" is not allowed`);
    if (segment.includes('\\') || segment.includes('\0')) throw invalid(baseURL, path, 'backslash or NUL not allowed');
    if (isTempName(segment)) throw invalid(baseURL, path, 'name is reserved for temporary files');
  }
}

/** Validates an object path: relative, '/'-separated, no empty, '.' or '..' segments. */
export function checkObjectPath(baseURL: string, path: string): string {
  if (path === '') throw invalid(baseURL, path, 'empty');
  if (path.startsWith('/')) throw invalid(baseURL, path, 'must be relative');
  if (path.endsWith('/')) throw invalid(baseURL, path, 'names a folder, not an object');
  checkSegments(baseURL, path, path.split('/'));
  return path;
}

/** Validates a folder prefix; '' is the store root. Returns it without a trailing slash. */
export function normalizePrefix(baseURL: string, prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/\/+$/, '');
  if (trimmed === '') return '';
  if (trimmed.startsWith('/')) throw invalid(baseURL, prefix ?? '', 'must be relative');
  checkSegments(baseURL, prefix ?? '', trimmed.split('/'));
  return trimmed;
}

export function joinPath(prefix: string, path: string): string {
  return prefix === '' ? path : path === '' ? prefix : `${prefix}/${path}`;
}

/** Byte order of the UTF-8 encodings, which is the order S3 lists keys in. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
