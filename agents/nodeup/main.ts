// `nodeup`: makes this machine match its cluster spec, at every boot (started
// by mooring-nodeup.service). `--dry-run` prints the plan and changes nothing.
import { isAbsolute } from 'node:path';
import { parseArgs } from 'node:util';
import { ExitCode, UserError } from '../../shared/errors.js';
import { StoreError } from '../../shared/store/types.js';
import { parseSeconds, storeTimeoutMs } from '../../shared/store/timeout.js';
import { versionLine } from '../../shared/version.js';
import { DEFAULT_CACHE, DEFAULT_STALL_TIMEOUT_MS } from './defaults.js';
// The run itself (and the YAML, PKI and host code under it) loads only after
// the flags are read, so --help, --version and usage errors stay light.
import type { NodeupIO } from './nodeup.js';
import { writeStderr, writeStdout } from '../../shared/stdio.js';

const PROGRAM = 'nodeup';

const HELP = `Usage: ${PROGRAM} --conf BOOTCONFIG [options]

Makes this machine match its cluster spec: packages, hash-verified binaries,
files, sysctls, kernel modules, containerd, kubelet, control-plane static pods,
certificates and systemd units. Reads the node config and the completed spec
from the state store named in the boot config, and refuses a node config whose
sha256 differs from the boot config's.

Options:
  --conf FILE               boot config (user-data writes /opt/mooring/conf/boot.yaml)
  --root DIR                apply under DIR instead of / (reads DIR/etc/os-release;
                            systemd is driven with systemctl --root=DIR); nodeup
                            never leaves DIR: a symlink in DIR that is absolute or
                            climbs out of it is refused (exit 3), naming it
  --dry-run                 print the plan; no side effect at all (nothing is
                            downloaded, written, loaded, issued or started)
  -o, --output text|json    plan/report format (default text)
  --install-systemd-unit    install and start mooring-nodeup.service, which runs
                            nodeup at every boot, then exit
  --arch amd64|arm64        install (or plan, with --dry-run) the release files of this
                            CPU architecture (default: this machine's); for building
                            an image of the other architecture under --root
  --cache DIR               asset cache, an absolute path on the node (default
                            ${DEFAULT_CACHE}, under --root)
  --retries N               retries per failed task, capped jittered backoff (default 3)
  --store-timeout SECONDS   a state store request that gets no byte for this long
                            fails, so a silent S3 endpoint costs seconds; 1 to 600
                            (default $MOORING_STORE_TIMEOUT, else 30)
  --asset-stall-timeout SECONDS
                            a download that gets no byte for this long is given up
                            and the next mirror tried; 1 to 600 (default ${DEFAULT_STALL_TIMEOUT_MS / 1000})
  --help, --version

Exit codes: 0 ok, 1 some task failed (the report names each), 2 bad usage,
3 invalid input (e.g. node config hash mismatch), 5 state store unreachable.
`;

/** A node path nodeup can resolve under --root. */
function isCleanAbsolute(path: string): boolean {
  return path.startsWith('/') && path.split('/').every((part) => part !== '.' && part !== '..');
}

const processIO: NodeupIO = { out: writeStdout, err: writeStderr };

export async function main(argv: string[], io: NodeupIO = processIO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        conf: { type: 'string' },
        root: { type: 'string', default: '/' },
        'dry-run': { type: 'boolean', default: false },
        dryrun: { type: 'boolean', default: false },
        output: { type: 'string', short: 'o', default: 'text' },
        'install-systemd-unit': { type: 'boolean', default: false },
        cache: { type: 'string', default: DEFAULT_CACHE },
        arch: { type: 'string' },
        retries: { type: 'string', default: '3' },
        'store-timeout': { type: 'string' },
        'asset-stall-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`${PROGRAM}: ${(err as Error).message}\n${HELP}`);
    return ExitCode.Usage;
  }
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (values.version) {
    io.out(versionLine(PROGRAM));
    return 0;
  }
  try {
    if (!values.conf) throw new UserError('--conf BOOTCONFIG is required', ExitCode.Usage);
    if (values.output !== 'text' && values.output !== 'json') throw new UserError(`-o: want text or json, got ${values.output}`, ExitCode.Usage);
    if (!/^\d+$/.test(values.retries)) throw new UserError(`--retries: want a whole number, got ${values.retries}`, ExitCode.Usage);
    if (!isCleanAbsolute(values.cache)) throw new UserError(`--cache must be an absolute path without . or .. components (a path on the node, under --root), got ${values.cache}`, ExitCode.Usage);
    const storeTimeout = storeTimeoutMs(values['store-timeout'], process.env);
    const stall = values['asset-stall-timeout'];
    const assetStallTimeoutMs = stall === undefined ? DEFAULT_STALL_TIMEOUT_MS : parseSeconds('--asset-stall-timeout', stall, 1, 600) * 1000;
    const arch = values.arch;
    if (arch !== undefined && arch !== 'amd64' && arch !== 'arm64') throw new UserError(`--arch: want amd64 or arm64, got ${arch}`, ExitCode.Usage);
    if (!isAbsolute(values.root)) throw new UserError(`--root must be an absolute path, got ${values.root}`, ExitCode.Usage);
    const { requireRoot, runNodeup } = await import('./nodeup.js');
    const { code } = await runNodeup({
      conf: values.conf,
      root: requireRoot(values.root),
      // kOps' --dryrun spelling is accepted too (and, unlike kOps, honoured).
      dryRun: values['dry-run'] || values.dryrun,
      output: values.output,
      installSystemdUnit: values['install-systemd-unit'],
      cache: values.cache,
      ...(arch ? { arch } : {}),
      retries: Number(values.retries),
      storeTimeoutMs: storeTimeout,
      assetStallTimeoutMs,
    }, io);
    return code;
  } catch (err) {
    io.err(`${PROGRAM}: error: ${(err as Error).message}\n`);
    if (err instanceof UserError) return err.exitCode;
    const { SpecError } = await import('../../shared/api/parse.js');
    if (err instanceof SpecError) return ExitCode.InvalidSpec;
    if (err instanceof StoreError) return err.kind === 'NotFound' ? ExitCode.NotFound : ExitCode.StoreUnavailable;
    return ExitCode.Failure;
  }
}
