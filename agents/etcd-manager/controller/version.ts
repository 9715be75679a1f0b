// The version step of the acting manager's pass: when control/etcd-cluster-spec
// asks for another etcd version than the cluster runs, one pass of the version
// change (versions/driver.ts versionChangePass) per reconcile pass. The record
// in control/etcd-version-change is the change's only state, so a new leader,
// or this one after a restart, carries on where the last pass stopped.
//
// In place (a patch release, or the next 3.x minor): a backup first, then one
// member at a time, each healthy and caught up before the next one moves, etcd's
// raft leadership handed over before its member restarts, this manager's member
// last. By backup + restore (a downgrade, a skipped minor): a backup, then a
// restore command for it with the new version (control/<id>/_command.json, the
// same command an operator's restore-backup queues), carried out by the restore
// step (controller/restore.ts) with no manager restarted; the version change
// waits for the command's outcome. etcd2 → etcd3: a v2 backup (a copy of the
// data directory), converted into a v3 backup off the live cluster
// (migrate/convert.ts: TTLs kept as leases, verified), then restored into every
// member with the new version exactly as a downgrade's backup is.
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import { backupOf, restoreSourceOf, versionChangePass, type StepEffects, type StepOutput, type VersionPassResult } from '../versions/driver.js';
import type { ClusterObservation, PlanOptions, VersionChangeRecord } from '../versions/plan.js';
import type { Transition } from '../versions/transition.js';
import type { Pass, StepResult } from './types.js';

export interface VersionStepDeps {
  /** The backup store (control/ lives there). */
  store: StateStore;
  /** This manager's member (it moves last). */
  self: string;
  /** The leader's fenced term (0 for a one-member cluster's manager). */
  term(): number;
  /** The version the cluster runs as this manager knows it: its own member's (which moves last). */
  currentVersion(): string | undefined;
  binaryDir?: string;
  /** What every etcd member runs and how it is, now (the pass: the managers its survey found). */
  observe(pass: Pass): Promise<ClusterObservation>;
  /** A backup now, through this manager's backup chain (controller/backup.ts takeNow); its name. */
  backupNow(detail: string): Promise<{ name: string }>;
  /** The v2 backup `from` converted into a new v3 backup of etcd `to` (migrate/convert.ts, through the backup chain); its name. */
  convertV2(from: string, to: string, detail: string): Promise<{ name: string }>;
  /** Restarts a member's etcd on another version's binary (a peer command; this manager's own member directly). */
  setMemberVersion(member: string, version: string, pass: Pass): Promise<void>;
  /** etcd's MoveLeader from one member to another. */
  moveRaftLeader(from: string, to: string, pass: Pass): Promise<void>;
  /** Waits between looks at a restarting member. */
  sleep(ms: number): Promise<void>;
  /** How long a member may take to come back healthy on the new version before the step counts as failed (default 2 min). */
  restartTimeoutMs?: number;
  /** Monotonic ms, for that bound. */
  clock(): number;
  log: Logger;
  now?: () => Date;
  plan?: PlanOptions;
  /** The check of a change's binaries (versions/binaries.ts by default). */
  checkBinaries?: (t: Transition, binaryDir: string | undefined) => Promise<unknown>;
  metrics?: {
    /** A change stopped, counted once per new reason (a member unhealthy, behind, …). */
    blocked(reason: string): void;
    /** A change refused before it started (no rule, a binary missing). */
    refused(): void;
  };
}

/** Where the version change stands, for `get` and the status object; undefined when none is asked for. */
export type VersionChangeStatus =
  | { state: 'refused'; from?: string; to: string; message: string }
  | { state: 'running' | 'waiting' | 'failed'; id: string; from: string; to: string; message: string; stepsDone: number; steps: number }
  | { state: 'finished'; id: string; from: string; to: string; message: string };

/** The restore command a version change queues: one id per change, so a pass that runs the step again finds it. */
export function versionChangeCommandId(changeId: string): string {
  return `version-change-${changeId}`;
}

/** A restarted member is looked at this often until it is back. */
export const RESTART_POLL_MS = 500;
const RESTART_TIMEOUT_MS = 120_000;

export class VersionStep {
  private lastStatus?: VersionChangeStatus;
  private lastRefusal = '';
  /**
   * A change may be recorded: the record is read only then, not every pass. True at first and
   * whenever the term changes (another leader may have started one meanwhile); false once a pass
   * found none while the spec asked for the running version.
   */
  private mayBeUnderWay = true;
  private seenTerm?: number;

