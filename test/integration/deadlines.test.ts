// Slow failure made fast (issue 7, item 9), against real servers on 127.0.0.1:
// a mirror or S3 endpoint that accepts and never answers, one that answers the
// headers and then stalls mid-body, and, so that the deadlines are shown to be
// per idle period and not per transfer, a mirror and an S3 proxy that keep
// pausing for less than the deadline but, added up, far longer than it.
// Nothing here times itself: each test asserts the error kind and which server
// saw which request; tap's timeout bounds the whole file.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AssetDownloadError, fetchToCache, MirrorStalledError, parseAssetSpec } from '../../agents/nodeup/host/assets.js';
import { startAssetServer } from '../harness/asset-server.js';
import { generatedAssets, makeCluster, makeRoot, nodeup, WORKER } from '../harness/nodeup.js';
import { startS3 } from '../harness/s3.js';
import { tempDir, type Teardown } from '../harness/tmp.js';
import { openStore, StoreError } from '../../shared/store/index.js';
import { PART_SIZE } from '../../shared/store/s3-parts.js';

t.setTimeout(240_000);

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Requests seen by the test servers of one test, in arrival order, as `<server> <path>`. */
type Log = string[];

async function listen(server: Server, t: Teardown, sockets: Set<Socket>): Promise<number> {
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  }));
  return (server.address() as AddressInfo).port;
}

/** Accepts connections, reads the request, never answers. Logs one line per request (a connection is one). */
async function silentServer(t: Teardown, name: string, log: Log): Promise<string> {
  const server = createTcpServer((socket) => {
    socket.once('data', (chunk) => log.push(`${name} ${/^\S+ (\S+)/.exec(chunk.toString('latin1'))?.[1] ?? '?'}`));
    socket.on('error', () => undefined);
  });
  return `http://127.0.0.1:${await listen(server, t, new Set())}`;
}

/** An HTTP server whose handler decides per request; every request is logged. */
async function httpServer(t: Teardown, name: string, log: Log, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createHttpServer((req, res) => {
    log.push(`${name} ${req.url}`);
    res.on('error', () => undefined);
    handle(req, res);
  });
  return `http://127.0.0.1:${await listen(server, t, new Set())}`;
}

/** Answers 200 with the right length, sends the first `sent` bytes, then stalls. */
const headersThenStall = (body: Buffer, sent: number) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
  res.write(body.subarray(0, sent));
};

/** Serves `body` in 64 KiB writes and pauses `pauseMs` after every `every` bytes; counts the pauses it made. */
function trickle(body: Buffer, every: number, pauseMs: number, pauses: { count: number }) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    void (async () => {
      for (let at = 0; at < body.length; at += 64 * 1024) {
        if (at > 0 && at % every === 0) {
          pauses.count++;
          await sleep(pauseMs);
        }
        if (!res.write(body.subarray(at, at + 64 * 1024))) await new Promise((resolve) => res.once('drain', resolve));
      }
      res.end();
    })().catch(() => res.destroy());
  };
}

t.test('asset downloads: a silent mirror and a stalled body are given up after the stall timeout, and the next mirror is tried', async (t) => {
  const STALL_MS = 3000;
  const log: Log = [];
  const body = randomBytes(256 * 1024);
  const silent = await silentServer(t, 'silent', log);
  const stalled = await httpServer(t, 'stalled', log, headersThenStall(body, 1000));
  const good = await httpServer(t, 'good', log, (_req, res) => res.writeHead(200, { 'content-length': body.length }).end(body));
  const cache = tempDir(t, 'deadlines-cache-');

  const asset = parseAssetSpec(`${sha256(body)}@${silent}/a/tool,${stalled}/b/tool,${good}/c/tool`);
  // 3 s, not 1: a mirror's request must reach this process's test server before the client gives up on
  // it, and under a CPU hog the first connection of a run took longer than 1 s to be read (CI run 17).
  const path = await fetchToCache(cache, asset, new AbortController().signal, STALL_MS);
  t.equal(path, `${cache}/${sha256(body)}_tool`, 'the third mirror delivered it');
  t.same(log, ['silent /a/tool', 'stalled /b/tool', 'good /c/tool'], 'each mirror asked once, in order, the next only after the previous gave up');

  // With no good mirror left, the error says how each one failed.
  log.length = 0;
  const none = parseAssetSpec(`${sha256(body)}@${silent}/a/other,${stalled}/b/other`);
  const err = await fetchToCache(cache, none, new AbortController().signal, STALL_MS).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof AssetDownloadError, 'an AssetDownloadError');
  const failures = (err as AssetDownloadError).failures;
  t.same(failures.map((f) => f.url), [`${silent}/a/other`, `${stalled}/b/other`]);
  t.ok(failures.every((f) => f.error instanceof MirrorStalledError), `both stalled: ${failures.map((f) => String(f.error)).join('; ')}`);
  t.match((err as Error).message, /^download other failed from every mirror: http:\/\/127\.0\.0\.1:\d+\/a\/other: stalled: no data for 3 s; http:\/\/127\.0\.0\.1:\d+\/b\/other: stalled: no data for 3 s$/);
  t.same(log, ['silent /a/other', 'stalled /b/other']);
});

