// An s3:// store that loads the AWS SDK on first use. The SDK costs ~150 ms to load,
// which every command would pay (even `--version` or a file:// run) if imported eagerly.
import type { Readable } from 'node:stream';
import { joinPath, normalizePrefix } from './paths.js';
import { parseS3URL } from './s3-url.js';
import type { S3Connection } from './s3.js';
import type { ConditionalRead, ListedObject, StateStore, VersionedObject, WriteOptions } from './types.js';

export class LazyS3Store implements StateStore {
  readonly baseURL: string;
  readonly conditionalWrites = 'server';
  private real?: Promise<StateStore>;

  constructor(
    private readonly url: string,
    private readonly connection: () => Promise<S3Connection>,
  ) {
    const { bucket, prefix } = parseS3URL(url);
    this.baseURL = `s3://${joinPath(bucket, prefix)}`;
  }

  static open(url: string, env: NodeJS.ProcessEnv | undefined, timeoutMs?: number): LazyS3Store {
    let connection: Promise<S3Connection> | undefined;
    return new LazyS3Store(url, () => (connection ??= import('./s3.js').then((m) => m.connectS3(env, { timeoutMs }))));
  }

  private store(): Promise<StateStore> {
    return (this.real ??= Promise.all([import('./s3.js'), this.connection()]).then(([m, c]) => new m.S3Store(this.baseURL, c)));
  }

  urlOf(path: string): string {
    return path === '' ? this.baseURL : `${this.baseURL}/${path}`;
  }
  sub(prefix: string): StateStore {
    return new LazyS3Store(`${this.baseURL}/${normalizePrefix(this.baseURL, prefix)}`, this.connection);
  }
  async read(path: string): Promise<Buffer> { return (await this.store()).read(path); }
  async readIfExists(path: string): Promise<Buffer | undefined> { return (await this.store()).readIfExists(path); }
  async exists(path: string): Promise<boolean> { return (await this.store()).exists(path); }
  async write(path: string, data: Buffer | string, options?: WriteOptions): Promise<void> { return (await this.store()).write(path, data, options); }
  async list(prefix?: string): Promise<string[]> { return (await this.store()).list(prefix); }
  async listChildren(prefix?: string): Promise<string[]> { return (await this.store()).listChildren(prefix); }
  async listObjects(prefix?: string): Promise<ListedObject[]> { return (await this.store()).listObjects(prefix); }
  async delete(path: string): Promise<void> { return (await this.store()).delete(path); }
  async openReadStream(path: string): Promise<Readable> { return (await this.store()).openReadStream(path); }
  async writeStream(path: string, source: Readable, options?: WriteOptions): Promise<number> { return (await this.store()).writeStream(path, source, options); }
  async readVersioned(path: string): Promise<VersionedObject | undefined> { return (await this.store()).readVersioned(path); }
  async readIfChanged(path: string, version: string | undefined): Promise<ConditionalRead> { return (await this.store()).readIfChanged(path, version); }
  async createIfAbsent(path: string, data: Buffer | string, options?: WriteOptions): Promise<string | undefined> { return (await this.store()).createIfAbsent(path, data, options); }
  async replaceIfVersion(path: string, data: Buffer | string, version: string, options?: WriteOptions): Promise<string | undefined> { return (await this.store()).replaceIfVersion(path, data, version, options); }
  async deleteIfVersion(path: string, version: string): Promise<boolean> { return (await this.store()).deleteIfVersion(path, version); }
}
