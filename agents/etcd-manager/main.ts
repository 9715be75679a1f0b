// `etcd-manager`: runs the manager of one etcd cluster on a control-plane
// instance. `etcd-manager run [flags]` and plain `etcd-manager [flags]` (how
// kOps starts it) are the same. SIGTERM/SIGINT stop etcd cleanly and exit 0.
import { ExitCode, UserError } from '../../shared/errors.js';
import { versionLine } from '../../shared/version.js';
import { helpText, parseFlags } from './flags.js';
// The manager (etcd client, gRPC, PKI, metrics) and logging load only after the
// flags are read, so --help, --version and usage errors stay light.
import type { Manager } from './manager.js';

const PROGRAM = 'etcd-manager';

export async function main(argv: string[]): Promise<number> {
  // Operator commands with flags of their own, dispatched before the manager's flags are parsed.
  if (argv[0] === 'migrate-v2') return (await import('./migrate/cli.js')).migrateV2Main(argv.slice(1), PROGRAM);
  let manager: Manager;
  try {
    const flags = parseFlags(argv);
    if (flags.help) {
      process.stdout.write(helpText(PROGRAM));
      return ExitCode.OK;
    }
    if (flags.version) {
      process.stdout.write(versionLine(PROGRAM));
      return ExitCode.OK;
    }
    const [command, ...extra] = flags.positional;
    if ((command !== undefined && command !== 'run') || extra.length > 0) {
      throw new UserError(`unknown command ${JSON.stringify(flags.positional.join(' '))} (this build has: run, migrate-v2)`, ExitCode.Usage);
    }
    const [{ resolveConfig }, { configureLogging, logger, routeProcessWarnings }, { Manager }] = await Promise.all([
      import('./config.js'),
      import('../../shared/log.js'),
      import('./manager.js'),
    ]);
    const config = resolveConfig(flags);
    const envFormat = process.env.MOORING_LOG_FORMAT === 'json' ? 'json' : undefined;
    configureLogging({
      format: flags.sources.get('log-format') === 'default' ? (envFormat ?? 'text') : config.logFormat,
      level: config.verbosity >= 4 ? 'debug' : 'info',
    });
    const log = logger(PROGRAM);
    routeProcessWarnings(log);
    log.info('starting', {
      settings: Object.fromEntries([...flags.values].filter(([k]) => k !== 'env-file').map(([k, v]) => [k, `${Array.isArray(v) ? v.join(',') : v} (${flags.sources.get(k)})`])),
    });
    manager = new Manager(config, log);
  } catch (err) {
    process.stderr.write(`${PROGRAM}: ${(err as Error).message}\n`);
    return err instanceof UserError ? err.exitCode : ExitCode.Failure;
  }

  let signalled: (signal: string) => void = () => undefined;
  const stopSignal = new Promise<string>((resolve) => (signalled = resolve));
  const onSignal = (signal: NodeJS.Signals) => signalled(signal);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const started = manager.start().then(() => 'started');
    const first = await Promise.race([started, stopSignal]);
    const signal = first === 'started' ? await stopSignal : first;
    manager.log.info('stopping', { signal });
    await started.catch(() => undefined);
    await manager.stop();
    return ExitCode.OK;
  } catch (err) {
    manager.log.error('fatal', { err });
    await manager.stop().catch(() => undefined);
    return ExitCode.Failure;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
