// The restore's own records in the backup store, beside kOps' queued command:
//
//   control/restore-plan.json       the acting manager's plan for the restore under
//                                   way: which command, the new cluster (token,
//                                   members), the phase reached, the term that
//                                   wrote it. A new leader reads it and finishes
//                                   the restore, or rolls it forward; it is
//                                   written with the store's conditional
//                                   operations, so a deposed leader's late write
//                                   is refused (fenced by term and version).
//   control/<id>/_outcome.json      how a command ended: refused (a bad backup,
//                                   named), failed, or succeeded. A refused or
//                                   failed command stays queued with its outcome
//                                   (never retried until the operator deletes and
//                                   queues it again); a succeeded one is removed
//                                   (kOps' semantics) and its outcome kept for a
//                                   day so the operator can read it.
// Neither is named _command.json, so kOps' readers never see them.
import type { StateStore } from '../../../shared/store/types.js';
import { isRecord, JsonpbError } from '../backup/jsonpb.js';
import { COMMAND_FILE, CONTROL_PREFIX, parseCommand, type CommandListing, type QueuedCommand } from './commands.js';

export const RESTORE_PLAN_PATH = 'control/restore-plan.json';
export const RESTORE_PLAN_FORMAT = 'mooring.etcd-restore-plan/v1';
export const OUTCOME_FILE = '_outcome.json';
export const OUTCOME_FORMAT = 'mooring.etcd-command-outcome/v1';
/** Outcomes of commands that are gone (done, or deleted by the operator) are deleted after this. */
export const KEEP_OUTCOMES_MS = 24 * 60 * 60_000;

/**
 * The phases, in order. Before `stopping` nothing live has been touched and the
 * restore can be refused; from `stopping` on it only rolls forward.
 *   preparing        every member verifies the backup and restores it beside its live data
 *   stopping         every member stops etcd
 *   starting         every member switches to the restored data and starts etcd quarantined
 *   waiting-healthy  the restored cluster answers with every member
 *   lifting          every member lifts its quarantine; then the command is removed
 */
export type RestorePhase = 'preparing' | 'stopping' | 'starting' | 'waiting-healthy' | 'lifting';
export const RESTORE_PHASES: readonly RestorePhase[] = ['preparing', 'stopping', 'starting', 'waiting-healthy', 'lifting'];

export interface RestorePlan {
  format: typeof RESTORE_PLAN_FORMAT;
  commandId: string;
  backup: string;
  /** The spec of the restored cluster; written to control/etcd-cluster-spec when the command carried one. */
  clusterSpec: { memberCount: number; etcdVersion: string };
  writeSpec: boolean;
  /** The term of the leader that last wrote the plan, and that leader. */
  term: number;
  leader: string;
  phase: RestorePhase;
  /** The restored cluster's new token and members. */
  clusterToken: string;
  initialCluster: Record<string, string[]>;
  startedAt: string;
  updatedAt: string;
  /** The backup taken of the live cluster before anything was touched, or why none was. */
  preRestoreBackup?: { name?: string; skipped?: string };
  /** Prepare attempts per member (a failure that is not the backup's own is retried a few times). */
  attempts: Record<string, number>;
}

export type OutcomeState = 'succeeded' | 'refused' | 'failed';

export interface CommandOutcome {
  format: typeof OUTCOME_FORMAT;
  id: string;
  state: OutcomeState;
  backup?: string;
  /** One line: what was wrong (refused, failed). */
  error?: string;
  /** For a refused backup: the verify check that failed (backup/verify.ts VerifyCheck). */
  check?: string;
  preRestoreBackup?: string;
  finishedAt: string;
  leader: string;
  term: number;
}

export class ControlRecordError extends Error {}

const isString = (v: unknown): v is string => typeof v === 'string';
const isURLMap = (v: unknown): v is Record<string, string[]> =>
  isRecord(v) && Object.values(v).every((urls) => Array.isArray(urls) && urls.every(isString));

export function parseRestorePlan(text: string, source: string): RestorePlan {
  let d: unknown;
  try {
    d = JSON.parse(text);
  } catch {
    throw new ControlRecordError(`${source}: not JSON`);
  }
  const bad = (what: string): never => {
    throw new ControlRecordError(`${source}: ${what} is missing or malformed`);
  };
  if (!isRecord(d) || d.format !== RESTORE_PLAN_FORMAT) bad(`format (want ${RESTORE_PLAN_FORMAT})`);
  const p = d as Record<string, unknown>;
  for (const k of ['commandId', 'backup', 'leader', 'clusterToken', 'startedAt', 'updatedAt']) if (!isString(p[k]) || p[k] === '') bad(k);
  const spec = p.clusterSpec;
  if (!isRecord(spec) || !Number.isSafeInteger(spec.memberCount) || (spec.memberCount as number) < 1 || !isString(spec.etcdVersion)) bad('clusterSpec');
  if (typeof p.writeSpec !== 'boolean') bad('writeSpec');
  if (!Number.isSafeInteger(p.term) || (p.term as number) < 0) bad('term');
  if (!RESTORE_PHASES.includes(p.phase as RestorePhase)) bad('phase');
  if (!isURLMap(p.initialCluster) || Object.keys(p.initialCluster).length === 0) bad('initialCluster');
  const pre = p.preRestoreBackup;
  if (pre !== undefined && !(isRecord(pre) && (pre.name === undefined || isString(pre.name)) && (pre.skipped === undefined || isString(pre.skipped)))) bad('preRestoreBackup');
  if (!isRecord(p.attempts) || !Object.values(p.attempts).every((n) => Number.isSafeInteger(n))) bad('attempts');
  return p as unknown as RestorePlan;
}

