// Backups by the acting manager (the elected leader, or the manager of a
// one-member cluster): every --backup-interval, before every membership change
// (and, through takeNow, before a restore or an upgrade), and on demand
// (operator requests from the inbox, controller/commands.ts).
//
// One backup at a time in this process: every backup is a job on one chain, so
// two requests, or a request and a scheduled backup, run one after the other,
// never together. Jobs run beside the reconcile pass, not inside it: a 1 GB
// snapshot takes longer than a pass may (the watchdog would call the loop
// stuck and the lease would lapse). The pass starts them and looks at what
// they did; a finished job wakes the loop.
//
// The time of the last backup comes from the store (one listing when this
// manager starts acting in a term), so it survives a change of leader; after
// each backup one retention pass runs (one more listing, backup/retention.ts).
// The backup library is loaded the first time it is needed, not at start.
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { BackupKey } from '../backup/encryption.js';
import type { RetentionPolicy } from '../backup/retention.js';
import type { SnapshotSource } from '../backup/snapshot-stream.js';
import type { ManagerRequest, RequestInbox } from '../control/requests.js';
import type { StatusBackup, StatusRunningBackup } from '../control/status.js';
import { Transform, type TransformCallback } from 'node:stream';
import type { Clock, Pass, StepResult } from './types.js';

export type BackupLibrary = typeof import('../backup/index.js');

/** Why a backup is taken (kept in its sidecar, its log lines and its metrics). */
export type BackupReason = 'scheduled' | 'on-demand' | 'before-membership-change' | 'before-restore' | 'before-upgrade' | 'v2-migration';

/** A snapshot source on one member, and how to let it go. */
export interface SnapshotLease {
  source: SnapshotSource;
  endpoint: string;
  close(): void;
}

/** What the last successful backup was (from this manager, or read back from the store). */
export interface LastBackup {
  name: string;
  /** Unix ms the backup started (its name's second, for backups read back from the store). */
  startedAtMs: number;
  storedBytes?: number;
  snapshotBytes?: number;
  durationMs?: number;
  reason?: string;
  revision?: string;
  encrypted?: boolean;
}

/** Where backup facts go (the manager's Prometheus metrics). */
export interface BackupMetricsSink {
  /** The last successful backup (undefined: none known). */
  setLast(last: LastBackup | undefined): void;
  succeeded(reason: BackupReason): void;
  failed(reason: BackupReason): void;
}

export interface BackupDeps {
  store: StateStore;
  /** A snapshot source on one healthy member (this manager's own etcd first); undefined when none answers. */
  openSnapshot(): Promise<SnapshotLease | undefined>;
  /** The encryption key, read at every backup (a rotated key needs no restart); undefined: not encrypted. */
  key(): Promise<BackupKey | undefined>;
  /** The spec written into each backup's meta (kOps' restore reads it). */
  clusterSpec(): { memberCount: number; etcdVersion: string } | undefined;
  intervalMs: number;
  retention: RetentionPolicy;
  clock: Clock;
  log: Logger;
  /** Still the acting manager (checked before each job starts). */
  isActing(): boolean;
  /** The leader term (0 for a one-member cluster): a new term reads the last backup time from the store again. */
  term(): number;
  /** Runs a reconcile pass soon (a job finished). */
  wake(reason: string): void;
  metrics?: BackupMetricsSink;
  /**
   * Set when the cluster runs etcd 2.x: its backups are copies of this member's data directory
   * (`etcdctl backup`, as kOps takes them), not v3 snapshots. Undefined for a v3 cluster.
   */
  v2DataDir?(): Promise<{ dataDir: string; etcdctl: string; etcdVersion: string } | undefined>;
  /** The backup library; loaded on first use by default. */
  library?(): Promise<BackupLibrary>;
  /** Names (BackupNamer by default). */
  nextName?(): string;
  /** After a failed scheduled backup, the next attempt waits this long (default: the interval, at most 1 min). */
  retryAfterMs?: number;
  /** TEST ONLY (--test-hook=hold-backup-upload=<reason>): the on-demand backup asked with this reason holds its upload. */
  holdUploadReason?: string;
}

