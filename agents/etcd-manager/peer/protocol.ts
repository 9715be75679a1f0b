// The managers' peer protocol as types, and the one place each message is
// checked when it is received (see PROTOCOL.md beside this file). The server
// decodes every request with decodeRequest before anything acts on it; the
// client decodes every answer with the decoder of the request it sent. A
// message that does not decode is refused (400) or, as an answer, an error.
import type { VoteResult } from './voter.js';

/** What a manager says about itself (GET /v1/info). */
export interface PeerInfo {
  member: string;
  /** The term this manager's voter has promised, and to whom. */
  term: number;
  leader: string;
  etcdRunning: boolean;
  clusterToken?: string;
  initialCluster?: Record<string, string[]>;
  /** True only once the manager has READ its volume and found no member state: positive evidence, never a default. */
  volumeEmpty: boolean;
  /** False while its reconcile loop is stuck or it stands by: it answers, but must not keep others from leading. Absent from older managers. */
  canLead?: boolean;
  /** This member's part of a restore under way (controller/restore-member.ts); absent when none. */
  restore?: MemberRestoreInfo;
  /** The etcd version this member's running etcd was started with (its binary directory's); absent while etcd is stopped or from older managers. */
  etcdVersion?: string;
}

/** Where a member is in a restore: what the leader waits on between its commands. */
export type MemberRestoreState = 'preparing' | 'prepared' | 'failed' | 'stopping' | 'stopped' | 'started' | 'lift-stopping' | 'lift-stopped';

export const MEMBER_RESTORE_STATES: readonly MemberRestoreState[] = ['preparing', 'prepared', 'failed', 'stopping', 'stopped', 'started', 'lift-stopping', 'lift-stopped'];

export interface MemberRestoreInfo {
  /** The restore plan (the queued command's id). */
  planId: string;
  state: MemberRestoreState;
  /** When failed: one line. */
  error?: string;
  /** When failed because the backup itself is bad: the check that failed (backup/verify.ts VerifyCheck). */
  badBackup?: string;
  /** Bytes of the backup read so far while preparing. */
  bytes?: number;
}

/** The body of a restore-prepare command: what to restore, into which new cluster. */
export interface RestoreBody {
  planId: string;
  /** The backup's name in the backup store. */
  backup: string;
  /** A NEW token for the restored cluster (never the live one's). */
  clusterToken: string;
  /** Every member of the restored cluster → its peer URLs. */
  initialCluster: Record<string, string[]>;
  etcdVersion: string;
}

/** The body of a form or join command: the cluster this member is to start (or join) etcd in. */
export interface ClusterBody {
  clusterToken: string;
  initialCluster: Record<string, string[]>;
  etcdVersion: string;
}

/** What a leader tells a member to do. */
export type LeaderAction =
  | { action: 'form'; body: ClusterBody }
  | { action: 'join'; body: ClusterBody }
  | { action: 'quarantine' }
  | { action: 'leave' }
  // A restore (controller/restore.ts), in order: prepare the restored data beside the live data,
  // stop etcd, switch to the restored data and start quarantined, then lift the quarantine in two
  // steps (every member stops etcd, then every one starts it on its client URLs); or abort
  // (before stop only: discard what was prepared). A lift sent to a member still `started` restarts
  // its etcd in one step (what a leader of an older build sends).
  | { action: 'restore-prepare'; body: RestoreBody }
  | { action: 'restore-stop'; body: { planId: string } }
  | { action: 'restore-start'; body: { planId: string } }
  | { action: 'restore-lift-stop'; body: { planId: string } }
  | { action: 'restore-lift'; body: { planId: string } }
  | { action: 'restore-abort'; body: { planId: string } }
  // A version change in place (controller/version.ts): restart this member's etcd on another version's binary, same data.
  | { action: 'set-version'; body: { etcdVersion: string } };

/** Every command names its leader and term: the voter's fence admits it or not. */
export type Command = { leader: string; term: number } & LeaderAction;

export type ActionName = LeaderAction['action'];

/** The restore commands (a member's restore module takes them; the others go to its local etcd). */
export type RestoreAction = Extract<LeaderAction, { action: `restore-${string}` }>;
export type RestoreCommand = { leader: string; term: number } & RestoreAction;
export type LocalCommand = Exclude<Command, RestoreCommand>;