export function formatRestorePlan(plan: RestorePlan): string {
  return JSON.stringify(plan, null, 2) + '\n';
}

/** The plan and its version (for the conditional write that replaces it), or undefined. */
export async function readRestorePlan(store: StateStore): Promise<{ plan: RestorePlan; version: string } | undefined> {
  const got = await store.readVersioned(RESTORE_PLAN_PATH);
  if (!got) return undefined;
  return { plan: parseRestorePlan(got.data.toString('utf8'), store.urlOf(RESTORE_PLAN_PATH)), version: got.version };
}

function commandFolder(id: string): string {
  if (id === '' || id.split('/').some((s) => s === '' || s === '.' || s === '..')) throw new Error(`${JSON.stringify(id)} is not a command id`);
  return `${CONTROL_PREFIX}/${id}`;
}

export function outcomePath(id: string): string {
  return `${commandFolder(id)}/${OUTCOME_FILE}`;
}

export function parseOutcome(text: string, source: string): CommandOutcome {
  let d: unknown;
  try {
    d = JSON.parse(text);
  } catch {
    throw new ControlRecordError(`${source}: not JSON`);
  }
  if (!isRecord(d) || d.format !== OUTCOME_FORMAT || !isString(d.id) || !['succeeded', 'refused', 'failed'].includes(d.state as string) ||
    !isString(d.finishedAt) || !isString(d.leader) || !Number.isSafeInteger(d.term)) {
    throw new ControlRecordError(`${source}: not a ${OUTCOME_FORMAT} outcome`);
  }
  for (const k of ['backup', 'error', 'check', 'preRestoreBackup']) if (d[k] !== undefined && !isString(d[k])) throw new ControlRecordError(`${source}: ${k} is malformed`);
  return d as unknown as CommandOutcome;
}

export async function writeOutcome(store: StateStore, outcome: CommandOutcome): Promise<void> {
  await store.write(outcomePath(outcome.id), JSON.stringify(outcome, null, 2) + '\n');
}

/** A command's outcome, or undefined (still queued, or never run). */
export async function readOutcome(store: StateStore, id: string): Promise<CommandOutcome | undefined> {
  const path = outcomePath(id);
  const data = await store.readIfExists(path);
  return data === undefined ? undefined : parseOutcome(data.toString('utf8'), store.urlOf(path));
}

export interface ControlListing extends CommandListing {
  /** Outcomes by command id (the command may be gone). */
  outcomes: Map<string, CommandOutcome>;
  /** Outcome files that do not parse, named. */
  invalidOutcomes: string[];
}

/**
 * Commands and their outcomes from ONE listing of control/ (commands.ts'
 * listCommands lists too; this one also finds the outcomes). One read per
 * command and per outcome.
 */
export async function listControl(store: StateStore): Promise<ControlListing> {
  const paths = await store.list(CONTROL_PREFIX);
  const commands: QueuedCommand[] = [];
  const invalid: CommandListing['invalid'] = [];
  const outcomes = new Map<string, CommandOutcome>();
  const invalidOutcomes: string[] = [];
  for (const path of paths) {
    const isCommand = path.endsWith(`/${COMMAND_FILE}`);
    const isOutcome = path.endsWith(`/${OUTCOME_FILE}`);
    if (!isCommand && !isOutcome) continue;
    const file = isCommand ? COMMAND_FILE : OUTCOME_FILE;
    const id = path.slice(CONTROL_PREFIX.length + 1, -(file.length + 1));
    if (id === '') continue;
    const data = await store.readIfExists(path);
    if (data === undefined) continue; // deleted since the listing
    const text = data.toString('utf8');
    if (isCommand) {
      try {
        commands.push(parseCommand(text, id, path, store.urlOf(path)));
      } catch (err) {
        if (!(err instanceof JsonpbError)) throw err;
        invalid.push({ id, path, error: err.message });
      }
    } else {
      try {
        outcomes.set(id, parseOutcome(text, store.urlOf(path)));
      } catch (err) {
        if (!(err instanceof ControlRecordError)) throw err;
        invalidOutcomes.push(err.message);
      }
    }
  }
  commands.sort((a, b) => (a.timestampNanos < b.timestampNanos ? -1 : a.timestampNanos > b.timestampNanos ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { commands, invalid, outcomes, invalidOutcomes };
}
