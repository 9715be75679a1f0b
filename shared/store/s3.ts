// s3:// state store on @aws-sdk/client-s3. Works against AWS (standard
// environment and credential chain) and S3-compatible servers named by
// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. A PUT (or a completed multipart
// upload) replaces an object whole, which gives the atomic-write contract.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkObjectPath, comparePaths, joinPath, normalizePrefix } from './paths.js';
import { parseS3URL } from './s3-url.js';
import { StoreError, type StateStore, type WriteOptions } from './types.js';

const PART_SIZE = 8 * 1024 * 1024;
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
]);

/** Where requests go, and the client settings that make them fail fast when nobody answers. */
export interface S3Connection {
  client: S3Client;
  /** The endpoint as shown in "cannot reach" messages. */
  endpoint: string;
}

export function connectS3(env: NodeJS.ProcessEnv = process.env): S3Connection {
  // The SDK warns (multi-line, on stderr) that it will drop Node 20 in 2027; we ship a pinned SDK
  // for Node 20 on purpose, and the warning would break the CLI's one-line error output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const config: S3ClientConfig = {
    region,
    maxAttempts: 3,
    // Without timeouts an unanswered connect hangs for minutes; socketTimeout is per idle socket, so big uploads are fine.
    requestHandler: { connectionTimeout: 3000, socketTimeout: 30_000 },
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

  private async getObject(path: string) {
    const Key = this.keyOf(path);
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      throw this.toStoreError(err, path);
    }
  }

  async read(path: string): Promise<Buffer> {
    const { Body } = await this.getObject(path);
    try {
      const bytes = Body ? await Body.transformToByteArray() : new Uint8Array();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw this.toStoreError(err, path);
    }
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
    const Key = this.keyOf(path);
    let written = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        written += chunk.length;
        done(null, chunk);
      },
    });
    // Upload aborts the multipart upload on failure (leavePartsOnError false): no half object appears.
    const upload = new Upload({ client: this.client, params: { Bucket: this.bucket, Key, Body: counter }, partSize: PART_SIZE });
    const uploaded = upload.done().catch((err: unknown) => {
      counter.destroy(err instanceof Error ? err : new Error(String(err))); // unblocks the pipeline
      throw err;
    });
    // Wait for both sides, so a failed upload has been aborted before we report it.
    const [piped, done] = await Promise.allSettled([pipeline(source, counter), uploaded]);
    if (piped.status === 'rejected') throw this.toStoreError(piped.reason, path); // the root cause
    if (done.status === 'rejected') throw this.toStoreError(done.reason, path);
    return written;
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
}
