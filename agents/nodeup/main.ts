// `nodeup`: makes this machine match its cluster spec, at every boot. This
// build only identifies itself; the real work (--conf, --dry-run, --root,
// --install-systemd-unit) comes in a later build, and until then every other
// invocation fails plainly instead of pretending to work.
import { versionLine } from '../../shared/version.js';

const PROGRAM = 'nodeup';

const HELP = `Usage: ${PROGRAM} [--help | --version]

Makes this machine match its cluster spec (packages, hash-verified binaries,
files, sysctls, containerd, kubelet, systemd units). Started at every boot by
mooring-nodeup.service.

Options implemented in this build:
  --help      print this help and exit
  --version   print the version and exit

Not implemented yet (planned): --conf=FILE, --dry-run, --root=DIR,
--install-systemd-unit. Any other invocation exits 1.
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
