// protokube's commands, loaded once the flags are read: the daemon, `status`
// and `channels apply`.
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { ExitCode, UserError } from '../../shared/errors.js';
import { configureLogging, logger, routeProcessWarnings, type Logger } from '../../shared/log.js';
import { runUntilSignalled } from '../../shared/daemon-lifecycle.js';
import { collectPeriodically, tuneForLongRunning } from '../../shared/long-running.js';
import { StoreError } from '../../shared/store/types.js';
import { resolveConfig, type ProtokubeConfig } from './config.js';
import type { ParsedFlags } from './flags.js';
import { formatStatus, type StatusDocument } from './status.js';

const PROGRAM = 'protokube';

function setUpLogging(config: ProtokubeConfig): Logger {
  configureLogging({ format: config.logFormat, level: config.verbosity >= 4 ? 'debug' : 'info' });
  const log = logger(PROGRAM);
  // @kubernetes/client-node's HTTP stack still requires Node's punycode module (DEP0040) and calls
  // url.parse() (DEP0169): library deprecations, nothing to fix on our side, so debug lines only.
  routeProcessWarnings(log, ['DEP0123', 'DEP0040', 'DEP0169']);
  return log;
}

export async function runDaemon(flags: ParsedFlags): Promise<number> {
  // The daemon lives as long as the instance, mostly idle: V8 set for that, as etcd-manager's is
  // (shared/long-running.ts), before it loads the Kubernetes client; its heap collected every 30 s.
  tuneForLongRunning();
  collectPeriodically();
  const config = resolveConfig(flags);
  const log = setUpLogging(config);
  const { Daemon } = await import('./daemon.js');
  const daemon = new Daemon(config, { log });
  return runUntilSignalled(daemon, log, { fatalMessage: 'cannot start', exitCodeOf: (err) => (err instanceof UserError ? err.exitCode : ExitCode.Failure) });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function printStatus(flags: ParsedFlags): Promise<number> {
  const config = resolveConfig(flags, { requireCluster: false });
  let text: string;
  try {
    text = await readFile(config.statusFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(`${config.statusFile}: no status yet (protokube has not run on this node, or --status-file points elsewhere)`, ExitCode.NotFound);
    }
    throw new UserError(`${config.statusFile}: ${(err as Error).message}`);
  }
  let doc: StatusDocument;
  try {
    doc = JSON.parse(text) as StatusDocument;
    if (doc.kind !== 'ProtokubeStatus' || typeof doc.checks !== 'object') throw new Error('not a protokube status document');
  } catch (err) {
    throw new UserError(`${config.statusFile}: ${(err as Error).message}`);
  }
  const str = flags.values.get('output');
  if (str === 'json') process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  else {
    process.stdout.write(formatStatus(doc));
    if (!processAlive(doc.pid)) process.stdout.write(`  (pid ${doc.pid} is not running: this is the last status it wrote)\n`);
  }
  return doc.ready ? ExitCode.OK : ExitCode.Failure;
}

function storeExitCode(err: StoreError): UserError {
  const code = err.kind === 'NotFound' ? ExitCode.NotFound : err.kind === 'Unreachable' || err.kind === 'AccessDenied' ? ExitCode.StoreUnavailable : ExitCode.Failure;
  return new UserError(err.message, code, { cause: err });
}

export async function applyChannelByHand(flags: ParsedFlags, location: string): Promise<number> {
  const config = resolveConfig(flags, { requireCluster: false });
  const log = setUpLogging(config);
  const [{ parseChannel, absoluteLocation }, { ResourceReader }, { applyChannel }, { connectKube }] = await Promise.all([
    import('./channels/channel.js'),
    import('./channels/source.js'),
    import('./channels/apply.js'),
    import('./kube/api.js'),
  ]);
  const { channelLocationProblem } = await import('./config.js');
  const problem = channelLocationProblem(location, { relative: true });
  if (problem) throw new UserError(`channel ${JSON.stringify(location)}: ${problem}`, ExitCode.Usage);
  // A path typed by hand is read, and its manifests resolved, from where the command runs.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location)) location = resolvePath(location);
  const reader = new ResourceReader([], { storeTimeoutMs: config.storeTimeoutMs });
  let data: Buffer;
  try {
    data = await reader.read(location);
  } catch (err) {
    if (err instanceof StoreError) throw storeExitCode(err);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${location}: no such file`, ExitCode.NotFound);
    throw new UserError(`${location}: ${(err as Error).message}`);
  }
  const channel = parseChannel(data.toString('utf8'), location);
  const kube = await connectKube(config.kubeconfig).catch((err: unknown) => {
    throw new UserError((err as Error).message);
  });
  await kube.ping().catch((err: unknown) => {
    throw new UserError((err as Error).message);
  });
  const dryRun = flags.values.get('dry-run') === 'true' || flags.values.get('dry-run') === '1';
  const outcomes = await applyChannel(channel, { kube, reader, log, dryRun });
  const lines = [`channel ${absoluteLocation(location)}${dryRun ? ' (dry run: nothing changed)' : ''}:`];
  for (const o of outcomes) {
    const verb = { unchanged: 'up to date', applied: 'applied', 'would-apply': 'would apply', failed: 'FAILED' }[o.action];
    lines.push(`  ${o.addon}: ${verb}${o.reason ? ` (${o.reason})` : ''}`);
    for (const ref of o.applied) lines.push(`    ${dryRun ? 'would apply' : 'applied'} ${ref}`);
    for (const ref of o.pruned) lines.push(`    ${dryRun ? 'would prune' : 'pruned'} ${ref}`);
  }
  const skipped = channel.addons.length - outcomes.length;
  if (skipped > 0) lines.push(`  ${skipped} more addon(s) not tried: the API server stopped answering`);
  process.stdout.write(lines.join('\n') + '\n');
  return outcomes.some((o) => o.action === 'failed') || skipped > 0 ? ExitCode.Failure : ExitCode.OK;
}
