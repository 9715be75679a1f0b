// This member's own etcd: what its volume says (volume-state.ts), starting
// etcd (a one-member cluster's creation included), the quarantine it starts
// in and lifts, standing by once removed, and the leader's commands that
// concern it (form, join, quarantine, leave).
//
// A form or join command is answered as soon as it is accepted (the volume
// state written); etcd starts in the background and the member announces the
// change, so the leader never waits on a peer-API answer for etcd to start.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { EtcdHealth } from '../etcd/client.js';
import type { EtcdProcessSpec } from '../etcd/process.js';
import type { LocalCommand } from '../peer/protocol.js';
import { etcdDataDir, newClusterToken, readVolumeState, writeVolumeState, type VolumeState } from '../volume-state.js';
import type { Volume } from '../volumes/types.js';
import { CONTROL } from './spec.js';
import type { Clock, Pass, StepResult } from './types.js';

/** The etcd process supervisor, as far as this module drives it (EtcdSupervisor). */
export interface LocalEtcd {
  start(spec: EtcdProcessSpec, options: { quarantined?: boolean; graceMs?: number }): Promise<void>;
  stop(options?: { graceMs?: number }): Promise<void>;
  setQuarantined(quarantined: boolean, options?: { graceMs?: number }): Promise<void>;
  readonly running: boolean;
  readonly isQuarantined: boolean;
}

export interface LocalDeps {
  volume: Pick<Volume, 'id' | 'mountPoint' | 'memberName'>;
  clusterName: string;
  backups: StateStore;
  etcd: LocalEtcd;
  /** The process spec for this member's state: URLs, TLS files, the binary of its version. */
  processSpec(state: VolumeState): Promise<EtcdProcessSpec>;
  /** etcd's health through this member's own client endpoint (the quarantine one while quarantined). */
  checkLocal(): Promise<EtcdHealth>;
  clock: Clock;
  log: Logger;
  setPhase(phase: string): void;
  /** This member's state changed in a way its peers should see at once (etcd started, quarantine lifted, standing by). */
  changed(reason: string): void;
  /**
   * What a restore under way allows (controller/restore-member.ts MemberRestore.gate): 'hold' keeps
   * etcd stopped, 'quarantined' starts it quarantined and keeps it so until the leader lifts it.
   */
  restoreGate?(): 'hold' | 'quarantined' | undefined;
  /** A restore command is queued or under way (a one-member cluster's empty volume then waits for it instead of failing). */
  restorePending?(): boolean;
}

export const STANDBY_FILE = 'etcd-manager-standby.json';
/**
 * A restore stops (and, lifting its quarantine, restarts) every member at once: etcd's leader would
 * spend seconds handing leadership to followers that are stopping too, so SIGKILL follows SIGTERM
 * this soon (etcd's data is safe through a kill: it syncs its WAL before it answers). With 2 s here,
 * at each of a restore's two stops one etcd (the raft leader of the moment) needed the kill, 2 s
 * each, while the others had exited before (bench/etcd-manager-backup.ts, 2026-12-02).
 */
const RESTORE_STOP_GRACE_MS = 500;
const STATE_FILE = 'etcd-manager-state.json';

export class LocalMember {
  private state?: VolumeState;
  private loaded = false;
  private standingBy = false;
  private started = false;
  private starting?: Promise<StepResult | undefined>;
  /** A leave under way: no start may begin until it has finished (it moves the data dir away mid-way). */
  private leaving?: Promise<string>;
  private joinQuarantined = false;
  private warnedMulti = false;
  private healthy = false;
  /** etcd's member count at the last health check: more than the spec means a shrink is due. */
  private members = 0;
  /** The version the running etcd was started with (its volume state's when it started); undefined while stopped. */
  private startedVersion?: string;
  /** A restart on another version under way (set-version): no other start may begin meanwhile. */
  private restarting?: Promise<void>;

  constructor(private readonly deps: LocalDeps) {}

