// A member's part of a restore, on the leader's fenced commands
// (controller/restore.ts drives them):
//   restore-prepare  download + verify the backup and `etcdctl snapshot restore`
//                    it into <volume>/data/<new token>, BESIDE the live data,
//                    which nothing here touches; in the background (the
//                    command is answered at once, the state is in /v1/info)
//   restore-stop     stop etcd (and keep it stopped across a manager restart)
//   restore-start    move the old data dir to the trash, switch the volume state
//                    to the restored cluster, start etcd quarantined
//   restore-lift-stop  stop etcd to lift the quarantine (once the leader saw every
//                    member healthy); kept stopped across a manager restart
//   restore-lift     start etcd on its client URLs (after restore-lift-stop on
//                    every member: see controller/restore.ts), or, on a member
//                    still `started` (an older leader), restart it there at once
//   restore-abort    before stop only: discard what was prepared
// Every step is recorded in <volume>/etcd-manager-restore.json BEFORE it acts,
// so a manager restarted half way resumes from the record: a member that was
// told to stop never starts its old etcd again, one that switched starts
// quarantined on the restored data. Each command is idempotent (a new leader
// sends them again). The trash on the volume is emptied after --trash-retention.
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../../shared/log.js';
import type { MemberRestoreInfo, MemberRestoreState, RestoreBody, RestoreCommand } from '../peer/protocol.js';
import { etcdDataDir, readVolumeState, writeVolumeState, type VolumeState } from '../volume-state.js';
import type { Clock } from './types.js';

export const RESTORE_RECORD_FILE = 'etcd-manager-restore.json';
/** kOps' folder name on the volume (backup/trash.ts TRASH_DIR; not imported, so start-up loads none of the backup library). */
export const TRASH_FOLDER = 'data-trashcan';
/** How often a member looks at its trash. */
const TRASH_CHECK_MS = 60 * 60_000;

/** A backup that is itself bad (a failed verify check): the restore is refused, never retried. */
export class BadBackupError extends Error {
  constructor(readonly check: string, message: string) {
    super(message);
    this.name = 'BadBackupError';
  }
}

/** What the member's own etcd does for a restore (LocalMember). */
export interface LocalRestoreControl {
  /** This member's volume state as loaded. */
  readonly volumeState: VolumeState | undefined;
  /** Stops etcd and keeps it stopped (serialized against starts). */
  stopForRestore(): Promise<void>;
  /** Starts etcd quarantined on this (restored) state. */
  startRestored(state: VolumeState): Promise<void>;
  /** Starts etcd, stopped for the lift, on its client URLs (the volume's state is the restored one). */
  startLifted(): Promise<void>;
  /** Moves the client URLs back from the quarantine port. */
  liftRestoreQuarantine(): Promise<void>;
}

export interface RestoreDataRequest {
  backup: string;
  clusterToken: string;
  initialCluster: Record<string, string[]>;
  onProgress(bytes: number): void;
}

export interface MemberRestoreDeps {
  volume: { mountPoint: string; memberName: string };
  local: () => LocalRestoreControl;
  /**
   * Downloads and verifies the backup and restores it into
   * `<volume>/data/<clusterToken>` (backup/restore.ts restoreMemberData).
   * Throws BadBackupError when the backup itself is bad.
   */
  restoreData(request: RestoreDataRequest): Promise<void>;
  /** Empties the trash of entries older than the retention (backup/trash.ts emptyTrash); returns what went. */
  emptyTrash(trashRoot: string, nowMs: number): Promise<string[]>;
  /** Moves a data dir into the trash (backup/trash.ts moveToTrash); undefined when it did not exist. */
  moveToTrash(path: string, trashRoot: string, nowMs: number): Promise<string | undefined>;
  clock: Clock;
  log: Logger;
  /** This member's restore state changed: tell the leader. */
  changed(reason: string): void;
}

