// V8 settings for the long-running agents (etcd-manager's daemon, protokube),
// set by the program itself at its start: they idle for days next to etcd and
// the API server, often on small instances, so memory counts for more than
// peak speed. Measured (bench/footprint.ts, agents/etcd-manager/README.md,
// "Memory"): without them a manager touched ~10 MiB more of the runtime's own
// machine code (the optimizing compilers) and held more heap and malloc arenas.
//   --no-maglev --no-turbofan  no optimizing tiers: bytecode and Sparkplug's
//                              baseline code only; a manager's hot paths are
//                              in native code (TLS, gzip, hashing) anyway.
//                              (--no-sparkplug too saved ~3 MiB more, but
//                              made a failover's first membership change
//                              slower in bench/etcd-manager.ts: kept);
//   --semi-space-growth-factor=1  the young generation keeps its initial size
//                              (1 MiB semi-spaces) instead of growing to 32 MiB
//                              ones under allocation bursts (a backup streams
//                              ~1 GB through it).
// Not --jitless or --lite-mode: both remove WebAssembly, which Node's fetch
// (undici's HTTP parser) needs: the aws provider's instance metadata calls.
// The single binary cannot pass Node options per program (its SEA execArgv is
// the same for every program and only "--"), and the CLIs (mooring, nodeup)
// must keep the optimizing tiers; so these go through v8.setFlagsFromString
// before the daemon loads its modules. V8 reads these flags when it decides to
// tier up or grow the young generation, so they take effect from then on
// (test/unit/long-running-v8.test.ts checks both on Node 20 and the binary's
// Node 22). They change V8's flag hash, so code caches made without them are
// refused: the build makes the lazy bundles' caches a second time with them
// (scripts/build-binaries.mjs), and the lazy loader picks that set.
import flags from './long-running-v8-flags.json' with { type: 'json' };

export const LONG_RUNNING_V8_FLAGS: readonly string[] = flags;

let tuned = false;

/** Sets LONG_RUNNING_V8_FLAGS once; call it before the daemon imports its modules. */
export function tuneForLongRunning(): void {
  if (tuned) return;
  // node:v8 loaded here, not imported: the dispatcher holds this module, and
  // node:v8 brings Node's stream modules with it (shared/stdio.ts says what they cost).
  process.getBuiltinModule('node:v8').setFlagsFromString(LONG_RUNNING_V8_FLAGS.join(' '));
  tuned = true;
}

/** Whether this process runs with LONG_RUNNING_V8_FLAGS (the lazy loader picks its code caches by it). */
export function tunedForLongRunning(): boolean {
  return tuned;
}

/** How often a long-running agent has V8 collect its whole heap (collectPeriodically). */
export const COLLECT_EVERY_MS = 30_000;

/** V8's gc() without arguments: a full, synchronous collection (Node 20's V8 reads { type: 'major' } as a minor one). */
type FullCollection = () => void;
let collect: FullCollection | undefined;

/**
 * A full garbage collection every `everyMs` for the rest of the process's life
 * (the timer does not keep the process alive). V8 sizes a heap's first
 * old-generation limit from the machine's memory, far above a manager's ~10 MiB
 * of live objects, and a mostly idle daemon allocates too slowly for its memory
 * reducer to step in: the managers in bench/footprint.ts grew from 70-75 MiB
 * to ~86 MiB over their first 10 minutes idle, garbage and the TLS sockets of
 * closed connections (freed in C++ only when their JavaScript objects are
 * collected) included. A full collection of such a heap takes a few
 * milliseconds. V8's gc() is taken once under --expose-gc and the flag unset
 * again: it is part of V8's flag hash, and code caches made under another hash
 * are refused (the lazy bundles' caches are made without it).
 */
export function collectPeriodically(everyMs = COLLECT_EVERY_MS): NodeJS.Timeout {
  if (!collect) {
    const v8 = process.getBuiltinModule('node:v8');
    v8.setFlagsFromString('--expose-gc');
    collect = process.getBuiltinModule('node:vm').runInNewContext('gc') as FullCollection;
    v8.setFlagsFromString('--no-expose-gc');
  }
  const run = collect;
  const timer = setInterval(() => run(), everyMs);
  timer.unref();
  return timer;
}
