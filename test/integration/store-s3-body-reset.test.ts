// The S3 store's whole-object reads (read, readVersioned, readIfChanged) when the server
// resets the connection after the headers, while the body streams: the SDK's
// retries are over by then, so the store asks again (up to three attempts in
// all). A server on 127.0.0.1 that answers GetObject with a 200, half the
// body, then a reset, a given number of times before it answers whole.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openStore, StoreError } from '../../shared/store/index.js';

const BODY = Buffer.from('{"the":"whole object, every byte of it"}');

async function cuttingServer(cutsFirst: number): Promise<{ server: Server; endpoint: string; gets: () => number }> {
  let gets = 0;
  const server = createServer((req, res) => {
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    gets++;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length, etag: '"v1"' });
    if (gets <= cutsFirst) {
      res.write(BODY.subarray(0, 10), () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    res.end(BODY);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, gets: () => gets };
}

for (const [cuts, whole] of [[0, true], [1, true], [2, true], [3, false]] as const) {
  t.test(`${cuts} reset(s) mid-body: ${whole ? 'read whole' : 'Unreachable, after three attempts'}`, async (t) => {
    const s = await cuttingServer(cuts);
    t.teardown(() => new Promise<void>((resolve) => { s.server.closeAllConnections(); s.server.close(() => resolve()); }));
    const env = { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' };
    const store = openStore('s3://bucket/state', { env, timeoutMs: 5_000 });
    if (whole) {
      t.same(await store.read('object.json'), BODY, 'read: every byte');
      t.equal(s.gets(), cuts + 1, `read: ${cuts + 1} GET(s)`);
      const versioned = await store.readVersioned('object.json');
      t.same(versioned?.data, BODY, 'readVersioned: every byte');
    } else {
      const failed = await store.read('object.json').then(() => undefined, (err: unknown) => err);
      t.ok(failed instanceof StoreError && failed.kind === 'Unreachable', `read: the store is unreachable (${(failed as Error)?.message})`);
      t.equal(s.gets(), 3, 'three GETs, no more');
    }
  });

  // The conditional read a manager polls the doorbell and the leader's records with (If-None-Match).
  t.test(`${cuts} reset(s) mid-body of a conditional read: ${whole ? 'changed, whole' : 'Unreachable, after three attempts'}`, async (t) => {
    const s = await cuttingServer(cuts);
    t.teardown(() => new Promise<void>((resolve) => { s.server.closeAllConnections(); s.server.close(() => resolve()); }));
    const env = { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' };
    const store = openStore('s3://bucket/state', { env, timeoutMs: 5_000 });
    const read = await store.readIfChanged('object.json', '"v0"').then((r) => r, (err: unknown) => err);
    if (whole) {
      t.same(read, { status: 'changed', object: { data: BODY, version: '"v1"' } }, 'readIfChanged: changed, every byte, the new version');
      t.equal(s.gets(), cuts + 1, `readIfChanged: ${cuts + 1} GET(s)`);
    } else {
      t.ok(read instanceof StoreError && read.kind === 'Unreachable', `readIfChanged: the store is unreachable (${(read as Error)?.message})`);
      t.equal(s.gets(), 3, 'three GETs, no more');
    }
  });
}
