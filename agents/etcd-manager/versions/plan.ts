// A version change as data: the record the leader keeps while it runs one
// (stored by record.ts, outside etcd, so it survives the restore it drives), and
// the pure decision of what to do next given that record and what the members
// report now. The controller executes the answer, marks steps done, stores the
// record, and asks again; a leader that restarts (or a new leader) reads the
// record back and carries on from the first step not done, and an in-place step
// is judged against the member's reported version, so nothing is applied twice
// or half.
//
// In place (patch, or the next 3.x minor): a backup, then one member at a time,
// each healthy and caught up before the next one moves; the member whose etcd
// is the raft leader hands leadership over before it restarts (so the cluster
// loses no leader for longer than a handover); the member of the manager that
// drives the change moves last.
// Restore (downgrade, skipped minor): a backup, then that backup restored into
// every member with the new version: the restore machinery (controller/restore.ts)
// stops etcd, restores the snapshot into new data directories, starts the members
// quarantined, checks them healthy and releases them; the step is done when the
// restore's outcome says it succeeded. Writes that land between the backup and
// the stop are not in the restored cluster (the restore's own pre-restore backup
// holds them).
// v2 → v3: a v2 backup (a copy of the data directory, as kOps takes it), that
// backup migrated into a throwaway etcd of the new version on the acting
// manager's machine and snapshotted into a new v3 backup (migrate/convert.ts:
// TTLs kept as leases, verified), then that backup restored into every member
// with the new version, as a restore change does.
import { randomBytes } from 'node:crypto';
import type { Transition } from './transition.js';

export type StepState = 'pending' | 'done';

interface StepBase {
  /** Unique within the plan: "backup", "member/<name>", "restore", … */
  id: string;
  state: StepState;
  /** ISO time the step's effect was first started (stored before it runs, so a pass after a crash knows it began). */
  startedAt?: string;
  /** ISO time the step was marked done. */
  doneAt?: string;
}

export type PlanStep = StepBase & (
  /** A backup through the current leader, with the current version's tools. `name` once taken. */
  | { kind: 'backup'; version: string; format: 'v3-snapshot' | 'v2-data-dir'; name?: string }
  /** Restart one member's etcd with the new version's binary. */
  | { kind: 'upgrade-member'; member: string; to: string }
  /**
   * Restore the backup into every member with the new version: stop, restore, start quarantined,
   * check healthy, release (a restore command carried out by controller/restore.ts). Its effect
   * reports `pending` until the restore has an outcome.
   */
  | { kind: 'restore-snapshot'; to: string }
  /**
   * The v2 backup migrated into a throwaway etcd of the new version, snapshotted into a new v3
   * backup; `name` once written. The live cluster is not touched.
   */
  | { kind: 'convert-v2'; to: string; name?: string }
);

export interface VersionChangeRecord {
  format: 1;
  /** Random; names the change in logs, status and backups. */
  id: string;
  from: string;
  to: string;
  transition: Exclude<Transition['kind'], 'none'>;
  reason: string;
  createdAt: string;
  /** The leadership term of the manager that last wrote the record; a lower term may not overwrite it. */
  term: number;
  steps: PlanStep[];
  /** Why the change is not moving, as of the last pass (`get` shows it); absent while it moves. */
  blocked?: { reason: WaitReason; member?: string; message: string; since: string };
  /** The last attempt at a step that failed (it is tried again on the next pass); cleared when a step is done. */
  lastError?: { step: string; message: string; at: string; attempts: number };
}

export interface MemberObservation {
  /** The member's name (its manager's). */
  name: string;
  /** The etcd version the member reports; undefined when it does not answer. */
  version?: string;
  healthy: boolean;
  /** The raft index the member has applied (etcd's status raftAppliedIndex). */
  appliedIndex?: number;
  isRaftLeader: boolean;
}

export interface ClusterObservation {
  members: MemberObservation[];
  /** The raft leader's committed index (its status raftIndex); undefined without a leader. */
  leaderIndex?: number;
  /** The manager running the change: its member moves last. */
  managerLeader: string;
}

export interface PlanOptions {
  /** How many raft entries a member may be behind the leader and still count as caught up. */
  maxLag?: number;
}

/** Entries a member may trail the leader by and still be caught up: etcd applies a few behind under writes. */
export const DEFAULT_MAX_LAG = 500;

export type WaitReason = 'member-unhealthy' | 'member-behind' | 'member-unexpected-version' | 'no-leader';

