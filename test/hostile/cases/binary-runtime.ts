// Node's own options, given to the single binary on its command line or in
// NODE_OPTIONS, must reach the program's own flag parser (or nothing at all),
// never Node: the injected script would write a file into the world and print
// INJECTED-CODE-RAN. test/integration/binary-runtime.test.ts compares every
// program and form with the program's own answer; these are the error paths.
import type { HostileCase, World } from '../case.js';

const INJECTED = /INJECTED-CODE-RAN|Debugger listening|Node\.js v\d/;

/** A script that leaves a mark in the world (so the snapshot differs) and says it ran. */
function evilScript(w: World): string {
  return w.file('evil.cjs', `require('node:fs').writeFileSync(${JSON.stringify(`${w.dir}/INJECTED-CODE-RAN`)}, 'ran'); console.log('INJECTED-CODE-RAN');\n`);
}

export const cases: HostileCase[] = [
  {
    name: 'NODE_OPTIONS=--require of a script, with a bad mooring flag',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'get', 'clusters', '--bogus'], env: { NODE_OPTIONS: `--require ${evilScript(w)}` } }),
    exit: 2,
    message: /unknown option '--bogus'/,
    never: [INJECTED],
  },
  {
    // Node would stop with "<file>: not found" (exit 9). (A FILE that sets
    // NODE_OPTIONS is tested in binary-runtime.test.ts: this runner's children
    // get tap's own NODE_OPTIONS, which Node 20 prefers to the file's.)
    name: 'mooring --env-file=FILE naming a missing file',
    program: 'mooring',
    prepare: (w) => ({ args: [`--env-file=${w.dir}/missing.env`, '--state', w.storeURL, 'get', 'clusters'] }),
    exit: 2,
    message: /unknown option '--env-file=/,
    never: [INJECTED],
  },
  {
    name: 'mooring --require SCRIPT',
    program: 'mooring',
    prepare: (w) => ({ args: ['--require', evilScript(w), '--state', w.storeURL, 'get', 'clusters'] }),
    exit: 2,
    message: /unknown option '--require'/,
    never: [INJECTED],
  },
  {
    // Were Node to take it, the run would wait for a debugger until the case times out.
    name: 'mooring --inspect-brk',
    program: 'mooring',
    prepare: (w) => ({ args: ['--inspect-brk=127.0.0.1:0', '--state', w.storeURL, 'get', 'clusters'] }),
    exit: 2,
    message: /unknown option '--inspect-brk/,
    never: [INJECTED],
  },
  {
    name: 'NODE_OPTIONS=--require of a script, nodeup without --conf',
    program: 'nodeup',
    prepare: (w) => ({ args: [], env: { NODE_OPTIONS: `--require ${evilScript(w)}` } }),
    exit: 2,
    message: /--conf BOOTCONFIG is required/,
    never: [INJECTED],
  },
  {
    name: "etcd-manager --env-file=X (etcd-manager's own flag) naming a missing file",
    program: 'etcd-manager',
    prepare: (w) => ({ args: [`--env-file=${w.dir}/missing.env`] }),
    exit: 2,
    message: /^etcd-manager: --env-file .*missing\.env: ENOENT/,
    never: [INJECTED],
  },
  {
    name: 'etcd-manager --inspect',
    program: 'etcd-manager',
    prepare: () => ({ args: ['--inspect'] }),
    exit: 2,
    message: /unknown flag --inspect/,
    never: [INJECTED],
  },
  {
    name: 'NODE_OPTIONS=--inspect-brk, with a bad etcd-manager flag',
    program: 'etcd-manager',
    prepare: () => ({ args: ['--no-such-flag=1'], env: { NODE_OPTIONS: '--inspect-brk=127.0.0.1:0' } }),
    exit: 2,
    message: /unknown flag --no-such-flag/,
    never: [INJECTED],
  },
  {
    name: 'protokube -r SCRIPT',
    program: 'protokube',
    prepare: (w) => ({ args: ['-r', evilScript(w)] }),
    exit: 1,
    message: /^protokube: /,
    never: [INJECTED],
  },
];