/** A pre-change backup this recent still counts for the change it was taken for. */
const PRE_CHANGE_VALID_MS = 5 * 60_000;
/** A running request's result is refreshed this often (it is the request's liveness signal too). */
const REQUEST_PROGRESS_MS = 2_000;
/** The test hook holds the upload once this much has gone through (more than one S3 part). */
const HOLD_AFTER_BYTES = 10 * 1024 * 1024;

export class NoHealthyMemberError extends Error {}

/** What a finished backup job reports (a v2 backup has no snapshot, so no snapshot facts). */
export interface FinishedBackup {
  name: string;
  storedBytes: number;
  durationMs: number;
  snapshotBytes?: number;
  revision?: string;
  encrypted: boolean;
}

export class BackupController {
  private lib?: BackupLibrary;
  private namer?: { next(): string };
  private chain: Promise<unknown> = Promise.resolve();
  /** Jobs on the chain (running or waiting). */
  private jobs = 0;
  private current?: StatusRunningBackup;
  private lastBackup?: LastBackup;
  private loadedTerm?: number;
  private retryAt = 0;
  private readonly requests: ManagerRequest[] = [];
  private readonly requestIds = new Set<string>();
  private inbox?: RequestInbox;
  private preChange?: { done: boolean; ok: boolean; at: number; retryAt: number };
  private spec?: { memberCount: number; etcdVersion: string };
  /** A restore is under way: queued requests wait for it to end (etcd is stopped part of the time). */
  private paused = false;

  constructor(private readonly deps: BackupDeps) {}

  /** The last successful backup known to this manager. */
  get last(): LastBackup | undefined {
    return this.lastBackup;
  }

  /** The backup running now, if any (for the status object). */
  get running(): StatusRunningBackup | undefined {
    return this.current ? { ...this.current } : undefined;
  }

  /** On-demand requests waiting for their turn. */
  get queued(): string[] {
    return this.requests.map((r) => r.id);
  }

  get busy(): boolean {
    return this.jobs > 0;
  }

  private async library(): Promise<BackupLibrary> {
    this.lib ??= await (this.deps.library?.() ?? import('../backup/index.js'));
    return this.lib;
  }

  private async name(): Promise<string> {
    if (this.deps.nextName) return this.deps.nextName();
    const lib = await this.library();
    this.namer ??= new lib.BackupNamer({ now: () => this.deps.clock.wallNow(), randomInt: (n) => Math.floor(Math.random() * n) });
    return this.namer.next();
  }

  /**
   * Takes a backup now, after any backup already running or queued (never two
   * at once). The hook for membership changes, restores and upgrades. Throws
   * when it fails (the failure is logged and counted).
   */
  takeNow(reason: BackupReason, detail?: string, options: { requestId?: string; requestReason?: string; onProgress?: (bytes: number) => void } = {}): Promise<FinishedBackup> {
    return this.onChain(reason, () => this.take(reason, detail, options));
  }

  /** Runs `job` on the chain, after every job before it; a finished job (either way) wakes the loop. */
  private onChain(reason: BackupReason, job: () => Promise<FinishedBackup>): Promise<FinishedBackup> {
    this.jobs++;
    const queued = this.chain.then(job);
    this.chain = queued.catch(() => undefined).finally(() => {
      this.jobs--;
      this.deps.wake(`backup finished (${reason})`);
    });
    return queued;
  }

