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
// Run: node_modules/.bin/tsx bench/protokube-names.ts [--workers=1000] [--poll=15000]
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
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
const POLL_MS = arg('poll', 15_000);
const CLUSTER = 'bench.example.com';
const CONCURRENCY = 50;

interface Counter {
  up: number;
  down: number;
}

// A TCP proxy in front of s3rver that counts every byte each way, in a child
// process of its own so that its piping does not compete with the pollers for
// this process's event loop. argv: target port. stdout: {"port"} once, then
// {"up","down"} for every line read on stdin.
const PROXY_SCRIPT = `
const net = require('node:net');
const target = Number(process.argv[1]);
const bytes = { up: 0, down: 0 };
const server = net.createServer((client) => {
  const upstream = net.connect(target, '127.0.0.1');
  client.on('data', (d) => (bytes.up += d.length));
  upstream.on('data', (d) => (bytes.down += d.length));
  client.pipe(upstream).pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
require('node:readline').createInterface({ input: process.stdin })
  .on('line', () => process.stdout.write(JSON.stringify(bytes) + '\\n'))
  .on('close', () => process.exit(0));
`;

async function countingProxy(target: number): Promise<{ port: number; bytes(): Promise<Counter>; close(): Promise<void> }> {
  const child = spawn(process.execPath, ['-e', PROXY_SCRIPT, String(target)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const { port } = JSON.parse(await next()) as { port: number };
  return {
    port,
    bytes: async () => {
      const answer = next();
      child.stdin!.write('count\n');
      return JSON.parse(await answer) as Counter;
    },
    close: async () => {
      child.stdin!.end();
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    },
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
    const counted = await proxy.bytes();
    const before = { requests: (await s3.requests()).length, up: counted.up, down: counted.down };
    const start = performance.now();
    await inBatches([...Array(WORKERS).keys()], async (i) => {
      const addresses = await poll(i);
      if (addresses.length !== 3) throw new Error(`${name}: worker ${i} saw ${addresses.length} addresses`);
    });
    const wallMs = performance.now() - start;
    const requests = (await s3.requests()).length - before.requests;
    const after = await proxy.bytes();
    const bytes = after.up - before.up + (after.down - before.down);
    return { name, requests: requests / WORKERS, bytes: bytes / WORKERS, wallMs };
  };

  // The instance that will join later gets its client now, like the others (a new instance's first request is not what is measured).
  const fourthStore = open();
  await fourthStore.exists('warm-up');
  const fourth = new ControlPlaneNames(fourthStore, { name: 'cp-4', address: '10.0.0.4', zone: 'zone-1' }, { cluster: CLUSTER, ttlMs: 90_000, log, metrics: new Metrics() });
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
  console.log(`| one poll, per worker | store requests | bytes on the wire | a round of ${WORKERS} polls, wall (50 in flight) |`);
  console.log('|---|---|---|---|');
  console.log(`| ${cold.name} | ${cold.requests.toFixed(2)} | ${Math.round(cold.bytes)} | ${(cold.wallMs / 1000).toFixed(1)} s |`);
  console.log(`| protokube, later polls (304), median of 3 rounds | ${w.requests.toFixed(2)} | ${Math.round(w.bytes)} | ${(w.wallMs / 1000).toFixed(1)} s |`);
  console.log(`| reference: list + read each registration, median of 3 | ${n.requests.toFixed(2)} | ${Math.round(n.bytes)} | ${(n.wallMs / 1000).toFixed(1)} s |`);
  console.log(`| ratio reference / protokube | ${(n.requests / w.requests).toFixed(1)}× | ${(n.bytes / w.bytes).toFixed(1)}× | ${(n.wallMs / w.wallMs).toFixed(1)}× |`);

  // Propagation: everyone polls every `interval`, staggered; a fourth instance registers at t0. The
  // interval is at least twice the time one round of polls took above (this machine's capacity,
  // s3rver and the pollers sharing two cores), so the pollers never queue behind each other and the
  // time measured is protokube's, not a backlog's.
  const interval = Math.max(POLL_MS, Math.ceil((2 * w.wallMs) / 1000) * 1000);
  let stopping = false;
  const seenMs = new Array<number>(WORKERS).fill(0);
  const pollsAfter = new Array<number>(WORKERS).fill(0);
  const t0 = { at: 0 };
  const NEW = '10.0.0.4';
  const loops: Promise<void>[] = [];
  const every = (offset: number, fn: () => Promise<void>) =>
    loops.push((async () => {
      await new Promise((resolve) => setTimeout(resolve, offset));
      while (!stopping) {
        const started = performance.now();
        await fn().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, interval - (performance.now() - started))));
      }
    })());
  cps.forEach((cp, i) => every((i * interval) / cps.length, async () => void (await cp.poll())));
  workers.forEach((worker, i) => every((i * interval) / WORKERS, async () => {
    const started = performance.now();
    const addresses = await worker.poll();
    if (t0.at === 0 || seenMs[i] > 0 || started < t0.at) return;
    pollsAfter[i]++;
    if (addresses.includes(NEW)) seenMs[i] = performance.now() - t0.at;
  }));
  progress(`propagation: steady state, polls every ${interval} ms`);
  await new Promise((resolve) => setTimeout(resolve, 2 * interval));
  t0.at = performance.now();
  progress('propagation: a fourth instance registers');
  // It registers and publishes its own view; a store too busy to answer at once is asked again, as the daemon would.
  for (let attempt = 1; ; attempt++) {
    try {
      await fourth.poll();
      break;
    } catch (err) {
      if (attempt >= 10) throw err;
    }
  }
  const publishedMs = performance.now() - t0.at;
  const deadline = performance.now() + 10 * interval;
  while (seenMs.some((s) => s === 0) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  stopping = true;
  await Promise.all(loops);
  const reached = seenMs.filter((s) => s > 0);
  const polls = pollsAfter.filter((_, i) => seenMs[i] > 0);
  console.log('');
  console.log(`A fourth control-plane instance registers; every worker and instance polls every ${interval / 1000} s (staggered):`);
  console.log(`  published by the new instance's own first poll, ${(publishedMs / 1000).toFixed(2)} s after it started`);
  console.log(`  reached ${reached.length}/${WORKERS} workers: median ${(percentile(reached, 50) / 1000).toFixed(1)} s, p99 ${(percentile(reached, 99) / 1000).toFixed(1)} s, last ${(Math.max(...reached) / 1000).toFixed(1)} s after it registered`);
  console.log(`  in each worker's own polls: ${polls.filter((p) => p === 1).length} saw it at their first poll after the change, ${polls.filter((p) => p === 2).length} at the second, ${polls.filter((p) => p > 2).length} later (bound: one instance poll + one worker poll)`);
  console.log(`  store load at that rate: ${(WORKERS / (interval / 1000)).toFixed(0)} conditional GETs/s from the workers (304 while nothing changes) against ${((WORKERS * n.requests) / (interval / 1000)).toFixed(0)} requests/s for the reference; at protokube's default 10 s, ${(WORKERS / 10).toFixed(0)} and ${((WORKERS * n.requests) / 10).toFixed(0)}`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
