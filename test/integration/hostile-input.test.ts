// Hostile and careless input against the built binaries, table-driven: every
// case in test/hostile/cases/*.ts runs the real single binary in a fresh copy
// of a prepared world and must end with its exit code, one clear line on
// stderr, nothing foreign printed, and the world byte for byte unchanged.
import t from 'tap';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mooring, TEST_AGENT_ARGS } from '../harness/cli.js';
import { snapshotTree, tempDir } from '../harness/tmp.js';
import type { HostileCase, World } from '../hostile/case.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
// Well over a hundred cases, each a fresh world and a run of the binary: more than tap's default
// 300 s per file on a busy 2-core machine. Each case has its own bound (HostileCase.timeoutMs).
t.setTimeout(1_200_000);
const binDir = join(repo, 'dist/bin');
const CLUSTER = 'hostile.example.com';

if (!existsSync(join(binDir, 'mooring'))) throw new Error('dist/bin/mooring is not built: run make build first (a missing build is a failure, not a skip)');

const casesDir = join(repo, 'test/hostile/cases');
const modules = readdirSync(casesDir).filter((f) => f.endsWith('.ts')).sort();
const all: Array<{ file: string; c: HostileCase }> = [];
for (const file of modules) {
  const mod = (await import(pathToFileURL(join(casesDir, file)).href)) as { cases?: HostileCase[] };
  if (!Array.isArray(mod.cases) || mod.cases.length === 0) throw new Error(`${file} exports no cases`);
  for (const c of mod.cases) all.push({ file, c });
}

// The world is built once at a fixed path (the completed spec and boot configs name the store's
// path), kept as a template, and copied back to that path before each case.
const base = tempDir(t, 'hostile-');
const worldDir = join(base, 'world');
const template = join(base, 'template');
{
  const state = ['--state', `file://${worldDir}/state`];
  for (const args of [
    [...state, 'create', 'cluster', CLUSTER, '--cloud', 'local', '--control-plane-count', '1', '--node-count', '1'],
    [...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS],
  ]) {
    const r = await mooring(args);
    if (r.code !== 0) throw new Error(`preparing the world: mooring ${args.join(' ')}: ${r.stderr}`);
  }
  mkdirSync(join(worldDir, 'root'));
  cpSync(worldDir, template, { recursive: true });
}

function freshWorld(): World {
  rmSync(worldDir, { recursive: true, force: true });
  cpSync(template, worldDir, { recursive: true });
  const file = (name: string, content: string | Buffer, mode?: number) => {
    const path = join(worldDir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content, mode === undefined ? undefined : { mode });
    return path;
  };
  return {
    dir: worldDir,
    storeURL: `file://${worldDir}/state`,
    storeDir: join(worldDir, 'state'),
    cluster: CLUSTER,
    root: join(worldDir, 'root'),
    file,
    bootConfig: async (group) => {
      const r = await mooring(['--state', `file://${worldDir}/state`, 'get', 'bootconfig', CLUSTER, '--instance-group', group]);
      if (r.code !== 0) throw new Error(`get bootconfig ${group}: ${r.stderr}`);
      return file(`conf/${group}.yaml`, r.stdout);
    },
  };
}

function run(program: string, args: string[], env: Record<string, string>, stdin: string | undefined, timeoutMs: number) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean }>((resolve) => {
    const child = spawn(join(binDir, program), args, {
      cwd: worldDir,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: worldDir, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => void (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => void (stderr += c.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    // A program may refuse its input before reading all of it (a spec too large): EPIPE is its right.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });
}

const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

for (const { file, c } of all) {
  t.test(`${file.replace(/\.ts$/, '')}: ${c.name}`, async (t) => {
    const world = freshWorld();
    const inv = await c.prepare(world);
    const before = await snapshotTree(world.dir);
    const out = await run(c.program, inv.args, inv.env ?? {}, inv.stdin, c.timeoutMs ?? 20_000);
    t.notOk(out.timedOut, `finishes within ${c.timeoutMs ?? 20_000} ms`);
    t.equal(out.code, c.exit, `exit code ${c.exit} (stderr: ${out.stderr.trim().slice(0, 400)})`);
    const errLines = lines(out.stderr);
    t.ok(errLines.length >= 1 && errLines.length <= (c.maxLines ?? 1), `one clear line on stderr, got ${errLines.length}: ${JSON.stringify(errLines.slice(0, 5))}`);
    t.match(out.stderr, c.message, 'says what is wrong');
    for (const bad of c.never ?? []) t.notMatch(out.stdout + out.stderr, bad, `never prints ${bad}`);
    const after = await snapshotTree(world.dir);
    const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])]
      .filter((p) => before[p] !== after[p] && !(c.mayChange?.test(p) ?? false));
    t.same(changed, [], 'state store and root byte for byte unchanged');
    await c.after?.(world, out);
  });
}
