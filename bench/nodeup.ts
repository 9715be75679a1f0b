// nodeup benchmarks, each measured in this one run:
//   1. plan time (dry run) for a control-plane node against a fresh root;
//   2. the time of a no-op rerun on a node that is already configured;
//   3. parallel against sequential download of 6 assets from a local HTTP
//      server on 127.0.0.1 that adds 200 ms of latency per request (kOps
//      downloads sequentially), as a ratio.
// Run: node_modules/.bin/tsx bench/nodeup.ts
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { configureLogging, logger } from '../shared/log.js';
import { runTasks } from '../agents/nodeup/engine/run.js';
import { parseAssetSpec } from '../agents/nodeup/host/assets.js';
import { AssetTask } from '../agents/nodeup/tasks/asset.js';
import { startAssetServer } from '../test/harness/asset-server.js';
import { CONTROL_PLANE, generatedAssets, makeCluster, makeRoot, nodeup } from '../test/harness/nodeup.js';
import { tempDir } from '../test/harness/tmp.js';

const cleanups: Array<() => unknown> = [];
const t = { teardown: (fn: () => unknown) => void cleanups.push(fn) };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function must(args: string[]): Promise<void> {
  const r = await nodeup(args);
  if (r.code !== 0) throw new Error(`nodeup ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
}

async function main(): Promise<void> {
  configureLogging({ write: () => undefined });
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const cluster = await makeCluster(t);
  await cluster.setAssets(['/kubelet', '/etcd-v3.4.23-linux-amd64.tar.gz', '/containerd-1.7.24-linux-amd64.tar.gz'].map((p) => server.spec(p)));
  const conf = await cluster.bootConfig(CONTROL_PLANE);

  const RUNS = 7;
  const planRoot = makeRoot(t);
  await must(['--conf', conf, '--root', planRoot, '--dry-run']); // warm-up
  const plans: number[] = [];
  for (let i = 0; i < RUNS; i++) plans.push(await timed(() => must(['--conf', conf, '--root', planRoot, '--dry-run'])));

  const root = makeRoot(t);
  const firstApply = await timed(() => must(['--conf', conf, '--root', root]));
  const reruns: number[] = [];
  for (let i = 0; i < RUNS; i++) reruns.push(await timed(() => must(['--conf', conf, '--root', root])));

  console.log(`nodeup plan (dry run), control-plane node, fresh root: median ${median(plans).toFixed(0)} ms over ${RUNS} runs`);
  console.log(`nodeup first apply (40 tasks, 3 assets, 6 certificates): ${firstApply.toFixed(0)} ms`);
  console.log(`nodeup no-op rerun, configured node:                      median ${median(reruns).toFixed(0)} ms over ${RUNS} runs`);

  // Downloads: 6 assets of 1 MiB, 200 ms of latency per request.
  const slow = await startAssetServer(t, { latencyMs: 200 });
  const specs: string[] = [];
  for (let i = 0; i < 6; i++) {
    slow.put(`/asset-${i}`, randomBytes(1024 * 1024));
    specs.push(slow.spec(`/asset-${i}`));
  }
  const download = async (concurrency: number): Promise<number> => {
    const dir = tempDir(t, 'nodeup-bench-');
    const tasks = specs.map((s, i) => new AssetTask(parseAssetSpec(s), { kind: 'file', path: `/opt/bench/asset-${i}` }));
    return timed(async () => {
      const report = await runTasks(tasks, {
        root: dir, dryRun: false, concurrency, log: logger('bench'), cache: '/cache',
        host: { id: 'debian', versionID: '12', family: 'debian', arch: 'amd64', source: 'bench' },
      });
      if (report.failed.length > 0) throw new Error(`download failed: ${report.failed.map((r) => r.error).join('; ')}`);
    });
  };
  const parallel: number[] = [];
  const sequential: number[] = [];
  for (let round = 0; round < 3; round++) {
    // Interleaved, so machine load hits both alike.
    sequential.push(await download(1));
    parallel.push(await download(8));
  }
  const p = median(parallel);
  const s = median(sequential);
  console.log(`6 assets x 1 MiB, +200 ms latency each: sequential (kOps' way) median ${s.toFixed(0)} ms, parallel (nodeup) median ${p.toFixed(0)} ms`);
  console.log(`download speed-up, parallel vs sequential: ${(s / p).toFixed(2)}x (same run, 3 rounds)`);
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
