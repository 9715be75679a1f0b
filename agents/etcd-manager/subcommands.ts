// etcd-manager's subcommands: one line each, name → summary → the module that
// runs it (imported only when that command runs, so `list-backups` never loads
// the etcd client, gRPC or the manager). Adding a command is one line here and
// one module under cli/. `run` (or no command at all: how kOps starts it) is
// the manager itself.
import type { SubcommandModule } from './cli/types.js';

export interface Subcommand {
  name: string;
  summary: string;
  load(): Promise<{ command: SubcommandModule }>;
}

export const SUBCOMMANDS: readonly Subcommand[] = [
  { name: 'run', summary: 'run the manager (the default: kOps starts it with flags only)', load: () => import('./cli/run.js') },
  { name: 'backup', summary: 'take a backup now through the leading manager and wait for it', load: () => import('./cli/backup.js') },
  { name: 'list-backups', summary: 'list the backups in the backup store', load: () => import('./cli/list-backups.js') },
  { name: 'verify-backup', summary: 'download a backup and check its hashes and its snapshot', load: () => import('./cli/verify-backup.js') },
  { name: 'restore-backup', summary: 'queue a restore of a backup (kOps\' _command.json) for the leader', load: () => import('./cli/restore-backup.js') },
  { name: 'list-commands', summary: 'list the commands queued for the leader', load: () => import('./cli/list-commands.js') },
  { name: 'delete-command', summary: 'remove a queued command', load: () => import('./cli/delete-command.js') },
  { name: 'get', summary: 'show the cluster spec, its state, backups, commands and requests', load: () => import('./cli/get.js') },
  { name: 'configure-cluster', summary: 'set the member count and etcd version (control/etcd-cluster-spec)', load: () => import('./cli/configure-cluster.js') },
  { name: 'migrate-v2', summary: 'copy etcd2 (v2 API) data into etcd3, TTLs kept as leases, verified and resumable', load: () => import('./cli/migrate-v2.js') },
];

export function findSubcommand(name: string): Subcommand | undefined {
  return SUBCOMMANDS.find((c) => c.name === name);
}
