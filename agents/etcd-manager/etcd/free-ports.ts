// Ports the kernel says are free on an address right now, for an etcd about
// to listen on them. All `count` listeners are open at once before any is
// closed, so the ports are distinct: one at a time, the kernel may hand the
// port it just gave back again, and an etcd told to use one port for two
// listeners fails to start.
import { createServer, type Server } from 'node:net';

function listenOnAnyPort(host: string): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0 });
    });
  });
}

/** `count` distinct ports free on `host` at the time of the call. */
export async function freePorts(host: string, count: number): Promise<number[]> {
  const open: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const { server, port } = await listenOnAnyPort(host);
      open.push(server);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(open.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}
