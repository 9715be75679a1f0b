// Every mooring command that writes a cluster holds that cluster's writer lock
// (shared/store/lock.ts) from before it reads what it will change until its
// last write, so two writers never interleave. A writer that finds the lock
// held waits, printing who holds it, up to --lock-timeout, then gives up with
// exit 7 having written nothing. A store whose server ignores conditional
// writes (found by a probe) cannot hold a lock: the command refuses unless
// --allow-unserialized-writes is given, and then says plainly what it risks.
// Ctrl-C (SIGINT) or SIGTERM while the lock is held lets the write under way
// finish, refuses the next one, and gives the lock up marked interrupted, so the
// next writer starts at once and is told the cluster may be partly updated
// (rather than waiting out a lease a dead process cannot renew). While waiting
// for the lock it stops the wait; nothing was written. A second signal ends
// the process at once (Node's default), leaving the lock to expire.
import { hostname } from 'node:os';
import { randomHex } from '../../shared/lazy-crypto.js';
import { ExitCode, UserError } from '../../shared/errors.js';
import { fencedStore } from '../../shared/store/fenced.js';
import {
  acquireWithin,
  describeOwner,
  DEFAULT_LOCK_TTL_MS,
  LockLostError,
  probeConditionalWrites,
  StoreLock,
  type HeldLock,
} from '../../shared/store/lock.js';
import type { StateStore } from '../../shared/store/types.js';
import type { CliIO } from './io.js';
import type { WriterLockSettings } from './writer-lock-flags.js';

