// The long-running agents' V8 settings (shared/long-running.ts) take effect
// when set at run time, on Node 20 (the sources) and on the Node 22 the single
// binary is built on. Each check runs a child process, with a control run of
// the same child without the setting, so the test fails if V8 ever ignores or
// renames a flag:
// - tuneForLongRunning: a hot function never gets optimized code (no Maglev or
//   TurboFan; Sparkplug's baseline is allowed) and the young generation does
//   not grow under an allocation burst (without it, V8 optimizes the function
//   and grows the young generation);
// - collectPeriodically: full collections run on its timer (an idle control
//   runs none), and taking V8's gc() leaves no trace: no global gc, and a code
//   cache made before is still accepted after (the flag it needs is unset
//   again; V8 refuses caches made under another flag hash).
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const runtime = join(repo, `node_modules/node-linux-${process.arch}/bin/node`);

/** Runs a fixture child under `node` and parses the JSON it prints. */
async function runChild<T>(node: string, fixture: string, mode: string, nodeFlags: string[] = []): Promise<T> {
  const { stdout } = await promisify(execFile)(node, [...nodeFlags, '--import', 'tsx', join(repo, 'test/fixtures', fixture), mode], { cwd: repo, timeout: 120_000, env: { ...process.env, NODE_OPTIONS: '' } });
  return JSON.parse(stdout) as T;
}

interface TuneReport {
  calls: number;
  optimized: boolean;
  status: number;
  newSpaceMiB: number;
}

interface CollectReport {
  major: number;
  cacheRejected: boolean;
  globalGc: string;
}

const runtimes = [
  { name: `Node ${process.versions.node} (the sources' runtime)`, node: process.execPath, skip: false as string | false },
  { name: "the single binary's runtime (node-linux-*)", node: runtime, skip: existsSync(runtime) ? (false as const) : `${runtime} is not installed (make setup)` },
];

for (const runtime of runtimes) {
  t.test(`${runtime.name}: tuneForLongRunning`, { skip: runtime.skip }, async (t) => {
    const run = (mode: 'tuned' | 'default') => runChild<TuneReport>(runtime.node, 'long-running-v8-child.ts', mode, ['--allow-natives-syntax']);
    const control = await run('default');
    t.ok(control.optimized, `control: without the flags V8 optimizes the hot function (status ${control.status}, ${control.calls} calls)`);
    t.ok(control.newSpaceMiB >= 16, `control: without the flags the young generation grows (${control.newSpaceMiB} MiB)`);
    const tuned = await run('tuned');
    t.equal(tuned.calls, 20_000, 'tuned: the hot function was never optimized, in all 20000 calls');
    t.notOk(tuned.optimized, `tuned: no Maglev or TurboFan code (status ${tuned.status})`);
    t.ok(tuned.newSpaceMiB <= 8, `tuned: the young generation stays at its first size (${tuned.newSpaceMiB} MiB)`);
  });

  t.test(`${runtime.name}: collectPeriodically`, { skip: runtime.skip }, async (t) => {
    const run = (mode: 'collect' | 'control') => runChild<CollectReport>(runtime.node, 'long-running-collect-child.ts', mode);
    const control = await run('control');
    t.equal(control.major, 0, 'control: an idle process runs no full collection of its own');
    const collected = await run('collect');
    t.ok(collected.major >= 5, `every 50 ms for 600 ms: ${collected.major} full collections`);
    t.equal(collected.cacheRejected, false, 'a code cache made before is still accepted (the flag hash is unchanged)');
    t.equal(collected.globalGc, 'undefined', 'no global gc() left behind');
  });
}
