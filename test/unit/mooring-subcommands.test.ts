// mooring builds a command group's subcommands only when the group is named on
// the command line (agents/mooring/subcommands.ts). What a user sees must not
// depend on it: the top-level help is the same whether or not a group is named
// (so a group's line never needs its subcommands), and every group, once named,
// has all its subcommands for dispatch, help and suggestions.
import t from 'tap';
import { main } from '../../agents/mooring/main.js';
import type { CliIO } from '../../agents/mooring/io.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = { out: (s) => void (out += s), err: (s) => void (err += s), env: {} };
  const code = await main(argv, io);
  return { code, out, err };
}

const GROUPS: Record<string, string[]> = {
  create: ['cluster'],
  get: ['clusters', 'cluster', 'all', 'instancegroups', 'userdata', 'bootconfig', 'instances', 'volumes'],
  update: ['cluster'],
  delete: ['cluster', 'instance'],
  validate: ['cluster'],
  'local-cloud': ['up', 'env', 'status', 'down'],
};

t.test('the top-level help is the same with any group named (built) or none', async (t) => {
  const plain = await run(['--help']);
  t.equal(plain.code, 0);
  for (const group of Object.keys(GROUPS)) t.match(plain.out, new RegExp(`\\n  ${group}\\b`), `lists ${group}`);
  for (const group of Object.keys(GROUPS)) {
    // Commander prints the top-level help for `--help GROUP` (the group is an argument after an unknown flag).
    const named = await run(['--help', group]);
    t.equal(named.out, plain.out, `--help ${group}: same text`);
  }
});

t.test("a named group has every subcommand: its help lists them, a typo is answered with a suggestion", async (t) => {
  for (const [group, subcommands] of Object.entries(GROUPS)) {
    const help = await run([group, '--help']);
    t.equal(help.code, 0, `${group} --help exits 0`);
    for (const sub of subcommands) t.match(help.out, new RegExp(`\\n  ${sub}\\b`), `${group} --help lists ${sub}`);
    // `create` has an action of its own (create -f FILE), which takes an unknown word as an argument instead.
    if (group === 'create') continue;
    const typo = await run([group, `${subcommands[0]}x`]);
    t.equal(typo.code, 2, `${group} ${subcommands[0]}x: a usage error`);
    t.match(typo.err, `(Did you mean ${subcommands[0]}?)`, `${group} ${subcommands[0]}x: suggests ${subcommands[0]}`);
  }
});

t.test('help GROUP (commander\'s help command) shows the group with its subcommands', async (t) => {
  const r = await run(['help', 'get']);
  t.equal(r.code, 0);
  t.match(r.out, /Usage: mooring get/);
  t.match(r.out, /\n {2}instancegroups\|ig/);
});