  private async take(reason: BackupReason, detail: string | undefined, options: { requestId?: string; requestReason?: string; onProgress?: (bytes: number) => void }): Promise<FinishedBackup> {
    const { log, clock, store } = this.deps;
    const fail = (err: unknown): never => {
      this.deps.metrics?.failed(reason);
      log.error('backup failed', { event: 'backup.failed', reason, ...(detail ? { detail } : {}), ...(options.requestId ? { requestId: options.requestId } : {}), err });
      throw err;
    };
    let lib: BackupLibrary;
    let lease: SnapshotLease | undefined;
    try {
      lib = await this.library();
      const v2 = await this.deps.v2DataDir?.();
      if (v2) return await this.takeV2(lib, v2, reason, detail, options.requestId);
      lease = await this.deps.openSnapshot();
    } catch (err) {
      return fail(err);
    }
    if (!lease) return fail(new NoHealthyMemberError('no etcd member answers: nothing to back up'));
    const snapshot = lease;
    try {
      const key = await this.deps.key();
      const hold = this.deps.holdUploadReason !== undefined && options.requestReason === this.deps.holdUploadReason;
      return await this.produce(lib, reason, detail, options.requestId, { endpoint: snapshot.endpoint, encrypted: key !== undefined }, async (name) => {
        const taken = await lib.takeBackup({
          store,
          name,
          snapshot: hold ? holdingSource(snapshot.source, log) : snapshot.source,
          clusterSpec: this.deps.clusterSpec() ?? this.spec ?? {},
          ...(key ? { key } : {}),
          reason: detail ? `${reason}: ${detail}` : reason,
          now: () => clock.wallNow(),
          onProgress: (p) => {
            if (this.current) this.current.bytes = p.snapshotBytes;
            options.onProgress?.(p.snapshotBytes);
          },
        });
        return { name, storedBytes: taken.storedBytes, durationMs: taken.durationMs, snapshotBytes: taken.sidecar.snapshot.bytes, revision: taken.sidecar.etcd.revision, encrypted: taken.sidecar.encryption !== undefined };
      });
    } catch (err) {
      return fail(err);
    } finally {
      snapshot.close();
    }
  }

  /** A backup of an etcd 2.x cluster: a copy of this member's data directory (backup/v2-take.ts). */
  private async takeV2(lib: BackupLibrary, v2: { dataDir: string; etcdctl: string; etcdVersion: string }, reason: BackupReason, detail: string | undefined, requestId: string | undefined): Promise<FinishedBackup> {
    if (await this.deps.key()) {
      throw new Error('a backup key is configured, and an etcd 2.x backup (a copy of the data directory, as kOps takes it) cannot be encrypted: refusing to store it in the clear');
    }
    return this.produce(lib, reason, detail, requestId, { format: 'v2-data-dir', etcdVersion: v2.etcdVersion }, async (name) => ({
      ...(await lib.takeV2Backup({
        store: this.deps.store, name, dataDir: v2.dataDir, etcdctl: v2.etcdctl, etcdVersion: v2.etcdVersion,
        clusterSpec: this.deps.clusterSpec() ?? this.spec ?? {}, now: () => this.deps.clock.wallNow(),
      })),
      encrypted: false,
    }));
  }

  /**
   * A backup written by `write` (the etcd2 → etcd3 change's conversion, migrate/convert.ts) as a job
   * of the chain: after any backup running or queued, named, logged, counted and followed by a
   * retention pass like the others. `write` gets the name and the backup key (undefined: none).
   */
  convertNow(detail: string, write: (name: string, key: BackupKey | undefined) => Promise<FinishedBackup>): Promise<FinishedBackup> {
    const job = this.onChain('v2-migration', async () => {
      const lib = await this.library();
      const key = await this.deps.key();
      return this.produce(lib, 'v2-migration', detail, undefined, { format: 'v3-snapshot' }, (name) => write(name, key));
    });
    return job.catch((err: unknown) => {
      this.deps.metrics?.failed('v2-migration');
      this.deps.log.error('backup failed', { event: 'backup.failed', reason: 'v2-migration', detail, err });
      throw err;
    });
  }