  constructor(private readonly deps: VersionStepDeps) {}

  get status(): VersionChangeStatus | undefined {
    return this.lastStatus;
  }

  async step(pass: Pass): Promise<StepResult | undefined> {
    const { deps } = this;
    if (!pass.spec || !pass.created || pass.restoring) return undefined;
    const current = deps.currentVersion();
    const wanted = pass.spec.etcdVersion;
    if (current === undefined) return undefined;
    const term = deps.term();
    if (term !== this.seenTerm) {
      this.seenTerm = term;
      this.mayBeUnderWay = true;
    }
    if (current === wanted && !this.mayBeUnderWay) return undefined;

    let observed: Promise<ClusterObservation> | undefined;
    const observe = () => (observed ??= deps.observe(pass));
    const members = current === wanted ? [] : (await observe()).members.map((m) => m.name);
    const result = await versionChangePass({
      store: deps.store,
      term,
      current,
      wanted,
      members,
      binaryDir: deps.binaryDir,
      log: deps.log,
      now: deps.now,
      plan: deps.plan,
      checkBinaries: deps.checkBinaries,
      effects: {
        observe,
        steps: this.effects(pass),
        moveRaftLeader: (from, to) => deps.moveRaftLeader(from, to, pass),
        // Every member's volume already says the new version (set-version wrote it): nothing else keeps it.
        finished: async () => undefined,
      },
    });
    // Nothing recorded and nothing asked: no need to read the record again until the spec or the term changes.
    this.mayBeUnderWay = !(result.kind === 'idle' && current === wanted);
    return this.report(result, current, wanted);
  }

  private effects(pass: Pass): StepEffects {
    const { deps } = this;
    return {
      backup: async (step, record) => ({ name: (await deps.backupNow(`etcd ${record.from} → ${record.to} (version change ${record.id})`)).name }),
      'upgrade-member': async (step) => {
        await deps.setMemberVersion(step.member, step.to, pass);
        // The member restarts in the background; the step is done only once it is back on the new version.
        // Marked done earlier, the next pass could restart another member while this one is still down.
        await this.waitBack(step.member, step.to, pass);
      },
      'restore-snapshot': (step, record) => this.restoreInto(step.to, record, pass),
      'convert-v2': async (step, record) => {
        const from = backupOf(record);
        if (!from) throw new Error(`version change ${record.id} has no v2 backup recorded to convert`);
        return { name: (await deps.convertV2(from, step.to, `etcd ${record.from} → ${record.to} (version change ${record.id})`)).name };
      },
    };
  }

  /**
   * The change's backup restored into `to`, through a queued restore command: queued once (and the
   * doorbell rung, so the acting manager's inbox lists it at once), then pending until its outcome.
   * A refused or failed restore touched nothing live (a restore fails only before it stops etcd):
   * the step fails with the restore's reason, each pass, until the operator deletes the command.
   */
  private async restoreInto(to: string, record: VersionChangeRecord, pass: Pass): Promise<StepOutput> {
    const { store, log } = this.deps;
    const backup = restoreSourceOf(record);
    if (!backup) throw new Error(`version change ${record.id} has no backup recorded to restore`);
    const id = versionChangeCommandId(record.id);
    const [{ readOutcome, outcomePath }, commands, { ringDoorbell }] = await Promise.all([import('../control/restore-plan.js'), import('../control/commands.js'), import('../control/requests.js')]);
    // The command first, then its outcome: the restore writes the outcome before it removes the command,
    // so a command found gone here with no outcome after it was never queued (not finished meanwhile).
    const queued = await commands.commandExists(store, id);
    const outcome = await readOutcome(store, id);
    if (outcome?.state === 'succeeded') return {};
    if (queued && outcome) {
      throw new Error(`the restore of ${backup} into etcd ${to} ${outcome.state}: ${outcome.error ?? 'no reason given'}; the cluster still runs etcd ${record.from}, untouched. Fix the cause, then delete-command ${id} to have it queued again`);
    }
    if (!queued) {
      // Never queued, or a failed one the operator deleted: queued (again), without the old outcome.
      if (outcome) await store.delete(outcomePath(id));
      const nowMs = (this.deps.now?.() ?? new Date()).getTime();
      const memberCount = pass.spec?.memberCount;
      await commands.queueRestoreCommand(store, id, nowMs, { backup, clusterSpec: { ...(memberCount ? { memberCount } : {}), etcdVersion: to } });
      await ringDoorbell(store, id, nowMs);
      log.info('restore into the new version queued', { event: 'version-change.restore-queued', id: record.id, commandId: id, backup, to, ...(outcome ? { after: outcome.state } : {}) });
    }
    return { pending: `the restore of ${backup} into etcd ${to} (command ${id})` };
  }

