// `etcd-manager backup`: asks the leading manager for a backup through the
// backup store alone (control/requests.ts: a request object, then a ring of
// the doorbell the leader polls every second or two), then follows the
// result the leader writes: queued → running (bytes so far) → succeeded /
// failed / expired. One backup runs at a time: a request made while another
// runs waits its turn, and this command says so. Ctrl-C or --timeout stop
// the waiting, never the request: the leader still takes the backup.
import { ExitCode, UserError } from '../../../shared/errors.js';
import { BackupNamer } from '../backup/names.js';
import { isClusterCreated } from '../control/cluster-created.js';
import { listRequests, readResult, submitRequest, type RequestResult } from '../control/requests.js';
import { flagDuration, openStores, outputFormat } from './context.js';
import { formatBytes, formatDuration, json, table } from './output.js';
import { ProgressLine } from './progress.js';
import { TransientFailures } from './transient.js';
import { EXIT_INTERRUPTED, type CommandContext, type SubcommandModule } from './types.js';

/** How often the result is read while waiting (one small GET). */
export const POLL_MS = 500;
/** How often, while queued, the other requests are listed to say what this one waits behind. */
const QUEUE_LOOK_MS = 5_000;
/** A running result not refreshed for this long: its runner stopped (the leader side's staleAfterMs default). */
const STALE_MS = 2 * 60_000;

/** `-o json` of a backup request; these names are stable. */
export interface BackupRequestRow {
  request: string;
  state: 'succeeded' | 'failed' | 'expired' | 'queued' | 'running';
  runner?: string;
  backup?: { name: string; storedBytes: number; snapshotBytes?: number; durationMs: number };
  error?: string;
  /** How long this command waited, in ms. */
  waitedMs: number;
}

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const timeoutMs = flagDuration(ctx, 'timeout');
  const { backups: store } = await openStores(ctx);
  const { io, now, interrupted } = ctx.deps;
  // No cluster, no leader: a request would only expire an hour from now.
  if (!(await isClusterCreated(store))) {
    throw new UserError(`no etcd cluster in ${store.baseURL} (control/etcd-cluster-created is missing): no leader would take the backup`, ExitCode.NotFound);
  }
  const id = new BackupNamer({ now, randomInt: ctx.deps.randomInt }).next();
  const started = now();
  await submitRequest(store, { kind: 'backup', reason: 'on-demand' }, { id, nowMs: started, requestedBy: ctx.deps.requestedBy });
  io.err(`requested backup ${id}; waiting for the leader (Ctrl-C stops waiting, not the backup)\n`);

  const progress = new ProgressLine({ io, now });
  let queueNote = '';
  let lastQueueLook = -Infinity;
  let last: RequestResult | undefined;
  const failures = new TransientFailures(now);
  const row = (state: BackupRequestRow['state'], r?: RequestResult): BackupRequestRow => ({
    request: id, state, ...(r?.runner ? { runner: r.runner } : {}), ...(r?.backup ? { backup: r.backup } : {}), ...(r?.error ? { error: r.error } : {}), waitedMs: now() - started,
  });
  try {
    for (;;) {
      if (interrupted.aborted) {
        progress.done();
        io.err(`etcd-manager: interrupted: stopped waiting; request ${id} stays ${last ? 'running' : 'queued'} and the leader still takes the backup (list-backups shows it once done)\n`);
        if (format === 'json') io.out(json(row(last ? 'running' : 'queued', last)));
        return EXIT_INTERRUPTED;
      }
      try {
        last = await readResult(store, id);
        failures.ok();
      } catch (err) {
        failures.failed(err); // a result caught mid-rewrite, a dropped connection: read again
      }
      const t = now();
      if (last?.state === 'succeeded' && last.backup) {
        progress.done();
        const b = last.backup;
        io.out(format === 'json'
          ? json(row('succeeded', last))
          : table(['NAME', 'STORED', 'SNAPSHOT', 'DURATION'], [[b.name, formatBytes(b.storedBytes), b.snapshotBytes === undefined ? '-' : formatBytes(b.snapshotBytes), formatDuration(b.durationMs)]]));
        return 0;
      }
      if (last && last.state !== 'running') {
        progress.done();
        if (format === 'json') io.out(json(row(last.state === 'expired' ? 'expired' : 'failed', last)));
        const what = last.state === 'expired' ? 'expired' : `failed on ${last.runner}`;
        throw new UserError(`backup request ${id} ${what}: ${last.error ?? 'no reason given'}`, ExitCode.Failure);
      }
      if (last) {
        const p = last.progress;
        const stale = t - Date.parse(last.updatedAt) > STALE_MS ? ` (no word from ${last.runner} for ${formatDuration(t - Date.parse(last.updatedAt))}: waiting for a leader to take it over)` : '';
        progress.update(`backing up on ${last.runner}: ${formatBytes(p?.bytes ?? 0)}${p?.totalBytes ? ` of ${formatBytes(p.totalBytes)}` : ''}, ${formatDuration(t - started)}${stale}`);
      } else {
        if (t - lastQueueLook >= QUEUE_LOOK_MS) {
          lastQueueLook = t;
          queueNote = await listRequests(store).then((entries) => describeQueue(entries, id), (err: unknown) => (failures.failed(err), queueNote));
        }
        progress.update(`queued: waiting for the leader${queueNote}, ${formatDuration(t - started)}`);
      }
      if (t - started >= timeoutMs) {
        progress.done();
        if (format === 'json') io.out(json(row(last ? 'running' : 'queued', last)));
        throw new UserError(`gave up waiting after --timeout=${formatDuration(timeoutMs)}: backup request ${id} is still ${last ? `running on ${last.runner}` : 'queued (no leader has started it)'}; it was not cancelled, and list-backups shows the backup once it is done`, ExitCode.Failure);
      }
      await ctx.deps.sleep(POLL_MS, interrupted);
    }
  } finally {
    progress.done();
  }
}

