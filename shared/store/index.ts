// Opens a state store by URL: file:// (or an absolute path), s3://, memfs://.
import { isAbsolute } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { checkFileStoreDir, FileStore, fileStoreDir } from './file.js';
import { MemfsStore } from './memfs.js';
import { LazyS3Store } from './s3-lazy.js';
import { StoreError, type StateStore } from './types.js';

export * from './types.js';
export { FileStore } from './file.js';
export { MemfsStore, clearMemfs } from './memfs.js';

export interface OpenStoreOptions {
  /** Environment the s3:// backend reads its AWS settings from; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** s3://: a request that gets no byte for this long fails (default 30 s, see timeout.ts). */
  timeoutMs?: number;
}

export function openStore(url: string, options: OpenStoreOptions = {}): StateStore {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (isAbsolute(url)) return openFileStore(url);
    throw new StoreError('InvalidURL', url, 'not a state store URL (want file://, s3://, memfs:// or an absolute path)');
  }
  switch (scheme) {
    case 'file':
      return openFileStore(url);
    case 's3':
      return LazyS3Store.open(url, options.env, options.timeoutMs);
    case 'memfs':
      return new MemfsStore(url);
    default:
      throw new StoreError('InvalidURL', url, `unsupported state store scheme "${scheme}" (want file://, s3:// or memfs://)`);
  }
}

function openFileStore(url: string): FileStore {
  const store = new FileStore(url);
  checkFileStoreDir(url, fileStoreDir(url));
  return store;
}

/** The state store URL an agent should use: its --state flag, else MOORING_STATE_STORE. */
export function storeURLFromEnv(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag || env.MOORING_STATE_STORE;
  if (!url) throw new UserError('no state store: pass --state or set MOORING_STATE_STORE', ExitCode.Usage);
  return url;
}
