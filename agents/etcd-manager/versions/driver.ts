// One pass of an etcd version change, for the leader's reconcile loop. The
// record in `control/etcd-version-change` (record.ts) is the only state: the
// pass reads it, asks the members what they run (the controller's `observe`),
// decides with the pure `nextAction` (plan.ts), does at most one thing, and
// stores the result with compare-and-swap. A pass can stop at any point (a
// crash, a lost leadership, a step that throws) and the next one, by this
// leader or another, starts from the record again:
//   - a step is marked done only after its effect returned, so an effect cut
//     short is run again: every effect must be safe to repeat (an upgraded
//     member is recognised by the version it reports and not restarted again;
//     a stop, restore, start or migration must pick up or redo its own work);
//   - before an effect runs, the record is read again: a pass whose record
//     changed meanwhile (another leader's) does nothing;
//   - a leader with a newer term takes the record over (its term is written
//     into it) before it acts, and a leader with an older term cannot write it.
// The controller supplies the effects and calls `versionChangePass` every
// reconcile pass while it leads; what it gets back is the status for `get`,
// logs and metrics.
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import { checkBinaries as checkBinariesReal } from './binaries.js';
import { markBlocked, markDone, markStarted, newVersionChange, nextAction, type ClusterObservation, type PlanOptions, type PlanStep, type VersionChangeRecord, type WaitReason } from './plan.js';
import { clearVersionChange, readVersionChange, RecordError, saveVersionChange, type StoredVersionChange } from './record.js';
import { decideTransition, describeTransition, type Transition } from './transition.js';
import { VersionError } from './version.js';

/** What a step's effect may hand back: a name to keep in the record (a backup's), or that it is still under way. */
export interface StepOutput {
  name?: string;
  /**
   * The effect was started (or is running) but is not finished: the step stays pending and is run
   * again on a later pass, which must pick the work up, not start it twice. Says what it waits for.
   */
  pending?: string;
}

type StepOf<K extends PlanStep['kind']> = Extract<PlanStep, { kind: K }>;

/** The controller's side: one effect per step kind (the compiler checks none is missing). */
export type StepEffects = { [K in PlanStep['kind']]: (step: StepOf<K>, change: VersionChangeRecord) => Promise<StepOutput | void> };

export interface VersionChangeEffects {
  /** What every member runs and how it is, now. */
  observe(): Promise<ClusterObservation>;
  steps: StepEffects;
  /** Move etcd's raft leadership (MoveLeader) from one member to another. */
  moveRaftLeader(from: string, to: string): Promise<void>;
  /**
   * Every step is done: make `record.to` the cluster's version wherever the
   * controller keeps it. Called again if the pass stops before the record is cleared.
   */
  finished(record: VersionChangeRecord): Promise<void>;
}

export interface VersionPassInput {
  /** The backup store (control/ lives there). */
  store: StateStore;
  /** The leader's fenced term. */
  term: number;
  /** The version the cluster runs as the controller knows it; undefined: not known yet (nothing starts). */
  current: string | undefined;
  /** The version control/etcd-cluster-spec asks for. */
  wanted: string;
  /** The member names, for a new plan. */
  members: string[];
  binaryDir?: string;
  effects: VersionChangeEffects;
  log: Logger;
  now?: () => Date;
  plan?: PlanOptions;
  /** The check of the binaries a change needs (binaries.ts); injectable for tests. */
  checkBinaries?: (t: Transition, binaryDir: string | undefined) => Promise<unknown>;
}

export type VersionPassResult =
  /** No change is asked for or under way. */
  | { kind: 'idle' }
  /** A change is asked for that cannot be made (no rule, a binary missing or wrong, an unreadable record): nothing was started. */
  | { kind: 'refused'; message: string }
  /** A plan was made and stored; its first action comes on the next pass. */
  | { kind: 'started'; record: VersionChangeRecord; description: string }
  | { kind: 'ran'; record: VersionChangeRecord; step: PlanStep }
  /** A step's effect was found already there (a member on the new version) and marked. */
  | { kind: 'marked'; record: VersionChangeRecord; step: PlanStep }
  | { kind: 'moved-leader'; record: VersionChangeRecord; from: string; to: string }
  /** Nothing may move (a member unhealthy, behind, on a third version; no raft leader). `newlyBlocked`: the first pass with this reason (count it once). */
  | { kind: 'waiting'; record: VersionChangeRecord; reason: WaitReason; member?: string; message: string; newlyBlocked: boolean }
  | { kind: 'replanned'; record: VersionChangeRecord; message: string }
  /** A step's effect is under way (it said `pending`); the step runs again on a later pass. */
  | { kind: 'in-progress'; record: VersionChangeRecord; step: PlanStep; message: string }
  /** A step threw; the record keeps the error and the step runs again on a later pass. */
  | { kind: 'failed'; record: VersionChangeRecord; step: PlanStep; message: string }
  /** Every step done, the version recorded, the record removed. `next`: the spec already asks for another version. */
  | { kind: 'finished'; record: VersionChangeRecord; next?: string }
  /** The record belongs to a newer term: this manager is not the leader any more. Nothing was done. */
  | { kind: 'fenced'; message: string }
  /** The record changed under this pass (another writer); nothing was done; the next pass reads it again. */
  | { kind: 'conflict' };

