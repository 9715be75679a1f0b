// `etcd-manager get`: what the backup store says about the cluster: its spec,
// whether it was created (and the facts the creator wrote), the managers that
// registered, the newest backups, queued commands and pending requests, a
// version change under way (control/etcd-version-change); plus
// the leader's own account (members, leader, last backup) through the status
// reader (leader-status.ts) when the leader writes one.
import { STATUS_STALE_AFTER_MS } from '../control/status.js';
import { ExitCode, UserError } from '../../../shared/errors.js';
import { listBackups, newestBackup } from '../backup/list.js';
import { readClusterCreated, type ClusterCreatedFacts } from '../control/cluster-created.js';
import { ControlFileError, readClusterSpecFile, type EtcdClusterSpec } from '../control/cluster-spec.js';
import { listCommands } from '../control/commands.js';
import { listRequests, type RequestEntry } from '../control/requests.js';
import { listPeers, type PeerRecord } from '../discovery.js';
import type { VersionChangeRecord } from '../versions/plan.js';
import { readVersionChange, RecordError } from '../versions/record.js';
import { openStores, outputFormat } from './context.js';
import type { LeaderStatusView } from './leader-status.js';
import { commandRow, type CommandRow } from './list-commands.js';
import { ago, formatBytes, isoSecond, json } from './output.js';
import { noteIfSlow } from './progress.js';
import type { CommandContext, SubcommandModule } from './types.js';

const NEWEST_SHOWN = 3;

/** `-o json` of get; these names are stable. */
export interface GetView {
  backupStore: string;
  clusterSpec: EtcdClusterSpec | null;
  clusterSpecError?: string;
  /** control/etcd-cluster-created: null before the cluster was formed. */
  created: { at: string | null; facts: Record<string, unknown> } | null;
  createdError?: string;
  /** The leader's status object, when the leader writes one (null otherwise). */
  leaderStatus: LeaderStatusView | null;
  /** Managers registered in discovery/ (the store's view; the leader's is leaderStatus.members). */
  managers: Array<{ member: string; address: string; dnsName: string; updatedAt: string }>;
  backups: { complete: number; incomplete: number; newest: Array<{ name: string; time: string | null }> };
  commands: CommandRow[];
  invalidCommands: Array<{ id: string; error: string }>;
  requests: Array<{ id: string; kind: string | null; state: 'queued' | 'running' | 'succeeded' | 'failed' | 'expired' | 'invalid'; createdAt: string | null; requestedBy: string | null; bytes: number | null; error: string | null }>;
  /** The etcd version change under way (control/etcd-version-change, as the acting manager keeps it); null when none. */
  versionChange: VersionChangeRecord | null;
  versionChangeError?: string;
}

/** One line: the change, its steps, why it waits, its last failure. */
function describeVersionChange(r: VersionChangeRecord): string {
  const done = r.steps.filter((s) => s.state === 'done').length;
  const next = r.steps.find((s) => s.state === 'pending');
  return [
    `etcd ${r.from} → ${r.to} (${r.transition}, ${r.reason}): ${done} of ${r.steps.length} steps done${next ? `, next ${next.id}` : ''}`,
    ...(r.blocked ? [`WAITING since ${r.blocked.since}: ${r.blocked.message}`] : []),
    ...(r.lastError ? [`step ${r.lastError.step} failed ${r.lastError.attempts} time(s): ${r.lastError.message}`] : []),
  ].join('; ');
}