  /** Reads the volume before the peer API answers: a restarted member must never look empty to the leader. */
  async load(): Promise<void> {
    this.state = await readVolumeState(this.deps.volume.mountPoint);
    this.loaded = true;
  }

  get volumeState(): VolumeState | undefined {
    return this.state;
  }

  /** True only once the volume was READ and holds no member state: positive evidence, never a default. */
  get volumeEmpty(): boolean {
    return this.loaded && this.state === undefined;
  }

  get standby(): boolean {
    return this.standingBy;
  }

  get etcdStarted(): boolean {
    return this.started;
  }

  get etcdHealthy(): boolean {
    return this.healthy;
  }

  get lastMembers(): number {
    return this.members;
  }

  /** The etcd version this member runs: what its running etcd was started with; undefined while etcd is not running. */
  get runningVersion(): string | undefined {
    return this.deps.etcd.running ? this.startedVersion : undefined;
  }

  /** More than one member, by the volume's initial cluster or etcd's last member list. */
  get multiMember(): boolean {
    return Object.keys(this.state?.initialCluster ?? {}).length > 1 || this.members > 1;
  }

  /** The pass's local-start step: etcd is started once; after that the supervisor restarts it whenever it exits. */
  async startStep(pass: Pass): Promise<StepResult | undefined> {
    if (this.started) return undefined;
    const result = await this.ensureStarted(pass);
    return this.standingBy ? { ...result, stop: true } : result;
  }

  /** One start at a time: the reconcile pass and a leader's command may both ask. */
  private ensureStarted(pass?: Pass): Promise<StepResult | undefined> {
    if (this.started || this.leaving) return Promise.resolve(undefined);
    return (this.starting ??= this.startEtcd(pass).finally(() => (this.starting = undefined)));
  }

  private async startEtcd(pass?: Pass): Promise<StepResult | undefined> {
    const { volume, log, backups } = this.deps;
    const gate = this.deps.restoreGate?.();
    if (gate === 'hold') {
      this.deps.setPhase('restore: etcd stopped, waiting for the leader');
      return undefined;
    }
    let state = await readVolumeState(volume.mountPoint);
    this.state = state;
    // A joined member stays quarantined until it is a voting member, across manager restarts too;
    // a restored one until the leader has seen every member healthy.
    let quarantined = this.joinQuarantined || gate === 'quarantined' || (state?.initialClusterState === 'existing' && !state.votingSince);
    this.joinQuarantined = false;
    if (!state && (await fileExists(join(volume.mountPoint, STANDBY_FILE)))) {
      this.deps.setPhase('standby: removed from the etcd cluster');
      if (!this.standingBy) log.info('standing by: this member was removed from the etcd cluster; etcd stays stopped until the leader adds it again', { event: 'member.standby', marker: join(volume.mountPoint, STANDBY_FILE) });
      this.standingBy = true;
      return undefined;
    }
    if (!state) {
      const spec = pass ? pass.spec : undefined;
      if (!spec) {
        this.deps.setPhase(`waiting for ${CONTROL.spec}`);
        log.info('no cluster spec yet; waiting', { event: 'spec.missing', path: backups.urlOf(CONTROL.spec) });
        return undefined;
      }
      if (spec.memberCount !== 1) {
        this.deps.setPhase(`waiting for the leader to form a ${spec.memberCount}-member cluster`);
        if (!this.warnedMulti) log.info('waiting for the leader to form the cluster', { event: 'cluster.waiting-for-leader', memberCount: spec.memberCount });
        this.warnedMulti = true;
        return undefined;
      }
      if (await backups.exists(CONTROL.created)) {
        if (this.deps.restorePending?.()) {
          this.deps.setPhase('empty volume: waiting for the queued restore');
          return undefined;
        }
        // The cluster exists but this volume is empty: starting a fresh one would fork it.
        throw new Error(`volume ${volume.id} is empty but ${backups.urlOf(CONTROL.created)} says the cluster exists; refusing to create a second cluster (restore or member replacement needed)`);
      }
      state = { clusterToken: newClusterToken(this.deps.clusterName), memberName: volume.memberName, etcdVersion: spec.etcdVersion, createdAt: this.isoNow() };
      await writeVolumeState(volume.mountPoint, state);
      this.state = state;
      quarantined = true; // new clusters start where the API server cannot see them
      log.info('creating a new one-member cluster', { event: 'cluster.creating-one-member', member: state.memberName, token: state.clusterToken });
    }
    const spec = await this.deps.processSpec(state);
    this.deps.setPhase('etcd starting');
    await this.deps.etcd.start(spec, { quarantined });
    this.started = true;
    this.startedVersion = state.etcdVersion;
    return { did: 'etcd started', waitFor: 'etcd healthy' };
  }

