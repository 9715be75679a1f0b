// A store whose every write first asks `check` whether it may still write (a
// writer lock's HeldLock.check): once the lock is lost or its lease has run
// out, the next write throws instead of racing the lock's new holder. Reads
// pass straight through.
import type { Readable } from 'node:stream';
import type { StateStore, VersionedObject, WriteOptions } from './types.js';

export function fencedStore(store: StateStore, check: () => void): StateStore {
  return {
    baseURL: store.baseURL,
    conditionalWrites: store.conditionalWrites,
    urlOf: (path) => store.urlOf(path),
    sub: (prefix) => fencedStore(store.sub(prefix), check),
    read: (path) => store.read(path),
    readIfExists: (path) => store.readIfExists(path),
    exists: (path) => store.exists(path),
    list: (prefix) => store.list(prefix),
    listChildren: (prefix) => store.listChildren(prefix),
    listObjects: (prefix) => store.listObjects(prefix),
    openReadStream: (path) => store.openReadStream(path),
    readVersioned: (path): Promise<VersionedObject | undefined> => store.readVersioned(path),
    readIfChanged: (path, version) => store.readIfChanged(path, version),
    async write(path: string, data: Buffer | string, options?: WriteOptions) {
      check();
      return store.write(path, data, options);
    },
    async writeStream(path: string, source: Readable, options?: WriteOptions) {
      check();
      return store.writeStream(path, source, options);
    },
    async delete(path: string) {
      check();
      return store.delete(path);
    },
    async createIfAbsent(path: string, data: Buffer | string, options?: WriteOptions) {
      check();
      return store.createIfAbsent(path, data, options);
    },
    async replaceIfVersion(path: string, data: Buffer | string, version: string, options?: WriteOptions) {
      check();
      return store.replaceIfVersion(path, data, version, options);
    },
    async deleteIfVersion(path: string, version: string) {
      check();
      return store.deleteIfVersion(path, version);
    },
  };
}
