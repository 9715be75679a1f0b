// s3:// state store on @aws-sdk/client-s3. Works against AWS (standard
// environment and credential chain) and S3-compatible servers named by
// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. A PUT (or a completed multipart
// upload) replaces an object whole, which gives the atomic-write contract.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { checkObjectPath, comparePaths, joinPath, normalizePrefix } from './paths.js';
import { uploadInParts } from './s3-parts.js';
import { parseS3URL } from './s3-url.js';
import { DEFAULT_STORE_TIMEOUT_MS } from './timeout.js';
import { StoreError, type ConditionalRead, type ListedObject, type StateStore, type WriteOptions } from './types.js';

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
]);

/** Where requests go, and the client settings that make them fail fast when nobody answers. */
export interface S3Connection {
  client: S3Client;
  /** The endpoint as shown in "cannot reach" messages. */
  endpoint: string;
}

type RetryStrategyV2 = Extract<NonNullable<S3ClientConfig['retryStrategy']>, { acquireInitialRetryToken: unknown }>;
type RetryToken = Awaited<ReturnType<RetryStrategyV2['acquireInitialRetryToken']>>;

const MAX_ATTEMPTS = 3;

/**
 * Retries what another attempt can cure (a refused or reset connection,
 * throttling, a 5xx) after a short jittered pause, but never a request that
 * timed out: an endpoint silent for the whole store timeout would be silent
 * again, and retrying would multiply the wait by the attempts (3 × 30 s + backoff
 * was the "100 s to fail" of issue 7).
 */
function storeRetryStrategy(): RetryStrategyV2 {
  const token = (count: number, delayMs: number): RetryToken => ({ getRetryCount: () => count, getRetryDelay: () => delayMs });
  return {
    acquireInitialRetryToken: async () => token(0, 0),
    refreshRetryTokenForRetry: async (previous, info) => {
      const attempts = previous.getRetryCount() + 1;
      // The SDK's HTTP handler also names a reset or broken connection "TimeoutError" (with the
      // socket's code); only the handler's own timers, which set no code, are a silent endpoint.
      const error = info.error as { name?: string; code?: string } | undefined;
      const timedOut = error?.name === 'TimeoutError' && error.code !== 'ECONNRESET' && error.code !== 'EPIPE';
      if (timedOut || (info.errorType !== 'TRANSIENT' && info.errorType !== 'THROTTLING') || attempts >= MAX_ATTEMPTS) {
        throw new Error('not retried'); // the SDK then throws the request's own error
      }
      const base = info.errorType === 'THROTTLING' ? 500 : 100;
      return token(attempts, Math.random() * Math.min(20_000, base * 2 ** attempts));
    },
    recordSuccess: () => undefined,
  };
}

export function connectS3(env: NodeJS.ProcessEnv = process.env, options: { timeoutMs?: number } = {}): S3Connection {
  const timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  // The SDK warns (multi-line, on stderr) that it will drop Node 20 in 2027; we ship a pinned SDK
  // for Node 20 on purpose, and the warning would break the CLI's one-line error output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const config: S3ClientConfig = {
    region,
    maxAttempts: MAX_ATTEMPTS,
    retryStrategy: storeRetryStrategy(),
    // The store timeout bounds every idle period of a request: connecting, waiting for the answer,
    // and each gap between bytes of a body either way (socketTimeout is the socket's inactivity
    // timer). It is not a limit on a whole call, so an 8 MiB part or a big download on a slow
    // link still completes as long as bytes keep moving.
    requestHandler: { connectionTimeout: Math.min(3000, timeoutMs), socketTimeout: timeoutMs },
    // Checksums only where S3 demands them: the SDK's newer default checksum headers and
    // trailers are not understood by every S3-compatible server.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (endpoint) {
    config.endpoint = endpoint;
    config.forcePathStyle = true; // custom servers rarely resolve bucket.host names
  }
  // Same as the chain's first step, but read from the env we were given (tests pass one).
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    config.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      sessionToken: env.AWS_SESSION_TOKEN || undefined,
    };
  }
  return { client: new S3Client(config), endpoint: endpoint ?? `https://s3.${region}.amazonaws.com` };
}

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

