// The two daemons of a local cloud.
// - servers: run inside the bridge namespace; s3rver (the state store), the
//   metadata service and the asset mirror on the bridge address, and s3rver
//   also on a UNIX socket for the host's forwarder.
// - forwarder: runs in the host namespace; 127.0.0.1:<port> piped to that
//   socket, so the operator's `mooring` reaches the store without a packet ever
//   going to the bridge's address.
import { once } from 'node:events';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createServer as createHTTPServer, type Server } from 'node:http';
import { createConnection, createServer as createTCPServer } from 'node:net';
import S3rver from 's3rver';
import type { Logger } from '../../../../shared/log.js';
import { conditionalWrites } from './conditional-writes.js';
import { metadataHandler, type MetadataSource } from './imds.js';
import { mirrorHandler } from './mirror.js';
import { BRIDGE_ADDRESS, BUCKET, CloudLayout, IMDS_PORT, instancePaths, MIRROR_PORT, S3_PORT } from './plan.js';
import { instanceDirOf, listInstances } from './records.js';

async function listen(server: Server, ...args: [number, string] | [string]): Promise<void> {
  server.listen(...(args as [number, string]));
  await once(server, 'listening');
}

function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal));
  });
}

/** Runs until SIGTERM/SIGINT. */
export async function runServers(layout: CloudLayout, log: Logger): Promise<void> {
  await mkdir(layout.s3Data, { recursive: true });
  await mkdir(layout.runDir, { recursive: true });
  const s3 = new S3rver({ address: BRIDGE_ADDRESS, port: S3_PORT, silent: true, directory: layout.s3Data, configureBuckets: [{ name: BUCKET }] });
  // Before the router (the last middleware), so mooring's writer lock works on this store as on AWS S3.
  s3.middleware.splice(s3.middleware.length - 1, 0, conditionalWrites(s3.store));
  await s3.run();
  await rm(layout.s3Socket, { force: true });
  const s3Unix = createHTTPServer(s3.callback());
  await listen(s3Unix, layout.s3Socket);

  const source: MetadataSource = {
    async instanceAt(address) {
      const record = (await listInstances(layout)).find((r) => r.address === address);
      return record ? { record, userDataPath: instancePaths(instanceDirOf(layout, record)).userData } : undefined;
    },
  };
  const imds = createHTTPServer(metadataHandler(source, log));
  await listen(imds, IMDS_PORT, BRIDGE_ADDRESS);
  const mirror = createHTTPServer(mirrorHandler(layout.mirrorDir, log));
  await listen(mirror, MIRROR_PORT, BRIDGE_ADDRESS);
  log.info('servers listening', { event: 'servers-ready', address: BRIDGE_ADDRESS, s3: S3_PORT, imds: IMDS_PORT, mirror: MIRROR_PORT, s3Socket: layout.s3Socket });

  const signal = await stopSignal();
  log.info('servers stopping', { event: 'servers-stopping', signal });
  for (const server of [imds, mirror, s3Unix]) server.close();
  await s3.close();
  await rm(layout.s3Socket, { force: true });
}

/** Runs until SIGTERM/SIGINT; writes the port it got to `portFile` once listening. */
export async function runForwarder(socketPath: string, port: number, portFile: string, log: Logger): Promise<void> {
  const server = createTCPServer((client) => {
    const upstream = createConnection(socketPath);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', (err) => {
      log.warn('forwarder: upstream socket failed', { event: 'forward-error', err });
      close();
    });
    client.pipe(upstream).pipe(client);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  await writeFile(`${portFile}.tmp`, `${actual}\n`);
  await rename(`${portFile}.tmp`, portFile);
  log.info('forwarder listening', { event: 'forwarder-ready', port: actual, socket: socketPath });
  const signal = await stopSignal();
  log.info('forwarder stopping', { event: 'forwarder-stopping', signal });
  server.close();
}
