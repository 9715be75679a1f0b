// protokube's names at scale: 1,000 workers polling an S3 state store
// (s3rver on 127.0.0.1, behind a byte-counting TCP proxy), each with its own
// S3 client, as each worker's daemon has. Measured in this one run:
//   1. what one poll costs a worker: store requests and bytes on the wire
//      (both ways), for protokube's poll (one conditional GET of the published
//      object: 200 the first time, then 304) and for the reference, a naive
//      poll of the same facts (list the registrations, read each one), as a ratio;
//   2. how long a control-plane change (a fourth instance registers) takes to
//      reach all 1,000 workers, with every worker and control-plane instance
//      polling every --poll-interval (staggered), in wall time and in polls.
// The pollers are protokube's own classes (agents/protokube/names/pollers.ts),
// run in this process: 1,000 daemons would not fit on this machine, and what is
// measured is the store traffic they make, which is the same.
// Run: node_modules/.bin/tsx bench/protokube-names.ts [--workers=1000] [--poll=5000]
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { configureLogging, logger } from '../shared/log.js';
import { openStore, type StateStore } from '../shared/store/index.js';
import { Metrics } from '../agents/protokube/metrics.js';
import { ControlPlaneNames, PublishedNames } from '../agents/protokube/names/pollers.js';
import { REGISTRATION_FOLDER } from '../agents/protokube/names/registry.js';
import { startS3 } from '../test/harness/s3.js';

const cleanups: Array<() => unknown> = [];
const t = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const WORKERS = arg('workers', 1000);
const POLL_MS = arg('poll', 5000);
const CLUSTER = 'bench.example.com';
const CONCURRENCY = 50;

interface Counter {
  up: number;
  down: number;
}

/** A TCP proxy in front of s3rver that counts every byte each way. */
async function countingProxy(target: number): Promise<{ port: number; bytes: Counter; close(): Promise<void> }> {
  const bytes: Counter = { up: 0, down: 0 };
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d: Buffer) => (bytes.up += d.length));
    upstream.on('data', (d: Buffer) => (bytes.down += d.length));
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    bytes,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

async function inBatches<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The reference: what a worker reads without the published object, a listing and one read per instance. */
async function naivePoll(store: StateStore): Promise<string[]> {
  const listed = await store.listObjects(REGISTRATION_FOLDER);
  const addresses: string[] = [];
  for (const o of listed) {
    const record = JSON.parse((await store.read(o.path)).toString()) as { address: string };
    addresses.push(record.address);
  }
  return addresses;
}

