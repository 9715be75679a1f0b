// The writer lock's flags and the settings they make (writer-lock.ts holds the
// lock itself). Apart so that building the CLI's commands and their help does
// not load the lock and the store code behind it (start-up, bench/startup.ts).
import { ExitCode, UserError } from '../../shared/errors.js';

export const DEFAULT_LOCK_TIMEOUT = '5m';
const MAX_LOCK_TIMEOUT_MS = 24 * 3600_000;

export interface WriterLockSettings {
  /** How long to wait for another writer's lock (0: do not wait). */
  timeoutMs: number;
  /** Proceed, with a warning, on a store that cannot hold a lock. */
  allowUnserialized: boolean;
  /** The command line, recorded in the lock for whoever finds it held. */
  command: string;
  /** Lease length (default DEFAULT_LOCK_TTL_MS); renewed every third of it. */
  ttlMs?: number;
}

/** The lock flags as commander hands them over. */
export interface WriterLockFlags {
  lockTimeout: string;
  allowUnserializedWrites: boolean;
}

export const LOCK_TIMEOUT_HELP =
  'how long to wait for another writer of the cluster to finish: 90s, 5m, 1h, 0 to fail at once (at most 24h); on timeout exit 7, nothing written';
export const ALLOW_UNSERIALIZED_HELP =
  'on a state store whose server ignores conditional writes (If-None-Match/If-Match; some S3-compatible servers), write without a lock instead of refusing: two writers at once can then leave mismatched keysets';

export function lockSettings(flags: WriterLockFlags, command: string): WriterLockSettings {
  return { timeoutMs: parseLockTimeout(flags.lockTimeout), allowUnserialized: flags.allowUnserializedWrites, command };
}

/** "90s", "5m", "1h", "1500ms"; a bare number is seconds. */
export function parseLockTimeout(value: string): number {
  const match = /^(\d{1,9})(ms|s|m|h)?$/.exec(value.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3600_000 }[match?.[2] ?? 's'] ?? 1000;
  const ms = match ? Number(match[1]) * unit : NaN;
  if (!(ms >= 0 && ms <= MAX_LOCK_TIMEOUT_MS)) {
    throw new UserError(`--lock-timeout: "${value}" is not a duration from 0 to 24h (e.g. 90s, 5m, 0)`, ExitCode.Usage);
  }
  return ms;
}
