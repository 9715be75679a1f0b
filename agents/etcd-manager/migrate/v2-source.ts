// Reads an etcd v2 keyspace through the v2 HTTP API (etcd 2.x, or 3.x with
// --enable-v2): `GET /v2/keys<dir>?recursive=true&sorted=true`, one subtree at a
// time. Directories above `pageDepth` are listed one level at a time and every
// directory at that depth is fetched whole, so no single response holds the
// whole keyspace (Kubernetes keeps everything under /registry/<resource>/…, and
// the default depth of 2 fetches one resource at a time).
//
// Each leaf comes with its absolute `expiration` (RFC 3339, ns) when it has a
// TTL. Values are what the v2 API returns: JSON strings, i.e. UTF-8 (etcd's JSON
// encoder turns bytes that are not UTF-8 into U+FFFD, in `etcdctl migrate` too).
// Hidden nodes (a last component starting with `_`) are not listed by etcd and
// so not migrated, as with `etcdctl migrate`.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { EtcdTLSFiles } from '../etcd/process.js';
import { compareLeafOrder } from './order.js';

export interface V2Leaf {
  key: string;
  value: string;
  /** Absolute expiry in ms since the epoch (rounded up), when the key has a TTL. */
  expiresAt?: number;
}

export interface V2Node {
  key?: string;
  value?: string;
  dir?: boolean;
  expiration?: string;
  ttl?: number;
  nodes?: V2Node[];
}

export interface V2Response {
  node: V2Node;
  /** X-Etcd-Cluster-Id: names the source cluster. */
  clusterId?: string;
  /** X-Etcd-Index at the time of the read. */
  etcdIndex?: number;
  /** The server's Date header, ms since the epoch (whole seconds). */
  serverDate?: number;
}

export class V2SourceError extends Error {}

/**
 * What the migration reads: the v2 API's GET of a directory. A live member
 * (V2Source, over HTTP) or a data directory read in memory (v2-store.ts).
 */
export interface V2Reader {
  get(dir: string, recursive: boolean): Promise<V2Response>;
  close(): void;
}

/** Maximum size of one v2 response: bigger subtrees need a deeper --page-depth. */
export const MAX_RESPONSE_BYTES = 1024 * 1024 * 1024;

/** Parses v2's RFC 3339 expiration with nanoseconds to ms since the epoch, rounded up (never early). */
export function parseExpiration(text: string): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (!m) return undefined;
  const whole = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(whole)) return undefined;
  const frac = m[2] ?? '';
  const ms = Number((frac + '000').slice(0, 3));
  const below = /[1-9]/.test(frac.slice(3)) ? 1 : 0;
  return whole + ms + below;
}

