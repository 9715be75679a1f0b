// control/status.json: what the acting manager (the elected leader, or the
// only member of a one-member cluster) knows about the cluster, for operators
// (`etcd-manager get`) who have only the backup store. Written by that
// manager when a fact changes (at most every STATUS_MIN_WRITE_MS) and every
// STATUS_HEARTBEAT_MS otherwise; a reader judges its freshness by
// `updatedAt` (statusAge) and should call it stale past STATUS_STALE_AFTER_MS:
// then no manager is acting (no quorum of managers, or none running).
// Not a kOps file: kOps' readers ignore it (its name is not _command.json).
//
// The shape is a contract with the operator CLI, which reads it through
// parseStatus only. Additions are new optional fields; a change of meaning is
// a new `format`.
import type { StateStore } from '../../../shared/store/types.js';
import { isRecord } from '../backup/jsonpb.js';

export const STATUS_PATH = 'control/status.json';
export const STATUS_FORMAT = 'mooring.etcd-manager-status/v1';
/** The writer refreshes an unchanged status this often. */
export const STATUS_HEARTBEAT_MS = 60_000;
/** Facts that change faster (backup progress) are written at most this often. */
export const STATUS_MIN_WRITE_MS = 2_000;
/** A status older than this is stale: no manager is acting on the cluster. */
export const STATUS_STALE_AFTER_MS = 3 * STATUS_HEARTBEAT_MS;

export interface StatusMember {
  /** etcd's member name (the volume's member name). */
  name: string;
  /** etcd's member ID (decimal), when etcd lists it. */
  id?: string;
  /** Answers on its own client URLs (status within a short deadline). */
  healthy: boolean;
  learner?: boolean;
  /** Its manager answered the acting manager this pass. */
  managerAlive: boolean;
  /** Listening on its quarantine client URLs (unknown for members whose manager did not answer). */
  quarantined?: boolean;
  clientURLs: string[];
  peerURLs: string[];
}

export interface StatusBackup {
  name: string;
  /** ISO time the backup was started (its name's time, to the second, for backups not taken by this manager). */
  startedAt: string;
  storedBytes?: number;
  snapshotBytes?: number;
  durationMs?: number;
  /** Why it was taken: scheduled, on-demand, before-membership-change, before-restore, … */
  reason?: string;
  /** Store revision just before the snapshot (our backups only). */
  revision?: string;
  encrypted?: boolean;
}

export interface StatusRunningBackup {
  reason: string;
  /** The operator request it serves, for on-demand backups. */
  requestId?: string;
  name: string;
  startedAt: string;
  /** Snapshot bytes streamed so far (as of the last status write). */
  bytes: number;
}

export interface StatusRestore {
  /** The queued command's id (control/<id>/_command.json). */
  commandId: string;
  backup: string;
  /** restore-plan.ts RestorePhase. */
  phase: string;
  startedAt: string;
  /** member → its state (restore-member states, or 'waiting' before the member was asked). */
  members: Record<string, string>;
  /** The backup taken just before the restore, or why none was. */
  preRestoreBackup?: string;
}

export interface StatusCommand {
  id: string;
  /** The backup a restoreBackup command names (absent for kinds this build does not know). */
  backup?: string;
  /** queued, running, refused, failed (restore-plan.ts CommandOutcome states for the last two). */
  state: 'queued' | 'running' | 'refused' | 'failed' | 'invalid';
  error?: string;
}

export interface ManagerStatus {
  format: typeof STATUS_FORMAT;
  /** When this status was written (ISO). */
  updatedAt: string;
  /** The acting manager: its member name, its leader term (0 for a one-member cluster), `<member>/<nonce>`. */
  leader: { member: string; term: number; runner: string };
  /** control/etcd-cluster-spec as the acting manager read it. */
  clusterSpec?: { memberCount: number; etcdVersion: string };
  /** control/etcd-cluster-created exists. */
  created: boolean;
  /** The members etcd lists (when it answered), else the managers that answered. */
  members: StatusMember[];
  /** etcd answered the member list (false: members come from the managers alone). */
  etcdAnswered: boolean;
  lastBackup?: StatusBackup;
  /** The backup running now, if any. */
  backupRunning?: StatusRunningBackup;
  /** On-demand backup requests waiting for their turn (ids). */
  backupsQueued: string[];
  restore?: StatusRestore;
  /** Queued commands and the outcome of refused or failed ones (done ones are removed, kOps' semantics). */
  commands: StatusCommand[];
}

