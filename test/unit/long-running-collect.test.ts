// collectPeriodically (shared/long-running.ts): a long-running agent's full
// collections run on its timer, on Node 20 (the sources) and on the Node 22 the
// single binary is built on, and taking V8's gc() leaves no trace: no global
// gc, and a code cache made before is still accepted after (the flag it needs
// is unset again; V8 refuses caches made under another flag hash). The same
// child without it is the control: an idle process runs no full collection.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const child = join(repo, 'test/fixtures/long-running-collect-child.ts');
const runtime = join(repo, `node_modules/node-linux-${process.arch}/bin/node`);

interface Report {
  major: number;
  cacheRejected: boolean;
  globalGc: string;
}

async function run(node: string, mode: 'collect' | 'control'): Promise<Report> {
  const { stdout } = await promisify(execFile)(node, ['--import', 'tsx', child, mode], { cwd: repo, timeout: 120_000, env: { ...process.env, NODE_OPTIONS: '' } });
  return JSON.parse(stdout) as Report;
}

const runtimes = [
  { name: `Node ${process.versions.node} (the sources' runtime)`, node: process.execPath, skip: false as string | false },
  { name: "the single binary's runtime (node-linux-*)", node: runtime, skip: existsSync(runtime) ? (false as const) : `${runtime} is not installed (make setup)` },
];

for (const runtime of runtimes) {
  t.test(runtime.name, { skip: runtime.skip }, async (t) => {
    const control = await run(runtime.node, 'control');
    t.equal(control.major, 0, 'control: an idle process runs no full collection of its own');
    const collected = await run(runtime.node, 'collect');
    t.ok(collected.major >= 5, `every 50 ms for 600 ms: ${collected.major} full collections`);
    t.equal(collected.cacheRejected, false, 'a code cache made before is still accepted (the flag hash is unchanged)');
    t.equal(collected.globalGc, 'undefined', 'no global gc() left behind');
  });
}