t.test('asset downloads: a big download that keeps moving is not cut short, however long it takes in all', async (t) => {
  const log: Log = [];
  const body = randomBytes(8 * MiB);
  const pauses = { count: 0 };
  // 700 ms after every MiB: seven pauses, 4.9 s in all, against a 1.5 s stall timeout.
  const slow = await httpServer(t, 'slow', log, trickle(body, MiB, 700, pauses));
  const cache = tempDir(t, 'deadlines-cache-');
  const path = await fetchToCache(cache, parseAssetSpec(`${sha256(body)}@${slow}/big`), new AbortController().signal, 1500);
  t.equal(path, `${cache}/${sha256(body)}_big`);
  t.equal(pauses.count, 7, 'the mirror paused seven times, 4.9 s in all: more than three stall timeouts');
  t.same(log, ['slow /big'], 'one request: never given up and retried');
});

t.test('nodeup --asset-stall-timeout: a node whose first mirror never answers installs from the second', async (t) => {
  const log: Log = [];
  const silent = await silentServer(t, 'silent', log);
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const cluster = await makeCluster(t);
  await cluster.setAssets(['/kubelet', '/containerd-1.7.24-linux-amd64.tar.gz'].map((p) => server.spec(p, [], [`${silent}${p}`])));
  const run = await nodeup(['--conf', await cluster.bootConfig(WORKER), '--root', makeRoot(t), '--asset-stall-timeout', '1', '-o', 'json']);
  t.equal(run.code, 0, `nodeup applies (stderr: ${run.stderr.slice(-2000)})`);
  t.same([...log].sort(), ['silent /containerd-1.7.24-linux-amd64.tar.gz', 'silent /kubelet'], 'each asset asked the silent mirror first');
  t.same([...server.requests].sort(), ['/containerd-1.7.24-linux-amd64.tar.gz', '/kubelet'], 'then got it from the next one');
});

const S3_ENV = { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_EC2_METADATA_DISABLED: 'true' };

async function storeError(t: Test, p: Promise<unknown>): Promise<StoreError | undefined> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof StoreError, `a StoreError (got ${String(err)})`);
  return err instanceof StoreError ? err : undefined;
}

t.test('s3:// store: an endpoint that never answers fails each call once, after the store timeout, as Unreachable', async (t) => {
  const log: Log = [];
  const silent = await silentServer(t, 'silent', log);
  const store = openStore('s3://bucket/state', { env: { ...S3_ENV, AWS_ENDPOINT_URL_S3: silent }, timeoutMs: 1000 });
  for (const [what, op] of [
    ['read', () => store.read('config')],
    ['list', () => store.list()],
    ['write', () => store.write('config', 'x')],
  ] as const) {
    log.length = 0;
    const err = await storeError(t, op());
    t.equal(err?.kind, 'Unreachable', `${what}: Unreachable`);
    t.match(err?.message, `cannot reach ${silent}`, `${what}: names the endpoint`);
    t.match(err?.message, /timed out after 1000 ms of inactivity/, `${what}: says it timed out`);
    t.equal(log.length, 1, `${what}: one request, not retried (${log.join(', ')})`);
  }
});

