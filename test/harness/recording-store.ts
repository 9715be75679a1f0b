// A state store wrapper that records every path read (relative to the store the
// opener was given) and refuses reads the test forbids with AccessDenied, the
// way a node's IAM policy would. Writes are refused too: nodeup never writes.
import type { Readable } from 'node:stream';
import { StoreError, type StateStore, type WriteOptions } from '../../shared/store/types.js';

export interface RecordingStores {
  /** Pass as nodeup's openStore. */
  open(url: string): StateStore;
  /** Every path read, as full URLs. */
  reads: string[];
  /** Reads refused, as full URLs. */
  denied: string[];
}

export function recordingStores(inner: (url: string) => StateStore, deny: (url: string) => boolean): RecordingStores {
  const reads: string[] = [];
  const denied: string[] = [];
  const wrap = (store: StateStore): StateStore => {
    const check = (path: string): void => {
      const url = store.urlOf(path);
      reads.push(url);
      if (deny(url)) {
        denied.push(url);
        throw new StoreError('AccessDenied', url, 'access denied (test policy)');
      }
    };
    const refuseWrite = (path: string): never => {
      throw new StoreError('AccessDenied', store.urlOf(path), 'nodeup must not write to the state store (test policy)');
    };
    return {
      baseURL: store.baseURL,
      urlOf: (path) => store.urlOf(path),
      sub: (prefix) => wrap(store.sub(prefix)),
      async read(path) {
        check(path);
        return store.read(path);
      },
      async readIfExists(path) {
        check(path);
        return store.readIfExists(path);
      },
      async exists(path) {
        check(path);
        return store.exists(path);
      },
      async write(path: string, _data: Buffer | string, _options?: WriteOptions) {
        refuseWrite(path);
      },
      async list(prefix) {
        check(prefix ?? '');
        return store.list(prefix);
      },
      async listChildren(prefix) {
        check(prefix ?? '');
        return store.listChildren(prefix);
      },
      async listObjects(prefix) {
        check(prefix ?? '');
        return store.listObjects(prefix);
      },
      async delete(path) {
        refuseWrite(path);
      },
      async openReadStream(path): Promise<Readable> {
        check(path);
        return store.openReadStream(path);
      },
      async writeStream(path: string): Promise<number> {
        return refuseWrite(path);
      },
      conditionalWrites: store.conditionalWrites,
      async readVersioned(path) {
        check(path);
        return store.readVersioned(path);
      },
      async readIfChanged(path, version) {
        check(path);
        return store.readIfChanged(path, version);
      },
      async createIfAbsent(path: string): Promise<string | undefined> {
        return refuseWrite(path);
      },
      async replaceIfVersion(path: string): Promise<string | undefined> {
        return refuseWrite(path);
      },
      async deleteIfVersion(path: string): Promise<boolean> {
        return refuseWrite(path);
      },
    };
  };
  return { open: (url) => wrap(inner(url)), reads, denied };
}