/** Why a save did not take, as a pass result; undefined when it did. */
function savedOrNot(result: Awaited<ReturnType<typeof saveVersionChange>>, term: number): VersionPassResult | undefined {
  if (result.saved) return undefined;
  if (result.why === 'newer-term') return { kind: 'fenced', message: `the version change is now driven under term ${result.current?.record.term}, above this manager's ${term}` };
  return { kind: 'conflict' };
}

/** The backup a restore or migration reads: the name the backup step stored. */
export function backupOf(record: VersionChangeRecord): string | undefined {
  const step = record.steps.find((s) => s.kind === 'backup');
  return step?.kind === 'backup' ? step.name : undefined;
}

/** The backup a restore step restores: the v3 backup converted from the v2 one when there is a conversion, else the change's backup. */
export function restoreSourceOf(record: VersionChangeRecord): string | undefined {
  const convert = record.steps.find((s) => s.kind === 'convert-v2');
  if (convert?.kind === 'convert-v2') return convert.name;
  return backupOf(record);
}

/**
 * One pass. What the record or the members say is a result, never a throw; a
 * step's effect that throws is a `failed` result. Errors of the store, of
 * `observe`, `moveRaftLeader` and `finished` propagate: the pass changed nothing
 * the record does not already say, and the next pass tries again.
 */
