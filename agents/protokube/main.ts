// `protokube`: keeps a control-plane instance's /etc/hosts names right, waits
// for the API server, applies addon channels and labels its node. This build
// only identifies itself; every other invocation fails plainly.
import { versionLine } from '../../shared/version.js';

const PROGRAM = 'protokube';

const HELP = `Usage: ${PROGRAM} [--help | --version]

Keeps /etc/hosts names (api.internal, etcd members) right, waits for the API
server, applies addon channels and labels its node.

Options implemented in this build:
  --help      print this help and exit
  --version   print the version and exit

Not implemented yet (planned): running the agent. Any other invocation exits 1.
`;

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (argv.includes('--version')) {
    process.stdout.write(versionLine(PROGRAM));
    return 0;
  }
  process.stderr.write(`${PROGRAM}: not implemented yet in this build\n`);
  return 1;
}
