// The state store contract shared by every agent: one interface, three backends
// (file://, s3://, memfs://). Paths are relative, '/'-separated, never start with '/'.
import type { Readable } from 'node:stream';

export type StoreErrorKind = 'NotFound' | 'AccessDenied' | 'Unreachable' | 'InvalidURL' | 'Other';

/** Every backend failure is a StoreError naming the full URL that failed and why. */
export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    readonly url: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${url}: ${reason}`, options);
    this.name = 'StoreError';
  }
}

export interface WriteOptions {
  /** File mode for backends that have one (file://). Private keys use 0o600. */
  mode?: number;
}

export interface StateStore {
  /** The base URL this store was opened with, normalised (no trailing slash). */
  readonly baseURL: string;
  /** Full URL of a path inside the store, for messages. */
  urlOf(path: string): string;
  /** A store rooted at a sub-path (e.g. the cluster's folder). */
  sub(prefix: string): StateStore;
  read(path: string): Promise<Buffer>;
  /** Like read, but undefined when the object does not exist. */
  readIfExists(path: string): Promise<Buffer | undefined>;
  exists(path: string): Promise<boolean>;
  /** Atomic: a reader sees the old object or the new one, never half. */
  write(path: string, data: Buffer | string, options?: WriteOptions): Promise<void>;
  /** Every object below prefix (recursively), as paths relative to this store, sorted. */
  list(prefix?: string): Promise<string[]>;
  /**
   * The immediate child names below prefix (one level, like `ls`): objects and folders,
   * without trailing '/', sorted. Cheap on S3 (a delimiter list), unlike a recursive list.
   */
  listChildren(prefix?: string): Promise<string[]>;
  /** Deleting a missing object is not an error. */
  delete(path: string): Promise<void>;
  openReadStream(path: string): Promise<Readable>;
  /** Streams source into path atomically (multipart on S3). Returns bytes written. */
  writeStream(path: string, source: Readable, options?: WriteOptions): Promise<number>;
}