  /** The pass's local-health step: etcd's own view of this member; the quarantine is lifted once it votes. */
  async healthStep(): Promise<StepResult | undefined> {
    if (!this.started) return undefined;
    const { volume, backups, log, etcd } = this.deps;
    const health = await this.deps.checkLocal();
    this.healthy = health.healthy;
    if (health.members) this.members = health.members.length;
    if (!health.healthy) {
      this.deps.setPhase('etcd not healthy yet');
      log.info('etcd not healthy yet', { event: 'etcd.unhealthy', error: health.error });
      return { waitFor: 'etcd healthy' };
    }
    const me = health.members?.find((m) => m.name === volume.memberName);
    if (etcd.isQuarantined && this.deps.restoreGate?.() === 'quarantined') {
      this.deps.setPhase('restore: quarantined until every member is healthy on the restored data');
      return { waitFor: 'the leader to lift the restore quarantine' };
    }
    if (etcd.isQuarantined && me && !me.isLearner) {
      // A new cluster is only announced once it answers: then the marker, then clients.
      // A joining member stays quarantined until it is a voting member.
      if (!(await backups.exists(CONTROL.created))) {
        await backups.write(CONTROL.created, JSON.stringify({ createdAt: this.isoNow(), member: volume.memberName }) + '\n');
        log.info('cluster created', { event: 'cluster.created', marker: backups.urlOf(CONTROL.created) });
      }
      const state = this.state;
      if (state?.initialClusterState === 'existing' && !state.votingSince) {
        this.state = { ...state, votingSince: this.isoNow() };
        await writeVolumeState(volume.mountPoint, this.state);
      }
      await etcd.setQuarantined(false);
      this.deps.setPhase('etcd healthy');
      this.deps.changed('quarantine lifted');
      return { did: 'quarantine lifted', waitFor: 'etcd healthy' };
    }
    this.deps.setPhase('etcd healthy');
    // A learner waits for its promotion (the quarantine is lifted right after it).
    if (etcd.isQuarantined) return { waitFor: me ? 'promotion to a voting member' : 'etcd to list this member' };
    return undefined;
  }

  /** Restore: stops etcd and keeps it stopped (the restore gate holds starts); serialized against starts and leaves. */
  async stopForRestore(): Promise<void> {
    await this.starting?.catch(() => undefined);
    await this.leaving?.catch(() => undefined);
    await this.deps.etcd.stop({ graceMs: RESTORE_STOP_GRACE_MS });
    this.started = false;
    this.healthy = false;
  }

  /**
   * Restore: etcd started quarantined on the restored data (the volume state already written). It is
   * the one start under way: a pass meanwhile waits for it instead of starting etcd a second time.
   */
  async startRestored(state: VolumeState): Promise<void> {
    await this.startForRestore(state, true);
  }

  /** Restore, the quarantine lifted in two steps: etcd (stopped by stopForRestore) started again on its client URLs. */
  async startLifted(): Promise<void> {
    // After a manager restart the restore gate held etcd before the volume state was read.
    const state = this.state ?? (await readVolumeState(this.deps.volume.mountPoint));
    if (!state) throw new Error(`no volume state on ${this.deps.volume.mountPoint} to start etcd on`);
    await this.startForRestore(state, false);
    this.deps.changed('quarantine lifted');
  }