async function main(): Promise<void> {
  configureLogging({ write: () => undefined });
  const log = logger('bench');
  const s3 = await startS3(t);
  const proxy = await countingProxy(Number(new URL(s3.endpoint).port));
  cleanups.push(() => proxy.close());
  const env = { ...s3.env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${proxy.port}` };
  const folder = `${s3.url}/${CLUSTER}`;
  const open = () => openStore(folder, { env });

  // Three control-plane instances, each with its own client, register and publish.
  const cps = [1, 2, 3].map((i) => new ControlPlaneNames(open(), { name: `cp-${i}`, address: `10.0.0.${i}`, zone: `zone-${i}` }, { cluster: CLUSTER, ttlMs: 90_000, log, metrics: new Metrics() }));
  for (const cp of cps) await cp.poll();
  for (const cp of cps) await cp.poll();

  const workerStores = Array.from({ length: WORKERS }, () => open());
  const workers = workerStores.map((store) => new PublishedNames(store, { cluster: CLUSTER, metrics: new Metrics() }));
  const naiveStores = Array.from({ length: WORKERS }, () => open());

  const round = async (name: string, poll: (i: number) => Promise<string[]>) => {
    const before = { requests: (await s3.requests()).length, up: proxy.bytes.up, down: proxy.bytes.down };
    const start = performance.now();
    await inBatches([...Array(WORKERS).keys()], async (i) => {
      const addresses = await poll(i);
      if (addresses.length !== 3) throw new Error(`${name}: worker ${i} saw ${addresses.length} addresses`);
    });
    const wallMs = performance.now() - start;
    const requests = (await s3.requests()).length - before.requests;
    const bytes = proxy.bytes.up - before.up + (proxy.bytes.down - before.down);
    return { name, requests: requests / WORKERS, bytes: bytes / WORKERS, wallMs };
  };

  // Warm every client's connection first, so that connection set-up is not counted as a poll.
  await inBatches([...Array(WORKERS).keys()], async (i) => {
    await workerStores[i].exists('warm-up');
    await naiveStores[i].exists('warm-up');
  });
  const progress = (what: string) => process.stderr.write(`bench: ${what} (${new Date().toISOString()})\n`);
  progress('first round');
  const cold = await round('protokube, first poll (200 with the object)', (i) => workers[i].poll());
  const warm = [];
  for (let r = 0; r < 3; r++) {
    progress(`protokube round ${r + 1}`);
    warm.push(await round('protokube, later polls (304)', (i) => workers[i].poll()));
  }
  const naive = [];
  for (let r = 0; r < 3; r++) {
    progress(`reference round ${r + 1}`);
    naive.push(await round('reference: list + read each registration', (i) => naivePoll(naiveStores[i])));
  }
  const med = (rs: Array<{ requests: number; bytes: number; wallMs: number }>) => ({
    requests: percentile(rs.map((r) => r.requests), 50),
    bytes: percentile(rs.map((r) => r.bytes), 50),
    wallMs: percentile(rs.map((r) => r.wallMs), 50),
  });
  const w = med(warm);
  const n = med(naive);

  console.log(`protokube names, ${WORKERS} workers, 3 control-plane instances, s3rver on 127.0.0.1 (${new Date().toISOString()})`);
  console.log('');
  console.log('| one poll, per worker | store requests | bytes on the wire | 1,000 polls, wall (50 in flight) |');
  console.log('|---|---|---|---|');
  console.log(`| ${cold.name} | ${cold.requests.toFixed(2)} | ${Math.round(cold.bytes)} | ${(cold.wallMs / 1000).toFixed(1)} s |`);
  console.log(`| protokube, later polls (304), median of 3 rounds | ${w.requests.toFixed(2)} | ${Math.round(w.bytes)} | ${(w.wallMs / 1000).toFixed(1)} s |`);
  console.log(`| reference: list + read each registration, median of 3 | ${n.requests.toFixed(2)} | ${Math.round(n.bytes)} | ${(n.wallMs / 1000).toFixed(1)} s |`);
  console.log(`| ratio reference / protokube | ${(n.requests / w.requests).toFixed(1)}× | ${(n.bytes / w.bytes).toFixed(1)}× | ${(n.wallMs / w.wallMs).toFixed(1)}× |`);

  // Propagation: everyone polls every POLL_MS, staggered; a fourth instance registers at t0.
  let stopping = false;
  const seen = new Array<number>(WORKERS).fill(0);
  const t0 = { at: 0 };
  const NEW = '10.0.0.4';
  const loops: Promise<void>[] = [];
  const every = (offset: number, fn: () => Promise<void>) =>
    loops.push((async () => {
      await new Promise((resolve) => setTimeout(resolve, offset));
      while (!stopping) {
        const started = performance.now();
        await fn().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, POLL_MS - (performance.now() - started))));
      }
    })());
  cps.forEach((cp, i) => every((i * POLL_MS) / cps.length, async () => void (await cp.poll())));
  workers.forEach((worker, i) => every((i * POLL_MS) / WORKERS, async () => {
    const addresses = await worker.poll();
    if (t0.at > 0 && seen[i] === 0 && addresses.includes(NEW)) seen[i] = performance.now() - t0.at;
  }));
  progress('propagation: steady state');
  await new Promise((resolve) => setTimeout(resolve, 2 * POLL_MS));
  const fourth = new ControlPlaneNames(open(), { name: 'cp-4', address: NEW, zone: 'zone-1' }, { cluster: CLUSTER, ttlMs: 90_000, log, metrics: new Metrics() });
  t0.at = performance.now();
  progress('propagation: a fourth instance registers');
  // It registers (and publishes its own view); a store too busy to answer at once is asked again, as the daemon would.
  for (let attempt = 1; ; attempt++) {
    try {
      await fourth.poll();
      break;
    } catch (err) {
      if (attempt >= 10) throw err;
    }
  }
  const deadline = performance.now() + 20 * POLL_MS;
  while (seen.some((s) => s === 0) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  stopping = true;
  await Promise.all(loops);
  const reached = seen.filter((s) => s > 0);
  console.log('');
  console.log(`A fourth control-plane instance registers; every worker and instance polls every ${POLL_MS} ms (staggered):`);
  console.log(`  reached ${reached.length}/${WORKERS} workers; median ${(percentile(reached, 50) / 1000).toFixed(2)} s, p99 ${(percentile(reached, 99) / 1000).toFixed(2)} s, last ${(Math.max(...reached) / 1000).toFixed(2)} s (${(Math.max(...reached) / POLL_MS).toFixed(2)} polls; bound: one instance poll + one worker poll = 2)`);
  console.log(`  store load at that poll rate: ${(WORKERS / (POLL_MS / 1000)).toFixed(0)} conditional GETs/s from workers (304 when nothing changed), against ${((WORKERS * n.requests) / (POLL_MS / 1000)).toFixed(0)} requests/s for the reference`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
