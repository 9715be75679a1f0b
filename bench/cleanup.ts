// What every bench needs around its processes and folders: teardown steps run
// once, newest first, on success, failure, Ctrl-C/SIGTERM (exit 130) or when the
// whole bench overruns its deadline (exit 1). Every process is stopped by the
// PID the bench started (other work on this machine runs etcd too).
export class Cleanup {
  private fns: Array<() => unknown> = [];
  private running?: Promise<void>;
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  run(): Promise<void> {
    return (this.running ??= (async () => {
      while (this.fns.length > 0) {
        const fn = this.fns.pop()!;
        try {
          await fn();
        } catch (err) {
          console.error(`cleanup: ${(err as Error).message}`);
        }
      }
    })().finally(() => (this.running = undefined)));
  }
}

/** A Cleanup run on SIGINT/SIGTERM and after `deadlineMs`; `onSignal` is told first. */
export function benchCleanup(deadlineMs: number, onSignal?: (signal: string) => void): Cleanup {
  const cleanup = new Cleanup();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      onSignal?.(signal);
      console.error(`${signal}: cleaning up`);
      void cleanup.run().finally(() => process.exit(130));
    });
  }
  const deadline = setTimeout(() => {
    console.error(`bench: over ${deadlineMs} ms, giving up`);
    void cleanup.run().finally(() => process.exit(1));
  }, deadlineMs);
  deadline.unref();
  return cleanup;
}