  /** Runs one backup that `write` makes under a fresh name: the running status, the log lines, the metrics, the retention pass. */
  private async produce(lib: BackupLibrary, reason: BackupReason, detail: string | undefined, requestId: string | undefined, facts: Record<string, string | boolean>, write: (name: string) => Promise<FinishedBackup>): Promise<FinishedBackup> {
    const { log, clock } = this.deps;
    const name = await this.name();
    const startedAtMs = clock.wallNow();
    this.current = { reason, name, startedAt: new Date(startedAtMs).toISOString(), bytes: 0, ...(requestId ? { requestId } : {}) };
    try {
      log.info('backup started', { event: 'backup.started', name, reason, ...facts, ...(detail ? { detail } : {}), ...(requestId ? { requestId } : {}) });
      const taken = await write(name);
      this.lastBackup = {
        name, startedAtMs, storedBytes: taken.storedBytes, durationMs: taken.durationMs, reason, encrypted: taken.encrypted,
        ...(taken.snapshotBytes !== undefined ? { snapshotBytes: taken.snapshotBytes } : {}), ...(taken.revision !== undefined ? { revision: taken.revision } : {}),
      };
      this.deps.metrics?.succeeded(reason);
      this.deps.metrics?.setLast(this.lastBackup);
      log.info('backup completed', {
        event: 'backup.completed', name, reason, ...facts, ...(requestId ? { requestId } : {}), storedBytes: taken.storedBytes, durationMs: taken.durationMs,
        ...(taken.snapshotBytes !== undefined ? { snapshotBytes: taken.snapshotBytes } : {}), ...(taken.revision !== undefined ? { revision: taken.revision } : {}),
      });
      await this.cleanup(lib);
      return taken;
    } finally {
      this.current = undefined;
    }
  }

  /** One retention pass (one listing of the store); its failures are logged, never the backup's. */
  private async cleanup(lib: BackupLibrary): Promise<void> {
    const { log, clock, store } = this.deps;
    try {
      const r = await lib.cleanupBackups(store, { policy: this.deps.retention, now: clock.wallNow() });
      log.info('retention pass', {
        event: 'backup.retention', kept: r.plan.keep.length, deleted: r.deleted.length, deletedIncomplete: r.deletedIncomplete.length, failed: r.failed.length,
        ...(r.deleted.length ? { deletedNames: r.deleted } : {}), ...(r.failed.length ? { failures: r.failed.map((f) => `${f.name}: ${f.error}`) } : {}),
      });
    } catch (err) {
      log.warn('retention pass failed (the next backup tries again)', { event: 'backup.retention-failed', err });
    }
  }

  /** The newest complete backup in the store: what "the last backup" is for a manager that starts acting. */
  private async loadLast(): Promise<void> {
    const { store, log } = this.deps;
    const lib = await this.library();
    const newest = lib.newestBackup(await lib.listBackups(store));
    if (!newest?.time) {
      log.info('no backup in the store yet', { event: 'backup.last-from-store', name: null });
      this.deps.metrics?.setLast(this.lastBackup);
      return;
    }
    if (this.lastBackup && this.lastBackup.name >= newest.name) {
      // Still one listing of the store, and said so: every term's listing has its event.
      log.info('last backup read from the store: none newer than the one this manager knows', { event: 'backup.last-from-store', name: newest.name, known: this.lastBackup.name });
      return;
    }
    let last: LastBackup = { name: newest.name, startedAtMs: newest.time.getTime() };
    try {
      const info = await lib.loadBackupInfo(store, newest.name);
      const s = info.sidecar;
      if (s) {
        last = {
          ...last, storedBytes: s.stored.bytes, snapshotBytes: s.snapshot.bytes, durationMs: s.durationMs, revision: s.etcd.revision,
          encrypted: s.encryption !== undefined, ...(s.reason ? { reason: s.reason.split(':')[0] } : {}),
        };
      }
    } catch (err) {
      log.warn('cannot read the newest backup\'s sidecar (its time is known from its name)', { name: newest.name, err });
    }
    this.lastBackup = last;
    this.deps.metrics?.setLast(last);
    log.info('last backup read from the store', { event: 'backup.last-from-store', name: last.name, startedAt: new Date(last.startedAtMs).toISOString() });
  }

