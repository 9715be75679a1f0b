// The acting manager's status object for operators (control/status.json, its
// shape in ../control/status.ts): written when a fact changed (at most every
// STATUS_MIN_WRITE_MS) and every STATUS_HEARTBEAT_MS otherwise, so a reader can
// tell a live status from a stale one. etcd's member list and each member's
// health are looked at every OBSERVE_MS, not every pass (a few etcd calls).
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import {
  STATUS_FORMAT, STATUS_HEARTBEAT_MS, STATUS_MIN_WRITE_MS, STATUS_PATH, formatStatus,
  type ManagerStatus, type StatusBackup, type StatusCommand, type StatusMember, type StatusRestore, type StatusRunningBackup,
} from '../control/status.js';
import type { Clock, Pass, StepResult } from './types.js';

/** etcd's members and their health are observed at most this often. */
export const OBSERVE_MS = 5_000;

export interface StatusDeps {
  store: StateStore;
  self: string;
  runner: string;
  term(): number;
  isActing(): boolean;
  /** etcd's members with each one's health, or undefined when etcd does not answer. */
  observeMembers(pass: Pass): Promise<StatusMember[] | undefined>;
  /** The managers that answered (the members when etcd does not answer). */
  managers(pass: Pass): StatusMember[];
  backup: { statusLast(): StatusBackup | undefined; readonly running: StatusRunningBackup | undefined; readonly queued: string[] };
  restore: { statusRestore(pass: Pass): StatusRestore | undefined; statusCommands(): StatusCommand[] };
  clock: Clock;
  log: Logger;
}

export class StatusWriter {
  private lastKey?: string;
  private lastWriteAt = -Infinity;
  private observedAt = -Infinity;
  private observed?: StatusMember[];
  private failing = false;

  constructor(private readonly deps: StatusDeps) {}

  /** The status as it would be written now (without `updatedAt` changes, for tests). */
  build(pass: Pass): Omit<ManagerStatus, 'updatedAt'> {
    const d = this.deps;
    const last = d.backup.statusLast();
    const running = d.backup.running;
    const restore = d.restore.statusRestore(pass);
    const members = this.observed ?? d.managers(pass);
    return {
      format: STATUS_FORMAT,
      leader: { member: d.self, term: d.term(), runner: d.runner },
      ...(pass.spec ? { clusterSpec: { memberCount: pass.spec.memberCount, etcdVersion: pass.spec.etcdVersion } } : {}),
      created: pass.created ?? false,
      members,
      etcdAnswered: this.observed !== undefined,
      ...(last ? { lastBackup: last } : {}),
      ...(running ? { backupRunning: running } : {}),
      backupsQueued: [...d.backup.queued],
      ...(restore ? { restore } : {}),
      commands: d.restore.statusCommands(),
    };
  }

  async step(pass: Pass): Promise<StepResult | undefined> {
    const d = this.deps;
    if (!d.isActing()) {
      this.lastKey = undefined;
      this.lastWriteAt = -Infinity;
      this.observedAt = -Infinity;
      return undefined;
    }
    const now = d.clock.now();
    if (now - this.observedAt >= OBSERVE_MS) {
      this.observedAt = now;
      this.observed = await d.observeMembers(pass).catch(() => undefined);
    }
    const body = this.build(pass);
    const key = JSON.stringify(body);
    const since = now - this.lastWriteAt;
    if ((key === this.lastKey || since < STATUS_MIN_WRITE_MS) && since < STATUS_HEARTBEAT_MS) return undefined;
    const status: ManagerStatus = { ...body, format: STATUS_FORMAT, updatedAt: new Date(d.clock.wallNow()).toISOString() };
    try {
      await d.store.write(STATUS_PATH, formatStatus(status));
      this.lastKey = key;
      this.lastWriteAt = now;
      if (this.failing) d.log.info('status object written again', { event: 'status.written' });
      this.failing = false;
    } catch (err) {
      if (!this.failing) d.log.warn('cannot write the status object (retrying)', { event: 'status.write-failed', path: d.store.urlOf(STATUS_PATH), err });
      this.failing = true;
    }
    return undefined;
  }
}
