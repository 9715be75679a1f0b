// The acting manager's side of a restore, from a queued kOps `_command.json`
// (restoreBackup), carried out with no restart of any manager:
//   1. check the backup cheaply (meta, key) and choose the restored cluster's
//      members (every member's manager must answer) and a NEW cluster token;
//      the plan is written to control/restore-plan.json (restore-plan.ts);
//   2. preparing: a backup of the live cluster if it is healthy, and on every
//      member restore-prepare: each downloads the backup, checks its sha256s and
//      the snapshot's own hash, and runs `etcdctl snapshot restore` into a new
//      data dir beside the live one (revisions and leases are kept). A bad backup
//      is refused here, named in the command's outcome and the log, and nothing
//      live has been touched;
//   3. stopping: every member stops etcd;
//   4. starting: every member moves its old data to the trash and starts etcd
//      quarantined on the restored data (a new cluster: new token, same members);
//   5. waiting-healthy: until the restored cluster answers with every member;
//   6. lifting: every member stops etcd, then every member starts it on its client
//      URLs (two steps: see LIFT below); once the cluster answers there with every
//      member, the command is removed (kOps' semantics) and its outcome written.
// Each phase is recorded in the plan before its commands go out, with the
// leader's term, by conditional writes: a new leader reads the plan and goes on
// from the phase reached (every member command is idempotent); a deposed
// leader's write is refused. Nothing is half-applied across a restart: before
// `stopping` a restore can still be refused, from `stopping` on it only rolls
// forward. While a restore is under way the pass skips cluster formation,
// membership changes and scheduled backups (pass.restoring).
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { QueuedCommand } from '../control/commands.js';
import type { CommandOutcome, ControlListing, RestorePhase, RestorePlan } from '../control/restore-plan.js';
import type { StatusCommand, StatusRestore } from '../control/status.js';
import type { RestoreAction } from '../peer/protocol.js';
import { newClusterToken } from '../volume-state.js';
import type { LivePeer } from './election.js';
import { BadBackupError } from './restore-member.js';
import type { Clock, Pass, StepResult } from './types.js';

type ControlRecords = typeof import('../control/restore-plan.js');
type Commands = typeof import('../control/commands.js');

/** A failure to prepare that is not the backup's own (a full disk, a lost store connection) is tried this often per member. */
const MAX_PREPARE_ATTEMPTS = 3;

export interface RestoreLeaderDeps {
  self: string;
  clusterName: string;
  store: StateStore;
  /** Sends a restore command to a member (fenced by term; this manager's own member is reached directly). Throws on refusal. */
  send(peer: LivePeer, action: RestoreAction): Promise<void>;
  /** The managers that answered this pass (the survey; a one-member cluster: this one). */
  peers(pass: Pass): LivePeer[];
  /** This member's live cluster token (members holding it are preferred for the restored cluster). */
  liveToken(): string | undefined;
  /** The live cluster answers (a pre-restore backup is taken only then). */
  clusterHealthy(peers: LivePeer[]): Promise<boolean>;
  /**
   * The restored cluster: every member listed, voting and healthy, asked through the members'
   * quarantine client URLs (before the lift) or their client URLs (after it).
   */
  restoredHealthy(members: LivePeer[], plan: RestorePlan, through: 'quarantine' | 'client'): Promise<{ healthy: boolean; detail: string }>;
  /** Cheap checks of the backup before anything else: it exists, its meta parses, the key fits. Throws BadBackupError. */
  checkBackup(name: string): Promise<void>;
  /** Takes the pre-restore backup (BackupController.takeNow). */
  backupNow(detail: string): Promise<{ name: string }>;
  /**
   * Once the restored cluster answers, before its quarantine is lifted: sets the etcd fence to this
   * leader's term (the restored data holds the backup's, perhaps from another era of terms), writes
   * control/etcd-cluster-spec when the command carried a spec, and the created marker if absent.
   */
  afterRestore(plan: RestorePlan, members: LivePeer[]): Promise<void>;
  isActing(): boolean;
  term(): number;
  clock: Clock;
  log: Logger;
  wake(reason: string): void;
  metrics?: { restore(result: 'succeeded' | 'refused' | 'failed'): void };
  newToken?(clusterName: string): string;
  /** The control records module; loaded on first use by default. */
  records?(): Promise<ControlRecords>;
}