/** Where SIGINT and SIGTERM come from: the process, or a test's emitter. */
export interface SignalSource {
  once(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
  off(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
}

/** The command was stopped by a signal before it finished (exit 130). */
export class InterruptedError extends UserError {
  constructor(message: string) {
    super(message, ExitCode.Interrupted);
    this.name = 'InterruptedError';
  }
}

/** The lock object, in the cluster's folder of the state store. */
export const LOCK_PATH = 'mooring.lock';
function formatDuration(ms: number): string {
  if (ms % 3600_000 === 0 && ms > 0) return `${ms / 3600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Runs write while holding the writer lock of every named cluster (taken in name
 * order, so two multi-cluster writers cannot deadlock). write gets a store that
 * refuses to write once a lock is lost or its lease has run out.
 */
export async function withWriterLock<T>(
  root: StateStore,
  clusters: string[],
  io: CliIO,
  settings: WriterLockSettings,
  write: (store: StateStore) => Promise<T>,
  signals: SignalSource = process,
): Promise<T> {
  const names = [...new Set(clusters)].sort();
  // Every name becomes a folder: all are checked (InvalidURL) before anything is written.
  const clusterStores = names.map((name) => root.sub(name));
  if (clusterStores[0] === undefined) return write(root);
  const support = await probeConditionalWrites(clusterStores[0], `${LOCK_PATH}.probe-${randomHex(6)}`);
  if (!support.createIfAbsent || !support.replaceIfVersion) {
    const what =
      `${root.baseURL} cannot serialize writers: its server ignores conditional writes (${support.evidence.join('; ')}), ` +
      `so mooring cannot lock the cluster, and two writers at once can interleave and leave mismatched keysets ` +
      `(pki/private and pki/issued holding different keys, credentials that do not verify against the stored CA)`;
    if (!settings.allowUnserialized) {
      throw new UserError(`${what}; refusing to write. Use a store that honours If-None-Match/If-Match (AWS S3 does), or make sure no other writer runs and pass --allow-unserialized-writes`);
    }
    io.err(`warning: ${what}; writing without a lock (--allow-unserialized-writes)\n`);
    return write(root);
  }

  const held: HeldLock[] = [];
  const interrupt = watchSignals(signals, io);
  let stoppedWriting = false;
  try {
    for (const [i, name] of names.entries()) {
      held.push(await takeLock(clusterStores[i]!, name, io, settings, support.deleteIfVersion, interrupt.aborted));
      if (interrupt.signal) throw new InterruptedError(`interrupted (${interrupt.signal}) while waiting for the cluster lock; nothing was written`);
    }
    const stopRenewing = keepRenewed(held, settings.ttlMs ?? DEFAULT_LOCK_TTL_MS);
    const fence = () => {
      if (interrupt.signal) {
        stoppedWriting = true;
        throw new InterruptedError(`interrupted (${interrupt.signal}) part way through its writes; the cluster may be partly updated: run the command again (the next writer is told)`);
      }
      held.forEach((lock) => lock.check());
    };
    try {
      return await write(fencedStore(root, fence));
    } catch (err) {
      if (err instanceof LockLostError) {
        throw new UserError(`lost the cluster lock while writing (${err.message}); the cluster may be partly updated: run the command again`, ExitCode.Failure, { cause: err });
      }
      throw err;
    } finally {
      stopRenewing();
    }
  } finally {
    interrupt.stop();
    for (const lock of held.reverse()) {
      if (lock.lost !== undefined) continue;
      // Stopped part way: the lock is given up marked so; otherwise (done, failed, or stopped before a write) released.
      const giveUp = stoppedWriting ? lock.interrupt() : lock.release();
      await giveUp.catch((err: unknown) => io.err(`warning: releasing the cluster lock: ${(err as Error).message}\n`));
    }
  }
}

type Stoppable = 'SIGINT' | 'SIGTERM';

/** Records the first SIGINT or SIGTERM and aborts a lock wait; a second signal finds no listener of ours and ends the process. */
function watchSignals(signals: SignalSource, io: CliIO): { readonly signal: Stoppable | undefined; aborted: AbortSignal; stop(): void } {
  const controller = new AbortController();
  let received: Stoppable | undefined;
  const listeners: Record<Stoppable, () => void> = { SIGINT: () => on('SIGINT'), SIGTERM: () => on('SIGTERM') };
  const stop = () => {
    signals.off('SIGINT', listeners.SIGINT);
    signals.off('SIGTERM', listeners.SIGTERM);
  };
  const on = (signal: Stoppable) => {
    received = signal;
    stop();
    controller.abort();
    io.err(`\n${signal}: stopping before the next write to the state store, then freeing the cluster lock (${signal} again quits at once and leaves the lock until its lease runs out)\n`);
  };
  signals.once('SIGINT', listeners.SIGINT);
  signals.once('SIGTERM', listeners.SIGTERM);
  return {
    get signal() {
      return received;
    },
    aborted: controller.signal,
    stop,
  };
}

async function takeLock(clusterStore: StateStore, cluster: string, io: CliIO, settings: WriterLockSettings, conditionalDelete: boolean, interrupted: AbortSignal): Promise<HeldLock> {
  const lock = new StoreLock(clusterStore, LOCK_PATH, {
    owner: { host: hostname(), pid: process.pid, command: settings.command },
    conditionalDelete,
    ttlMs: settings.ttlMs ?? DEFAULT_LOCK_TTL_MS,
  });
  const timeout = formatDuration(settings.timeoutMs);
  const result = await acquireWithin(lock, {
    timeoutMs: settings.timeoutMs,
    signal: interrupted,
    onWait: (holder) =>
      io.err(
        `waiting for the lock of cluster "${cluster}": held by ${describeOwner(holder.owner)} since ${holder.acquiredAt}, ` +
          `lease expires ${holder.expiresAt} unless renewed; waiting up to ${timeout} (--lock-timeout)\n`,
      ),
  });
  if (result.acquired) {
    const old = result.tookOverFrom;
    if (old?.interruptedAt !== undefined) {
      io.err(
        `warning: the last writer of cluster "${cluster}", ${describeOwner(old.owner)}, was interrupted at ${old.interruptedAt} part way through its writes ` +
          `and may have left the cluster partly updated; this command completes it\n`,
      );
    } else if (old) {
      io.err(
        `warning: took over the expired lock of cluster "${cluster}" from ${describeOwner(old.owner)} (held since ${old.acquiredAt}, ` +
          `expired ${old.expiresAt}): that writer crashed or hung and may have left the cluster partly updated; this command completes it\n`,
      );
    }
    return result.lock;
  }
  if (result.aborted) throw new InterruptedError(`interrupted while waiting for the lock of cluster "${cluster}"; nothing was written`);
  if (result.unreadable !== undefined) {
    throw new UserError(`${lock.url} is not a mooring lock (${result.unreadable}); if no mooring command is writing cluster "${cluster}", delete that object`);
  }
  const holder = result.holder!;
  throw new UserError(
    `cluster "${cluster}" is locked by ${describeOwner(holder.owner)} since ${holder.acquiredAt} (lease expires ${holder.expiresAt} unless renewed); ` +
      `gave up after ${timeout} (--lock-timeout), nothing was written`,
    ExitCode.Locked,
  );
}

/** Renews every lock every ttl/3 until stopped; a lost lock makes the fence refuse the next write. */
function keepRenewed(held: HeldLock[], ttlMs: number): () => void {
  let renewing = false;
  const timer = setInterval(() => {
    if (renewing) return; // a slow store: never two renewals of one version in flight
    renewing = true;
    void Promise.allSettled(held.map((lock) => lock.renew())).finally(() => (renewing = false));
  }, ttlMs / 3);
  timer.unref();
  return () => clearInterval(timer);
}
