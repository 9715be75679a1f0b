// `etcd-manager <command> --help`, generated from the command's own
// description and the definitions of exactly the flags it takes, so the help
// cannot list a flag the command would refuse or miss one it takes.
import { flagDef, flagLines, HELP_FLAG, envName } from '../flags.js';
import type { SubcommandModule } from './types.js';

export const OPERATOR_EXIT_CODES = `Exit codes: 0 ok, 1 failure (a failed or expired request, a damaged backup,
a timeout), 2 bad usage, 3 invalid control file in the store, 4 not found (no
such backup, command or cluster), 5 backup store unreachable or access
denied, 6 already exists (a restore already queued), 130 interrupted (Ctrl-C).`;

/** Words wrapped at 78 columns. */
function wrap(text: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > 78) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line].join('\n');
}

export function subcommandHelp(program: string, name: string, summary: string, module: SubcommandModule): string {
  const defs = module.flags.map(flagDef);
  const optional = module.optionalArgs ?? 0;
  const args = module.args.map((a, i) => (i >= module.args.length - optional ? `[${a}]` : a));
  const withEnv = defs.filter((f) => !f.commandLineOnly && !f.hidden).map((f) => envName(f.name));
  return `Usage: ${program} ${[name, ...args].join(' ')} [flags]

${summary[0].toUpperCase()}${summary.slice(1)}.

${module.description.trim()}

Flags:
${flagLines([...defs.filter((f) => !f.hidden), HELP_FLAG]).join('\n')}
${withEnv.length > 0 ? `\n${wrap(`${withEnv.join(', ')} in the environment or in --env-file (a node's etcd-manager env file works) stand in for the flags of the same name; the other flags have no environment form.`)}\n` : ''}
${OPERATOR_EXIT_CODES}
`;
}