  /** Until `member` reports `version` and is healthy; throws after restartTimeoutMs (the step is then tried again). */
  private async waitBack(member: string, version: string, pass: Pass): Promise<void> {
    const { deps } = this;
    const deadline = deps.clock() + (deps.restartTimeoutMs ?? RESTART_TIMEOUT_MS);
    for (;;) {
      const m = (await deps.observe(pass).catch(() => undefined))?.members.find((o) => o.name === member);
      if (m?.healthy && m.version === version) return;
      if (deps.clock() >= deadline) {
        throw new Error(`member ${member} is not back healthy on etcd ${version} after ${Math.round((deps.restartTimeoutMs ?? RESTART_TIMEOUT_MS) / 1000)} s (${m ? `it reports ${m.version ?? 'no version'}, ${m.healthy ? 'healthy' : 'not healthy'}` : 'not in etcd\'s member list'})`);
      }
      await deps.sleep(RESTART_POLL_MS);
    }
  }

  private refuse(from: string | undefined, to: string, message: string): StepResult | undefined {
    this.lastStatus = { state: 'refused', ...(from ? { from } : {}), to, message };
    if (message !== this.lastRefusal) {
      this.lastRefusal = message;
      this.deps.metrics?.refused();
      this.deps.log.warn('version change refused', { event: 'version-change.refused', from, to, message });
    }
    return undefined;
  }

  private report(r: VersionPassResult, current: string, wanted: string): StepResult | undefined {
    const progress = (record: { id: string; from: string; to: string; steps: { state: string }[] }, state: 'running' | 'waiting' | 'failed', message: string): void => {
      this.lastStatus = { state, id: record.id, from: record.from, to: record.to, message, stepsDone: record.steps.filter((s) => s.state === 'done').length, steps: record.steps.length };
    };
    if (r.kind !== 'refused') this.lastRefusal = '';
    switch (r.kind) {
      case 'idle':
        if (this.lastStatus?.state !== 'finished') this.lastStatus = undefined;
        return undefined;
      case 'refused':
        return this.refuse(current, wanted, r.message);
      case 'started':
        progress(r.record, 'running', r.description);
        return { did: `version change ${r.record.id} planned: ${r.description}` };
      case 'ran':
        progress(r.record, 'running', `step ${r.step.id} done`);
        return { did: `version change ${r.record.id}: step ${r.step.id} done` };
      case 'marked':
        progress(r.record, 'running', `step ${r.step.id} done (member on ${r.record.to}, healthy and caught up)`);
        return { did: `version change ${r.record.id}: step ${r.step.id} done` };
      case 'moved-leader':
        progress(r.record, 'running', `raft leadership moved from ${r.from} to ${r.to}`);
        return { did: `version change ${r.record.id}: raft leadership moved from ${r.from} to ${r.to}` };
      case 'replanned':
        progress(r.record, 'running', r.message);
        return { did: `version change ${r.record.id} replanned: ${r.message}` };
      case 'waiting':
        progress(r.record, 'waiting', r.message);
        if (r.newlyBlocked) this.deps.metrics?.blocked(r.reason);
        return { waitFor: r.message };
      case 'in-progress':
        progress(r.record, 'running', r.message);
        return { waitFor: r.message };
      case 'failed':
        progress(r.record, 'failed', `step ${r.step.id} failed (tried again): ${r.message}`);
        return { waitFor: `version change step ${r.step.id}` };
      case 'finished':
        this.lastStatus = { state: 'finished', id: r.record.id, from: r.record.from, to: r.record.to, message: `etcd ${r.record.from} → ${r.record.to} done${r.next ? `; the spec now asks for ${r.next}` : ''}` };
        return { did: `version change ${r.record.id} finished: etcd ${r.record.to}` };
      case 'fenced':
        return undefined;
      case 'conflict':
        return { progress: true };
    }
  }
}