t.test('s3:// store: a body that stalls mid-way fails as Unreachable after the store timeout', async (t) => {
  const log: Log = [];
  const stalled = await httpServer(t, 'stalled', log, headersThenStall(randomBytes(4096), 100));
  const store = openStore('s3://bucket/state', { env: { ...S3_ENV, AWS_ENDPOINT_URL_S3: stalled }, timeoutMs: 1000 });
  const err = await storeError(t, store.read('config'));
  t.equal(err?.kind, 'Unreachable');
  t.match(err?.message, /timed out after 1000 ms of inactivity/);
  t.equal(log.length, 1, `one request (${log.join(', ')})`);
  t.match(log[0], /^stalled \/bucket\/state\/config\b/);

  log.length = 0;
  const stream = await store.openReadStream('config');
  const drained = await pipeline(stream, new Transform({ transform: (_c, _e, done) => done() })).then(() => undefined, (e: unknown) => e);
  t.match(String(drained), /timed out after 1000 ms of inactivity/, 'a streamed read errors too, instead of hanging');
});

/**
 * A TCP proxy in front of s3rver that, in each direction of each connection,
 * holds the bytes for `pauseMs` after every `every` bytes it forwarded.
 */
async function pausingProxy(t: Teardown, target: string, every: number, pauseMs: number, pauses: { count: number }): Promise<string> {
  const { hostname, port } = new URL(target);
  const throttle = () => {
    let sinceLastPause = 0;
    return new Transform({
      transform(chunk: Buffer, _enc, done) {
        void (async () => {
          for (let at = 0; at < chunk.length;) {
            const take = Math.min(chunk.length - at, every - sinceLastPause);
            this.push(chunk.subarray(at, at + take));
            at += take;
            sinceLastPause += take;
            if (sinceLastPause === every) {
              sinceLastPause = 0;
              pauses.count++;
              await sleep(pauseMs);
            }
          }
        })().then(() => done(), done);
      },
    });
  };
  const server = createTcpServer((client) => {
    const upstream = connect(Number(port), hostname);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    void pipeline(client, throttle(), upstream).catch(close);
    void pipeline(upstream, throttle(), client).catch(close);
  });
  return `http://127.0.0.1:${await listen(server, t, new Set())}`;
}

t.test('s3:// store: a multipart upload and a big download through a link that keeps pausing complete', async (t) => {
  const s3 = await startS3(t);
  const pauses = { count: 0 };
  // 1 s held after every 2 MiB each way, against a 5 s store timeout: the 14 MiB download waits
  // 7 s in all, more than the timeout, yet no gap reaches it: the timeout is on idle time, not on a
  // whole call. On the upload side the client's socket goes idle while the link drains what the
  // kernel buffered (megabytes on loopback), so its gaps are longer than the pauses: against a 3 s
  // timeout that timed out on a busy machine (CI runs 6 and 7), hence 5 s.
  const proxy = await pausingProxy(t, s3.endpoint, 2 * MiB, 1000, pauses);
  const store = openStore(`${s3.url}/slow`, { env: { ...s3.env, AWS_ENDPOINT_URL_S3: proxy }, timeoutMs: 5000 });
  // 5 + 5 + 4 MiB parts: each pauses every 2 MiB, six times in all.
  const data = randomBytes(14 * MiB);

  const before = (await s3.requests()).length;
  t.equal(await store.writeStream('big', Readable.from([data])), data.length, 'uploaded');
  const parts = (await s3.requests()).slice(before).filter((r) => r.method === 'PUT' && /[?&]partNumber=/.test(r.url));
  t.equal(parts.length, Math.ceil(data.length / PART_SIZE), `in ${PART_SIZE / MiB} MiB parts, each one call`);
  const uploadPauses = pauses.count;
  t.ok(uploadPauses >= 6, `the link paused ${uploadPauses} times (1 s each) during the upload`);

  const chunks: Buffer[] = [];
  await pipeline(await store.openReadStream('big'), new Transform({
    transform(chunk: Buffer, _e, done) {
      chunks.push(chunk);
      done();
    },
  }));
  t.equal(sha256(Buffer.concat(chunks)), sha256(data), 'downloaded whole, through a streamed read');
  t.ok((pauses.count - uploadPauses) * 1000 > 5000, `the link paused ${pauses.count - uploadPauses} times (1 s each) during the download: more in all than the timeout`);
});