/** The record on the volume. `state` is the step reached; the next command acts from there. */
interface RestoreRecord extends RestoreBody {
  leader: string;
  term: number;
  state: Exclude<MemberRestoreState, 'stopping' | 'lift-stopping'>;
  error?: string;
  badBackup?: string;
  /** The live cluster's token when the restore began (its data is trashed at start). */
  oldClusterToken?: string;
  trashedTo?: string;
  updatedAt: string;
}

/** What a member's stop for a restore says in its logs: before the switch to the restored data, and before the lift. */
interface StopWords {
  msg: string;
  event: string;
  reason: string;
  failMsg: string;
}
const STOP_FOR_RESTORE: StopWords = { msg: 'etcd stopped for the restore', event: 'member.restore-stopped', reason: 'restore: etcd stopped', failMsg: 'cannot stop etcd for the restore (the leader asks again)' };
const STOP_FOR_LIFT: StopWords = { msg: 'etcd stopped to lift the restore quarantine', event: 'member.restore-lift-stopped', reason: 'restore: etcd stopped for the lift', failMsg: 'cannot stop etcd to lift the quarantine (the leader asks again)' };

export class MemberRestore {
  private record?: RestoreRecord;
  private job?: Promise<void>;
  /** The etcd stop asked by restore-stop or restore-lift-stop has finished (false while it runs, and after it failed). */
  private stopDone = true;
  /** That stop, while it runs. */
  private stopping?: Promise<void>;
  private starting?: Promise<void>;
  private lifting?: Promise<void>;
  private bytes = 0;
  private abortAfterJob = false;
  private trashCheckedAt = -Infinity;

  constructor(private readonly deps: MemberRestoreDeps) {}

  private get path(): string {
    return join(this.deps.volume.mountPoint, RESTORE_RECORD_FILE);
  }

  private get dataRoot(): string {
    return join(this.deps.volume.mountPoint, 'data');
  }