  private async startForRestore(state: VolumeState, quarantined: boolean): Promise<void> {
    const previous = this.starting; // set at once (no await before it), so a pass that comes now waits for this one
    const run = (async (): Promise<StepResult | undefined> => {
      await previous?.catch(() => undefined);
      this.state = state;
      this.standingBy = false;
      const spec = await this.deps.processSpec(state);
      this.deps.setPhase(quarantined ? 'etcd starting on the restored data' : 'etcd starting on the restored data, quarantine lifted');
      await this.deps.etcd.start(spec, { quarantined });
      this.started = true;
      this.startedVersion = state.etcdVersion;
      return { did: 'etcd started on the restored data', waitFor: 'etcd healthy' };
    })();
    this.starting = run.finally(() => (this.starting = undefined));
    await this.starting;
  }

  /** Restore: the leader saw every member healthy; clients may reach etcd again. */
  async liftRestoreQuarantine(): Promise<void> {
    await this.deps.etcd.setQuarantined(false, { graceMs: RESTORE_STOP_GRACE_MS });
    this.deps.setPhase('etcd healthy');
    this.deps.changed('quarantine lifted');
  }

  /** A command from the leader; the peer API's fence already checked its term. Answers once accepted. */
  async onCommand(command: LocalCommand): Promise<string> {
    const { volume, log, etcd } = this.deps;
    switch (command.action) {
      case 'quarantine':
        log.info('quarantining etcd on the leader\'s command (a membership change is under way)', { event: 'etcd.quarantined-by-leader', leader: command.leader, term: command.term });
        await etcd.setQuarantined(true);
        return 'quarantined';
      case 'leave':
        return this.leave(command);
      case 'set-version':
        return this.setVersion(command);
      case 'form':
      case 'join': {
        const body = command.body;
        const existing = await readVolumeState(volume.mountPoint);
        if (existing && existing.clusterToken !== body.clusterToken) {
          throw new Error(`member ${volume.memberName} already belongs to cluster ${existing.clusterToken}; refusing to form ${body.clusterToken}`);
        }
        if (!Object.hasOwn(body.initialCluster, volume.memberName)) throw new Error(`member ${volume.memberName} is not in the initial cluster`);
        if (!existing) {
          const state: VolumeState = {
            clusterToken: body.clusterToken,
            memberName: volume.memberName,
            etcdVersion: body.etcdVersion,
            createdAt: this.isoNow(),
            initialCluster: body.initialCluster,
            initialClusterState: command.action === 'join' ? 'existing' : 'new',
          };
          await writeVolumeState(volume.mountPoint, state);
          await rm(join(volume.mountPoint, STANDBY_FILE), { force: true });
          this.standingBy = false;
          this.state = state;
          this.joinQuarantined = command.action === 'join';
          log.info(command.action === 'join' ? 'joining the running cluster on the leader\'s command' : 'joining a new cluster on the leader\'s command', {
            event: command.action === 'join' ? 'member.joining' : 'member.forming', leader: command.leader, term: command.term, members: Object.keys(body.initialCluster),
          });
        }
        this.startInBackground(command.action);
        return command.action === 'join' ? 'joined' : 'formed';
      }
    }
  }