export class RestoreLeader {
  private plan?: RestorePlan;
  private version?: string;
  private loadedTerm?: number;
  private listing?: ControlListing;
  private cleanedListing?: ControlListing;
  private noticed = new Set<string>();
  private pre?: { name?: string; skipped?: string; failed?: string; running: boolean };
  private waitingLogged = '';
  private mod?: { records: ControlRecords; commands: Commands };

  constructor(private readonly deps: RestoreLeaderDeps) {}

  private async modules(): Promise<{ records: ControlRecords; commands: Commands }> {
    this.mod ??= { records: await (this.deps.records?.() ?? import('../control/restore-plan.js')), commands: await import('../control/commands.js') };
    return this.mod;
  }

  /** The latest listing of commands and outcomes (from the control inbox). */
  noticeCommands(listing: ControlListing): void {
    this.listing = listing;
    let fresh = false;
    for (const c of listing.commands) {
      if (!c.restoreBackup || listing.outcomes.has(c.id) || this.noticed.has(c.id)) continue;
      this.noticed.add(c.id);
      fresh = true;
      this.deps.log.info('restore command noticed', { event: 'restore.noticed', commandId: c.id, backup: c.restoreBackup.backup });
    }
    if (fresh) this.deps.wake('restore command queued');
  }

  /** A restore is under way (for the status object and the other steps). */
  get active(): boolean {
    return this.plan !== undefined;
  }

  /** A restore is under way, or a restore command is queued with no outcome yet. */
  get pending(): boolean {
    return this.plan !== undefined || (this.listing?.commands.some((c) => c.restoreBackup && !this.listing!.outcomes.has(c.id)) ?? false);
  }

  /** The pass's restore step (acting manager only). */
  async step(pass: Pass): Promise<StepResult | undefined> {
    if (!this.deps.isActing()) {
      // Leadership lapsed in this pass: the steps after this one still see pass.leading, and must
      // not act on a cluster a restore has stopped or quarantined.
      if (this.plan) pass.restoring = true;
      this.loadedTerm = undefined;
      this.plan = undefined;
      this.pre = undefined;
      return undefined;
    }
    const { records } = await this.modules();
    const term = this.deps.term();
    if (this.loadedTerm !== term) {
      this.pre = undefined;
      const got = await records.readRestorePlan(this.deps.store);
      this.loadedTerm = term;
      this.plan = got?.plan;
      this.version = got?.version;
      if (this.plan) {
        if (this.plan.term > term) {
          this.deps.log.warn('the restore plan was written in a newer term: not acting on it', { event: 'restore.fenced', term, planTerm: this.plan.term });
          this.plan = undefined;
          return { stop: true };
        }
        this.deps.log.info('a restore is under way: going on from where it was', { event: 'restore.resumed', commandId: this.plan.commandId, phase: this.plan.phase, planTerm: this.plan.term, term });
        if (!(await this.save({}))) return { stop: true };
      }
    }
    await this.cleanOutcomes();
    if (!this.plan) {
      const command = await this.nextCommand();
      if (!command) return undefined;
      pass.restoring = true;
      return this.begin(command, pass);
    }
    pass.restoring = true;
    return this.advance(pass);
  }

  /** The oldest restore command without an outcome (a succeeded one still listed is removed now). */
  private async nextCommand(): Promise<QueuedCommand | undefined> {
    const listing = this.listing;
    if (!listing) return undefined;
    const { commands } = await this.modules();
    for (const c of listing.commands) {
      if (!c.restoreBackup) continue;
      const outcome = listing.outcomes.get(c.id);
      if (outcome?.state === 'succeeded') {
        await commands.deleteCommand(this.deps.store, c.id); // done, but its removal did not happen
        continue;
      }
      if (outcome) continue; // refused or failed: stays until the operator deletes it
      return c;
    }
    return undefined;
  }

