// One hostile (or careless) input against a built binary, and what must come
// of it: the right exit code, one clear line on stderr, nothing foreign on
// stdout, and the world it ran against (state store, --root, files) byte for
// byte unchanged. Cases live in test/hostile/cases/<area>.ts, each exporting
// `cases: HostileCase[]`; test/integration/hostile-input.test.ts runs them all.

export type Program = 'mooring' | 'nodeup' | 'etcd-manager' | 'protokube' | 'mooring-agents';

/** A private copy of a prepared world, one per case. */
export interface World {
  /** The case's own directory; everything below it is snapshotted before and after the run. */
  dir: string;
  /** file:// state store holding cluster CLUSTER (created with --cloud local and updated with --yes). */
  storeURL: string;
  storeDir: string;
  /** The cluster's name in that store. */
  cluster: string;
  /** An empty directory, for nodeup --root and etcd-manager volumes. */
  root: string;
  /** Writes a file below dir and returns its absolute path. */
  file(name: string, content: string | Buffer, mode?: number): string;
  /** Boot config of an instance group (as `mooring get bootconfig` prints it), written below dir. */
  bootConfig(group: string): Promise<string>;
}

export interface Invocation {
  args: string[];
  /** Added to a minimal environment (PATH, HOME); the caller's environment is never passed through. */
  env?: Record<string, string>;
  stdin?: string;
}

export interface HostileCase {
  /** What was tried, in a user's words. */
  name: string;
  program: Program;
  prepare(world: World): Promise<Invocation> | Invocation;
  /** Expected exit code. */
  exit: number;
  /** The one stderr line must match this. */
  message: RegExp;
  /** How many non-empty stderr lines are allowed (default 1: one clear line). */
  maxLines?: number;
  /** Must appear nowhere in stdout or stderr (secrets, foreign output). */
  never?: RegExp[];
  /** Bound on the run (default 20 s); a slow failure is a failure. */
  timeoutMs?: number;
  /** Paths below dir the program may change (e.g. a lock's leftovers); default none. */
  mayChange?: RegExp;
  /** Extra checks after the run, with the run's output. */
  after?(world: World, out: { stdout: string; stderr: string }): Promise<void> | void;
}
