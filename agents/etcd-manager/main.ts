// `etcd-manager`: forms, heals and backs up one etcd cluster on the control
// plane. This build only identifies itself; every other invocation fails
// plainly until the manager is implemented.
import { versionLine } from '../../shared/version.js';

const PROGRAM = 'etcd-manager';

const HELP = `Usage: ${PROGRAM} [--help | --version]

Manages one etcd cluster (main or events) on a control-plane instance: volume,
peers, leader, membership, TLS, backups to the state store, restore, upgrades.

Options implemented in this build:
  --help      print this help and exit
  --version   print the version and exit

Not implemented yet (planned): running the manager, and the operator commands
backup, list-backups, restore-backup. Any other invocation exits 1.
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