  /**
   * The pass's backup step (acting manager only): learns the last backup time
   * when it starts acting in a term, starts the next queued request, or the
   * scheduled backup when it is due. Never waits for a backup to finish.
   */
  async step(pass: Pass): Promise<StepResult | undefined> {
    if (!this.deps.isActing()) {
      if (this.loadedTerm !== undefined) this.deps.metrics?.setLast(undefined); // only the acting manager reports it
      this.loadedTerm = undefined;
      this.dropQueue();
      return undefined;
    }
    if (pass.spec) this.spec = pass.spec;
    this.paused = pass.restoring === true;
    if (!pass.created) return undefined;
    const term = this.deps.term();
    if (this.loadedTerm !== term) {
      await this.loadLast();
      this.loadedTerm = term;
    }
    if (pass.restoring || this.busy) return undefined;
    if (this.pump()) return undefined;
    if (this.scheduledDue()) {
      this.takeNow('scheduled').then(
        () => (this.retryAt = 0),
        () => (this.retryAt = this.deps.clock.wallNow() + (this.deps.retryAfterMs ?? Math.min(this.deps.intervalMs, 60_000))),
      );
      return { did: 'scheduled backup started' };
    }
    return undefined;
  }

  private scheduledDue(): boolean {
    const now = this.deps.clock.wallNow();
    if (now < this.retryAt) return false;
    return !this.lastBackup || now - this.lastBackup.startedAtMs >= this.deps.intervalMs;
  }

  /**
   * The membership step's hook: true once a backup has completed since the
   * change was first wanted; until then it starts one (in the background) and
   * answers false, and the change waits. A failed backup is retried after a
   * while; the change waits for it (a change is never made without a backup).
   */
  async beforeChange(what: string): Promise<boolean> {
    const now = this.deps.clock.now();
    const p = this.preChange;
    if (p?.done && p.ok && now - p.at < PRE_CHANGE_VALID_MS) {
      this.preChange = undefined;
      return true;
    }
    if (p && !p.done) return false;
    if (p?.done && !p.ok && now < p.retryAt) return false;
    if (!this.deps.isActing()) return false;
    const state = { done: false, ok: false, at: 0, retryAt: 0 };
    this.preChange = state;
    this.takeNow('before-membership-change', what).then(
      () => Object.assign(state, { done: true, ok: true, at: this.deps.clock.now() }),
      () => Object.assign(state, { done: true, ok: false, retryAt: this.deps.clock.now() + (this.deps.retryAfterMs ?? 30_000) }),
    );
    return false;
  }

  /**
   * Requests from the inbox (oldest first; a poll lists again those not
   * finished, so ids already here are skipped). They run one at a time.
   */
  enqueue(requests: ManagerRequest[], inbox: RequestInbox): void {
    this.inbox = inbox;
    for (const r of requests) {
      if (this.requestIds.has(r.id)) continue;
      this.requestIds.add(r.id);
      this.requests.push(r);
      this.deps.log.info('backup request queued', { event: 'backup.request-queued', requestId: r.id, requestedBy: r.requestedBy, queued: this.requests.length });
    }
    this.pump();
  }

  /** Starts the next request when nothing runs. True when one was started. */
  private pump(): boolean {
    if (this.busy || this.paused || this.requests.length === 0 || !this.inbox || !this.deps.isActing()) return false;
    const request = this.requests.shift()!;
    void this.runRequest(request, this.inbox).finally(() => {
      this.requestIds.delete(request.id);
      this.pump();
    });
    return true;
  }

  private dropQueue(): void {
    for (const r of this.requests) this.requestIds.delete(r.id);
    this.requests.length = 0;
  }

