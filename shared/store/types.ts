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

/** An object's bytes and the version tag conditional operations compare against. */
export interface VersionedObject {
  data: Buffer;
  version: string;
}

/**
 * Who guarantees the conditional operations:
 * - 'atomic': the backend itself (file://: link(2) and a per-object guard file;
 *   memfs://: one process, checked and set in one step);
 * - 'server': the server, by honouring `If-None-Match: *` and `If-Match: <etag>`
 *   (AWS S3 does; some S3-compatible servers accept the headers and ignore them,
 *   so callers probe before relying on them: see lock.ts probeConditionalWrites).
 */
export type ConditionalWrites = 'atomic' | 'server';

/** An object directly below a folder, as a listing gives it (no read of the object). */
export interface ListedObject {
  /** The object's name inside the folder (no '/'). */
  name: string;
  /** Its path relative to the store. */
  path: string;
  /** When it was last written, by the clock of whoever keeps it (S3: the server's; file://: the file system's). */
  modified: Date;
  size: number;
}

/** What a conditional read found: the version asked about is still current, the object is gone, or a newer one. */
export type ConditionalRead =
  | { status: 'unchanged' }
  | { status: 'missing' }
  | { status: 'changed'; object: VersionedObject };

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
  /**
   * The objects directly below prefix (one level; folders left out), with their
   * modification times and sizes, sorted by name. One listing request on S3 per
   * 1,000 objects: no object is read.
   */
  listObjects(prefix?: string): Promise<ListedObject[]>;
  /** Deleting a missing object is not an error. */
  delete(path: string): Promise<void>;
  openReadStream(path: string): Promise<Readable>;
  /** Streams source into path atomically (multipart on S3). Returns bytes written. */
  writeStream(path: string, source: Readable, options?: WriteOptions): Promise<number>;

  // Conditional operations: the compare-and-swap primitive that writers coordinate
  // with (the cluster lock, lock.ts). A version is an opaque tag of an object's
  // current content: S3's ETag; a sha256 of the bytes on file:// and memfs://.
  // Equal bytes may give equal tags, so a caller that must tell two writes apart
  // puts something unique in the content (the lock record holds a random id and
  // times). Each operation is atomic against the other three on the same path:
  // of two racing callers exactly one wins. A plain write() or delete() of the
  // same path is not fenced by them: do not mix the two kinds on one path.

  /** Who guarantees the conditional operations; see ConditionalWrites. */
  readonly conditionalWrites: ConditionalWrites;
  /** The object and its version, or undefined when it does not exist. */
  readVersioned(path: string): Promise<VersionedObject | undefined>;
  /**
   * Reads path only if its version is no longer `version` (S3: a GET with
   * `If-None-Match: <etag>`, answered 304 without a body when nothing changed).
   * Without a version it is readVersioned. The cheap poll for a small object
   * many readers watch.
   */
  readIfChanged(path: string, version: string | undefined): Promise<ConditionalRead>;
  /**
   * Creates path only if no object is there (S3: `If-None-Match: *`; file://: a complete
   * file linked into place, so a reader never sees half of it). Returns the new version,
   * or undefined when an object already exists (nothing written).
   */
  createIfAbsent(path: string, data: Buffer | string, options?: WriteOptions): Promise<string | undefined>;
  /**
   * Replaces path only if its current version is `version` (S3: `If-Match`). Returns the
   * new version, or undefined when the object changed or is gone (nothing written).
   */
  replaceIfVersion(path: string, data: Buffer | string, version: string, options?: WriteOptions): Promise<string | undefined>;
  /** Deletes path only if its current version is `version`; false when it changed or is gone. */
  deleteIfVersion(path: string, version: string): Promise<boolean>;
}
