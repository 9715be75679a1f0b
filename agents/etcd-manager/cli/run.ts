// `etcd-manager run [flags]` and plain `etcd-manager [flags]` (how kOps starts
// it): the manager itself. SIGTERM/SIGINT stop etcd cleanly and exit 0.
import { ExitCode } from '../../../shared/errors.js';
import { runUntilSignalled } from '../../../shared/daemon-lifecycle.js';
import { collectPeriodically, tuneForLongRunning } from '../../../shared/long-running.js';
import { FLAGS, type FlagDef, type FlagName } from '../flags.js';
import type { CommandContext, SubcommandModule } from './types.js';

const PROGRAM = 'etcd-manager';

async function run(ctx: CommandContext): Promise<number> {
  const { flags } = ctx;
  // The daemon: V8 tuned for a long, mostly idle life, before the manager's modules load.
  tuneForLongRunning();
  collectPeriodically();
  // The manager (etcd client, gRPC, PKI, metrics) and logging load only now, so --help, --version and usage errors stay light.
  const [{ resolveConfig }, { configureLogging, logger, routeProcessWarnings }, { Manager }, { defaultIssuer }, { isRunningAsSingleBinary }] = await Promise.all([
    import('../config.js'),
    import('../../../shared/log.js'),
    import('../manager.js'),
    import('../../../shared/pki/issue-batch.js'),
    import('../../../shared/single-binary.js'),
  ]);
  const config = resolveConfig(flags);
  const envFormat = process.env.MOORING_LOG_FORMAT === 'json' ? 'json' : undefined;
  configureLogging({
    format: flags.sources.get('log-format') === 'default' ? (envFormat ?? 'text') : config.logFormat,
    level: config.verbosity >= 4 ? 'debug' : 'info',
  });
  const log = logger(PROGRAM);
  routeProcessWarnings(log);
  const managerFlags = new Set<string>(MANAGER_FLAGS);
  log.info('starting', {
    settings: Object.fromEntries(
      [...flags.values]
        .filter(([k]) => k !== 'env-file' && managerFlags.has(k))
        .map(([k, v]) => [k, `${Array.isArray(v) ? v.join(',') : v} (${flags.sources.get(k)})`]),
    ),
  });
  // The binary issues the member's certificates in a child of itself, so the daemon never holds X.509 issuing code.
  const manager = new Manager(config, log, defaultIssuer(isRunningAsSingleBinary()));

  return runUntilSignalled(manager, manager.log, { fatalMessage: 'fatal', exitCodeOf: () => ExitCode.Failure });
}

/** Every flag of the manager: all but the operator commands' own. */
const MANAGER_FLAGS: readonly FlagName[] = (FLAGS as readonly FlagDef[]).filter((f) => !f.operator).map((f) => f.name as FlagName);

export const command: SubcommandModule = {
  args: [],
  flags: MANAGER_FLAGS,
  description: 'Runs the manager (see --help).',
  run,
};
