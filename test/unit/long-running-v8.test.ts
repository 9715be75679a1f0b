// The long-running agents' V8 flags (shared/long-running.ts) take effect when
// set at run time, on Node 20 (the sources) and on the Node 22 the single
// binary is built on: after tuneForLongRunning() a hot function never gets
// optimized code (no Maglev or TurboFan; Sparkplug's baseline is allowed) and the young
// generation does not grow under an allocation burst. The same child without
// the flags is the control: there V8 optimizes the function and grows the
// young generation, so the test fails if V8 ever ignores or renames a flag.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const child = join(repo, 'test/fixtures/long-running-v8-child.ts');
const runtime = join(repo, `node_modules/node-linux-${process.arch}/bin/node`);

interface Report {
  calls: number;
  optimized: boolean;
  status: number;
  newSpaceMiB: number;
}

async function run(node: string, mode: 'tuned' | 'default'): Promise<Report> {
  const { stdout } = await promisify(execFile)(node, ['--allow-natives-syntax', '--import', 'tsx', child, mode], { cwd: repo, timeout: 120_000, env: { ...process.env, NODE_OPTIONS: '' } });
  return JSON.parse(stdout) as Report;
}

const runtimes = [
  { name: `Node ${process.versions.node} (the sources' runtime)`, node: process.execPath, skip: false as string | false },
  { name: "the single binary's runtime (node-linux-*)", node: runtime, skip: existsSync(runtime) ? (false as const) : `${runtime} is not installed (make setup)` },
];

for (const runtime of runtimes) {
  t.test(runtime.name, { skip: runtime.skip }, async (t) => {
    const control = await run(runtime.node, 'default');
    t.ok(control.optimized, `control: without the flags V8 optimizes the hot function (status ${control.status}, ${control.calls} calls)`);
    t.ok(control.newSpaceMiB >= 16, `control: without the flags the young generation grows (${control.newSpaceMiB} MiB)`);
    const tuned = await run(runtime.node, 'tuned');
    t.equal(tuned.calls, 20_000, 'tuned: the hot function was never optimized, in all 20000 calls');
    t.notOk(tuned.optimized, `tuned: no Maglev or TurboFan code (status ${tuned.status})`);
    t.ok(tuned.newSpaceMiB <= 8, `tuned: the young generation stays at its first size (${tuned.newSpaceMiB} MiB)`);
  });
}
