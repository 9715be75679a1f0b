// Entry point of the single executable: one binary, four programs. The
// program is chosen by the name the binary runs as (a link named nodeup runs
// nodeup), else by the first argument (`mooring-agents nodeup --help`).
// Programs are imported lazily so each starts without loading the others.
import { basename } from 'node:path';
import { VERSION } from '../shared/version.js';

type Main = (argv: string[]) => Promise<number>;

const PROGRAMS: Record<string, () => Promise<Main>> = {
  mooring: async () => (await import('../agents/mooring/main.js')).main,
  nodeup: async () => (await import('../agents/nodeup/main.js')).main,
  'etcd-manager': async () => (await import('../agents/etcd-manager/main.js')).main,
  protokube: async () => (await import('../agents/protokube/main.js')).main,
};

// Hidden diagnostics of the binary itself, reachable only through the
// dispatcher name (`mooring-agents __selftest-etcd3 ...`), never as an agent.
const DIAGNOSTICS: Record<string, () => Promise<Main>> = {
  '__selftest-etcd3': async () => (await import('./selftest-etcd3.js')).main,
  '__selftest-lazy': async () => (await import('./selftest-lazy.js')).main,
  '__backup-footprint': async () => (await import('./backup-footprint.js')).main,
};

// Hidden helpers the agents run as short-lived children of the binary, for
// work whose code they must not keep loaded (`mooring-agents __issue-certificates`).
const HELPERS: Record<string, () => Promise<Main>> = {
  '__issue-certificates': async () => (await import('../shared/pki/issue-helper.js')).main,
};

const DISPATCHER = 'mooring-agents';

interface Selection {
  program: string;
  load: () => Promise<Main>;
  args: string[];
}

/** Picks the program from the invoked name (argv0, then the script path), else the first argument. */
function selectProgram(argv0: string, scriptPath: string | undefined, args: string[]): Selection | undefined {
  for (const candidate of [argv0, scriptPath]) {
    const name = candidate === undefined ? '' : basename(candidate).replace(/\.(c?js|mjs|ts)$/, '');
    if (Object.hasOwn(PROGRAMS, name)) return { program: name, load: PROGRAMS[name], args };
  }
  const [first = '', ...rest] = args;
  if (Object.hasOwn(PROGRAMS, first)) return { program: first, load: PROGRAMS[first], args: rest };
  if (Object.hasOwn(DIAGNOSTICS, first)) return { program: `${DISPATCHER} ${first}`, load: DIAGNOSTICS[first], args: rest };
  if (Object.hasOwn(HELPERS, first)) return { program: `${DISPATCHER} ${first}`, load: HELPERS[first], args: rest };
  return undefined;
}

const USAGE = `Usage: ${DISPATCHER} <program> [args...]
   or: run this binary through a link named after the program.

Programs: ${Object.keys(PROGRAMS).join(', ')}
Run '${DISPATCHER} <program> --help' for a program's options.
`;

function runDispatcherItself(args: string[]): number {
  if (args.length === 1 && args[0] === '--version') {
    process.stdout.write(`${DISPATCHER} ${VERSION}\n`);
    return 0;
  }
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  process.stderr.write(`${DISPATCHER}: ${args.length === 0 ? 'no program given' : `unknown program "${args[0]}"`}\n${USAGE}`);
  return 2;
}

async function run(): Promise<number> {
  // In a Node single executable argv[1] repeats the executable path; from
  // source or the plain bundle it is the script. User arguments start at 2.
  const args = process.argv.slice(2);
  const selection = selectProgram(process.argv0, process.argv[1], args);
  if (selection === undefined) return runDispatcherItself(args);
  try {
    const main = await selection.load();
    return await main(selection.args);
  } catch (err) {
    process.stderr.write(`${selection.program}: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.MOORING_DEBUG && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
    return 1;
  }
}

// No top-level await: the bundle is CommonJS, as a Node single executable requires.
void run().then((code) => {
  process.exitCode = code;
});
