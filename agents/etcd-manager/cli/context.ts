// What every operator command needs from its flags: the stores, the output
// format, typed flag values, and the one mapping from failures to the
// documented exit codes.
import { ExitCode, UserError } from '../../../shared/errors.js';
import { StoreError } from '../../../shared/store/types.js';
import { parseDuration, settingName, type FlagName } from '../flags.js';
import { parseOutputFormat, type OutputFormat } from './output.js';
import type { CommandContext, CommandStores } from './types.js';

export function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

export function flagString(ctx: CommandContext, name: FlagName): string {
  const v = ctx.flags.values.get(name);
  return typeof v === 'string' ? v : '';
}

export function flagBool(ctx: CommandContext, name: FlagName): boolean {
  return /^(true|1)$/i.test(flagString(ctx, name));
}

/** Whether the flag was given (command line, environment or env file), not just defaulted. */
export function flagGiven(ctx: CommandContext, name: FlagName): boolean {
  const source = ctx.flags.sources.get(name);
  return source !== undefined && source !== 'default';
}

/** A duration flag in ms (parseFlags has checked its form and range). */
export function flagDuration(ctx: CommandContext, name: FlagName): number {
  const ms = parseDuration(flagString(ctx, name));
  if (ms === undefined) throw usage(`--${name}: not a duration`);
  return ms;
}

/** How messages name a flag: `--x`, or `ETCD_MANAGER_X (env-file)` when it came from there. */
export function flagWhere(ctx: CommandContext, name: FlagName): string {
  return settingName(name, ctx.flags.sources.get(name));
}

export function outputFormat(ctx: CommandContext): OutputFormat {
  return parseOutputFormat(ctx.flags.values.get('output'));
}

/**
 * Opens --backup-store (no I/O yet: a URL no backend takes is a usage error
 * now). Any store URL is taken, as kOps' etcd-manager-ctl does; when it has
 * kOps' layout, `<state-store>/<cluster>/backups/etcd/<name>`, the state store
 * above it is opened too (the backup encryption key may be a secret there).
 */
export async function openStores(ctx: CommandContext): Promise<CommandStores> {
  const url = flagString(ctx, 'backup-store');
  if (url === '') throw usage(`${ctx.name}: --backup-store is required (or ETCD_MANAGER_BACKUP_STORE in the environment or in --env-file)`);
  const timeoutMs = flagDuration(ctx, 'store-timeout');
  // Loaded here, not at the top: --help of a command loads no store backend.
  const [{ openStore }, { splitBackupStore }] = await Promise.all([import('../../../shared/store/index.js'), import('../config.js')]);
  const open = (u: string) => openStore(u, { env: ctx.deps.env, timeoutMs });
  let backups;
  try {
    backups = open(url);
  } catch (err) {
    if (err instanceof StoreError) throw usage(`${flagWhere(ctx, 'backup-store')}: ${err.message}`);
    throw err;
  }
  let stateURL: string | undefined;
  try {
    stateURL = splitBackupStore(url).stateStore;
  } catch {
    stateURL = undefined; // not kOps' layout: no state store to look in
  }
  let state;
  try {
    state = stateURL === undefined ? undefined : open(stateURL);
  } catch {
    state = undefined;
  }
  return { backups, ...(state ? { state } : {}) };
}