export type NextAction =
  | { kind: 'done' }
  /** Run this step; the controller marks it done (markDone) when it has. */
  | { kind: 'run'; step: PlanStep }
  /** The step's effect is already there (a member already on the new version, healthy, caught up): mark it done. */
  | { kind: 'mark-done'; step: PlanStep }
  /** Move etcd's raft leadership off `from` (the next member to restart) to `to` first. */
  | { kind: 'move-raft-leader'; from: string; to: string }
  /** Nothing may move now; the record's `blocked` says why. */
  | { kind: 'wait'; reason: WaitReason; member?: string; message: string }
  /** The members are not the ones the plan was made for (one added or removed): make a new plan. */
  | { kind: 'replan'; message: string };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The steps of a transition, in order. Pure; `members` are the current member names. */
export function planSteps(t: Exclude<Transition, { kind: 'none' }>, members: string[]): PlanStep[] {
  const step = (s: DistributiveOmit<PlanStep, 'state'>): PlanStep => ({ ...s, state: 'pending' }) as PlanStep;
  switch (t.kind) {
    case 'in-place':
      return [
        step({ id: 'backup', kind: 'backup', version: t.from, format: 'v3-snapshot' }),
        ...[...members].sort().map((member) => step({ id: `member/${member}`, kind: 'upgrade-member', member, to: t.to })),
      ];
    case 'restore':
      return [
        step({ id: 'backup', kind: 'backup', version: t.from, format: 'v3-snapshot' }),
        step({ id: 'restore', kind: 'restore-snapshot', to: t.to }),
      ];
    case 'migrate-v2':
      return [
        step({ id: 'backup', kind: 'backup', version: t.from, format: 'v2-data-dir' }),
        step({ id: 'convert', kind: 'convert-v2', to: t.to }),
        step({ id: 'restore', kind: 'restore-snapshot', to: t.to }),
      ];
  }
}

export function newVersionChange(t: Exclude<Transition, { kind: 'none' }>, members: string[], term: number, now: Date, id = randomBytes(6).toString('hex')): VersionChangeRecord {
  return {
    format: 1,
    id,
    from: t.from,
    to: t.to,
    transition: t.kind,
    reason: t.kind === 'in-place' ? t.change : t.reason,
    createdAt: now.toISOString(),
    term,
    steps: planSteps(t, members),
  };
}

/** A copy with the step done (and its output, e.g. the backup's name); the record is never mutated in place. */
export function markDone(record: VersionChangeRecord, stepId: string, now: Date, output: { name?: string } = {}): VersionChangeRecord {
  if (!record.steps.some((s) => s.id === stepId)) throw new Error(`version change ${record.id} has no step ${stepId}`);
  return {
    ...record,
    blocked: undefined,
    lastError: undefined,
    steps: record.steps.map((s) => (s.id === stepId ? ({ ...s, ...((s.kind === 'backup' || s.kind === 'convert-v2') && output.name ? { name: output.name } : {}), state: 'done', doneAt: now.toISOString() } as PlanStep) : s)),
  };
}

/** A copy with the step marked as started (kept from its first start). */
export function markStarted(record: VersionChangeRecord, stepId: string, now: Date): VersionChangeRecord {
  if (!record.steps.some((s) => s.id === stepId)) throw new Error(`version change ${record.id} has no step ${stepId}`);
  return { ...record, steps: record.steps.map((s) => (s.id === stepId && !s.startedAt ? { ...s, startedAt: now.toISOString() } : s)) };
}

/** A copy recording why the change waits (kept with its first `since` while the reason stays the same). */
export function markBlocked(record: VersionChangeRecord, action: Extract<NextAction, { kind: 'wait' }>, now: Date): VersionChangeRecord {
  const same = record.blocked && record.blocked.reason === action.reason && record.blocked.member === action.member;
  return { ...record, blocked: { reason: action.reason, member: action.member, message: action.message, since: same ? record.blocked!.since : now.toISOString() } };
}

function caughtUp(m: MemberObservation, leaderIndex: number | undefined, maxLag: number): boolean {
  return leaderIndex !== undefined && m.appliedIndex !== undefined && leaderIndex - m.appliedIndex <= maxLag;
}

/** The first member that is not healthy and caught up, as a wait; undefined when all are. */
function firstNotReady(obs: ClusterObservation, maxLag: number): Extract<NextAction, { kind: 'wait' }> | undefined {
  if (obs.leaderIndex === undefined || !obs.members.some((m) => m.isRaftLeader)) {
    return { kind: 'wait', reason: 'no-leader', message: 'etcd has no raft leader' };
  }
  for (const m of [...obs.members].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!m.healthy || m.version === undefined) return { kind: 'wait', reason: 'member-unhealthy', member: m.name, message: `member ${m.name} is not healthy` };
    if (!caughtUp(m, obs.leaderIndex, maxLag)) {
      return { kind: 'wait', reason: 'member-behind', member: m.name, message: `member ${m.name} has applied ${m.appliedIndex ?? '?'} of ${obs.leaderIndex} raft entries (more than ${maxLag} behind)` };
    }
  }
  return undefined;
}

