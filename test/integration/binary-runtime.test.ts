// The single executable takes only its programs' own flags: Node's options, on
// the command line or in NODE_OPTIONS, must never reach Node inside it. For
// every program and every form of injection, the built binary must behave
// exactly as the same program does when Node cannot see the arguments at all
// (`node -- dist/bundle.cjs <program> ...`, no NODE_OPTIONS): same exit code,
// same stdout, same stderr, and the injected script never runs.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { tempDir } from '../harness/tmp.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const binDir = join(repo, 'dist/bin');
const bundle = join(repo, 'dist/bundle.cjs');
const PROGRAMS = ['mooring', 'nodeup', 'etcd-manager', 'protokube'] as const;
/** Node's exit code for a bad option or an unreadable --env-file/config file. */
const NODE_BAD_OPTION_EXIT = 9;
/** Bound on one run: a start-up takes well under a second, but a busy machine stretches it. */
const RUN_TIMEOUT_MS = 60_000;

// About 120 short runs: seconds on an idle machine, minutes on a busy one.
t.setTimeout(900_000);

if (!existsSync(join(binDir, 'mooring')) || !existsSync(bundle)) {
  throw new Error('dist/bin/mooring or dist/bundle.cjs is not built: run make build first (a missing build is a failure, not a skip)');
}

const dir = tempDir(t, 'binary-runtime-');
/** Every run of the injected script leaves a file here and prints INJECTED-CODE-RAN. */
const markers = join(dir, 'markers');
const evilBody = `require('node:fs').writeFileSync(require('node:path').join(${JSON.stringify(markers)}, String(process.pid)), 'ran'); console.log('INJECTED-CODE-RAN');`;
const evil = join(dir, 'evil.cjs');
const evilESM = join(dir, 'evil.mjs');
const envFile = join(dir, 'node.env');
const configFile = join(dir, 'node.config.json');
writeFileSync(evil, `${evilBody}\n`);
writeFileSync(evilESM, `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n${evilBody}\n`);
writeFileSync(envFile, `NODE_OPTIONS=--require ${evil}\n`);
writeFileSync(configFile, `${JSON.stringify({ nodeOptions: { require: evil } })}\n`);
mkdirSync(markers);

interface Form {
  name: string;
  /** Arguments put before the program's own --version. */
  args: string[];
  /** NODE_OPTIONS for the binary (the reference runs without). */
  nodeOptions?: string;
}

const FORMS: Form[] = [
  { name: 'NODE_OPTIONS=--require', args: [], nodeOptions: `--require ${evil}` },
  { name: 'NODE_OPTIONS=--import', args: [], nodeOptions: `--import ${evilESM}` },
  // Honoured, it would wait for a debugger (the run would time out).
  { name: 'NODE_OPTIONS=--inspect-brk', args: [], nodeOptions: '--inspect-brk=127.0.0.1:0' },
  // Honoured, Node would refuse it and exit 9.
  { name: 'NODE_OPTIONS with an option Node does not know', args: [], nodeOptions: '--no-such-node-option' },
  { name: '--env-file=FILE holding NODE_OPTIONS', args: [`--env-file=${envFile}`] },
  { name: '--env-file FILE holding NODE_OPTIONS', args: ['--env-file', envFile] },
  { name: '--env-file-if-exists= of a missing file', args: [`--env-file-if-exists=${join(dir, 'missing.env')}`] },
  { name: '--env-file= of a missing file', args: [`--env-file=${join(dir, 'missing.env')}`] },
  { name: '--inspect', args: ['--inspect'] },
  { name: '--inspect-brk', args: ['--inspect-brk=127.0.0.1:0'] },
  { name: '--require', args: ['--require', evil] },
  { name: '-r', args: ['-r', evil] },
  { name: '--import', args: ['--import', evilESM] },
  { name: '--node-options=', args: [`--node-options=--require=${evil}`] },
  // Node reads a config file named on the command line before anything else
  // (README, "The single binaries"); its nodeOptions must still run nothing.
  { name: '--experimental-config-file= with nodeOptions.require', args: [`--experimental-config-file=${configFile}`] },
];

interface Run {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const cleanEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };

/**
 * Runs `command` with exactly the NODE_OPTIONS given (none by default). tap
 * puts its own NODE_OPTIONS (--import of @tapjs/processinfo) into the
 * environment of every child it sees spawned, whatever env the test passes;
 * env(1) takes it out again before the command starts. Without this, Node 20
 * would prefer tap's NODE_OPTIONS to the one in an --env-file.
 */