function errorShape(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : { message: String(err) };
}

/** S3's 304 Not Modified to a GET with If-None-Match: the SDK throws it as an error with no body to read. */
function notModified(err: unknown): boolean {
  return errorShape(err).$metadata?.httpStatusCode === 304 || errorShape(err).name === 'NotModified';
}

export class S3Store implements StateStore {
  readonly baseURL: string;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(url: string, private readonly connection: S3Connection = connectS3()) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseS3URL(url));
    this.baseURL = `s3://${joinPath(this.bucket, this.prefix)}`;
  }

  urlOf(path: string): string {
    return path === '' ? this.baseURL : `${this.baseURL}/${path}`;
  }

  sub(prefix: string): StateStore {
    return new S3Store(`${this.baseURL}/${normalizePrefix(this.baseURL, prefix)}`, this.connection);
  }

  private keyOf(path: string): string {
    return joinPath(this.prefix, checkObjectPath(this.baseURL, path));
  }

  private get client(): S3Client {
    return this.connection.client;
  }

  private toStoreError(err: unknown, path: string): StoreError {
    if (err instanceof StoreError) return err;
    const url = this.urlOf(path);
    const { name, code, message, $metadata } = errorShape(err);
    const status = $metadata?.httpStatusCode;
    const detail = message || code || name || 'unknown error';
    if (name === 'NoSuchBucket') {
      return new StoreError('NotFound', url, `bucket "${this.bucket}" does not exist at ${this.connection.endpoint}`, { cause: err });
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      return new StoreError('NotFound', url, 'not found', { cause: err });
    }
    if (name === 'CredentialsProviderError') {
      return new StoreError('AccessDenied', url, 'no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with an instance role)', { cause: err });
    }
    if (name === 'AccessDenied' || status === 403) {
      return new StoreError('AccessDenied', url, `access denied (${name}: ${detail})`, { cause: err });
    }
    if ((code && UNREACHABLE_CODES.has(code)) || name === 'TimeoutError' || name === 'RequestTimeout') {
      return new StoreError('Unreachable', url, `cannot reach ${this.connection.endpoint}: ${detail}`, { cause: err });
    }
    return new StoreError('Other', url, `${name ?? 'Error'}: ${detail}`, { cause: err });
  }

  /** A GET; with `ifNoneMatch`, S3's 304 for an unchanged object is a StoreError whose cause says so (notModified). */
  private async getObject(path: string, ifNoneMatch?: string) {
    const Key = this.keyOf(path);
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, ...(ifNoneMatch !== undefined ? { IfNoneMatch: ifNoneMatch } : {}) }));
    } catch (err) {
      throw this.toStoreError(err, path);
    }
  }

  /**
   * A GET and its whole body. The SDK's retries end once the headers have
   * come: a connection reset while the body streams (a server restarting, a
   * keep-alive socket closed under load) failed the read at once. It is asked
   * for again, up to MAX_ATTEMPTS, as a request refused outright would be; a
   * body that stalled for the whole store timeout is not (it would stall again).
   */
  private async getWhole(path: string, ifNoneMatch?: string): Promise<{ data: Buffer; etag?: string }> {
    for (let attempt = 1; ; attempt++) {
      const object = await this.getObject(path, ifNoneMatch);
      try {
        const bytes = object.Body ? await object.Body.transformToByteArray() : new Uint8Array();
        return { data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), etag: object.ETag };
      } catch (err) {
        const { code, name, message } = errorShape(err);
        const reset = code === 'ECONNRESET' || code === 'EPIPE' || message === 'aborted';
        if (!reset || name === 'TimeoutError' || attempt >= MAX_ATTEMPTS) throw this.toStoreError(err, path);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 100 * 2 ** attempt));
      }
    }
  }

  async read(path: string): Promise<Buffer> {
    return (await this.getWhole(path)).data;
  }

  async readIfExists(path: string): Promise<Buffer | undefined> {
    try {
      return await this.read(path);
    } catch (err) {
      // A missing bucket is a misconfiguration, not a missing object: let it through.
      if (err instanceof StoreError && err.kind === 'NotFound' && errorShape(err.cause).name !== 'NoSuchBucket') {
        return undefined;
      }
      throw err;
    }
  }

  /** HEAD has no error body: a missing bucket looks like a missing object here (read and list tell them apart). */
  async exists(path: string): Promise<boolean> {
    const Key = this.keyOf(path);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return true;
    } catch (err) {
      const mapped = this.toStoreError(err, path);
      if (mapped.kind === 'NotFound' && errorShape(err).name !== 'NoSuchBucket') return false;
      throw mapped;
    }
  }

  async write(path: string, data: Buffer | string, _options?: WriteOptions): Promise<void> {
    const Key = this.keyOf(path);
    const Body = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentLength: Body.length }));
    } catch (err) {
      throw this.toStoreError(err, path);
    }
  }

  async writeStream(path: string, source: Readable, _options?: WriteOptions): Promise<number> {
    const Bucket = this.bucket;
    const Key = this.keyOf(path);
    const client = this.client;
    try {
      return await uploadInParts(source, {
        put: async (Body) => {
          await client.send(new PutObjectCommand({ Bucket, Key, Body, ContentLength: Body.length }));
        },
        create: async () => {
          const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
          if (!UploadId) throw new Error('CreateMultipartUpload answered without an UploadId');
          return UploadId;
        },
        uploadPart: async (UploadId, PartNumber, Body) => {
          const { ETag } = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body, ContentLength: Body.length }));
          if (!ETag) throw new Error(`UploadPart ${PartNumber} answered without an ETag`);
          return ETag;
        },
        complete: async (UploadId, Parts) => {
          await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }));
        },
        abort: async (UploadId) => {
          await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
        },
      });
    } catch (err) {
      throw this.toStoreError(err, path);
    }
  }

  /** Every page of a ListObjectsV2 below folder; with a delimiter, one level only. */
  private async *listPages(folder: string, Delimiter?: string) {
    const start = joinPath(this.prefix, folder);
    const Prefix = start === '' ? undefined : `${start}/`;
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, Delimiter, ContinuationToken }));
      yield page;
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async list(prefix?: string): Promise<string[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const strip = this.prefix === '' ? 0 : this.prefix.length + 1;
    const found: string[] = [];
    try {
      for await (const page of this.listPages(folder)) {
        for (const { Key } of page.Contents ?? []) {
          // Keys ending in '/' are folder markers some tools create; they are not objects.
          if (Key && !Key.endsWith('/')) found.push(Key.slice(strip));
        }
      }
    } catch (err) {
      throw this.toStoreError(err, folder);
    }
    return found.sort(comparePaths);
  }

  async listChildren(prefix?: string): Promise<string[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const strip = joinPath(this.prefix, folder).length;
    // Keys and common prefixes both start with "<prefix>/"; what follows, less a trailing '/', is the name.
    const nameOf = (key: string) => key.slice(strip === 0 ? 0 : strip + 1).replace(/\/$/, '');
    const names = new Set<string>();
    try {
      for await (const page of this.listPages(folder, '/')) {
        for (const { Prefix } of page.CommonPrefixes ?? []) if (Prefix) names.add(nameOf(Prefix));
        for (const { Key } of page.Contents ?? []) if (Key && !Key.endsWith('/')) names.add(nameOf(Key));
      }
    } catch (err) {
      throw this.toStoreError(err, folder);
    }
    names.delete(''); // a '//' in a key would make an empty name
    return [...names].sort(comparePaths);
  }

  async listObjects(prefix?: string): Promise<ListedObject[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const strip = joinPath(this.prefix, folder).length;
    const found: ListedObject[] = [];
    try {
      // With the delimiter, deeper keys come back as common prefixes, which are not objects here.
      for await (const page of this.listPages(folder, '/')) {
        for (const { Key, LastModified, Size } of page.Contents ?? []) {
          if (!Key || Key.endsWith('/')) continue;
          const name = Key.slice(strip === 0 ? 0 : strip + 1);
          found.push({ name, path: joinPath(folder, name), modified: LastModified ?? new Date(0), size: Size ?? 0 });
        }
      }
    } catch (err) {
      throw this.toStoreError(err, folder);
    }
    return found.sort((a, b) => comparePaths(a.name, b.name));
  }

  async delete(path: string): Promise<void> {
    const Key = this.keyOf(path);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      throw this.toStoreError(err, path);
    }
  }

  async openReadStream(path: string): Promise<Readable> {
    const { Body } = await this.getObject(path);
    if (Body instanceof Readable) return Body;
    return Readable.from(Body ? [await Body.transformToByteArray()] : []);
  }

  // Conditional operations (types.ts): AWS S3 honours If-None-Match/If-Match on
  // PUT (2024) and If-Match on DELETE (2025); a server that ignores them is caught
  // by the lock's probe (lock.ts), not here.
  readonly conditionalWrites = 'server';

  async readVersioned(path: string): Promise<{ data: Buffer; version: string } | undefined> {
    let object;
    try {
      object = await this.getWhole(path);
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'NotFound' && errorShape(err.cause).name !== 'NoSuchBucket') return undefined;
      throw err;
    }
    if (!object.etag) throw new StoreError('Other', this.urlOf(path), 'the server sent no ETag, which conditional writes need');
    return { data: object.data, version: object.etag };
  }

  async readIfChanged(path: string, version: string | undefined): Promise<ConditionalRead> {
    if (version === undefined) {
      const object = await this.readVersioned(path);
      return object === undefined ? { status: 'missing' } : { status: 'changed', object };
    }
    let object;
    try {
      object = await this.getWhole(path, version);
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      if (notModified(err.cause)) return { status: 'unchanged' };
      if (err.kind === 'NotFound' && errorShape(err.cause).name !== 'NoSuchBucket') return { status: 'missing' };
      throw err;
    }
    if (!object.etag) throw new StoreError('Other', this.urlOf(path), 'the server sent no ETag, which conditional reads need');
    return { status: 'changed', object: { data: object.data, version: object.etag } };
  }

  async createIfAbsent(path: string, data: Buffer | string, _options?: WriteOptions): Promise<string | undefined> {
    return this.conditionalPut(path, data, { IfNoneMatch: '*' });
  }

  async replaceIfVersion(path: string, data: Buffer | string, version: string, _options?: WriteOptions): Promise<string | undefined> {
    return this.conditionalPut(path, data, { IfMatch: version });
  }

  async deleteIfVersion(path: string, version: string): Promise<boolean> {
    const Key = this.keyOf(path);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, IfMatch: version }));
      return true;
    } catch (err) {
      if (conditionFailed(err)) return false;
      throw this.toStoreError(err, path);
    }
  }

  /** A PUT with a precondition: the new ETag, or undefined when the precondition failed. */
  private async conditionalPut(path: string, data: Buffer | string, condition: { IfNoneMatch: string } | { IfMatch: string }): Promise<string | undefined> {
    const Key = this.keyOf(path);
    const Body = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      const { ETag } = await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentLength: Body.length, ...condition }));
      if (!ETag) throw new StoreError('Other', this.urlOf(path), 'the server sent no ETag, which conditional writes need');
      return ETag;
    } catch (err) {
      if (conditionFailed(err)) return undefined;
      throw this.toStoreError(err, path);
    }
  }
}

/**
 * A precondition that did not hold: 412 (the object exists, or has another ETag),
 * 409 (another conditional write to the key was in flight: S3 asks to retry, and
 * for a lock that means someone else got there first), 404 (If-Match on a key that is gone).
 */
function conditionFailed(err: unknown): boolean {
  const { name, $metadata } = errorShape(err);
  const status = $metadata?.httpStatusCode;
  if (name === 'NoSuchBucket') return false;
  return status === 412 || status === 409 || status === 404 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || name === 'NoSuchKey';
}