export async function versionChangePass(input: VersionPassInput): Promise<VersionPassResult> {
  const now = input.now ?? (() => new Date());
  const log = input.log;
  let stored: StoredVersionChange | undefined;
  try {
    stored = await readVersionChange(input.store);
  } catch (err) {
    if (err instanceof RecordError) return { kind: 'refused', message: `${err.message}: fix or remove it; no version change moves while it is unreadable` };
    throw err;
  }

  // No change under way: start one if the spec asks for another version.
  if (!stored) {
    if (input.current === undefined || input.current === input.wanted) return { kind: 'idle' };
    let transition: Transition;
    try {
      transition = decideTransition(input.current, input.wanted);
      if (transition.kind === 'none') return { kind: 'idle' };
      await (input.checkBinaries ?? checkBinariesReal)(transition, input.binaryDir);
    } catch (err) {
      if (err instanceof VersionError) return { kind: 'refused', message: err.message };
      throw err;
    }
    const record = newVersionChange(transition, input.members, input.term, now());
    const saved = await saveVersionChange(input.store, record, undefined);
    const lost = savedOrNot(saved, input.term);
    if (lost) return lost;
    const description = describeTransition(transition);
    log.info('version change planned', { event: 'version-change.start', id: record.id, from: record.from, to: record.to, transition: record.transition, steps: record.steps.map((s) => s.id) });
    return { kind: 'started', record, description };
  }

  // Take the record over when this leader's term is newer; never act on a newer one's.
  if (stored.record.term > input.term) return { kind: 'fenced', message: `the version change is driven under term ${stored.record.term}, above this manager's ${input.term}` };
  if (stored.record.term < input.term) {
    const claimed = { ...stored.record, term: input.term };
    const saved = await saveVersionChange(input.store, claimed, stored);
    if (!saved.saved) return savedOrNot(saved, input.term) ?? { kind: 'conflict' };
    log.info('version change taken over', { event: 'version-change.take-over', id: claimed.id, fromTerm: stored.record.term, term: input.term });
    stored = { record: claimed, version: saved.version };
  }
  const record = stored.record;
  /** The stored record this pass holds; each save moves it on. */
  let held: StoredVersionChange = stored;
  const save = async (next: VersionChangeRecord): Promise<VersionPassResult | undefined> => {
    const saved = await saveVersionChange(input.store, next, held);
    if (saved.saved) held = { record: next, version: saved.version };
    return savedOrNot(saved, input.term);
  };

  const obs = await input.effects.observe();
  const action = nextAction(record, obs, input.plan);
  switch (action.kind) {
    case 'done': {
      await input.effects.finished(record);
      if (!(await clearVersionChange(input.store, held))) return { kind: 'conflict' };
      log.info('version change finished', { event: 'version-change.done', id: record.id, from: record.from, to: record.to });
      return { kind: 'finished', record, ...(input.wanted !== record.to ? { next: input.wanted } : {}) };
    }
    case 'wait': {
      const newlyBlocked = !record.blocked || record.blocked.reason !== action.reason || record.blocked.member !== action.member;
      const blocked = markBlocked(record, action, now());
      if (newlyBlocked) {
        const lost = await save(blocked);
        if (lost) return lost;
        log.warn('version change waits', { event: 'version-change.blocked', id: record.id, reason: action.reason, member: action.member, message: action.message });
      }
      return { kind: 'waiting', record: blocked, reason: action.reason, member: action.member, message: action.message, newlyBlocked };
    }
    case 'mark-done': {
      const next = markDone(record, action.step.id, now());
      const lost = await save(next);
      if (lost) return lost;
      log.info('version change step done', { event: 'version-change.step-done', id: record.id, step: action.step.id, observed: true });
      return { kind: 'marked', record: next, step: action.step };
    }
    case 'replan': {
      // Same change, steps for the members there are now; the backup already taken stays taken.
      const transition = { kind: record.transition, from: record.from, to: record.to } as Exclude<Transition, { kind: 'none' }>;
      const fresh = newVersionChange(transition, obs.members.map((m) => m.name), input.term, new Date(record.createdAt), record.id);
      const oldBackup = record.steps.find((s) => s.kind === 'backup' && s.state === 'done');
      const next: VersionChangeRecord = { ...fresh, reason: record.reason, steps: fresh.steps.map((s) => (oldBackup && s.id === oldBackup.id ? oldBackup : s)) };
      const lost = await save(next);
      if (lost) return lost;
      log.info('version change replanned', { event: 'version-change.replan', id: record.id, message: action.message });
      return { kind: 'replanned', record: next, message: action.message };
    }
    case 'move-raft-leader': {
      // Moving again: a block the record shows is over (saving it is also the check that the record is still ours).
      if (record.blocked) {
        const lost = await save({ ...record, blocked: undefined });
        if (lost) return lost;
      } else if (!(await stillOurs(input.store, held))) {
        return { kind: 'conflict' };
      }
      await input.effects.moveRaftLeader(action.from, action.to);
      log.info('raft leadership moved for the version change', { event: 'version-change.move-leader', id: record.id, from: action.from, to: action.to });
      return { kind: 'moved-leader', record, from: action.from, to: action.to };
    }
    case 'run': {
      const step = action.step;
      let current = record;
      if (step.startedAt === undefined || record.blocked) {
        // Stored before the effect runs (and any block cleared): it is also the check that the record is still ours.
        current = { ...markStarted(record, step.id, now()), blocked: undefined };
        const lost = await save(current);
        if (lost) return lost;
      } else if (!(await stillOurs(input.store, held))) {
        return { kind: 'conflict' };
      }
      log.info('version change step', { event: 'version-change.step', id: record.id, step: step.id, kind: step.kind, again: step.startedAt !== undefined });
      let output: StepOutput | void;
      try {
        output = await runStep(input.effects.steps, step, current);
      } catch (err) {
        const message = (err as Error).message;
        const attempts = current.lastError?.step === step.id ? current.lastError.attempts + 1 : 1;
        const next: VersionChangeRecord = { ...current, lastError: { step: step.id, message, at: now().toISOString(), attempts } };
        const lost = await save(next);
        if (lost) return lost;
        log.warn('version change step failed; it is tried again', { event: 'version-change.step-failed', id: record.id, step: step.id, attempts, err: message });
        return { kind: 'failed', record: next, step, message };
      }
      if (output?.pending !== undefined) {
        if (current.lastError?.step === step.id) {
          // Under way again (a failed restore queued anew): its old failure is history, not what `get` should show.
          current = { ...current, lastError: undefined };
          const lost = await save(current);
          if (lost) return lost;
        }
        log.info('version change step under way', { event: 'version-change.step-pending', id: record.id, step: step.id, waitingFor: output.pending });
        return { kind: 'in-progress', record: current, step, message: output.pending };
      }
      const next = markDone(current, step.id, now(), output ?? {});
      const lost = await save(next);
      if (lost) return lost;
      log.info('version change step done', { event: 'version-change.step-done', id: record.id, step: step.id });
      return { kind: 'ran', record: next, step };
    }
  }
}

/** The stored record is still the one this pass read (no other writer since). */
async function stillOurs(store: StateStore, stored: StoredVersionChange): Promise<boolean> {
  const now = await readVersionChange(store);
  return now?.version === stored.version;
}

function runStep(effects: StepEffects, step: PlanStep, record: VersionChangeRecord): Promise<StepOutput | void> {
  // One branch per kind so each effect gets its own step type.
  switch (step.kind) {
    case 'backup': return effects.backup(step, record);
    case 'upgrade-member': return effects['upgrade-member'](step, record);
    case 'restore-snapshot': return effects['restore-snapshot'](step, record);
    case 'convert-v2': return effects['convert-v2'](step, record);
  }
}

/** Lines for `get`: the change, where it stands, why it waits, its last error. */
export function describeVersionChange(record: VersionChangeRecord): string[] {
  const done = record.steps.filter((s) => s.state === 'done').length;
  const next = record.steps.find((s) => s.state === 'pending');
  const lines = [`version change ${record.id}: etcd ${record.from} → ${record.to} (${record.transition}, ${record.reason}), ${done} of ${record.steps.length} steps done${next ? `, next: ${next.id}` : ''}`];
  if (record.blocked) lines.push(`  waiting since ${record.blocked.since}: ${record.blocked.message}`);
  if (record.lastError) lines.push(`  step ${record.lastError.step} failed ${record.lastError.attempts} time(s), last at ${record.lastError.at}: ${record.lastError.message}`);
  return lines;
}
