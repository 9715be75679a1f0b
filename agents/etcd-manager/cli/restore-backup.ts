// `etcd-manager restore-backup NAME`: verifies the backup (unless
// --skip-verify), then queues kOps' restore command, control/<id>/_command.json
// with the current cluster spec (as kOps' etcd-manager-ctl does, so kOps'
// managers would run it too), and rings the doorbell so the leader sees it at
// once instead of at its next leadership change. --wait follows it: the leader
// removes the command once it has carried it out.
import { ExitCode, UserError } from '../../../shared/errors.js';
import { isV2BackupMeta } from '../backup/meta.js';
import { BackupNamer } from '../backup/names.js';
import { readClusterCreated, type ClusterCreatedFacts } from '../control/cluster-created.js';
import { CLUSTER_SPEC_PATH, ControlFileError, readClusterSpecFile, type EtcdClusterSpec } from '../control/cluster-spec.js';
import { COMMAND_FILE, CONTROL_PREFIX, listCommands, queueRestoreCommand, type CommandListing } from '../control/commands.js';
import { ringDoorbell } from '../control/requests.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { LeaderStatusView } from './leader-status.js';
import { flagBool, flagDuration, openStores, outputFormat } from './context.js';
import { formatDuration, isoSecond, json } from './output.js';
import { ProgressLine } from './progress.js';
import { TransientFailures } from './transient.js';
import { EXIT_INTERRUPTED, type CommandContext, type SubcommandModule } from './types.js';
import { backupNameArg, loadBackupOrExplain, requireData } from './verify-common.js';
import { verifiedText, verifyWithProgress, type VerifyRow } from './verify-backup.js';

/** How often --wait looks at the queue (one small GET, plus the status object when there is one). */
const WAIT_POLL_MS = 1000;

/** `-o json` of restore-backup; these names are stable. */
export interface RestoreRow {
  backup: string;
  /** The queued command's id (list-commands, delete-command). */
  command: string;
  clusterSpec: EtcdClusterSpec;
  /** The verification before queueing; null with --skip-verify. */
  verification: VerifyRow | null;
  /** With --wait: queued (the wait ended first), succeeded, failed. */
  state: 'queued' | 'succeeded' | 'failed';
  error?: string;
}

async function readSpec(store: StateStore): Promise<EtcdClusterSpec> {
  let spec: EtcdClusterSpec | undefined;
  try {
    spec = await readClusterSpecFile(store);
  } catch (err) {
    if (err instanceof ControlFileError) throw new UserError(`${err.message} (configure-cluster rewrites it)`, ExitCode.InvalidSpec, { cause: err });
    throw err;
  }
  if (!spec) throw new UserError(`no cluster spec at ${store.urlOf(CLUSTER_SPEC_PATH)}: a restore is queued with the current spec (configure-cluster writes one)`, ExitCode.NotFound);
  return spec;
}