async function runExactly(command: string, args: string[], nodeOptions?: string): Promise<Run> {
  const setNodeOptions = nodeOptions === undefined ? [] : [`NODE_OPTIONS=${nodeOptions}`];
  const r = await execa('env', ['-u', 'NODE_OPTIONS', ...setNodeOptions, command, ...args], {
    cwd: dir,
    reject: false,
    extendEnv: false,
    env: cleanEnv,
    timeout: RUN_TIMEOUT_MS,
    stdin: 'ignore',
  });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
}

const runBinary = (program: string, args: string[], nodeOptions?: string) => runExactly(join(binDir, program), args, nodeOptions);

/** The program's own answer: the same bundle, with Node told (`--`) that nothing after it is Node's. */
const references = new Map<string, Promise<Run>>();
function reference(program: string, args: string[]): Promise<Run> {
  const key = JSON.stringify([program, args]);
  let run = references.get(key);
  if (run === undefined) {
    run = runExactly(process.execPath, ['--', bundle, program, ...args]);
    references.set(key, run);
  }
  return run;
}

function assertSameAsProgram(t: Test, got: Run, want: Run, what: string): void {
  t.notOk(got.timedOut, `${what}: finishes (nothing waits for a debugger)`);
  t.not(got.exitCode, NODE_BAD_OPTION_EXIT, `${what}: not Node's exit code for a bad option`);
  t.equal(got.exitCode, want.exitCode, `${what}: the program's own exit code`, { stderr: got.stderr.slice(0, 400) });
  t.equal(got.stdout, want.stdout, `${what}: the program's own stdout`);
  t.equal(got.stderr, want.stderr, `${what}: the program's own stderr`);
  t.notMatch(got.stdout + got.stderr, /INJECTED-CODE-RAN|Debugger listening|Node\.js v\d/, `${what}: nothing of Node's or the injected script's`);
}

/** Runs `each` over `items`, `width` at a time (the runs are short processes, mostly waiting on start-up). */
async function inPool<T>(items: readonly T[], width: number, each: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await each(item);
  }));
}

for (const program of PROGRAMS) {
  t.test(`${program}: Node's options and NODE_OPTIONS never reach Node`, async (t) => {
    await inPool(FORMS, 6, async (form) => {
      const args = [...form.args, '--version'];
      const [want, got] = await Promise.all([reference(program, args), runBinary(program, args, form.nodeOptions)]);
      t.notOk(want.timedOut, `reference run of ${program} ${args.join(' ')} finishes`);
      assertSameAsProgram(t, got, want, `${program} ${form.name}`);
    });
    t.same(readdirSync(markers), [], `${program}: the injected script never ran`);
  });
}

t.test("etcd-manager's own --env-file reaches etcd-manager's parser, not Node's", async (t) => {
  const missing = join(dir, 'missing-etcd-manager.env');
  const settings = join(dir, 'etcd-manager.env');
  writeFileSync(settings, 'ETCD_MANAGER_NO_SUCH_SETTING=1\n');
  for (const args of [[`--env-file=${missing}`], ['--env-file', missing], [`--env-file=${settings}`, '--help']]) {
    const want = await reference('etcd-manager', args);
    const got = await runBinary('etcd-manager', args);
    assertSameAsProgram(t, got, want, `etcd-manager ${args.join(' ')}`);
  }
  // The missing file is etcd-manager's usage error (exit 2), in etcd-manager's words.
  const got = await runBinary('etcd-manager', [`--env-file=${missing}`]);
  t.equal(got.exitCode, 2);
  t.match(got.stderr, /^etcd-manager: --env-file .*missing-etcd-manager\.env: ENOENT/);
});

t.test('a missing --experimental-config-file is still read by Node first', {
  todo: "Node (22.23 and 24) scans every argument for --experimental-config-file before its options are parsed, ignoring '--' (README, The single binaries); nothing runs from the file, but a missing one ends the run with Node's message and exit 9",
}, async (t) => {
  const args = [`--experimental-config-file=${join(dir, 'missing.json')}`, '--version'];
  assertSameAsProgram(t, await runBinary('mooring', args), await reference('mooring', args), 'mooring --experimental-config-file=<missing>');
});