function requestRow(e: RequestEntry): GetView['requests'][number] {
  return {
    id: e.id,
    kind: e.request?.spec.kind ?? null,
    state: e.invalid ? 'invalid' : e.result?.state ?? 'queued',
    createdAt: e.request?.createdAt ?? null,
    requestedBy: e.request?.requestedBy ?? null,
    bytes: e.result?.progress?.bytes ?? e.result?.backup?.storedBytes ?? null,
    error: e.invalid ?? e.result?.error ?? null,
  };
}

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const { backups: store } = await openStores(ctx);
  const { io, now } = ctx.deps;
  const captured = <T>(p: Promise<T>) => p.then((value) => ({ value }), (err: unknown) => {
    if (err instanceof ControlFileError) return { error: err.message };
    throw err;
  });
  const [spec, created, listing, commands, requests, peers, status, change] = await noteIfSlow(io, `reading ${store.baseURL}…`, Promise.all([
    captured(readClusterSpecFile(store)),
    captured(readClusterCreated(store)),
    listBackups(store),
    listCommands(store),
    listRequests(store),
    listPeers(store),
    ctx.deps.readLeaderStatus(store),
    readVersionChange(store).then((stored) => ({ value: stored?.record }), (err: unknown) => {
      if (err instanceof RecordError) return { error: err.message };
      throw err;
    }),
  ]));
  const specValue = 'value' in spec ? spec.value : undefined;
  const createdValue: ClusterCreatedFacts | undefined = 'value' in created ? created.value : undefined;
  const newest = listing.backups.slice(-NEWEST_SHOWN).reverse();
  const view: GetView = {
    backupStore: store.baseURL,
    clusterSpec: specValue ?? null,
    ...('error' in spec ? { clusterSpecError: spec.error } : {}),
    created: createdValue ? { at: createdValue.atMs !== undefined ? new Date(createdValue.atMs).toISOString() : null, facts: createdValue.extra } : null,
    ...('error' in created ? { createdError: created.error } : {}),
    leaderStatus: status ?? null,
    managers: peers.map((p: PeerRecord) => ({ member: p.member, address: p.address, dnsName: p.dnsName, updatedAt: p.updatedAt })),
    backups: { complete: listing.backups.length, incomplete: listing.incomplete.length, newest: newest.map((b) => ({ name: b.name, time: b.time ? isoSecond(b.time.getTime()) : null })) },
    commands: commands.commands.map(commandRow),
    invalidCommands: commands.invalid.map((i) => ({ id: i.id, error: i.error })),
    requests: requests.map(requestRow),
    versionChange: 'value' in change ? change.value ?? null : null,
    ...('error' in change ? { versionChangeError: change.error } : {}),
  };
  const empty = !specValue && !('error' in spec) && !createdValue && !('error' in created) && listing.backups.length === 0 && listing.incomplete.length === 0
    && peers.length === 0 && commands.commands.length === 0 && commands.invalid.length === 0 && requests.length === 0 && !status;
  if (empty) throw new UserError(`nothing in ${store.baseURL}: no control/etcd-cluster-spec, no backups, no managers (is --backup-store right? configure-cluster writes a spec)`, ExitCode.NotFound);
  io.out(format === 'json' ? json(view) : describe(view, now(), newestBackup(listing)?.name));
  return 0;
}