/**
 * What to do now. Pure: the same record and observation give the same answer,
 * so a pass that crashed is simply asked again.
 */
export function nextAction(record: VersionChangeRecord, obs: ClusterObservation, options: PlanOptions = {}): NextAction {
  const maxLag = options.maxLag ?? DEFAULT_MAX_LAG;
  const pending = record.steps.filter((s) => s.state === 'pending');
  if (pending.length === 0) return { kind: 'done' };

  if (record.transition !== 'in-place') {
    // Everything before the cluster is stopped needs every member healthy (the
    // backup must be of the whole, current data); once the stop or the restore
    // has begun (even if the pass that began it died before marking it), the steps
    // rebuild the members, so their health is the steps' business.
    const stopped = record.steps.some((s) => s.kind === 'restore-snapshot' && (s.state === 'done' || s.startedAt !== undefined));
    if (!stopped) {
      const wait = firstNotReady(obs, maxLag);
      if (wait) return wait;
    }
    return { kind: 'run', step: pending[0] };
  }

  const planned = new Set(record.steps.flatMap((s) => (s.kind === 'upgrade-member' ? [s.member] : [])));
  const present = new Set(obs.members.map((m) => m.name));
  const added = [...present].filter((n) => !planned.has(n));
  const removed = [...planned].filter((n) => !present.has(n));
  if (added.length > 0 || removed.length > 0) {
    return { kind: 'replan', message: `members changed since the plan was made (${[...added.map((n) => `+${n}`), ...removed.map((n) => `-${n}`)].join(', ')})` };
  }

  // Every member on the old or new version, never a third one.
  for (const m of obs.members) {
    if (m.version !== undefined && m.version !== record.from && m.version !== record.to) {
      return { kind: 'wait', reason: 'member-unexpected-version', member: m.name, message: `member ${m.name} runs etcd ${m.version}, neither ${record.from} nor ${record.to}` };
    }
  }

  const backup = record.steps.find((s) => s.kind === 'backup');
  if (backup && backup.state === 'pending') {
    const wait = firstNotReady(obs, maxLag);
    return wait ?? { kind: 'run', step: backup };
  }

  const byName = new Map(obs.members.map((m) => [m.name, m]));
  const memberSteps = pending.filter((s): s is Extract<PlanStep, { kind: 'upgrade-member' }> => s.kind === 'upgrade-member');
  // A step whose member already reports the new version is done once that member is healthy and caught up.
  for (const s of memberSteps) {
    const m = byName.get(s.member)!;
    if (m.version !== record.to) continue;
    if (!m.healthy) return { kind: 'wait', reason: 'member-unhealthy', member: m.name, message: `member ${m.name} restarted on etcd ${record.to} and is not healthy yet` };
    if (!caughtUp(m, obs.leaderIndex, maxLag)) {
      return { kind: 'wait', reason: 'member-behind', member: m.name, message: `member ${m.name} restarted on etcd ${record.to} and is catching up (${m.appliedIndex ?? '?'} of ${obs.leaderIndex ?? '?'})` };
    }
    return { kind: 'mark-done', step: s };
  }

  // Nothing moves unless every member is healthy and caught up.
  const wait = firstNotReady(obs, maxLag);
  if (wait) return wait;

  // Next: not the driving manager's member, not etcd's raft leader, then by name.
  const order = (s: Extract<PlanStep, { kind: 'upgrade-member' }>): [number, number, string] => {
    const m = byName.get(s.member)!;
    return [s.member === obs.managerLeader ? 1 : 0, m.isRaftLeader ? 1 : 0, s.member];
  };
  const next = [...memberSteps].sort((a, b) => {
    const [a1, a2, a3] = order(a);
    const [b1, b2, b3] = order(b);
    return a1 - b1 || a2 - b2 || a3.localeCompare(b3);
  })[0];
  const member = byName.get(next.member)!;
  if (member.isRaftLeader && obs.members.length > 1) {
    // Hand leadership to a member already on the new version if there is one (it will not restart again).
    const others = obs.members.filter((m) => m.name !== member.name).sort((a, b) => Number(b.version === record.to) - Number(a.version === record.to) || a.name.localeCompare(b.name));
    return { kind: 'move-raft-leader', from: member.name, to: others[0].name };
  }
  return { kind: 'run', step: next };
}