export class StatusFormatError extends Error {}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const optional = <T>(v: unknown, check: (x: unknown) => x is T): v is T | undefined => v === undefined || check(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

function checkMember(v: unknown): v is StatusMember {
  return isRecord(v) && isString(v.name) && optional(v.id, isString) && isBool(v.healthy) && optional(v.learner, isBool) && isBool(v.managerAlive) &&
    optional(v.quarantined, isBool) && isStrings(v.clientURLs) && isStrings(v.peerURLs);
}

function checkBackup(v: unknown): v is StatusBackup {
  return isRecord(v) && isString(v.name) && isString(v.startedAt) && optional(v.storedBytes, isCount) && optional(v.snapshotBytes, isCount) &&
    optional(v.durationMs, isCount) && optional(v.reason, isString) && optional(v.revision, isString) && optional(v.encrypted, isBool);
}

function checkRunning(v: unknown): v is StatusRunningBackup {
  return isRecord(v) && isString(v.reason) && optional(v.requestId, isString) && isString(v.name) && isString(v.startedAt) && isCount(v.bytes);
}

function checkRestore(v: unknown): v is StatusRestore {
  return isRecord(v) && isString(v.commandId) && isString(v.backup) && isString(v.phase) && isString(v.startedAt) &&
    isRecord(v.members) && Object.values(v.members).every(isString) && optional(v.preRestoreBackup, isString);
}

const COMMAND_STATES = new Set(['queued', 'running', 'refused', 'failed', 'invalid']);
function checkCommand(v: unknown): v is StatusCommand {
  return isRecord(v) && isString(v.id) && optional(v.backup, isString) && isString(v.state) && COMMAND_STATES.has(v.state) && optional(v.error, isString);
}

/** Parses control/status.json; StatusFormatError naming `source` and the field when it is not one. Unknown fields are dropped. */
export function parseStatus(text: string, source: string): ManagerStatus {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new StatusFormatError(`${source}: not JSON`);
  }
  const fail = (what: string): never => {
    throw new StatusFormatError(`${source}: ${what} is missing or malformed`);
  };
  if (!isRecord(doc)) fail('the status object');
  const d = doc as Record<string, unknown>;
  if (d.format !== STATUS_FORMAT) throw new StatusFormatError(`${source}: format ${JSON.stringify(d.format)} is not ${STATUS_FORMAT} (written by another version?)`);
  if (!isString(d.updatedAt) || Number.isNaN(Date.parse(d.updatedAt))) fail('updatedAt');
  const leader = d.leader;
  if (!isRecord(leader) || !isString(leader.member) || !isCount(leader.term) || !isString(leader.runner)) fail('leader {member, term, runner}');
  const spec = d.clusterSpec;
  if (spec !== undefined && !(isRecord(spec) && isCount(spec.memberCount) && isString(spec.etcdVersion))) fail('clusterSpec');
  if (!isBool(d.created)) fail('created');
  if (!Array.isArray(d.members) || !d.members.every(checkMember)) fail('members');
  if (!isBool(d.etcdAnswered)) fail('etcdAnswered');
  if (!optional(d.lastBackup, checkBackup)) fail('lastBackup');
  if (!optional(d.backupRunning, checkRunning)) fail('backupRunning');
  if (!isStrings(d.backupsQueued)) fail('backupsQueued');
  if (!optional(d.restore, checkRestore)) fail('restore');
  if (!Array.isArray(d.commands) || !d.commands.every(checkCommand)) fail('commands');
  const l = leader as Record<string, unknown>;
  const status: ManagerStatus = {
    format: STATUS_FORMAT,
    updatedAt: d.updatedAt as string,
    leader: { member: l.member as string, term: l.term as number, runner: l.runner as string },
    ...(spec !== undefined ? { clusterSpec: { memberCount: (spec as Record<string, number>).memberCount, etcdVersion: (spec as Record<string, string>).etcdVersion } } : {}),
    created: d.created as boolean,
    members: (d.members as StatusMember[]).map(pickMember),
    etcdAnswered: d.etcdAnswered as boolean,
    ...(d.lastBackup !== undefined ? { lastBackup: d.lastBackup as StatusBackup } : {}),
    ...(d.backupRunning !== undefined ? { backupRunning: d.backupRunning as StatusRunningBackup } : {}),
    backupsQueued: d.backupsQueued as string[],
    ...(d.restore !== undefined ? { restore: d.restore as StatusRestore } : {}),
    commands: d.commands as StatusCommand[],
  };
  return status;
}

function pickMember(m: StatusMember): StatusMember {
  return {
    name: m.name, ...(m.id !== undefined ? { id: m.id } : {}), healthy: m.healthy, ...(m.learner !== undefined ? { learner: m.learner } : {}),
    managerAlive: m.managerAlive, ...(m.quarantined !== undefined ? { quarantined: m.quarantined } : {}), clientURLs: m.clientURLs, peerURLs: m.peerURLs,
  };
}

export function formatStatus(status: ManagerStatus): string {
  return JSON.stringify(status, null, 2) + '\n';
}

/** The status, or undefined when none was ever written. StatusFormatError when it is malformed. */
export async function readStatus(store: StateStore): Promise<ManagerStatus | undefined> {
  const data = await store.readIfExists(STATUS_PATH);
  return data === undefined ? undefined : parseStatus(data.toString('utf8'), store.urlOf(STATUS_PATH));
}

/** How old a status is at `nowMs`, and whether that makes it stale. */
export function statusAge(status: ManagerStatus, nowMs: number): { ageMs: number; stale: boolean } {
  const ageMs = Math.max(0, nowMs - Date.parse(status.updatedAt));
  return { ageMs, stale: ageMs > STATUS_STALE_AFTER_MS };
}
