// `etcd-manager list-backups`: the complete backups in the store, oldest
// first, from ONE listing of the store. A backup counts only once its
// _etcd_backup.meta is written (last); folders without one are cut-off or
// in-flight backups, shown only with --include-incomplete and marked.
// --details reads each backup's meta and sidecar (two small GETs each, a few
// at a time) for its size, etcd version, revision and encryption.
import { listBackups, loadBackupInfo, type BackupInfo } from '../backup/list.js';
import { flagBool, openStores, outputFormat } from './context.js';
import { ago, formatBytes, formatDuration, isoSecond, json, table } from './output.js';
import { noteIfSlow, ProgressLine } from './progress.js';
import type { CommandContext, SubcommandModule } from './types.js';

/** One backup as `-o json` prints it; these names are stable. */
export interface BackupRow {
  name: string;
  /** The time in its name (UTC, whole seconds); null for names not of kOps' form. */
  time: string | null;
  complete: boolean;
  hasData: boolean;
  hasSidecar: boolean;
  /** With --details, for complete backups: */
  etcdVersion?: string | null;
  memberCount?: number | null;
  storedBytes?: number | null;
  snapshotBytes?: number | null;
  durationMs?: number | null;
  revision?: string | null;
  reason?: string | null;
  encrypted?: boolean;
  keyId?: string | null;
  /** With --details: why the meta or sidecar could not be read. */
  error?: string;
}

const DETAIL_CONCURRENCY = 8;

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const { backups: store } = await openStores(ctx);
  const { io, now } = ctx.deps;
  const includeIncomplete = flagBool(ctx, 'include-incomplete');
  const details = flagBool(ctx, 'details');
  const listing = await noteIfSlow(io, `listing ${store.baseURL}…`, listBackups(store));

  const rows: BackupRow[] = listing.backups.map((b) => ({ name: b.name, time: b.time ? isoSecond(b.time.getTime()) : null, complete: true, hasData: b.hasData, hasSidecar: b.hasSidecar }));
  if (includeIncomplete) {
    rows.push(...listing.incomplete.map((b) => ({ name: b.name, time: b.time ? isoSecond(b.time.getTime()) : null, complete: false, hasData: b.objects.includes(`${b.name}/etcd.backup.gz`), hasSidecar: b.objects.includes(`${b.name}/_mooring_backup.json`) })));
    rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  if (details) {
    const progress = new ProgressLine({ io, now });
    const complete = rows.filter((r) => r.complete);
    let done = 0;
    let next = 0;
    const worker = async () => {
      while (next < complete.length) {
        const row = complete[next++];
        try {
          Object.assign(row, detailsOf(await loadBackupInfo(store, row.name)));
        } catch (err) {
          row.error = (err as Error).message;
        }
        progress.update(`reading backup details: ${++done} of ${complete.length}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DETAIL_CONCURRENCY, complete.length) }, worker));
    progress.done();
  }

  if (format === 'json') {
    io.out(json({ backupStore: store.baseURL, backups: rows }));
  } else if (rows.length > 0) {
    const t = now();
    const header = ['NAME', 'AGE', ...(includeIncomplete ? ['STATUS'] : [])];
    const detailHeader = ['ETCD', 'MEMBERS', 'STORED', 'SNAPSHOT', 'TOOK', 'REVISION', 'ENCRYPTED', 'REASON'];
    io.out(table(details ? [...header, ...detailHeader] : header, rows.map((r) => [
      r.name,
      r.time ? ago(Date.parse(r.time), t) : '-',
      ...(includeIncomplete ? [r.complete ? 'complete' : 'INCOMPLETE'] : []),
      ...(details ? detailCells(r) : []),
    ])));
  } else {
    io.err(`no backups in ${store.baseURL}\n`);
  }
  if (!includeIncomplete && listing.incomplete.length > 0 && format === 'table') {
    io.err(`(${listing.incomplete.length} incomplete backup${listing.incomplete.length === 1 ? '' : 's'} not shown: --include-incomplete shows ${listing.incomplete.length === 1 ? 'it' : 'them'})\n`);
  }
  return 0;
}

function detailsOf(info: BackupInfo): Partial<BackupRow> {
  const s = info.sidecar;
  return {
    etcdVersion: info.meta.etcdVersion ?? null,
    memberCount: info.meta.clusterSpec?.memberCount ?? null,
    storedBytes: s?.stored.bytes ?? null,
    snapshotBytes: s?.snapshot.bytes ?? null,
    durationMs: s?.durationMs ?? null,
    revision: s?.etcd.revision ?? null,
    reason: s?.reason ?? null,
    encrypted: s?.encryption !== undefined,
    keyId: s?.encryption?.keyId ?? null,
  };
}

function detailCells(r: BackupRow): string[] {
  if (!r.complete) return ['', '', '', '', '', '', '', ''];
  if (r.error !== undefined) return ['?', '?', '?', '?', '?', '?', '?', `unreadable: ${r.error}`];
  const n = (v: number | null | undefined, f: (x: number) => string) => (v === null || v === undefined ? '-' : f(v));
  return [
    r.etcdVersion ?? '-',
    n(r.memberCount, String),
    n(r.storedBytes, formatBytes),
    n(r.snapshotBytes, formatBytes),
    n(r.durationMs, formatDuration),
    r.revision ?? '-',
    r.encrypted ? `yes (key ${r.keyId})` : r.hasSidecar ? 'no' : '-',
    r.reason ?? (r.hasSidecar ? '-' : "kOps' (no sidecar)"),
  ];
}

export const command: SubcommandModule = {
  args: [],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output', 'include-incomplete', 'details'],
  description: `
Lists the complete backups in --backup-store, oldest first, from one listing
of the store (no per-backup reads). A backup is complete once its
_etcd_backup.meta is written, which happens last; a folder without one (a
backup cut off, or one being written right now) is never listed, restored or
counted by retention, and is shown only with --include-incomplete, marked
INCOMPLETE. kOps' backups (no _mooring_backup.json sidecar) are listed too.
--details adds each backup's etcd version, member count, sizes, duration,
revision, encryption and reason (two small reads per backup).

-o json prints {"backupStore", "backups": [{"name", "time", "complete",
"hasData", "hasSidecar", and with --details "etcdVersion", "memberCount",
"storedBytes", "snapshotBytes", "durationMs", "revision", "reason",
"encrypted", "keyId"}]}.`,
  run,
};
