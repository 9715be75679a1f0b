// s3:// URL parsing, kept apart from the SDK so that opening a store stays cheap.
import { normalizePrefix } from './paths.js';
import { StoreError } from './types.js';

/** Splits `s3://bucket/optional/prefix`. */
export function parseS3URL(url: string): { bucket: string; prefix: string } {
  const rest = url.startsWith('s3://') ? url.slice('s3://'.length) : '';
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(bucket)) {
    throw new StoreError('InvalidURL', url, 'want s3://<bucket>[/prefix]');
  }
  const prefix = normalizePrefix(url, slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+/, ''));
  return { bucket, prefix };
}
