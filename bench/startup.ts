// Start-up time of the single executable against plain node, measured in the
// same run (interleaved, so machine load hits all alike), plus its size.
// Run: node scripts/build-binaries.mjs && node --import @tapjs/typescript/import bench/startup.ts
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNS = 20;
const WARMUP = 3;

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const binary = join(repo, 'dist/bin/mooring');
const bundle = join(repo, 'dist/bundle.cjs');

interface Subject {
  label: string;
  command: string;
  args: string[];
}

const reference: Subject = { label: 'node -e 0 (reference)', command: process.execPath, args: ['-e', '0'] };
const subjects: Subject[] = [
  reference,
  { label: 'node dist/bundle.cjs mooring --version', command: process.execPath, args: [bundle, 'mooring', '--version'] },
  { label: 'dist/bin/mooring --version', command: binary, args: ['--version'] },
  { label: 'dist/bin/nodeup --version', command: join(repo, 'dist/bin/nodeup'), args: ['--version'] },
];

function timeOnce(subject: Subject): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(subject.command, subject.args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${subject.label} exited ${result.status}: ${result.stderr.toString()}`);
  return elapsed;
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

const samples = new Map<Subject, number[]>(subjects.map((s) => [s, []]));
for (let round = 0; round < WARMUP + RUNS; round++) {
  for (const subject of subjects) {
    const ms = timeOnce(subject);
    if (round >= WARMUP) samples.get(subject)?.push(ms);
  }
}

const referenceMs = median(samples.get(reference) ?? []);
console.log(`start-up, median of ${RUNS} runs (after ${WARMUP} warm-up runs):`);
for (const subject of subjects) {
  const ms = median(samples.get(subject) ?? []);
  console.log(`  ${subject.label.padEnd(42)} ${ms.toFixed(1).padStart(7)} ms  ${(ms / referenceMs).toFixed(2)}x reference`);
}
console.log(`size: dist/bin/mooring ${(statSync(binary).size / 1024 / 1024).toFixed(1)} MiB, dist/bundle.cjs ${(statSync(bundle).size / 1024).toFixed(0)} KiB`);
