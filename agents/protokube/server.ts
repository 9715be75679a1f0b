// /healthz (the daemon runs), /readyz (every check ok; else 503 naming each
// failing check and why, one a line), /metrics and /status (the status
// document as JSON), on plain HTTP at --status-address:--status-port.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { METRICS_CONTENT_TYPE, type Metrics } from './metrics.js';
import type { StatusBoard } from './status.js';

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

export async function startStatusServer(options: { address: string; port: number; board: StatusBoard; metrics: Metrics }): Promise<StatusServer> {
  const text = (status: number, body: string) => ({ status, type: 'text/plain; charset=utf-8', body });
  const answer = (path: string): { status: number; type: string; body: string } => {
    switch (path) {
      case '/healthz':
        return text(200, 'ok\n');
      case '/readyz': {
        const failing = options.board.failing();
        if (failing.length === 0) return text(200, 'ok\n');
        return text(503, failing.map((f) => `${f.check}: ${f.reason}`).join('\n') + '\n');
      }
      case '/metrics':
        return { status: 200, type: METRICS_CONTENT_TYPE, body: options.metrics.render() };
      case '/status':
        return { status: 200, type: 'application/json', body: JSON.stringify(options.board.document(), null, 2) + '\n' };
      default:
        return text(404, 'not found\n');
    }
  };
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const reply = answer((req.url ?? '/').split('?')[0]);
    res.writeHead(reply.status, { 'content-type': reply.type }).end(req.method === 'HEAD' ? undefined : reply.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
