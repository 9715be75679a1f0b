// What an etcd-manager subcommand is: its help, the flags it takes (all from
// the one table in ../flags.ts), its arguments, and how it runs. The dispatch
// table (../subcommands.ts) names each one and loads only the one asked for.
import type { StateStore } from '../../../shared/store/types.js';
import type { FlagName, ParsedFlags } from '../flags.js';
import type { LeaderStatusReader } from './leader-status.js';

/** Where a command writes: stdout for results (tables, JSON), stderr for notes, progress and errors. */
export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  /** stderr is a terminal: the progress line rewrites itself in place. */
  errIsTTY: boolean;
}

/** Everything a command reaches outside itself, injected so unit tests run it in-process. */
export interface CommandDeps {
  io: CommandIO;
  /** The environment the s3:// store reads its AWS settings from. */
  env: NodeJS.ProcessEnv;
  now(): number;
  /** Resolves after ms, or at once when signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  randomInt(below: number): number;
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM: a waiting command stops waiting and says what it leaves behind. */
  interrupted: AbortSignal;
  /** The leader's own account of the cluster, for `get` and `restore-backup --wait`. */
  readLeaderStatus: LeaderStatusReader;
  /** Who is asking, for request records (`user@host`); never a secret. */
  requestedBy: string;
  /** Whether a file exists (the default etcdctl). */
  fileExists(path: string): boolean;
}

export interface CommandContext {
  program: string;
  /** The subcommand's name as typed. */
  name: string;
  flags: ParsedFlags;
  /** Positional arguments after the subcommand's name. */
  args: string[];
  deps: CommandDeps;
}

export interface SubcommandModule {
  /** Positional arguments, for the usage line (e.g. `NAME`); empty for none. */
  args: readonly string[];
  /** How many of them are optional at the end (default none). */
  optionalArgs?: number;
  /** The flags it takes on the command line; others are refused (their environment forms are ignored). */
  flags: readonly FlagName[];
  /** What it does, for --help: a few lines, true for this build. */
  description: string;
  /** The whole --help text, when the generic one does not fit (`run`). */
  help?(program: string): string;
  /** It watches deps.interrupted (stops waiting, cleans up, says what it leaves); others simply exit 130 on Ctrl-C. */
  handlesInterrupt?: boolean;
  /** Returns the exit code; throws UserError (or StoreError) for the documented failures. */
  run(ctx: CommandContext): Promise<number>;
}

/** Exit code after Ctrl-C: 128 + SIGINT, as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** Opened stores of a command: the backup store, and the state store above it when the URL has kOps' layout. */
export interface CommandStores {
  backups: StateStore;
  /** `<state-store>/<cluster>` when --backup-store is `…/<cluster>/backups/etcd/<name>`; holds the backup key secret. */
  state?: StateStore;
}