/** One restore at a time: exit 6 naming the one already queued. */
async function refuseSecondRestore(store: StateStore): Promise<CommandListing> {
  const listing = await listCommands(store);
  const pending = listing.commands.find((c) => c.restoreBackup);
  if (pending) {
    throw new UserError(`a restore is already queued: command ${pending.id} restores ${pending.restoreBackup?.backup} (delete-command ${pending.id} first, if it should not run)`, ExitCode.Conflict);
  }
  return listing;
}

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const name = backupNameArg(ctx, ctx.args[0]);
  const wait = flagBool(ctx, 'wait');
  const timeoutMs = flagDuration(ctx, 'timeout');
  const { backups: store } = await openStores(ctx);
  const { io, now } = ctx.deps;

  // Everything that can refuse the restore is checked before anything is written.
  const info = await loadBackupOrExplain(store, name);
  if (isV2BackupMeta(info.meta)) {
    throw new UserError(`backup ${name} is of etcd ${info.meta.etcdVersion}: an etcd 2 data directory, not a v3 snapshot, so it is not restored as one (verify-backup checks it); etcd 2 data moves to etcd 3 through migrate-v2, or configure-cluster --etcd-version 3.x, which converts the cluster's v2 backup`, ExitCode.Usage);
  }
  await requireData(store, name);
  const clusterSpec = await readSpec(store);
  const queued = await refuseSecondRestore(store);
  for (const bad of queued.invalid) io.err(`warning: ${bad.error}: kOps' etcd-manager stops at a command it cannot read (delete-command ${bad.id} removes it)\n`);

  let verification: VerifyRow | null = null;
  if (!flagBool(ctx, 'skip-verify')) {
    const { BackupVerifyError } = await import('../backup/verify.js');
    try {
      const verified = await verifyWithProgress(ctx, name);
      if (!verified) {
        io.err(`etcd-manager: interrupted: verification of ${name} stopped; no restore was queued\n`);
        return EXIT_INTERRUPTED;
      }
      verification = verified.row;
    } catch (err) {
      if (err instanceof BackupVerifyError) throw new UserError(`${err.message} (check ${err.check} failed); no restore was queued`, ExitCode.Failure, { cause: err });
      throw err;
    }
    if (format === 'table') io.err(verifiedText(verification));
  }

  // Ctrl-C before anything is written, or another restore queued while this one was verified: write nothing.
  if (ctx.deps.interrupted.aborted) {
    io.err(`etcd-manager: interrupted: no restore was queued\n`);
    return EXIT_INTERRUPTED;
  }
  await refuseSecondRestore(store);
  // What the created marker says now: a restore forms a new cluster and rewrites it (--wait tells a restore from a deleted command by that).
  const markerBefore = wait ? await readClusterCreated(store).catch(() => undefined) : undefined;
  const queuedAt = now();
  const id = new BackupNamer({ now, randomInt: ctx.deps.randomInt }).next();
  await queueRestoreCommand(store, id, queuedAt, { backup: name, clusterSpec });
  await ringDoorbell(store, id, queuedAt);
  const row: RestoreRow = { backup: name, command: id, clusterSpec, verification, state: 'queued' };
  const queuedLine = `queued the restore of backup ${name} as command ${id} (${clusterSpec.memberCount} member${clusterSpec.memberCount === 1 ? '' : 's'}, etcd ${clusterSpec.etcdVersion}); the leader starts it at its next look at the store`;
  if (!wait) {
    io.out(format === 'json' ? json(row) : `${queuedLine}\n`);
    return 0;
  }
  io.err(`${queuedLine}\nwaiting for the leader to carry it out (Ctrl-C stops waiting, not the restore)\n`);
  const outcome = await follow(ctx, store, id, name, queuedAt, timeoutMs, markerKey(markerBefore));
  if (outcome === 'interrupted') {
    io.err(`etcd-manager: interrupted: stopped waiting; command ${id} stays queued and the leader still restores ${name} (delete-command ${id} withdraws it before the leader starts it)\n`);
    if (format === 'json') io.out(json(row));
    return EXIT_INTERRUPTED;
  }
  if (outcome.state === 'succeeded') {
    io.out(format === 'json' ? json({ ...row, state: 'succeeded' }) : `restored backup ${name}: ${outcome.detail}\n`);
    return 0;
  }
  if (format === 'json') io.out(json({ ...row, state: outcome.state, error: outcome.detail }));
  throw new UserError(outcome.state === 'queued' ? outcome.detail : `restore of ${name} (command ${id}) failed: ${outcome.detail}`, ExitCode.Failure);
}

type Outcome = 'interrupted' | { state: 'succeeded' | 'failed' | 'queued'; detail: string };

/**
 * Until the command leaves the queue: then the leader's status says how it
 * ended, or else the cluster-created marker, which a restore rewrites (a new
 * cluster is formed from the backup), tells a restore from a deleted command.
 */
function markerKey(facts: ClusterCreatedFacts | undefined): string {
  return JSON.stringify(facts ?? null);
}