/** "/a b/c%d" → "/a%20b/c%25d": each component escaped, slashes kept. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

export class V2Source implements V2Reader {
  private readonly agent: http.Agent;
  private readonly base: URL;

  private constructor(url: string, private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined, private readonly timeoutMs: number) {
    this.base = new URL(url);
    this.agent = this.base.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, maxSockets: 4, ca: tls?.ca, cert: tls?.cert, key: tls?.key })
      : new http.Agent({ keepAlive: true, maxSockets: 4 });
  }

  /** `url` is http(s)://host:port of one v2 member; TLS files are read once here. */
  static async open(url: string, tls: Partial<EtcdTLSFiles> = {}, timeoutMs = 60_000): Promise<V2Source> {
    const read = async (path: string | undefined) => (path ? readFile(path) : undefined);
    const files = { ca: await read(tls.caFile), cert: await read(tls.certFile), key: await read(tls.keyFile) };
    return new V2Source(url, files.ca || files.cert || files.key ? files : undefined, timeoutMs);
  }

  get url(): string {
    return this.base.origin;
  }

  close(): void {
    this.agent.destroy();
  }

  /** One GET of a directory (or the root), recursive or one level. */
  get(dir: string, recursive: boolean): Promise<V2Response> {
    const path = `/v2/keys${encodeKeyPath(dir === '/' ? '/' : dir)}?recursive=${recursive}&sorted=true`;
    const url = new URL(path, this.base);
    const client = url.protocol === 'https:' ? https : http;
    return new Promise<V2Response>((resolve, reject) => {
      const req = client.get(url, { agent: this.agent, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new V2SourceError(`${this.url}: the v2 subtree ${dir} is larger than ${MAX_RESPONSE_BYTES} bytes in one response; use a larger --page-depth`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: { node?: V2Node; errorCode?: number; message?: string; cause?: string };
          try {
            body = JSON.parse(text) as typeof body;
          } catch {
            reject(new V2SourceError(`${this.url}: GET ${path}: HTTP ${res.statusCode}, not a v2 API answer (is --enable-v2 on?): ${text.slice(0, 120).trim()}`));
            return;
          }
          if (res.statusCode !== 200 || !body.node) {
            reject(new V2SourceError(`${this.url}: GET ${path}: HTTP ${res.statusCode}${body.errorCode !== undefined ? ` v2 error ${body.errorCode}` : ''}: ${body.message ?? text.slice(0, 120).trim()}${body.cause ? ` (${body.cause})` : ''}`));
            return;
          }
          const header = (name: string) => (typeof res.headers[name] === 'string' ? (res.headers[name] as string) : undefined);
          const index = header('x-etcd-index');
          const date = header('date');
          resolve({
            node: body.node,
            clusterId: header('x-etcd-cluster-id'),
            etcdIndex: index === undefined ? undefined : Number(index),
            serverDate: date === undefined ? undefined : Date.parse(date),
          });
        });
      });
      req.on('timeout', () => req.destroy(new V2SourceError(`${this.url}: GET ${path}: no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(err instanceof V2SourceError ? err : new V2SourceError(`${this.url}: GET ${path}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    });
  }
}

/** The leaves below a node, flattened and sorted in walk order. */
export function leavesOf(node: V2Node): V2Leaf[] {
  const out: V2Leaf[] = [];
  const visit = (n: V2Node) => {
    if (n.dir) {
      for (const child of n.nodes ?? []) visit(child);
      return;
    }
    if (n.key === undefined) return;
    const leaf: V2Leaf = { key: n.key, value: n.value ?? '' };
    if (n.expiration !== undefined) {
      const at = parseExpiration(n.expiration);
      if (at === undefined) throw new V2SourceError(`v2 key ${n.key}: expiration ${JSON.stringify(n.expiration)} is not an RFC 3339 time`);
      leaf.expiresAt = at;
    }
    out.push(leaf);
  };
  visit(node);
  // etcd sorts siblings already (sorted=true); sort only if its order is not ours.
  for (let i = 1; i < out.length; i++) {
    if (compareLeafOrder(out[i - 1].key, out[i].key) > 0) return out.sort((a, b) => compareLeafOrder(a.key, b.key));
  }
  return out;
}

export interface V2Page {
  /** The subtree this page holds ("/registry/pods"), or a single leaf's key. */
  root: string;
  leaves: V2Leaf[];
  /** The approximate bytes of its keys and values. */
  bytes: number;
  /** Local time the page's answer arrived. */
  readAt: number;
}

export interface WalkInfo {
  clusterId?: string;
  /** Largest |server Date − local time| seen, ms (whole-second resolution). */
  clockSkewMs: number;
}

/**
 * The v2 keyspace as pages of leaves, in walk order (see order.ts). Directories
 * at depth < pageDepth are listed one level at a time; deeper ones fetched whole.
 */
export async function* walkV2(source: V2Reader, pageDepth: number, info: WalkInfo = { clockSkewMs: 0 }): AsyncGenerator<V2Page> {
  const note = (res: V2Response) => {
    info.clusterId ??= res.clusterId;
    if (res.serverDate !== undefined) info.clockSkewMs = Math.max(info.clockSkewMs, Math.abs(Date.now() - res.serverDate) - 1000);
  };
  async function* visit(dir: string, depth: number): AsyncGenerator<V2Page> {
    const recursive = depth >= pageDepth;
    const res = await source.get(dir, recursive);
    const readAt = Date.now();
    note(res);
    if (recursive) {
      const leaves = leavesOf(res.node);
      if (leaves.length > 0) yield { root: dir, leaves, readAt, bytes: leaves.reduce((n, l) => n + l.key.length + l.value.length, 0) };
      return;
    }
    const children = [...(res.node.nodes ?? [])].sort((a, b) => compareLeafOrder(a.key ?? '', b.key ?? ''));
    // Consecutive leaves of one listing make one page; each subdirectory is its own.
    let run: V2Leaf[] = [];
    const page = (): V2Page => ({ root: dir, leaves: run, readAt, bytes: run.reduce((n, l) => n + l.key.length + l.value.length, 0) });
    for (const child of children) {
      if (child.key === undefined) continue;
      if (!child.dir) {
        run.push(...leavesOf(child));
        continue;
      }
      if (run.length > 0) {
        yield page();
        run = [];
      }
      yield* visit(child.key, depth + 1);
    }
    if (run.length > 0) yield page();
  }
  yield* visit('/', 0);
}