export function isRestoreCommand(command: Command): command is RestoreCommand {
  return command.action.startsWith('restore-');
}

/** A request as received, after decoding. */
export type PeerRequest =
  | { kind: 'info' }
  | { kind: 'vote'; candidate: string; term: number; dryRun: boolean }
  | { kind: 'command'; command: Command }
  | { kind: 'announce'; member: string; reason: string };

export type Decoded<T> = { ok: true; value: T } | { ok: false; status: 400 | 404; error: string };

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isName = (v: unknown): v is string => typeof v === 'string' && v !== '' && v.length <= 253;
const isTerm = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
const bad = (error: string): Decoded<never> => ({ ok: false, status: 400, error });

function isURLMap(v: unknown): v is Record<string, string[]> {
  return isObject(v) && Object.entries(v).every(([k, urls]) => isName(k) && Array.isArray(urls) && urls.every((u) => typeof u === 'string'));
}

function decodeClusterBody(v: unknown): ClusterBody | undefined {
  if (!isObject(v)) return undefined;
  const { clusterToken, initialCluster, etcdVersion } = v;
  if (!isName(clusterToken) || !isURLMap(initialCluster) || typeof etcdVersion !== 'string') return undefined;
  return { clusterToken, initialCluster, etcdVersion };
}

function decodeRestoreBody(v: unknown): RestoreBody | undefined {
  if (!isObject(v)) return undefined;
  const { planId, backup, clusterToken, initialCluster, etcdVersion } = v;
  if (!isName(planId) || !isName(backup) || !isName(clusterToken) || !isURLMap(initialCluster) || typeof etcdVersion !== 'string') return undefined;
  return { planId, backup, clusterToken, initialCluster, etcdVersion };
}

function decodeCommand(body: Json): Decoded<Command> {
  const { leader, term, action } = body;
  if (!isName(leader)) return bad(`leader must be a member name, got ${JSON.stringify(leader)}`);
  if (!isTerm(term)) return bad(`term must be a positive integer, got ${JSON.stringify(term)}`);
  switch (action) {
    case 'form':
    case 'join': {
      const cluster = decodeClusterBody(body.body);
      if (!cluster) return bad(`${action}: body must be {clusterToken, initialCluster: {member: [peer URLs]}, etcdVersion}`);
      return { ok: true, value: { leader, term, action, body: cluster } };
    }
    case 'quarantine':
    case 'leave':
      return { ok: true, value: { leader, term, action } };
    case 'restore-prepare': {
      const restore = decodeRestoreBody(body.body);
      if (!restore) return bad('restore-prepare: body must be {planId, backup, clusterToken, initialCluster: {member: [peer URLs]}, etcdVersion}');
      return { ok: true, value: { leader, term, action, body: restore } };
    }
    case 'restore-stop':
    case 'restore-start':
    case 'restore-lift-stop':
    case 'restore-lift':
    case 'restore-abort': {
      const planId = isObject(body.body) ? body.body.planId : undefined;
      if (!isName(planId)) return bad(`${action}: body must be {planId}`);
      return { ok: true, value: { leader, term, action, body: { planId } } };
    }
    case 'set-version': {
      const etcdVersion = isObject(body.body) ? body.body.etcdVersion : undefined;
      if (typeof etcdVersion !== 'string' || !/^\d+\.\d+\.\d+$/.test(etcdVersion)) return bad('set-version: body must be {etcdVersion: "X.Y.Z"}');
      return { ok: true, value: { leader, term, action, body: { etcdVersion } } };
    }
    default:
      return bad(`unknown action ${JSON.stringify(action)} (want form, join, quarantine, leave, set-version or restore-prepare/stop/start/lift/abort)`);
  }
}

