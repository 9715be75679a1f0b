// The reconcile loop: one pass runs the steps in order (each one concern's
// find → diff → act) and reports what it did. The next pass is event-driven:
//   - at once when the pass made progress (kOps' controller calls it that) or
//     something woke the loop while it ran (a peer announced itself, a
//     command arrived, the lease was lost);
//   - after a short poll (CONDITION_POLL_MS, never more than the interval)
//     while a step waits on a condition (etcd healthy, a learner caught up, a
//     leader elected);
//   - after a growing delay after a failure;
//   - else after --reconcile-interval, the backstop.
// A watchdog reports a pass that runs for too long (loopAlive() turns false),
// so peers stop waiting for this manager to lead and its lease is not renewed.
import type { Logger } from '../../../shared/log.js';
import type { Clock, Pass, PassReport, Step } from './types.js';

/** The poll while a step waits on a condition: short, and never longer than the interval. */
export const CONDITION_POLL_MS = 500;

/** Passes in a row that may run at once on progress before one waits a poll (a step that always "progresses" must not spin). */
const MAX_IMMEDIATE = 20;

export interface ControllerOptions {
  steps: Step[];
  reconcileIntervalMs: number;
  clock: Clock;
  log: Logger;
  /** After every pass: its report, or the error it failed with. */
  onPassEnd?(outcome: { report?: PassReport; error?: Error; step: string }): void;
  /** When the watchdog finds a pass stuck. */
  onStuck?(step: string): void;
}

export class Controller {
  private timer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private running?: Promise<void>;
  private woken = false;
  private stopped = false;
  private immediateRuns = 0;
  private failures = 0;
  /** When the running pass started (monotonic ms), 0 between passes; and when the last one ended. */
  private passStartedAt = 0;
  private passEndedAt = 0;
  private stepName = 'starting';
  private warnedStuck = false;

  constructor(private readonly options: ControllerOptions) {}

  /** The step the running pass is in ('idle' between passes). */
  get step(): string {
    return this.stepName;
  }

  private get pollMs(): number {
    return Math.min(CONDITION_POLL_MS, this.options.reconcileIntervalMs);
  }

  /**
   * How long a pass may run, or the loop stay idle, before the manager counts
   * as stuck: its peers then stop waiting for it to lead. Every etcd, store
   * and peer call has its own deadline, so this is a backstop.
   */
  get stuckAfterMs(): number {
    return Math.max(20 * this.options.reconcileIntervalMs, 20_000);
  }

  /** False when a pass has run, or no pass has ended, for longer than stuckAfterMs. */
  loopAlive(): boolean {
    const now = this.options.clock.now();
    if (this.passStartedAt > 0) return now - this.passStartedAt < this.stuckAfterMs;
    return this.passEndedAt === 0 || now - this.passEndedAt < this.stuckAfterMs + this.options.reconcileIntervalMs;
  }

  /** One pass: every step in order; leader-only steps only while leading. */
  async reconcile(): Promise<PassReport> {
    const pass: Pass = { leading: false };
    const report: PassReport = { did: [], progress: false, waitingFor: [] };
    for (const step of this.options.steps) {
      if (this.stopped) break;
      if (step.leaderOnly && !pass.leading) continue;
      this.stepName = step.name;
      const r = await step.run(pass);
      if (!r) continue;
      if (r.did) report.did.push(r.did);
      if (r.did || r.progress) report.progress = true;
      if (r.waitFor) report.waitingFor.push(r.waitFor);
      if (r.stop) break;
    }
    return report;
  }

  /** Runs the first pass now, then keeps the loop going until stop(). */
  async start(): Promise<void> {
    const every = Math.max(1_000, this.options.reconcileIntervalMs);
    this.watchdog = setInterval(() => this.checkStuck(), every);
    this.watchdog.unref();
    await this.runPass();
  }

  /** Runs a pass soon: at once when idle, right after the running one otherwise. */
  wake(reason: string): void {
    if (this.stopped) return;
    this.options.log.debug('reconcile woken', { reason });
    if (this.running) {
      this.woken = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runPass();
    }, delayMs);
  }

  private async runPass(): Promise<void> {
    if (this.stopped || this.running) return;
    let next = this.options.reconcileIntervalMs;
    this.woken = false;
    this.running = (async () => {
      const { clock, log } = this.options;
      this.passStartedAt = clock.now();
      try {
        const report = await this.reconcile();
        this.failures = 0;
        this.options.onPassEnd?.({ report, step: this.stepName });
        if (report.progress && this.immediateRuns < MAX_IMMEDIATE) {
          next = 0;
          this.immediateRuns++;
        } else {
          this.immediateRuns = 0;
          if (report.progress || report.waitingFor.length > 0) next = this.pollMs;
        }
      } catch (err) {
        this.failures++;
        this.immediateRuns = 0;
        log.error('reconcile failed', { event: 'reconcile.failed', step: this.stepName, err });
        this.options.onPassEnd?.({ error: err as Error, step: this.stepName });
        // A growing delay: soon after one failure (a peer or store hiccup), the interval when it persists.
        next = Math.min(this.options.reconcileIntervalMs, this.pollMs * 2 ** this.failures);
      } finally {
        if (this.warnedStuck) log.info('reconcile pass ended after being stuck', { event: 'reconcile.unstuck', step: this.stepName, ranMs: Math.round(clock.now() - this.passStartedAt) });
        this.warnedStuck = false;
        this.passStartedAt = 0;
        this.passEndedAt = clock.now();
        this.stepName = 'idle';
      }
    })();
    await this.running;
    this.running = undefined;
    this.schedule(this.woken ? 0 : next);
  }

  private checkStuck(): void {
    if (this.stopped || this.passStartedAt === 0) return;
    const ranMs = Math.round(this.options.clock.now() - this.passStartedAt);
    if (ranMs < this.stuckAfterMs || this.warnedStuck) return;
    this.warnedStuck = true;
    this.options.onStuck?.(this.stepName);
    this.options.log.error('reconcile pass is stuck; peers no longer wait for this manager to lead', { event: 'reconcile.stuck', step: this.stepName, ranMs });
  }

  /** Stops the loop; waits for a running pass (which the caller has released, if it hangs on purpose). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    await this.running;
  }
}
