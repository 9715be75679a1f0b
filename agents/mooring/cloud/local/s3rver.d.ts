// s3rver ships no types; only what the servers daemon uses.
declare module 's3rver' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    directory: string;
    configureBuckets?: { name: string }[];
  }
  /** The part of Koa's context the local cloud's middleware reads and sets. */
  export interface S3rverContext {
    method: string;
    path: string;
    query: Record<string, unknown>;
    get(header: string): string;
    status: number;
    type: string;
    body: unknown;
  }
  export type S3rverMiddleware = (ctx: S3rverContext, next: () => Promise<void>) => Promise<void>;
  /** s3rver's filesystem store; getMetadata rejects with ENOENT when there is no such object. */
  export interface S3rverStore {
    getMetadata(bucket: string, key: string): Promise<{ etag: string }>;
  }
  class S3rver {
    constructor(options: S3rverOptions);
    /** Koa's middleware stack, composed when callback() or run() is called. */
    middleware: S3rverMiddleware[];
    store: S3rverStore;
    run(): Promise<{ address: string; port: number }>;
    close(): Promise<void>;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
  export default S3rver;
}
