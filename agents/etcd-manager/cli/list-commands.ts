// `etcd-manager list-commands`: the commands queued for the leader in kOps'
// form, control/<id>/_command.json, oldest first as the leader runs them
// (kOps has one kind today: restore-backup). A file of that name that does not
// parse is listed as INVALID: kOps' etcd-manager stops at it.
import { listCommands, type QueuedCommand } from '../control/commands.js';
import { openStores, outputFormat } from './context.js';
import { ago, json, table } from './output.js';
import { noteIfSlow } from './progress.js';
import type { CommandContext, SubcommandModule } from './types.js';

/** One command as `-o json` prints it; these names are stable. */
export interface CommandRow {
  id: string;
  /** When it was queued (ISO, from its timestamp); null when it has none. */
  queuedAt: string | null;
  kind: 'restore-backup' | 'unknown';
  backup: string | null;
  clusterSpec: { memberCount: number | null; etcdVersion: string | null } | null;
}

export function commandRow(c: QueuedCommand): CommandRow {
  const ms = Number(c.timestampNanos / 1_000_000n);
  const spec = c.restoreBackup?.clusterSpec;
  return {
    id: c.id,
    queuedAt: ms > 0 ? new Date(ms).toISOString() : null,
    kind: c.restoreBackup ? 'restore-backup' : 'unknown',
    backup: c.restoreBackup?.backup ?? null,
    clusterSpec: spec ? { memberCount: spec.memberCount ?? null, etcdVersion: spec.etcdVersion ?? null } : null,
  };
}

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const { backups: store } = await openStores(ctx);
  const { io, now } = ctx.deps;
  const listing = await noteIfSlow(io, `reading the commands in ${store.baseURL}…`, listCommands(store));
  const rows = listing.commands.map(commandRow);
  if (format === 'json') {
    io.out(json({ backupStore: store.baseURL, commands: rows, invalid: listing.invalid.map((i) => ({ id: i.id, error: i.error })) }));
    return 0;
  }
  if (rows.length === 0 && listing.invalid.length === 0) {
    io.err(`no commands queued in ${store.baseURL}\n`);
    return 0;
  }
  const t = now();
  io.out(table(['ID', 'QUEUED', 'COMMAND', 'BACKUP', 'MEMBERS', 'ETCD'], [
    ...rows.map((r) => [r.id, r.queuedAt ? ago(Date.parse(r.queuedAt), t) : '-', r.kind, r.backup ?? '-', String(r.clusterSpec?.memberCount ?? '-'), r.clusterSpec?.etcdVersion ?? '-']),
    ...listing.invalid.map((i) => [i.id, '-', 'INVALID', '-', '-', i.error]),
  ]));
  return 0;
}

export const command: SubcommandModule = {
  args: [],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output'],
  description: `
Lists the commands queued for the leading manager: every
control/<id>/_command.json below --backup-store (kOps' format, so commands
queued with kOps' etcd-manager-ctl are listed too), oldest first, the order
the leader runs them in. Today the only kind is restore-backup, queued by
restore-backup with the cluster spec to restore into. The leader removes a
command once it has carried it out; delete-command ID withdraws one.
A _command.json that does not parse is listed as INVALID with why (kOps'
etcd-manager stops at such a file; delete-command removes it).

-o json prints {"backupStore", "commands": [{"id", "queuedAt", "kind",
"backup", "clusterSpec": {"memberCount", "etcdVersion"}}], "invalid": [{"id",
"error"}]}.`,
  run,
};
