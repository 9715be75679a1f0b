// `etcd-manager delete-command ID`: withdraws one queued command (an id from
// list-commands), unparseable ones too, then rings the doorbell so the leader
// drops it from what it last read. kOps' etcd-manager-ctl takes a backup name
// here; ids and backup names look alike, so only ids are taken, and an
// unknown id that is the backup of a queued restore is answered with that
// restore's id.
import { ExitCode, UserError } from '../../../shared/errors.js';
import { deleteCommand, listCommands } from '../control/commands.js';
import { ringDoorbell } from '../control/requests.js';
import { openStores, outputFormat, usage } from './context.js';
import { json } from './output.js';
import { commandRow } from './list-commands.js';
import type { CommandContext, SubcommandModule } from './types.js';

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const id = ctx.args[0];
  if (id === '' || id.split('/').some((s) => s === '' || s === '.' || s === '..')) throw usage(`delete-command: ${JSON.stringify(id)} is not a command id (list-commands shows them)`);
  const { backups: store } = await openStores(ctx);
  const { io, now } = ctx.deps;
  const listing = await listCommands(store);
  const found = listing.commands.find((c) => c.id === id);
  const invalid = listing.invalid.find((c) => c.id === id);
  if (!found && !invalid) {
    const byBackup = listing.commands.filter((c) => c.restoreBackup?.backup === id);
    const hint = byBackup.length > 0
      ? `; ${id} is the backup of queued restore ${byBackup.map((c) => c.id).join(', ')} (delete-command takes the command's id)`
      : ' (list-commands shows the queued commands)';
    throw new UserError(`no command ${id} queued in ${store.baseURL}${hint}`, ExitCode.NotFound);
  }
  await deleteCommand(store, id);
  await ringDoorbell(store, `deleted ${id}`, now());
  const what = found?.restoreBackup ? `restore of backup ${found.restoreBackup.backup}` : found ? 'a command of a kind this build does not know' : 'an unreadable command';
  io.out(format === 'json' ? json({ deleted: id, command: found ? commandRow(found) : null }) : `deleted command ${id} (${what})\n`);
  return 0;
}

export const command: SubcommandModule = {
  args: ['ID'],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output'],
  description: `
Removes command ID (list-commands shows the ids) from the queue of the leading
manager: control/ID/_command.json, readable or not, then rings the doorbell so
the leader notices. A command the leader has already started is not stopped
by this. kOps' etcd-manager-ctl takes a backup name here; this command takes
the id, and an unknown id that names the backup of a queued restore is
answered with that restore's id (exit 4). An unknown id exits 4 with nothing
changed.

-o json prints {"deleted", "command": (as list-commands -o json, or null for
an unreadable one)}.`,
  run,
};
