// kOps' queued commands: `control/<id>/_command.json`, a jsonpb Command
// (etcd-manager pkg/apis/etcd/etcdapi.proto, pkg/commands/vfs.go):
//   message Command { int64 timestamp = 1; RestoreBackupCommand restore_backup = 10; }
//   message RestoreBackupCommand { ClusterSpec cluster_spec = 1; string backup = 3; }
// e.g. {"timestamp": "1764490500123456789", "restoreBackup": {"clusterSpec": {…}, "backup": "<name>"}}
// (timestamp in unix NANOseconds). kOps' etcd-manager-ctl queues restores this
// way, so those work here, and ours work there. kOps reads EVERY file named
// `_command.json` below control/ (recursively) and fails on any it cannot parse:
// nothing else of ours under control/ may carry that name (requests.ts does not).
// kOps names the folder `<RFC3339>-000000`, so two commands in one second
// overwrite each other; ours come from a BackupNamer (never the same name twice).
import type { StateStore } from '../../../shared/store/types.js';
import { field, formatJsonpb, isRecord, JsonpbError, parseObject, readInt64, readString } from '../backup/jsonpb.js';
import { clusterSpecFields, readClusterSpec, type ClusterSpec } from '../backup/meta.js';

export const CONTROL_PREFIX = 'control';
export const COMMAND_FILE = '_command.json';

export interface RestoreBackupCommand {
  backup: string;
  /** The spec to restore into (kOps' ctl copies the current control spec here). */
  clusterSpec?: ClusterSpec;
}

export interface QueuedCommand {
  /** The folder below control/ (`2026-11-30T08:15:00Z-000000`); what list-commands shows and delete-command takes. */
  id: string;
  /** Store path of the _command.json. */
  path: string;
  /** When it was queued, unix nanoseconds (0 when absent). */
  timestampNanos: bigint;
  /** Absent for a command kind this build does not know (kOps has only restores today). */
  restoreBackup?: RestoreBackupCommand;
}

export interface InvalidCommand {
  id: string;
  path: string;
  error: string;
}

export interface CommandListing {
  /** Oldest first (by timestamp, then id), as kOps runs them. */
  commands: QueuedCommand[];
  /** Files named _command.json that do not parse: reported, never run; delete-command removes them. */
  invalid: InvalidCommand[];
}

export function formatCommand(timestampNanos: bigint, restore: RestoreBackupCommand): string {
  return formatJsonpb([
    ['timestamp', { kind: 'int64', value: timestampNanos }],
    [
      'restoreBackup',
      {
        kind: 'message',
        value: [
          ['clusterSpec', { kind: 'message', value: restore.clusterSpec ? clusterSpecFields(restore.clusterSpec) : undefined }],
          ['backup', { kind: 'string', value: restore.backup }],
        ],
      },
    ],
  ]);
}

/** Parses one _command.json (lenient like kOps' reader about spelling and integer forms). Throws JsonpbError. */
export function parseCommand(text: string, id: string, path: string, source: string): QueuedCommand {
  const obj = parseObject(text, source);
  const timestampNanos = readInt64(field(obj, 'timestamp', 'timestamp'), `${source}: timestamp`) ?? 0n;
  const restore = field(obj, 'restoreBackup', 'restore_backup');
  const command: QueuedCommand = { id, path, timestampNanos };
  if (restore !== undefined) {
    if (!isRecord(restore)) throw new JsonpbError(`${source}: restoreBackup must be an object`);
    const backup = readString(field(restore, 'backup', 'backup'), `${source}: restoreBackup.backup`);
    if (!backup) throw new JsonpbError(`${source}: restoreBackup names no backup`);
    const spec = field(restore, 'clusterSpec', 'cluster_spec');
    command.restoreBackup = { backup, ...(spec !== undefined ? { clusterSpec: readClusterSpec(spec, `${source}: restoreBackup.clusterSpec`) } : {}) };
  }
  return command;
}

/** Every _command.json below control/: one listing, then one read per command. */
export async function listCommands(store: StateStore): Promise<CommandListing> {
  const paths = (await store.list(CONTROL_PREFIX)).filter((p) => p.endsWith(`/${COMMAND_FILE}`));
  const commands: QueuedCommand[] = [];
  const invalid: InvalidCommand[] = [];
  for (const path of paths) {
    const id = path.slice(CONTROL_PREFIX.length + 1, -(COMMAND_FILE.length + 1));
    const data = await store.readIfExists(path);
    if (data === undefined) continue; // deleted since the listing
    try {
      commands.push(parseCommand(data.toString('utf8'), id, path, store.urlOf(path)));
    } catch (err) {
      if (!(err instanceof JsonpbError)) throw err;
      invalid.push({ id, path, error: err.message });
    }
  }
  commands.sort((a, b) => (a.timestampNanos < b.timestampNanos ? -1 : a.timestampNanos > b.timestampNanos ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { commands, invalid };
}

function commandPath(id: string): string {
  if (id === '' || id.split('/').some((s) => s === '' || s === '.' || s === '..')) throw new Error(`${JSON.stringify(id)} is not a command id`);
  return `${CONTROL_PREFIX}/${id}/${COMMAND_FILE}`;
}

/** Queues a restore as kOps' ctl does; `id` from a BackupNamer, `nowMs` the queue time. Returns the id. */
export async function queueRestoreCommand(store: StateStore, id: string, nowMs: number, restore: RestoreBackupCommand): Promise<string> {
  await store.write(commandPath(id), formatCommand(BigInt(Math.floor(nowMs)) * 1_000_000n, restore));
  return id;
}

/** The command is still queued (not yet carried out, or kept with a failed outcome). */
export async function commandExists(store: StateStore, id: string): Promise<boolean> {
  return store.exists(commandPath(id));
}

/** Removes a command (done, or deleted by the operator). False when there was none. */
export async function deleteCommand(store: StateStore, id: string): Promise<boolean> {
  const path = commandPath(id);
  if (!(await store.exists(path))) return false;
  await store.delete(path);
  return true;
}
