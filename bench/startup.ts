// Start-up time of every program in the single executable (--version and
// --help), against plain `node -e 0` of the node running this bench (the
// system's Node 20), measured in the same run (interleaved, so machine load
// hits all alike), plus sizes. `-e 0` of the Node 22 the binary is built on is
// shown too: no program in the binary can start faster than its runtime.
// Run: node scripts/build-binaries.mjs && node --import @tapjs/typescript/import bench/startup.ts
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const WARMUP = 3;
/** The goal of issue 7: every agent starts within this many times `node -e 0`. */
const GOAL = 1.3;

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(repo, 'dist/bin');
const binary = join(binDir, 'mooring');
const bundle = join(repo, 'dist/bundle.cjs');
const runtime = join(repo, `node_modules/node-linux-${process.arch}/bin/node`);
const runtimeMajor = existsSync(runtime) ? spawnSync(runtime, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8', env: {} }).stdout.trim() : '?';
const PROGRAMS = ['mooring', 'nodeup', 'etcd-manager', 'protokube'] as const;

interface Subject {
  label: string;
  command: string;
  args: string[];
  /** Counted against GOAL (the agents themselves); the rest are for comparison. */
  agent: boolean;
}

const reference: Subject = { label: 'node -e 0 (reference)', command: process.execPath, args: ['-e', '0'], agent: false };
const subjects: Subject[] = [
  reference,
  ...(existsSync(runtime) ? [{ label: `the binary's runtime: node${runtimeMajor} -e 0`, command: runtime, args: ['-e', '0'], agent: false }] : []),
  { label: 'node dist/bundle.cjs mooring --version', command: process.execPath, args: [bundle, 'mooring', '--version'], agent: false },
  ...PROGRAMS.flatMap((name) =>
    ['--version', '--help'].map((flag) => ({ label: `dist/bin/${name} ${flag}`, command: join(binDir, name), args: [flag], agent: true })),
  ),
];

interface Sample {
  /** Wall-clock time. */
  wall: number;
  /** CPU time, user + system, of the process and its threads: what a busy machine does not inflate. */
  cpu: number;
}

// bash's `time` reads the child's rusage (getrusage(RUSAGE_CHILDREN), to the
// microsecond); Node has no API for a child's CPU time. The command runs with
// an empty environment (no NODE_OPTIONS, no NODE_EXTRA_CA_CERTS) for all alike.
const TIMED = 'TIMEFORMAT="%3R %3U %3S"; time "$@" >/dev/null 2>/dev/null';

function timeOnce(subject: Subject): Sample {
  const result = spawnSync('bash', ['-c', TIMED, 'bash', subject.command, ...subject.args], { stdio: ['ignore', 'ignore', 'pipe'], env: {} });
  const times = /^(\d+\.\d+) (\d+\.\d+) (\d+\.\d+)$/m.exec(result.stderr.toString());
  if (result.status !== 0 || times === null) throw new Error(`${subject.label} exited ${result.status}: ${result.stderr.toString()}`);
  const [real, user, system] = times.slice(1).map((s) => Number(s) * 1000);
  return { wall: real, cpu: user + system };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

if (!existsSync(binary) || !existsSync(bundle)) {
  console.error('bench/startup: dist/bin/mooring or dist/bundle.cjs missing; run: node scripts/build-binaries.mjs');
  process.exit(1);
}

const samples = new Map<Subject, Sample[]>(subjects.map((s) => [s, []]));
for (let round = 0; round < WARMUP + RUNS; round++) {
  for (const subject of subjects) {
    const sample = timeOnce(subject);
    if (round >= WARMUP) samples.get(subject)?.push(sample);
  }
}

const medians = (subject: Subject): Sample => {
  const all = samples.get(subject) ?? [];
  return { wall: median(all.map((s) => s.wall)), cpu: median(all.map((s) => s.cpu)) };
};
const ref = medians(reference);
const runtimeSubject = subjects.find((s) => s.command === runtime);
const floor = runtimeSubject ? medians(runtimeSubject) : undefined;
console.log(`start-up, median of ${RUNS} runs (after ${WARMUP} warm-up runs), reference: ${process.execPath} -e 0 (${process.version}):`);
console.log(`  ${''.padEnd(42)} ${'wall'.padStart(9)}  ${'ratio'.padStart(5)}   ${'cpu'.padStart(9)}  ${'ratio'.padStart(5)}`);
const worst = { wall: 0, cpu: 0 };
for (const subject of subjects) {
  const m = medians(subject);
  const ratio = { wall: m.wall / ref.wall, cpu: m.cpu / ref.cpu };
  if (subject.agent) {
    worst.wall = Math.max(worst.wall, ratio.wall);
    worst.cpu = Math.max(worst.cpu, ratio.cpu);
  }
  console.log(`  ${subject.label.padEnd(42)} ${m.wall.toFixed(1).padStart(6)} ms  ${ratio.wall.toFixed(2)}x   ${m.cpu.toFixed(1).padStart(6)} ms  ${ratio.cpu.toFixed(2)}x`);
}
console.log(`slowest agent: ${worst.wall.toFixed(2)}x the reference's wall time, ${worst.cpu.toFixed(2)}x its CPU time (goal: within ${GOAL}x)`);
// The binary runs on its own Node (22, for SEA's execArgvExtension: see README), whose own `-e 0` is slower than
// the system Node 20's; against that floor, what the agents add is their own cost.
if (floor) {
  console.log(`slowest agent against its own runtime's -e 0: ${((worst.wall * ref.wall) / floor.wall).toFixed(2)}x wall, ${((worst.cpu * ref.cpu) / floor.cpu).toFixed(2)}x CPU (goal: within ${GOAL}x)`);
}
console.log(`size: dist/bin/mooring ${(statSync(binary).size / 1024 / 1024).toFixed(1)} MiB, dist/bundle.cjs ${(statSync(bundle).size / 1024).toFixed(0)} KiB`);