  private async begin(command: QueuedCommand, pass: Pass): Promise<StepResult | undefined> {
    const { log, store } = this.deps;
    const { records } = await this.modules();
    const restore = command.restoreBackup!;
    const asked = restore.clusterSpec;
    const full = asked?.memberCount !== undefined && asked.memberCount >= 1 && asked.etcdVersion !== undefined && /^\d+\.\d+\.\d+$/.test(asked.etcdVersion);
    const spec = full ? { memberCount: asked.memberCount!, etcdVersion: asked.etcdVersion! } : pass.spec;
    if (!spec) return { waitFor: 'the cluster spec' };
    try {
      await this.deps.checkBackup(restore.backup);
    } catch (err) {
      if (!(err instanceof BadBackupError)) throw err; // the store, not the backup: try again next pass
      return this.end(command.id, restore.backup, 'refused', err.message, err.check);
    }
    const peers = this.deps.peers(pass);
    const live = this.deps.liveToken();
    const holders = peers.filter((p) => live !== undefined && p.info.clusterToken === live);
    if (holders.length > spec.memberCount) {
      // Members left out would keep running the old cluster beside the restored one.
      return this.end(command.id, restore.backup, 'failed', `the restore asks for ${spec.memberCount} member(s), but ${holders.length} members hold the live cluster's data (${holders.map((p) => p.info.member).join(', ')}): queue it again with memberCount ${holders.length}, or shrink the cluster first`, undefined);
    }
    const ordered = [...peers].sort((x, y) => Number(y.info.clusterToken === live) - Number(x.info.clusterToken === live) || x.info.member.localeCompare(y.info.member));
    if (ordered.length < spec.memberCount) {
      const why = `${ordered.length} of ${spec.memberCount} managers answer`;
      if (this.waitingLogged !== why) log.warn('restore waits: every member\'s manager must answer', { event: 'restore.waiting-for-members', commandId: command.id, answering: ordered.map((p) => p.info.member), want: spec.memberCount });
      this.waitingLogged = why;
      return { waitFor: 'every member\'s manager for the restore' };
    }
    const chosen = ordered.slice(0, spec.memberCount);
    const now = new Date(this.deps.clock.wallNow()).toISOString();
    const plan: RestorePlan = {
      format: records.RESTORE_PLAN_FORMAT,
      commandId: command.id,
      backup: restore.backup,
      clusterSpec: spec,
      writeSpec: full && (spec.memberCount !== pass.spec?.memberCount || spec.etcdVersion !== pass.spec?.etcdVersion),
      term: this.deps.term(),
      leader: this.deps.self,
      phase: 'preparing',
      clusterToken: (this.deps.newToken ?? newClusterToken)(this.deps.clusterName),
      initialCluster: Object.fromEntries(chosen.map((p) => [p.info.member, p.record.peerURLs])),
      startedAt: now,
      updatedAt: now,
      attempts: {},
    };
    const version = await store.createIfAbsent(records.RESTORE_PLAN_PATH, records.formatRestorePlan(plan));
    if (version === undefined) {
      this.loadedTerm = undefined; // another plan appeared: read it next pass
      return { progress: true };
    }
    this.plan = plan;
    this.version = version;
    this.pre = undefined;
    log.info('restore started', { event: 'restore.started', commandId: plan.commandId, backup: plan.backup, members: Object.keys(plan.initialCluster), term: plan.term });
    return this.advance(pass);
  }