function describe(v: GetView, t: number, newestName: string | undefined): string {
  const when = (iso: string | null | undefined) => (iso ? `${iso} (${ago(Date.parse(iso), t)})` : 'unknown time');
  const s = v.leaderStatus;
  const facts = v.created ? Object.entries(v.created.facts).map(([k, val]) => `${k}=${Array.isArray(val) ? val.join(',') : typeof val === 'object' ? JSON.stringify(val) : String(val)}`) : [];
  const rows: string[][] = [
    ['Backup store', v.backupStore],
    ['Cluster spec', v.clusterSpec ? `${v.clusterSpec.memberCount} member${v.clusterSpec.memberCount === 1 ? '' : 's'}, etcd ${v.clusterSpec.etcdVersion}` : v.clusterSpecError ? `unreadable: ${v.clusterSpecError}` : 'none (configure-cluster writes one)'],
    ['Created', v.created ? `${when(v.created.at)}${facts.length ? `; ${facts.join(' ')}` : ''}` : v.createdError ? `unreadable: ${v.createdError}` : 'not yet (no control/etcd-cluster-created)'],
    ['Leader', s?.leader ? `${s.leader.member}${s.leader.term !== undefined ? ` (term ${s.leader.term})` : ''}${s.updatedAt ? `, status written ${ago(Date.parse(s.updatedAt), t)}${t - Date.parse(s.updatedAt) > STATUS_STALE_AFTER_MS ? ' (STALE: no manager is acting on the cluster)' : ''}` : ''}` : 'unknown (no control/status.json: no manager has acted on this cluster yet)'],
  ];
  if (s?.members) {
    rows.push(['Members', s.members.map((m) => `${m.name}${m.healthy === false ? ' (unhealthy)' : ''}${m.voting === false ? ' (learner)' : ''}${m.quarantined ? ' (quarantined)' : ''}`).join(', ') || 'none']);
  }
  if (s?.activity) rows.push(['Doing', s.activity]);
  if (v.versionChange || v.versionChangeError) rows.push(['Version change', v.versionChange ? describeVersionChange(v.versionChange) : `unreadable: ${v.versionChangeError}`]);
  rows.push(['Managers', v.managers.length ? v.managers.map((m) => `${m.member} ${m.address} (registered ${ago(Date.parse(m.updatedAt), t)})`).join(', ') : 'none registered in discovery/']);
  const last = s?.lastBackup;
  rows.push(['Last backup', last ? `${last.name}${last.storedBytes !== undefined ? `, ${formatBytes(last.storedBytes)}` : ''}${last.at ? `, ${ago(Date.parse(last.at), t)}` : ''}` : newestName ? `${newestName}${v.backups.newest[0]?.time ? ` (${ago(Date.parse(v.backups.newest[0].time), t)})` : ''}` : 'none']);
  rows.push(['Backups', `${v.backups.complete} complete${v.backups.incomplete ? `, ${v.backups.incomplete} incomplete` : ''}${v.backups.newest.length > 1 ? `; newest ${v.backups.newest.map((b) => b.name).join(', ')}` : ''}`]);
  rows.push(['Commands', v.commands.length + v.invalidCommands.length === 0 ? 'none queued' : [
    ...v.commands.map((c) => `${c.id}: ${c.kind}${c.backup ? ` ${c.backup}` : ''}`),
    ...v.invalidCommands.map((c) => `${c.id}: INVALID (${c.error})`),
  ].join('; ')]);
  const open = v.requests.filter((r) => r.state === 'queued' || r.state === 'running' || r.state === 'invalid');
  rows.push(['Requests', open.length === 0 ? `none pending${v.requests.length ? ` (${v.requests.length} finished, kept 24 h)` : ''}` : open.map((r) => `${r.id}: ${r.kind ?? '?'} ${r.state}${r.state === 'running' && r.bytes !== null ? ` (${formatBytes(r.bytes)})` : ''}${r.requestedBy ? ` by ${r.requestedBy}` : ''}`).join('; ')]);
  const width = Math.max(...rows.map((r) => r[0].length)) + 1;
  return rows.map(([k, val]) => `${`${k}:`.padEnd(width)} ${val}`).join('\n') + '\n';
}

export const command: SubcommandModule = {
  args: [],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output'],
  description: `
Shows the etcd cluster as --backup-store records it: the cluster spec
(control/etcd-cluster-spec), when it was created and the facts its creator
wrote (control/etcd-cluster-created), the managers registered in discovery/,
the newest backups and how many there are, queued commands (list-commands),
operator requests (backup) queued or running, and an etcd version change
under way (its steps, and why it waits when a member stops it; the acting
manager keeps it in control/etcd-version-change). The leader's own account
(members, leader, last backup, what it is doing) comes from
control/status.json, which the acting manager rewrites every minute; older
than 3 minutes, it is marked stale (no manager is acting). Without it Leader
reads "unknown" and Last backup is the newest complete backup.
A store that holds none of these exits 4 (a wrong --backup-store, most often).

-o json prints {"backupStore", "clusterSpec", "clusterSpecError", "created":
{"at", "facts"}, "createdError", "leaderStatus", "managers": [{"member",
"address", "dnsName", "updatedAt"}], "backups": {"complete", "incomplete",
"newest": [{"name", "time"}]}, "commands" (as list-commands), "invalidCommands",
"requests": [{"id", "kind", "state", "createdAt", "requestedBy", "bytes",
"error"}], "versionChange" (the record: "from", "to", "transition", "steps",
"blocked", "lastError"; null when none), "versionChangeError"}.`,
  run,
};
