// memfs:// state store for tests: contents live in this process only, and
// every store opened with the same name shares them (like one bucket).
// Conditional operations check and act with no await in between, so within
// the one process that can see a volume they are atomic.
import { Readable } from 'node:stream';
import { contentVersion } from './content-version.js';
import { checkObjectPath, comparePaths, joinPath, normalizePrefix } from './paths.js';
import { StoreError, type ConditionalRead, type ListedObject, type StateStore, type VersionedObject, type WriteOptions } from './types.js';

/** A Map of key → bytes that also notes when each key was last set (listObjects' times). */
class Volume extends Map<string, Buffer> {
  readonly modified = new Map<string, Date>();
  override set(key: string, value: Buffer): this {
    this.modified.set(key, new Date());
    return super.set(key, value);
  }
  override delete(key: string): boolean {
    this.modified.delete(key);
    return super.delete(key);
  }
}

const volumes = new Map<string, Volume>();

function volume(name: string): Volume {
  let objects = volumes.get(name);
  if (!objects) {
    objects = new Volume();
    volumes.set(name, objects);
  }
  return objects;
}

/** Forgets the contents of one memfs volume (or of all), for test isolation. */
export function clearMemfs(name?: string): void {
  if (name === undefined) volumes.clear();
  else volumes.delete(name);
}

/** Splits `memfs://name/optional/prefix`. */
function parseMemfsURL(url: string): { name: string; prefix: string } {
  const rest = url.slice('memfs://'.length);
  const slash = rest.indexOf('/');
  const name = slash < 0 ? rest : rest.slice(0, slash);
  if (!url.startsWith('memfs://') || !/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new StoreError('InvalidURL', url, 'want memfs://<name>[/prefix] with a name of letters, digits, ".", "_" or "-"');
  }
  const prefix = normalizePrefix(url, slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+/, ''));
  return { name, prefix };
}

export class MemfsStore implements StateStore {
  readonly baseURL: string;
  readonly conditionalWrites = 'atomic';
  private readonly name: string;
  private readonly prefix: string;

  constructor(url: string) {
    ({ name: this.name, prefix: this.prefix } = parseMemfsURL(url));
    this.baseURL = `memfs://${joinPath(this.name, this.prefix)}`;
  }

  urlOf(path: string): string {
    return path === '' ? this.baseURL : `${this.baseURL}/${path}`;
  }

  sub(prefix: string): StateStore {
    return new MemfsStore(`${this.baseURL}/${normalizePrefix(this.baseURL, prefix)}`);
  }

  private keyOf(path: string): string {
    return joinPath(this.prefix, checkObjectPath(this.baseURL, path));
  }

  async read(path: string): Promise<Buffer> {
    const data = volume(this.name).get(this.keyOf(path));
    if (!data) throw new StoreError('NotFound', this.urlOf(path), 'not found');
    return Buffer.from(data); // a copy: callers may scribble on what they get
  }

  async readIfExists(path: string): Promise<Buffer | undefined> {
    const data = volume(this.name).get(this.keyOf(path));
    return data && Buffer.from(data);
  }

  async exists(path: string): Promise<boolean> {
    return volume(this.name).has(this.keyOf(path));
  }

  async write(path: string, data: Buffer | string, _options?: WriteOptions): Promise<void> {
    const key = this.keyOf(path);
    volume(this.name).set(key, Buffer.from(data)); // a copy: later changes to data must not show
  }

  async readVersioned(path: string): Promise<VersionedObject | undefined> {
    const data = volume(this.name).get(this.keyOf(path));
    return data && { data: Buffer.from(data), version: contentVersion(data) };
  }

  async readIfChanged(path: string, version: string | undefined): Promise<ConditionalRead> {
    const object = await this.readVersioned(path);
    if (object === undefined) return { status: 'missing' };
    return object.version === version ? { status: 'unchanged' } : { status: 'changed', object };
  }

  async createIfAbsent(path: string, data: Buffer | string, _options?: WriteOptions): Promise<string | undefined> {
    const key = this.keyOf(path);
    const objects = volume(this.name);
    if (objects.has(key)) return undefined;
    const copy = Buffer.from(data);
    objects.set(key, copy);
    return contentVersion(copy);
  }

  async replaceIfVersion(path: string, data: Buffer | string, version: string, _options?: WriteOptions): Promise<string | undefined> {
    const key = this.keyOf(path);
    const objects = volume(this.name);
    const current = objects.get(key);
    if (current === undefined || contentVersion(current) !== version) return undefined;
    const copy = Buffer.from(data);
    objects.set(key, copy);
    return contentVersion(copy);
  }

  async deleteIfVersion(path: string, version: string): Promise<boolean> {
    const key = this.keyOf(path);
    const objects = volume(this.name);
    const current = objects.get(key);
    if (current === undefined || contentVersion(current) !== version) return false;
    objects.delete(key);
    return true;
  }

  async list(prefix?: string): Promise<string[]> {
    const folder = joinPath(this.prefix, normalizePrefix(this.baseURL, prefix));
    const start = folder === '' ? '' : `${folder}/`;
    const strip = this.prefix === '' ? 0 : this.prefix.length + 1;
    const found: string[] = [];
    for (const key of volume(this.name).keys()) {
      if (key.startsWith(start)) found.push(key.slice(strip));
    }
    return found.sort(comparePaths);
  }

  async listChildren(prefix?: string): Promise<string[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const strip = folder === '' ? 0 : folder.length + 1;
    const names = new Set<string>();
    for (const path of await this.list(folder)) names.add(path.slice(strip).split('/')[0]);
    return [...names].sort(comparePaths);
  }

  async listObjects(prefix?: string): Promise<ListedObject[]> {
    const folder = normalizePrefix(this.baseURL, prefix);
    const strip = folder === '' ? 0 : folder.length + 1;
    const objects = volume(this.name);
    const found: ListedObject[] = [];
    for (const path of await this.list(folder)) {
      const name = path.slice(strip);
      if (name.includes('/')) continue;
      const key = joinPath(this.prefix, path);
      found.push({ name, path, modified: objects.modified.get(key) ?? new Date(0), size: objects.get(key)?.length ?? 0 });
    }
    return found;
  }

  async delete(path: string): Promise<void> {
    volume(this.name).delete(this.keyOf(path));
  }

  async openReadStream(path: string): Promise<Readable> {
    return Readable.from([await this.read(path)]);
  }

  async writeStream(path: string, source: Readable, _options?: WriteOptions): Promise<number> {
    const key = this.keyOf(path); // check the path before consuming the source
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of source) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array));
    } catch (err) {
      throw new StoreError('Other', this.urlOf(path), `reading the source: ${(err as Error).message}`, { cause: err });
    }
    const data = Buffer.concat(chunks); // a copy, and nothing is stored if the source fails
    volume(this.name).set(key, data);
    return data.length;
  }
}
