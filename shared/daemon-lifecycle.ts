// The life of a long-running agent's process (etcd-manager's manager,
// protokube's daemon): start it, run until SIGTERM or SIGINT, stop it cleanly
// and exit 0. A start that fails stops what was started and exits with the
// code `exitCodeOf` gives the error.
import { ExitCode } from './errors.js';
import type { Logger } from './log.js';

export interface Daemon {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function runUntilSignalled(daemon: Daemon, log: Logger, options: { fatalMessage: string; exitCodeOf: (err: unknown) => number }): Promise<number> {
  let signalled: (signal: string) => void = () => undefined;
  const stopSignal = new Promise<string>((resolve) => (signalled = resolve));
  const onSignal = (signal: NodeJS.Signals) => signalled(signal);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const started = daemon.start().then(() => 'started');
    const first = await Promise.race([started, stopSignal]);
    const signal = first === 'started' ? await stopSignal : first;
    log.info('stopping', { event: 'stopping', signal });
    await started.catch(() => undefined);
    await daemon.stop();
    return ExitCode.OK;
  } catch (err) {
    log.error(options.fatalMessage, { event: 'fatal', err });
    await daemon.stop().catch(() => undefined);
    return options.exitCodeOf(err);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