  /** Reads the record (before the peer API answers and before etcd is first started). */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const record = JSON.parse(text) as RestoreRecord;
    this.record = record;
    if (record.state === 'preparing') {
      // The download was running in the process that died: say so; the leader asks again.
      await this.save({ ...record, state: 'failed', error: 'interrupted by a manager restart' });
    }
    this.deps.log.info('a restore was under way on this volume', { event: 'member.restore-resumed', planId: record.planId, state: this.record.state });
  }

  /** For /v1/info. */
  info(): MemberRestoreInfo | undefined {
    const r = this.record;
    if (!r) return undefined;
    const state: MemberRestoreState = !this.stopDone && r.state === 'stopped' ? 'stopping' : !this.stopDone && r.state === 'lift-stopped' ? 'lift-stopping' : r.state;
    return {
      planId: r.planId, state,
      ...(r.error ? { error: r.error } : {}), ...(r.badBackup ? { badBackup: r.badBackup } : {}),
      ...(r.state === 'preparing' ? { bytes: this.bytes } : {}),
    };
  }

  /**
   * What LocalMember may do with etcd: 'hold' (told to stop for a restore: no
   * start), 'quarantined' (restored: start quarantined and keep it so until the
   * leader lifts it), or undefined (nothing to do with a restore).
   */
  gate(): 'hold' | 'quarantined' | undefined {
    if (this.record?.state === 'stopped' || this.record?.state === 'lift-stopped') return 'hold';
    if (this.record?.state === 'started') return 'quarantined';
    return undefined;
  }

  /** A restore command from the leader (its term already admitted by the voter). Answers once accepted. */
  async onCommand(command: RestoreCommand): Promise<string> {
    const { log } = this.deps;
    const r = this.record;
    const planId = command.body.planId;
    const other = r && r.planId !== planId ? r : undefined;
    switch (command.action) {
      case 'restore-prepare': {
        if (other) {
          if (other.state === 'stopped' || other.state === 'started') throw new Error(`member ${this.deps.volume.memberName} is in the middle of restore ${other.planId} (${other.state}); refusing to prepare ${planId}`);
          await this.discard(other); // a plan dropped by an earlier leader
        }
        const live = this.deps.local().volumeState;
        if (live?.clusterToken === command.body.clusterToken) throw new Error(`restore ${planId}: the new cluster token is this member's live one; refusing`);
        const mine = this.record?.planId === planId ? this.record : undefined;
        if (mine && mine.state !== 'failed') return mine.state;
        await this.prepare(command);
        return 'preparing';
      }
      case 'restore-abort': {
        if (!r || other) return 'nothing to abort';
        if (r.state === 'stopped' || r.state === 'started') throw new Error(`restore ${planId} is past its stop on ${this.deps.volume.memberName}; it can only go forward`);
        if (this.job) {
          this.abortAfterJob = true;
          return 'aborting';
        }
        await this.discard(r);
        log.info('restore aborted on the leader\'s command: prepared data discarded, live data untouched', { event: 'member.restore-aborted', planId, leader: command.leader, term: command.term });
        this.deps.changed('restore aborted');
        return 'aborted';
      }
      case 'restore-stop': {
        if (!r || other) throw new Error(`restore ${planId} was not prepared on ${this.deps.volume.memberName}`);
        if (r.state === 'stopped') {
          this.stopInBackground(r, command, STOP_FOR_RESTORE); // again, if the last stop failed
          return this.stopDone ? 'stopped' : 'stopping';
        }
        if (r.state === 'started') return r.state;
        if (r.state !== 'prepared') throw new Error(`restore ${planId} is ${r.state} on ${this.deps.volume.memberName}, not prepared`);
        // Recorded first: from here on no start of the old etcd, even after a manager restart.
        await this.recordAndStop({ ...r, state: 'stopped', leader: command.leader, term: command.term, oldClusterToken: this.deps.local().volumeState?.clusterToken }, command, STOP_FOR_RESTORE);
        return 'stopping';
      }
      case 'restore-start': {
        if (!r || other) throw new Error(`restore ${planId} is not under way on ${this.deps.volume.memberName}`);
        if (r.state === 'started') return 'started';
        if (r.state !== 'stopped' || !this.stopDone) throw new Error(`restore ${planId}: etcd on ${this.deps.volume.memberName} is not stopped yet`);
        this.starting ??= this.switchAndStart(r, command).finally(() => (this.starting = undefined));
        return 'starting';
      }
      case 'restore-lift-stop': {
        if (!r || other) throw new Error(`restore ${planId} is not under way on ${this.deps.volume.memberName}`);
        if (r.state === 'lift-stopped') {
          this.stopInBackground(r, command, STOP_FOR_LIFT); // again, if the last stop failed
          return this.stopDone ? 'lift-stopped' : 'lift-stopping';
        }
        if (this.lifting) return 'lifting'; // a one-step lift (restore-lift while started) is under way
        if (r.state !== 'started') throw new Error(`restore ${planId} is ${r.state} on ${this.deps.volume.memberName}, not started`);
        // Recorded first: a manager restarted from here on keeps etcd stopped until the leader's lift.
        await this.recordAndStop({ ...r, state: 'lift-stopped', leader: command.leader, term: command.term, updatedAt: this.isoNow() }, command, STOP_FOR_LIFT);
        return 'lift-stopping';
      }
      case 'restore-lift': {
        if (!r || other) return 'lifted'; // already lifted (the record is gone)
        if (r.state !== 'started' && r.state !== 'lift-stopped') throw new Error(`restore ${planId} is ${r.state} on ${this.deps.volume.memberName}, not started`);
        if (r.state === 'lift-stopped' && !this.stopDone) throw new Error(`restore ${planId}: etcd on ${this.deps.volume.memberName} is not stopped yet`);
        // Starts etcd on its client URLs (from lift-stopped), or restarts it there (from started, in one
        // step): in the background, the record removed once done.
        const start = r.state === 'lift-stopped' ? () => this.deps.local().startLifted() : () => this.deps.local().liftRestoreQuarantine();
        this.lifting ??= (async () => {
          try {
            await start();
            await rm(this.path, { force: true });
            this.record = undefined;
            this.checkTrashSoon();
            log.info('restore done on this member: quarantine lifted', { event: 'member.restore-lifted', planId, leader: command.leader, term: command.term });
            this.deps.changed('restore: quarantine lifted');
          } catch (err) {
            log.error('cannot lift the quarantine (the leader asks again)', { event: 'member.restore-lift-failed', planId, err });
          }
        })().finally(() => (this.lifting = undefined));
        return 'lifting';
      }
    }
  }

  /** Saves `record` (a state in which etcd stays stopped, across a manager restart too), then stops etcd in the background. */
  private async recordAndStop(record: RestoreRecord, command: RestoreCommand, words: StopWords): Promise<void> {
    await this.save(record);
    this.stopDone = false;
    this.stopInBackground(record, command, words);
  }

  /**
   * Stops etcd in the background unless it has stopped or a stop runs: stopDone stays false until it
   * has, and the leader is told then. A stop that failed is tried again on the leader's next
   * restore-stop or restore-lift-stop (it sends one every pass to a member still stopping).
   */
  private stopInBackground(record: RestoreRecord, command: RestoreCommand, words: StopWords): void {
    if (this.stopDone || this.stopping) return;
    const { log } = this.deps;
    this.stopping = this.deps.local().stopForRestore().then(
      () => {
        this.stopDone = true;
        log.info(words.msg, { event: words.event, planId: record.planId, leader: command.leader, term: command.term });
        this.deps.changed(words.reason);
      },
      (err: unknown) => log.error(words.failMsg, { event: 'member.restore-stop-failed', planId: record.planId, err }),
    ).finally(() => (this.stopping = undefined));
  }

  private async prepare(command: Extract<RestoreCommand, { action: 'restore-prepare' }>): Promise<void> {
    const { log } = this.deps;
    const body = command.body;
    const record: RestoreRecord = { ...body, leader: command.leader, term: command.term, state: 'preparing', updatedAt: this.isoNow() };
    await this.save(record);
    this.bytes = 0;
    this.abortAfterJob = false;
    log.info('preparing the restore beside the live data', { event: 'member.restore-preparing', planId: body.planId, backup: body.backup, leader: command.leader, term: command.term });
    this.job = (async () => {
      try {
        await this.removeStaged(body.clusterToken); // left by a prepare cut off by a restart
        await this.deps.restoreData({ backup: body.backup, clusterToken: body.clusterToken, initialCluster: body.initialCluster, onProgress: (b) => (this.bytes = b) });
        await this.save({ ...record, state: 'prepared', updatedAt: this.isoNow() });
        log.info('restore prepared: the backup verified and restored beside the live data', { event: 'member.restore-prepared', planId: body.planId, backup: body.backup });
      } catch (err) {
        const bad = err instanceof BadBackupError ? err.check : undefined;
        const error = (err as Error).message.split('\n')[0];
        // Nobody awaits this job: a record that cannot be written is logged, never an unhandled rejection.
        await this.save({ ...record, state: 'failed', error, ...(bad ? { badBackup: bad } : {}), updatedAt: this.isoNow() })
          .catch((saveErr: unknown) => log.error('cannot record the failed prepare', { event: 'member.restore-record-failed', planId: body.planId, err: saveErr }));
        log.error(bad ? 'the backup is bad: restore refused here, live data untouched' : 'preparing the restore failed (live data untouched)', { event: 'member.restore-prepare-failed', planId: body.planId, backup: body.backup, ...(bad ? { check: bad } : {}), error });
      }
    })().finally(async () => {
      this.job = undefined;
      if (this.abortAfterJob && this.record?.planId === body.planId) {
        await this.discard(this.record).catch((err: unknown) => log.warn('cannot discard the prepared restore', { err }));
        log.info('restore aborted on the leader\'s command: prepared data discarded, live data untouched', { event: 'member.restore-aborted', planId: body.planId });
      }
      this.deps.changed('restore prepared');
    });
  }

  /** Old data to the trash, the volume switched to the restored cluster, etcd started quarantined. */
  private async switchAndStart(r: RestoreRecord, command: RestoreCommand): Promise<void> {
    const { volume, log } = this.deps;
    try {
      const live = await readVolumeState(volume.mountPoint);
      let trashedTo = r.trashedTo;
      if (live && live.clusterToken !== r.clusterToken) {
        trashedTo = (await this.deps.moveToTrash(etcdDataDir(volume.mountPoint, live.clusterToken), join(volume.mountPoint, TRASH_FOLDER), this.deps.clock.wallNow())) ?? trashedTo;
      }
      const state: VolumeState = {
        clusterToken: r.clusterToken, memberName: volume.memberName, etcdVersion: r.etcdVersion, createdAt: this.isoNow(),
        initialCluster: r.initialCluster, initialClusterState: 'new',
      };
      if (live?.clusterToken !== r.clusterToken) await writeVolumeState(volume.mountPoint, state);
      const started: RestoreRecord = { ...r, state: 'started', leader: command.leader, term: command.term, ...(trashedTo ? { trashedTo } : {}), updatedAt: this.isoNow() };
      await this.save(started);
      await this.deps.local().startRestored(live?.clusterToken === r.clusterToken ? live : state);
      log.info('etcd started on the restored data, quarantined', { event: 'member.restore-started', planId: r.planId, oldDataMovedTo: trashedTo, leader: command.leader, term: command.term });
      this.deps.changed('restore: etcd started');
    } catch (err) {
      log.error('cannot start etcd on the restored data (the leader asks again)', { event: 'member.restore-start-failed', planId: r.planId, err });
    }
  }

  /** Discards a prepared (or failed) restore: its staged data dir and the record. Never the live data. */
  private async discard(r: RestoreRecord): Promise<void> {
    await this.removeStaged(r.clusterToken);
    await rm(this.path, { force: true });
    if (this.record?.planId === r.planId) this.record = undefined;
  }

  /** Removes <data>/<token> and its staging leftovers, never the live cluster's dir. */
  private async removeStaged(token: string): Promise<void> {
    if (this.deps.local().volumeState?.clusterToken === token) return;
    await rm(etcdDataDir(this.deps.volume.mountPoint, token), { recursive: true, force: true });
    let entries: string[] = [];
    try {
      entries = await readdir(this.dataRoot);
    } catch {
      return;
    }
    for (const e of entries) if (e.startsWith(`.restoring-${token}-`)) await rm(join(this.dataRoot, e), { recursive: true, force: true });
  }

  /** The record's writes, one at a time: the background prepare job and a command may both save, and share the temp file. */
  private saving: Promise<void> = Promise.resolve();

  private save(record: RestoreRecord): Promise<void> {
    const write = async () => {
      await mkdir(this.deps.volume.mountPoint, { recursive: true });
      await writeFile(`${this.path}.tmp`, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
      await rename(`${this.path}.tmp`, this.path);
      this.record = record;
    };
    const next = this.saving.then(write, write);
    this.saving = next.catch(() => undefined);
    return next;
  }

  /** Every member's step: empties the trash of entries past --trash-retention (looked at hourly). */
  async trashStep(): Promise<void> {
    const now = this.deps.clock.now();
    if (now - this.trashCheckedAt < TRASH_CHECK_MS) return;
    this.trashCheckedAt = now;
    const root = join(this.deps.volume.mountPoint, TRASH_FOLDER);
    try {
      await stat(root);
    } catch {
      return; // no trash: nothing to load or do
    }
    const removed = await this.deps.emptyTrash(root, this.deps.clock.wallNow());
    if (removed.length > 0) this.deps.log.info('emptied the trash of data older than the trash retention', { event: 'trash.emptied', entries: removed });
  }

  /** Looks at the trash at the next pass (after a restore moved data there). */
  checkTrashSoon(): void {
    this.trashCheckedAt = -Infinity;
  }

  private isoNow(): string {
    return new Date(this.deps.clock.wallNow()).toISOString();
  }
}