/** Decodes one request: the method and path name the message, the JSON body carries it. */
export function decodeRequest(method: string | undefined, path: string | undefined, raw: string): Decoded<PeerRequest> {
  if (method === 'GET' && path === '/v1/info') return { ok: true, value: { kind: 'info' } };
  if (method !== 'POST' || (path !== '/v1/vote' && path !== '/v1/command' && path !== '/v1/announce')) return { ok: false, status: 404, error: 'not found' };
  let body: unknown;
  try {
    body = raw === '' ? {} : JSON.parse(raw);
  } catch {
    return bad('body is not JSON');
  }
  if (!isObject(body)) return bad('body must be a JSON object');
  if (path === '/v1/announce') {
    if (!isName(body.member)) return bad(`member must be a member name, got ${JSON.stringify(body.member)}`);
    return { ok: true, value: { kind: 'announce', member: body.member, reason: typeof body.reason === 'string' ? body.reason.slice(0, 200) : '' } };
  }
  if (!isTerm(body.term)) return bad(`term must be a positive integer, got ${JSON.stringify(body.term)}`);
  if (path === '/v1/vote') {
    if (!isName(body.candidate)) return bad(`candidate must be a member name, got ${JSON.stringify(body.candidate)}`);
    if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') return bad('dryRun must be true or false');
    return { ok: true, value: { kind: 'vote', candidate: body.candidate, term: body.term, dryRun: body.dryRun === true } };
  }
  const command = decodeCommand(body);
  return command.ok ? { ok: true, value: { kind: 'command', command: command.value } } : command;
}

/** The wire form of a command (what decodeRequest takes back). */
export function encodeCommand(command: Command): Json {
  return { ...command };
}

// Answers, checked by the client that receives them.

export function decodeInfo(v: unknown): PeerInfo | undefined {
  if (!isObject(v)) return undefined;
  const { member, term, leader, etcdRunning, clusterToken, initialCluster, volumeEmpty, canLead, restore, etcdVersion } = v;
  if (!isName(member) || !Number.isSafeInteger(term) || (term as number) < 0 || typeof leader !== 'string') return undefined;
  if (typeof etcdRunning !== 'boolean' || typeof volumeEmpty !== 'boolean') return undefined;
  if (clusterToken !== undefined && !isName(clusterToken)) return undefined;
  if (initialCluster !== undefined && !isURLMap(initialCluster)) return undefined;
  if (canLead !== undefined && typeof canLead !== 'boolean') return undefined;
  if (etcdVersion !== undefined && typeof etcdVersion !== 'string') return undefined;
  const restoreInfo = restore === undefined ? undefined : decodeMemberRestore(restore);
  if (restore !== undefined && !restoreInfo) return undefined;
  return { member, term: term as number, leader, etcdRunning, clusterToken, initialCluster, volumeEmpty, canLead, ...(restoreInfo ? { restore: restoreInfo } : {}), ...(etcdVersion !== undefined ? { etcdVersion } : {}) };
}

function decodeMemberRestore(v: unknown): MemberRestoreInfo | undefined {
  if (!isObject(v)) return undefined;
  const { planId, state, error, badBackup, bytes } = v;
  if (!isName(planId) || !MEMBER_RESTORE_STATES.includes(state as MemberRestoreState)) return undefined;
  if ((error !== undefined && typeof error !== 'string') || (badBackup !== undefined && typeof badBackup !== 'string')) return undefined;
  if (bytes !== undefined && !(Number.isSafeInteger(bytes) && (bytes as number) >= 0)) return undefined;
  return {
    planId, state: state as MemberRestoreState,
    ...(error !== undefined ? { error: error as string } : {}),
    ...(badBackup !== undefined ? { badBackup: badBackup as string } : {}),
    ...(bytes !== undefined ? { bytes: bytes as number } : {}),
  };
}

export function decodeVoteResult(v: unknown): VoteResult | undefined {
  if (!isObject(v)) return undefined;
  const { granted, term, leader, reason } = v;
  if (typeof granted !== 'boolean' || !Number.isSafeInteger(term) || (term as number) < 0) return undefined;
  if (leader !== undefined && typeof leader !== 'string') return undefined;
  return { granted, term: term as number, ...(leader !== undefined ? { leader } : {}), ...(typeof reason === 'string' ? { reason } : {}) };
}

/** A command's answer: its result on 200, else the refusal. */
export interface CommandAnswer {
  result?: string;
  error?: string;
}

export function decodeCommandAnswer(v: unknown): CommandAnswer | undefined {
  if (!isObject(v)) return undefined;
  const { result, error } = v;
  if (result !== undefined && typeof result !== 'string') return undefined;
  if (error !== undefined && typeof error !== 'string') return undefined;
  return { result, error };
}

export interface ErrorAnswer {
  error?: string;
}

export function decodeErrorAnswer(v: unknown): ErrorAnswer {
  return isObject(v) && typeof v.error === 'string' ? { error: v.error } : {};
}
