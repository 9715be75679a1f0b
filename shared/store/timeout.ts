// How long a state-store request may go without a byte before it fails: the
// agents' --store-timeout (seconds), else MOORING_STORE_TIMEOUT, else 30 s.
// It bounds each idle period of a request, not a whole transfer (see connectS3).
import { ExitCode, UserError } from '../errors.js';

export const DEFAULT_STORE_TIMEOUT_MS = 30_000;
export const STORE_TIMEOUT_ENV = 'MOORING_STORE_TIMEOUT';
const MIN_SECONDS = 1;
const MAX_SECONDS = 600;

/** A whole number of seconds within [min, max], or a usage error naming `where`. */
export function parseSeconds(where: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new UserError(`${where}: ${JSON.stringify(raw)} is not a whole number of seconds (${min} to ${max})`, ExitCode.Usage);
  const seconds = Number(raw.trim());
  if (seconds < min || seconds > max) throw new UserError(`${where}: ${JSON.stringify(raw)} is out of range: want ${min} to ${max} seconds`, ExitCode.Usage);
  return seconds;
}

/** The store timeout in ms from a --store-timeout value (undefined: not given) or the environment. */
export function storeTimeoutMs(flag: string | undefined, env: NodeJS.ProcessEnv): number {
  if (flag !== undefined) return parseSeconds('--store-timeout', flag, MIN_SECONDS, MAX_SECONDS) * 1000;
  const fromEnv = env[STORE_TIMEOUT_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return parseSeconds(STORE_TIMEOUT_ENV, fromEnv, MIN_SECONDS, MAX_SECONDS) * 1000;
  return DEFAULT_STORE_TIMEOUT_MS;
}
