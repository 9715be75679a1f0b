// A local asset mirror for nodeup tests and benchmarks: an HTTP server on
// 127.0.0.1 serving generated files, counting every request, optionally adding
// latency. Closed when the test ends.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Teardown } from './tmp.js';

export interface AssetServer {
  url: string;
  /** Every request path, in arrival order. */
  requests: string[];
  put(path: string, data: Buffer): void;
  /** `sha256@<this server>/<path>` for a file served here. */
  spec(path: string, extraMirrors?: string[], firstMirrors?: string[]): string;
  close(): Promise<void>;
}

export async function startAssetServer(t: Teardown | undefined, options: { latencyMs?: number } = {}): Promise<AssetServer> {
  const files = new Map<string, Buffer>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const body = files.get(req.url ?? '');
    setTimeout(() => {
      if (!body) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' }).end(body);
    }, options.latencyMs ?? 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = (): Promise<void> => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  t?.teardown(close);
  return {
    url,
    requests,
    put: (path, data) => void files.set(path, data),
    spec(path, extraMirrors = [], firstMirrors = []) {
      const data = files.get(path);
      if (!data) throw new Error(`asset server: nothing at ${path}`);
      const hash = createHash('sha256').update(data).digest('hex');
      return `${hash}@${[...firstMirrors, `${url}${path}`, ...extraMirrors].join(',')}`;
    },
    close,
  };
}