/** " behind 1 running (a/1, 12.0 MiB) and 2 queued" from the other requests older than ours. */
function describeQueue(entries: Awaited<ReturnType<typeof listRequests>>, id: string): string {
  const ahead = entries.filter((e) => e.id < id && e.request && (!e.result || e.result.state === 'running'));
  const running = ahead.filter((e) => e.result?.state === 'running');
  const queued = ahead.length - running.length;
  if (ahead.length === 0) return '';
  const parts = [
    ...running.map((e) => `1 running (${e.result?.runner}, ${formatBytes(e.result?.progress?.bytes ?? 0)})`),
    ...(queued > 0 ? [`${queued} queued`] : []),
  ];
  return ` behind ${parts.join(' and ')}`;
}

export const command: SubcommandModule = {
  args: [],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output', 'timeout'],
  handlesInterrupt: true,
  description: `
Takes a backup of the etcd cluster now, through the leading manager, using
nothing but --backup-store (and its credentials): the request is an object
under control/requests/ and the leader, which polls the store's doorbell every
second or two, streams the snapshot into the store and writes the result. The
command prints the backup's name, stored and snapshot sizes and how long the
backup took; a progress line on stderr shows the bytes while it runs.

One backup runs at a time: a request made while another is running waits its
turn ("queued" in the progress line, with what it waits behind). A request no
leader starts within an hour expires. A failed or expired request exits 1 with
the leader's reason; no cluster in the store (control/etcd-cluster-created
missing) exits 4 before anything is written. --timeout bounds the wait: on
expiry, and on Ctrl-C, the command stops waiting and says so, but the request
stays and the leader still takes the backup.

-o json prints {"request", "state" (succeeded, failed, expired, or queued /
running when the wait ended first), "runner", "backup": {"name",
"storedBytes", "snapshotBytes", "durationMs"}, "error", "waitedMs"}.`,
  run,
};
