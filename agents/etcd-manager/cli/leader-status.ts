// The leader's own account of the cluster (members, leader, last backup, what
// it is doing), as `get` and `restore-backup --wait` show it. The leader side
// writes it as a status object (control/status.ts, being built alongside);
// until that lands, the one reader below finds nothing and the commands show
// what the store itself says. At merge, readLeaderStatus becomes a call of
// that module's parser mapped onto this view: nothing else here changes.
import type { StateStore } from '../../../shared/store/types.js';

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

export type LeaderStatusReader = (store: StateStore) => Promise<LeaderStatusView | undefined>;

/** This build's leader writes no status object yet: nothing to read. */
export const readLeaderStatus: LeaderStatusReader = async () => undefined;