  private async runRequest(request: ManagerRequest, inbox: RequestInbox): Promise<void> {
    const { log } = this.deps;
    this.jobs++; // busy from here: the request's result says running only while it is the one job
    let startedAt: string;
    try {
      startedAt = await inbox.start(request.id);
    } catch (err) {
      this.jobs--;
      log.warn('cannot mark the request running (retried at the next poll)', { event: 'backup.request-failed', requestId: request.id, err });
      return;
    }
    let bytes = 0;
    const beat = setInterval(() => void inbox.progress(request.id, startedAt, { bytes }).catch(() => undefined), REQUEST_PROGRESS_MS);
    log.info('backup request started', { event: 'backup.request-started', requestId: request.id, requestedBy: request.requestedBy });
    try {
      const job = this.takeNow('on-demand', request.spec.reason === 'on-demand' ? undefined : request.spec.reason, { requestId: request.id, requestReason: request.spec.reason, onProgress: (b) => (bytes = b) });
      this.jobs--; // takeNow counts the job itself from here
      const taken = await job;
      clearInterval(beat);
      await inbox.finish(request.id, {
        state: 'succeeded', startedAt,
        backup: { name: taken.name, storedBytes: taken.storedBytes, ...(taken.snapshotBytes !== undefined ? { snapshotBytes: taken.snapshotBytes } : {}), durationMs: taken.durationMs },
      });
      log.info('backup request finished', { event: 'backup.request-finished', requestId: request.id, state: 'succeeded', name: taken.name });
    } catch (err) {
      clearInterval(beat);
      const error = (err as Error).message.split('\n')[0];
      await inbox.finish(request.id, { state: 'failed', startedAt, error }).catch((e: unknown) => log.warn('cannot write the request\'s result', { requestId: request.id, err: e }));
      log.info('backup request finished', { event: 'backup.request-finished', requestId: request.id, state: 'failed', error });
    }
  }

  /** The last backup as the status object shows it. */
  statusLast(): StatusBackup | undefined {
    const l = this.lastBackup;
    if (!l) return undefined;
    return {
      name: l.name, startedAt: new Date(l.startedAtMs).toISOString(),
      ...(l.storedBytes !== undefined ? { storedBytes: l.storedBytes } : {}),
      ...(l.snapshotBytes !== undefined ? { snapshotBytes: l.snapshotBytes } : {}),
      ...(l.durationMs !== undefined ? { durationMs: Math.round(l.durationMs) } : {}),
      ...(l.reason !== undefined ? { reason: l.reason } : {}),
      ...(l.revision !== undefined ? { revision: l.revision } : {}),
      ...(l.encrypted !== undefined ? { encrypted: l.encrypted } : {}),
    };
  }
}

/**
 * TEST ONLY: a snapshot source whose stream stops moving once HOLD_AFTER_BYTES
 * went through (or at its end, for a smaller one) and never resumes: an upload
 * cut off half way when the process is killed (etcd-manager-backups tests).
 */
function holdingSource(source: SnapshotSource, log: Logger): SnapshotSource {
  return {
    async open(signal?: AbortSignal) {
      const opened = await source.open(signal);
      let passed = 0;
      let held = false;
      const holdNow = () => {
        if (!held) log.warn('test hook: holding the backup upload until this manager is killed', { event: 'test-hook.hold-backup-upload', bytes: passed });
        held = true;
      };
      const gate = new Transform({
        transform(chunk: Buffer, _enc, done: TransformCallback) {
          if (held) return; // never calls back: the pipeline stops here
          passed += chunk.length;
          this.push(chunk);
          if (passed >= HOLD_AFTER_BYTES) holdNow();
          else done();
        },
        flush() {
          holdNow(); // never calls back: the upload never completes
        },
      });
      return { origin: opened.origin, data: opened.data.pipe(gate) };
    },
  };
}
