// A pass-through state store that counts calls per method (and the prefixes
// listed), for tests that bound how many store requests a step makes.
import type { Readable } from 'node:stream';
import type { StateStore, WriteOptions } from '../../shared/store/types.js';

const METHODS = ['read', 'readIfExists', 'exists', 'write', 'list', 'listChildren', 'delete', 'openReadStream', 'writeStream', 'readVersioned', 'createIfAbsent', 'replaceIfVersion', 'deleteIfVersion'] as const;
export type StoreMethod = (typeof METHODS)[number];

export interface CountingStore extends StateStore {
  /** Calls so far, by method (sub-stores count into the same tally). */
  readonly calls: Record<StoreMethod, number>;
  /** Every list/listChildren prefix, as full URLs. */
  readonly listed: string[];
  reset(): void;
}

export function countingStore(inner: StateStore): CountingStore {
  const calls = {} as Record<StoreMethod, number>;
  const listed: string[] = [];
  const reset = () => {
    for (const m of METHODS) calls[m] = 0;
    listed.length = 0;
  };
  reset();
  const wrap = (store: StateStore): CountingStore => ({
    calls,
    listed,
    reset,
    baseURL: store.baseURL,
    urlOf: (path) => store.urlOf(path),
    sub: (prefix) => wrap(store.sub(prefix)),
    read: (path) => (calls.read++, store.read(path)),
    readIfExists: (path) => (calls.readIfExists++, store.readIfExists(path)),
    exists: (path) => (calls.exists++, store.exists(path)),
    write: (path: string, data: Buffer | string, options?: WriteOptions) => (calls.write++, store.write(path, data, options)),
    list: (prefix) => (calls.list++, listed.push(store.urlOf(prefix ?? '')), store.list(prefix)),
    listChildren: (prefix) => (calls.listChildren++, listed.push(store.urlOf(prefix ?? '')), store.listChildren(prefix)),
    delete: (path) => (calls.delete++, store.delete(path)),
    openReadStream: (path): Promise<Readable> => (calls.openReadStream++, store.openReadStream(path)),
    writeStream: (path: string, source: Readable, options?: WriteOptions) => (calls.writeStream++, store.writeStream(path, source, options)),
    conditionalWrites: store.conditionalWrites,
    readVersioned: (path) => (calls.readVersioned++, store.readVersioned(path)),
    createIfAbsent: (path: string, data: Buffer | string, options?: WriteOptions) => (calls.createIfAbsent++, store.createIfAbsent(path, data, options)),
    replaceIfVersion: (path: string, data: Buffer | string, version: string, options?: WriteOptions) => (calls.replaceIfVersion++, store.replaceIfVersion(path, data, version, options)),
    deleteIfVersion: (path: string, version: string) => (calls.deleteIfVersion++, store.deleteIfVersion(path, version)),
  });
  return wrap(inner);
}