async function follow(ctx: CommandContext, store: StateStore, id: string, name: string, queuedAt: number, timeoutMs: number, markerBefore: string): Promise<Outcome> {
  const { now, interrupted } = ctx.deps;
  const progress = new ProgressLine({ io: ctx.deps.io, now });
  const path = `${CONTROL_PREFIX}/${id}/${COMMAND_FILE}`;
  const failures = new TransientFailures(now);
  try {
    for (;;) {
      if (interrupted.aborted) return 'interrupted';
      let looked: [boolean, LeaderStatusView | undefined] | undefined;
      try {
        looked = await Promise.all([store.exists(path), ctx.deps.readLeaderStatus(store, id)]);
        failures.ok();
      } catch (err) {
        failures.failed(err); // a dropped connection: look again
      }
      const [present, status] = looked ?? [true, undefined];
      let restore = status?.lastRestore;
      // The two reads went out together: the outcome may have been read just before the leader wrote it and
      // removed the command. It is written first, so a read that starts now finds it.
      if (!present && restore?.command !== id) restore = (await ctx.deps.readLeaderStatus(store, id).catch(() => undefined))?.lastRestore;
      // A refused or failed restore stays queued with its outcome (kOps' semantics): that is its end too.
      if (restore?.command === id && (!present || restore.state === 'failed')) {
        return restore.state === 'succeeded'
          ? { state: 'succeeded', detail: `the leader reports it done${restore.finishedAt ? ` at ${restore.finishedAt}` : ''}` }
          : { state: 'failed', detail: `${restore.error ?? 'the leader gave no reason'}${present ? ` (the command stays queued: delete-command ${id} withdraws it)` : ''}` };
      }
      if (!present) {
        const created = await readClusterCreated(store).catch(() => undefined);
        if (created !== undefined && markerKey(created) !== markerBefore) {
          return { state: 'succeeded', detail: `the cluster was re-created from it${created.atMs !== undefined ? ` at ${isoSecond(created.atMs)}` : ''} (command ${id} carried out)` };
        }
        return { state: 'failed', detail: `command ${id} left the queue, but nothing says the restore happened: control/etcd-cluster-created was not rewritten since it was queued (deleted with delete-command, or run by a manager that does not rewrite the marker); see the managers' logs` };
      }
      const t = now();
      progress.update(`${status?.activity ?? `command ${id} queued: waiting for the leader`}, ${formatDuration(t - queuedAt)}`);
      if (t - queuedAt >= timeoutMs) {
        return { state: 'queued', detail: `gave up waiting after --timeout=${formatDuration(timeoutMs)}: command ${id} (restore of ${name}) is still queued; it was not withdrawn (delete-command ${id} does that before the leader starts it)` };
      }
      await ctx.deps.sleep(WAIT_POLL_MS, interrupted);
    }
  } finally {
    progress.done();
  }
}

export const command: SubcommandModule = {
  args: ['NAME'],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output', 'skip-verify', 'wait', 'timeout', 'backup-encryption-key-file', 'etcdctl', 'work-dir'],
  handlesInterrupt: true,
  description: `
Queues a restore of backup NAME (list-backups shows the names) for the leading
manager, which replaces the data of every member with the backup's snapshot
(etcd's own snapshot restore: revisions and leases survive) and keeps the
cluster quarantined until every member is healthy on it. All the live data is
replaced.

First, before anything is written: NAME must be a complete backup (exit 4
otherwise), control/etcd-cluster-spec must exist (exit 4) and parse (exit 3),
and no other restore may be queued (exit 6: delete-command it first). Then the
backup is verified as verify-backup does (download, hashes, snapshot; the
same key options), unless --skip-verify; a backup that fails is refused (exit
1) and nothing is queued. Then kOps' command control/<id>/_command.json is
written with the current cluster spec, as kOps' etcd-manager-ctl does, and the
doorbell is rung so the leader sees it within seconds, without a restart.

--wait follows the command until the leader has carried it out (it removes
the command when done), bounded by --timeout; Ctrl-C stops the waiting, not
the restore (delete-command withdraws it before the leader starts it).

-o json prints {"backup", "command", "clusterSpec": {"memberCount",
"etcdVersion"}, "verification" (as verify-backup -o json, or null), "state"
(queued; with --wait succeeded or failed), "error"}.`,
  run,
};