  private async advance(pass: Pass): Promise<StepResult | undefined> {
    const plan = this.plan!;
    const peers = new Map(this.deps.peers(pass).map((p) => [p.info.member, p]));
    const names = Object.keys(plan.initialCluster);
    const missing = names.filter((n) => !peers.has(n));
    const mine = (p: LivePeer) => (p.info.restore?.planId === plan.commandId ? p.info.restore : undefined);
    const send = async (p: LivePeer, action: RestoreAction) => {
      try {
        await this.deps.send(p, action);
      } catch (err) {
        this.deps.log.warn('a member did not take a restore command (sent again next pass)', { event: 'restore.command-failed', member: p.info.member, action: action.action, err });
      }
    };
    const present = names.flatMap((n) => (peers.has(n) ? [peers.get(n)!] : []));
    const id = { planId: plan.commandId };

    switch (plan.phase) {
      case 'preparing': {
        this.ensurePreBackup(present);
        const ask: LivePeer[] = [];
        for (const p of present) {
          const r = mine(p);
          if (r?.state === 'failed') {
            if (r.badBackup) return this.refuse(present, r.error ?? 'the backup is bad', r.badBackup);
            const attempts = (this.plan!.attempts[p.info.member] ?? 0) + 1;
            if (attempts >= MAX_PREPARE_ATTEMPTS) return this.refuse(present, `preparing on ${p.info.member} failed ${attempts} times: ${r.error ?? 'unknown error'}`, undefined, 'failed');
            if (!(await this.save({ attempts: { ...this.plan!.attempts, [p.info.member]: attempts } }))) return { stop: true };
          }
          if (!r || r.state === 'failed') ask.push(p);
        }
        // Every member at once: each downloads and restores in parallel with the others.
        await Promise.all(ask.map((p) => send(p, { action: 'restore-prepare', body: { ...id, backup: plan.backup, clusterToken: plan.clusterToken, initialCluster: plan.initialCluster, etcdVersion: plan.clusterSpec.etcdVersion } })));
        if (this.pre?.failed) return this.refuse(present, `the backup of the live cluster before the restore failed: ${this.pre.failed}`, undefined, 'failed');
        const prepared = present.filter((p) => mine(p)?.state === 'prepared').length;
        if (missing.length > 0 || prepared < names.length || !this.pre || this.pre.running) return this.waiting(missing, `members to prepare (${prepared}/${names.length})${this.pre?.running ? ', the pre-restore backup' : ''}`);
        return this.next('stopping', { preRestoreBackup: this.pre.name ? { name: this.pre.name } : { skipped: this.pre.skipped ?? 'not taken' } });
      }
      case 'stopping': {
        // 'stopping' too: a member whose stop failed stops again on the next restore-stop.
        await Promise.all(present.filter((p) => ['prepared', 'stopping'].includes(mine(p)?.state ?? '')).map((p) => send(p, { action: 'restore-stop', body: id })));
        const stopped = present.filter((p) => ['stopped', 'started'].includes(mine(p)?.state ?? '')).length;
        if (missing.length > 0 || stopped < names.length) return this.waiting(missing, `etcd to stop (${stopped}/${names.length})`);
        return this.next('starting');
      }
      case 'starting': {
        await Promise.all(present.filter((p) => mine(p)?.state === 'stopped').map((p) => send(p, { action: 'restore-start', body: id })));
        const started = present.filter((p) => mine(p)?.state === 'started').length;
        if (missing.length > 0 || started < names.length) return this.waiting(missing, `etcd to start on the restored data (${started}/${names.length})`);
        return this.next('waiting-healthy');
      }
      case 'waiting-healthy': {
        if (missing.length > 0) return this.waiting(missing, 'the restored cluster');
        const health = await this.deps.restoredHealthy(present, plan, 'quarantine');
        if (!health.healthy) return this.waiting([], `the restored cluster to be healthy (${health.detail})`);
        await this.deps.afterRestore(plan, present);
        return this.next('lifting');
      }
      case 'lifting': {
        // LIFT: lifting a quarantine restarts etcd. With each member restarting on its own command, a
        // member's etcd could stop while another's was still publishing itself to the cluster, taking
        // that proposal down with it, and etcd then waits its request timeout (7 s) to publish again:
        // that cost 7-10 s in 4 of 7 restores (bench/etcd-manager-backup.ts, 2026-12-02). So every
        // member stops first, and only then does any start on its client URLs, as at a first start.
        const toStop = present.filter((p) => mine(p)?.state === 'started');
        // 'lift-stopping' too: a member whose stop failed stops again on the next restore-lift-stop.
        await Promise.all([...toStop, ...present.filter((p) => mine(p)?.state === 'lift-stopping')].map((p) => send(p, { action: 'restore-lift-stop', body: id })));
        const stopped = present.filter((p) => mine(p)?.state === 'lift-stopped').length;
        if (missing.length > 0 || toStop.length > 0 || present.some((p) => mine(p)?.state === 'lift-stopping')) {
          return this.waiting(missing, `etcd to stop before the quarantine is lifted (${stopped}/${names.length})`);
        }
        await Promise.all(present.filter((p) => mine(p)?.state === 'lift-stopped').map((p) => send(p, { action: 'restore-lift', body: id })));
        const done = present.filter((p) => !mine(p) && p.info.clusterToken === plan.clusterToken).length;
        if (missing.length > 0 || done < names.length) return this.waiting(missing, `quarantine lifted (${done}/${names.length})`);
        // Completed means serving: a member that has restarted on its client URLs may not answer yet
        // (it rejoins its peers first), and `restore-backup --wait` returns on the outcome.
        const serving = await this.deps.restoredHealthy(present, plan, 'client');
        if (!serving.healthy) return this.waiting([], `the restored cluster to serve on its client URLs (${serving.detail})`);
        return this.finish();
      }
    }
  }

