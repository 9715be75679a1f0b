// The leader's own account of the cluster (members, leader, last backup, what
// it is doing, how a restore command ended), as `get` and `restore-backup
// --wait` show it: control/status.json (control/status.ts, written by the
// acting manager) mapped onto the view below, plus the command's outcome
// (control/<id>/_outcome.json, control/restore-plan.ts) when asked for one.
import type { StateStore } from '../../../shared/store/types.js';
import { readOutcome, type CommandOutcome } from '../control/restore-plan.js';
import { readStatus, type ManagerStatus } from '../control/status.js';

export interface LeaderStatusMember {
  name: string;
  /** etcd answers on its client URLs. */
  healthy?: boolean;
  /** A voting member (not a learner). */
  voting?: boolean;
  quarantined?: boolean;
  etcdVersion?: string;
}

export interface LeaderStatusView {
  /** When the leader last wrote it (ISO). */
  updatedAt?: string;
  leader?: { member: string; term?: number };
  members?: LeaderStatusMember[];
  lastBackup?: { name: string; at?: string; storedBytes?: number; durationMs?: number };
  /** What the leader is doing right now, one line (e.g. "restoring 2026-…: member b restored"). */
  activity?: string;
  /** The last restore it carried out or gave up, by command id: what `restore-backup --wait` reports. */
  lastRestore?: { command: string; backup: string; state: 'succeeded' | 'failed'; error?: string; finishedAt?: string };
}

export type LeaderStatusReader = (store: StateStore, commandId?: string) => Promise<LeaderStatusView | undefined>;

function activityOf(status: ManagerStatus): string | undefined {
  if (status.restore) {
    const r = status.restore;
    const members = Object.entries(r.members).map(([m, st]) => `${m} ${st}`).join(', ');
    return `restoring ${r.backup} (command ${r.commandId}): ${r.phase}${members ? `; ${members}` : ''}`;
  }
  if (status.backupRunning) return `backing up (${status.backupRunning.reason}) to ${status.backupRunning.name}: ${status.backupRunning.bytes} bytes so far`;
  return undefined;
}

/** The view of a status object (pure: the CLI's tests feed it documents). */
export function viewOfStatus(status: ManagerStatus, outcome?: CommandOutcome): LeaderStatusView {
  const activity = activityOf(status);
  const b = status.lastBackup;
  return {
    updatedAt: status.updatedAt,
    leader: { member: status.leader.member, term: status.leader.term },
    members: status.members.map((m) => ({ name: m.name, healthy: m.healthy, voting: m.learner === undefined ? undefined : !m.learner, quarantined: m.quarantined })),
    ...(b ? { lastBackup: { name: b.name, at: b.startedAt, storedBytes: b.storedBytes, durationMs: b.durationMs } } : {}),
    ...(activity ? { activity } : {}),
    ...(outcome ? { lastRestore: restoreOfOutcome(outcome) } : {}),
  };
}

function restoreOfOutcome(o: CommandOutcome): NonNullable<LeaderStatusView['lastRestore']> {
  return { command: o.id, backup: o.backup ?? '', state: o.state === 'succeeded' ? 'succeeded' : 'failed', ...(o.error ? { error: `${o.state}: ${o.error}` } : {}), finishedAt: o.finishedAt };
}

/**
 * control/status.json as a view, and the outcome of `commandId` when given
 * (a refused restore keeps its command queued with an outcome, so --wait
 * must look at outcomes, not only at the queue). Undefined when neither exists.
 */
export const readLeaderStatus: LeaderStatusReader = async (store, commandId) => {
  const [status, outcome] = await Promise.all([readStatus(store), commandId === undefined ? undefined : readOutcome(store, commandId)]);
  if (status) return viewOfStatus(status, outcome);
  return outcome ? { lastRestore: restoreOfOutcome(outcome) } : undefined;
};
