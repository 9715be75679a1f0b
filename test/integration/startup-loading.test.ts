// `--version` and `--help` of every program in the built bundle load none of
// the Node built-ins that cost most of a start-up (node:crypto about 18 ms,
// node:child_process about 10 ms, Node's streams about 6 ms, measured on Node 24;
// bench/startup.ts measures the whole start). A module on a program's start-up path that needs them loads
// them when called (shared/lazy-crypto.ts, a dynamic import). Node's own list
// of the built-ins a process loaded (process.moduleLoadList) is read at exit;
// the run gets no NODE_OPTIONS (tap's loaders would load node:crypto).
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../harness/tmp.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const bundle = join(repo, 'dist/bundle.cjs');
const PROGRAMS = ['mooring', 'nodeup', 'etcd-manager', 'protokube'] as const;
// node:stream: what process.stdout and node:v8 load (~30 modules, shared/stdio.ts).
const COSTLY = ['NativeModule crypto', 'NativeModule child_process', 'NativeModule stream'];
// mooring's --help included: commander would ask process.stdout whether it is a
// terminal (to wrap and colour), which makes the stream; agents/mooring/io.ts asks the descriptor.

if (!existsSync(bundle)) throw new Error('dist/bundle.cjs is not built: run make build first (a missing build is a failure, not a skip)');

const dir = tempDir(t, 'startup-loading-');
const preload = join(dir, 'record-builtins.cjs');
writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(process.env.BUILTINS_FILE, process.moduleLoadList.join('\\n')));\n`);

// Output to a pipe, and to /dev/null: a character device, as a terminal is, which must not count as one.
const OUTPUTS = { pipe: 'pipe', '/dev/null': 'ignore' } as const;

for (const program of PROGRAMS) {
  for (const flag of ['--version', '--help']) {
    for (const [output, stdout] of Object.entries(OUTPUTS)) {
      t.test(`${program} ${flag}, output to ${output}`, async (t) => {
        const file = join(dir, `${program}${flag}-${stdout}.txt`);
        // Through env(1): tap's process tracking puts its loaders into NODE_OPTIONS of every child it sees spawned.
        const r = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '-r', preload, bundle, program, flag], { env: { PATH: process.env.PATH, BUILTINS_FILE: file }, stdio: ['ignore', stdout, 'pipe'], timeout: 60_000 });
        t.equal(r.status, 0, 'exits 0');
        const builtins = readFileSync(file, 'utf8').split('\n');
        t.ok(builtins.includes('NativeModule fs'), 'the list of loaded built-ins was recorded');
        for (const costly of COSTLY) {
          t.notOk(builtins.includes(costly), `does not load ${costly.replace('NativeModule ', 'node:')}`);
        }
      });
    }
  }
}