  private waiting(missing: string[], what: string): StepResult {
    if (missing.length > 0) {
      const key = missing.join(',');
      if (this.waitingLogged !== key) this.deps.log.warn('restore waits for members whose managers do not answer', { event: 'restore.waiting-for-members', commandId: this.plan?.commandId, missing });
      this.waitingLogged = key;
    }
    return { waitFor: `restore: ${what}` };
  }

  /** The pre-restore backup, once per plan (and again by a new leader that finds none recorded). */
  private ensurePreBackup(present: LivePeer[]): void {
    const plan = this.plan!;
    if (this.pre || plan.preRestoreBackup) {
      if (!this.pre && plan.preRestoreBackup) this.pre = { ...plan.preRestoreBackup, running: false };
      return;
    }
    const pre: NonNullable<RestoreLeader['pre']> = { running: true };
    this.pre = pre;
    void (async () => {
      try {
        if (!(await this.deps.clusterHealthy(present))) {
          pre.skipped = 'the live cluster is not healthy';
          this.deps.log.warn('no backup before the restore: the live cluster is not healthy', { event: 'restore.pre-backup', commandId: plan.commandId, skipped: pre.skipped });
        } else {
          pre.name = (await this.deps.backupNow(`restore of ${plan.backup} (command ${plan.commandId})`)).name;
          this.deps.log.info('backup of the live cluster taken before the restore', { event: 'restore.pre-backup', commandId: plan.commandId, name: pre.name });
        }
      } catch (err) {
        pre.failed = (err as Error).message.split('\n')[0];
      } finally {
        pre.running = false;
        this.deps.wake('pre-restore backup finished');
      }
    })();
  }

  private async next(phase: RestorePhase, extra: Partial<RestorePlan> = {}): Promise<StepResult> {
    const plan = this.plan!;
    const from = plan.phase;
    if (!(await this.save({ ...extra, phase }))) return { stop: true };
    this.deps.log.info('restore phase', { event: 'restore.phase', commandId: plan.commandId, from, phase });
    return { did: `restore ${plan.commandId}: ${phase}` };
  }

  /** Writes the plan under this term if nobody else changed it; false (and forgets it) when fenced. */
  private async save(change: Partial<RestorePlan>): Promise<boolean> {
    const { records } = await this.modules();
    const plan: RestorePlan = { ...this.plan!, ...change, term: this.deps.term(), leader: this.deps.self, updatedAt: new Date(this.deps.clock.wallNow()).toISOString() };
    const version = await this.deps.store.replaceIfVersion(records.RESTORE_PLAN_PATH, records.formatRestorePlan(plan), this.version ?? '');
    if (version === undefined) {
      this.deps.log.warn('the restore plan changed under this leader (a newer leader?): not acting on it', { event: 'restore.fenced', commandId: plan.commandId, term: plan.term });
      this.plan = undefined;
      this.loadedTerm = undefined;
      return false;
    }
    this.plan = plan;
    this.version = version;
    return true;
  }

  /** Before `stopping` only: members discard what they prepared; the command stays with its outcome. */
  private async refuse(present: LivePeer[], error: string, check?: string, state: 'refused' | 'failed' = 'refused'): Promise<StepResult> {
    const plan = this.plan!;
    await Promise.all(present.map((p) => this.deps.send(p, { action: 'restore-abort', body: { planId: plan.commandId } }).catch((err: unknown) =>
      this.deps.log.warn('a member did not take the abort (its prepared data stays until the next restore)', { member: p.info.member, err }))));
    return this.end(plan.commandId, plan.backup, state, error, check);
  }

