// The version tag file:// and memfs:// give an object for conditional operations:
// a hash of its bytes (S3's ETag is one too, for single-part uploads).
import { createHash } from 'node:crypto';

export function contentVersion(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