  /**
   * The leader's command in a version change in place: this member's etcd, same
   * data, on another version's binary. The binary is resolved first (a missing
   * or wrong one refuses the command and changes nothing), then the version is
   * written into the volume state (so a manager restarted meanwhile starts the
   * new one), and etcd restarts on it in the background: the leader watches
   * `runningVersion` and etcd's health, never this answer. Repeating it is
   * harmless: a member already running that version is left alone.
   */
  private async setVersion(command: Extract<LocalCommand, { action: 'set-version' }>): Promise<string> {
    const { volume, log } = this.deps;
    const version = command.body.etcdVersion;
    await this.starting?.catch(() => undefined);
    await this.restarting?.catch(() => undefined);
    if (this.leaving) throw new Error(`member ${volume.memberName} is leaving the cluster; no version change`);
    const state = await readVolumeState(volume.mountPoint);
    if (!state) throw new Error(`member ${volume.memberName} has no etcd member state; no version to change`);
    if (state.etcdVersion === version && this.runningVersion === version) return `already on ${version}`;
    const next: VolumeState = { ...state, etcdVersion: version };
    const spec = await this.deps.processSpec(next);
    await writeVolumeState(volume.mountPoint, next);
    this.state = next;
    log.info('restarting etcd on another version on the leader\'s command', { event: 'member.set-version', from: state.etcdVersion, to: version, binary: spec.binary, leader: command.leader, term: command.term });
    this.restarting = (async () => {
      this.deps.setPhase(`etcd restarting on ${version}`);
      this.healthy = false;
      // The same quarantine as now: a member in a version change is a voting member serving clients.
      await this.deps.etcd.start(spec, { quarantined: this.deps.etcd.isQuarantined });
      this.started = true;
      this.startedVersion = version;
    })().finally(() => (this.restarting = undefined));
    void this.restarting.then(
      () => this.deps.changed(`etcd restarted on ${version}`),
      (err: unknown) => log.error('etcd did not restart on the new version', { event: 'member.set-version-failed', to: version, err }),
    );
    return `restarting on ${version}`;
  }

  /** Starts etcd without holding the leader's command up; a failure is logged and the next pass tries again. */
  private startInBackground(why: string): void {
    if (this.started) return;
    void this.ensureStarted().then(
      () => { if (this.started) this.deps.changed(`etcd started (${why})`); },
      (err: unknown) => this.deps.log.error('etcd did not start', { event: 'etcd.start-failed', err }),
    );
  }

  /**
   * The leader's command after removing this member from etcd: stop etcd, move its data aside, stand by.
   * Serialized against starts: a reconcile pass between "etcd stopped" and "state removed" would
   * otherwise start etcd again on a fresh, empty data dir (etcd-manager-shrink.test.ts caught it).
   */
  private leave(command: LocalCommand): Promise<string> {
    return (this.leaving ??= this.leaveNow(command).finally(() => (this.leaving = undefined)));
  }

  private async leaveNow(command: LocalCommand): Promise<string> {
    const { volume, log, etcd } = this.deps;
    await this.starting?.catch(() => undefined); // a start already under way finishes first, then is undone
    const state = await readVolumeState(volume.mountPoint);
    await etcd.stop();
    this.started = false;
    let movedTo: string | undefined;
    if (state) {
      const from = etcdDataDir(volume.mountPoint, state.clusterToken);
      movedTo = join(volume.mountPoint, 'data-removed', `${state.clusterToken}-${this.isoNow().replace(/[:.]/g, '')}`);
      await mkdir(join(volume.mountPoint, 'data-removed'), { recursive: true, mode: 0o700 });
      await rename(from, movedTo).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        movedTo = undefined;
      });
    }
    await writeFile(join(volume.mountPoint, STANDBY_FILE), JSON.stringify({ removedFrom: state?.clusterToken, removedAt: this.isoNow(), leader: command.leader, term: command.term, dataMovedTo: movedTo }) + '\n', { mode: 0o600 });
    await rm(join(volume.mountPoint, STATE_FILE), { force: true });
    this.state = undefined;
    this.members = 0;
    this.standingBy = true;
    this.deps.setPhase('standby: removed from the etcd cluster');
    log.info('removed from the etcd cluster: etcd stopped, data moved aside (not deleted); standing by', { event: 'member.left', leader: command.leader, term: command.term, dataMovedTo: movedTo });
    this.deps.changed('standing by');
    return 'standing by';
  }

  private isoNow(): string {
    return new Date(this.deps.clock.wallNow()).toISOString();
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