  private async end(commandId: string, backup: string, state: 'refused' | 'failed', error: string, check: string | undefined): Promise<StepResult> {
    const { records } = await this.modules();
    const { store, log } = this.deps;
    const outcome: CommandOutcome = {
      format: records.OUTCOME_FORMAT, id: commandId, state, backup, error, ...(check ? { check } : {}),
      ...(this.pre?.name ? { preRestoreBackup: this.pre.name } : {}),
      finishedAt: new Date(this.deps.clock.wallNow()).toISOString(), leader: this.deps.self, term: this.deps.term(),
    };
    await records.writeOutcome(store, outcome);
    this.listing?.outcomes.set(commandId, outcome);
    if (this.plan) await store.deleteIfVersion(records.RESTORE_PLAN_PATH, this.version ?? '');
    this.plan = undefined;
    this.pre = undefined;
    log.error(state === 'refused' ? 'restore refused: the backup is bad; live data untouched (the command stays, with its outcome, until deleted)' : 'restore failed before anything live was touched (the command stays, with its outcome, until deleted)', {
      event: state === 'refused' ? 'restore.refused' : 'restore.failed', commandId, backup, ...(check ? { check } : {}), error,
    });
    this.deps.metrics?.restore(state);
    return { did: `restore ${commandId} ${state}` };
  }

  private async finish(): Promise<StepResult> {
    const plan = this.plan!;
    const { records, commands } = await this.modules();
    const { store, log } = this.deps;
    const outcome: CommandOutcome = {
      format: records.OUTCOME_FORMAT, id: plan.commandId, state: 'succeeded', backup: plan.backup,
      ...(plan.preRestoreBackup?.name ? { preRestoreBackup: plan.preRestoreBackup.name } : {}),
      finishedAt: new Date(this.deps.clock.wallNow()).toISOString(), leader: this.deps.self, term: this.deps.term(),
    };
    await records.writeOutcome(store, outcome);
    await commands.deleteCommand(store, plan.commandId);
    await store.deleteIfVersion(records.RESTORE_PLAN_PATH, this.version ?? '');
    this.listing?.outcomes.set(plan.commandId, outcome);
    if (this.listing) this.listing.commands = this.listing.commands.filter((c) => c.id !== plan.commandId);
    this.plan = undefined;
    this.pre = undefined;
    log.info('restore completed: every member healthy on the restored data, quarantine lifted, command removed', {
      event: 'restore.completed', commandId: plan.commandId, backup: plan.backup, members: Object.keys(plan.initialCluster), preRestoreBackup: outcome.preRestoreBackup,
    });
    this.deps.metrics?.restore('succeeded');
    return { did: `restore ${plan.commandId} completed` };
  }

  /** Outcomes whose command is gone are deleted after a day (once per listing). */
  private async cleanOutcomes(): Promise<void> {
    const listing = this.listing;
    if (!listing || listing === this.cleanedListing) return;
    this.cleanedListing = listing;
    const { records } = await this.modules();
    const now = this.deps.clock.wallNow();
    const queued = new Set(listing.commands.map((c) => c.id));
    for (const [id, o] of listing.outcomes) {
      if (queued.has(id) || now - Date.parse(o.finishedAt) < records.KEEP_OUTCOMES_MS) continue;
      await this.deps.store.delete(records.outcomePath(id)).catch(() => undefined);
      listing.outcomes.delete(id);
    }
  }

  /** For the status object. */
  statusRestore(pass?: Pass): StatusRestore | undefined {
    const plan = this.plan;
    if (!plan) return undefined;
    const peers = new Map((pass ? this.deps.peers(pass) : []).map((p) => [p.info.member, p]));
    const members = Object.fromEntries(Object.keys(plan.initialCluster).map((m) => {
      const r = peers.get(m)?.info.restore;
      return [m, r?.planId === plan.commandId ? r.state : peers.has(m) ? 'waiting' : 'not answering'];
    }));
    const pre = plan.preRestoreBackup;
    return {
      commandId: plan.commandId, backup: plan.backup, phase: plan.phase, startedAt: plan.startedAt, members,
      ...(pre ? { preRestoreBackup: pre.name ?? `none: ${pre.skipped ?? ''}` } : {}),
    };
  }

  statusCommands(): StatusCommand[] {
    const listing = this.listing;
    if (!listing) return [];
    const out: StatusCommand[] = listing.commands.map((c) => {
      const o = listing.outcomes.get(c.id);
      const state: StatusCommand['state'] = o && o.state !== 'succeeded' ? o.state : this.plan?.commandId === c.id ? 'running' : 'queued';
      return { id: c.id, ...(c.restoreBackup ? { backup: c.restoreBackup.backup } : {}), state, ...(o?.error ? { error: o.error } : {}) };
    });
    for (const bad of listing.invalid) out.push({ id: bad.id, state: 'invalid', error: bad.error });
    return out;
  }
}
