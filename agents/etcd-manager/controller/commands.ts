// What operators ask of the acting manager through the backup store: on-demand
// backup requests (control/requests.ts) and kOps' queued commands
// (control/<id>/_command.json: restores). Noticed promptly, with no restart:
// while this manager acts for the cluster, a timer of its own GETs the doorbell
// every POLL_MS (one small request) and, when it rang (or on becoming acting,
// or every FALLBACK_LIST_MS for writers that do not ring it, kOps' ctl among
// them), lists the requests and the commands. Requests go to the backup
// controller's queue, commands to the restore controller; both wake the loop.
// The poll runs beside the pass, so a long pass (or a long interval) never
// delays noticing; the pass's `commands` step only polls itself when this
// manager has just started acting, so its first pass already sees them.
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { ManagerRequest, RequestInbox } from '../control/requests.js';
import type { ControlListing } from '../control/restore-plan.js';
import type { Clock, StepResult } from './types.js';

/** How often the acting manager GETs the doorbell. */
export const POLL_MS = 1_500;
/** Lists requests and commands at least this often even when nobody rang (kOps' ctl does not ring). */
export const FALLBACK_LIST_MS = 60_000;

export interface ControlInboxDeps {
  store: StateStore;
  /** `<member>/<process nonce>`: names this manager in request results. */
  runner: string;
  clock: Clock;
  log: Logger;
  isActing(): boolean;
  /** Requests to run (oldest first), each poll that listed them. */
  onRequests(requests: ManagerRequest[], inbox: RequestInbox): void;
  /** The commands and their outcomes, each poll that listed them. */
  onCommands(listing: ControlListing): void;
  pollMs?: number;
  fallbackListMs?: number;
}

export class ControlInbox {
  private inbox?: RequestInbox;
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private acting = false;
  private polledWhileActing = false;
  private warned = new Set<string>();
  private failing = false;

  constructor(private readonly deps: ControlInboxDeps) {}

  /** The timer; it does nothing while this manager is not acting. */
  start(): void {
    this.timer = setInterval(() => void this.tick(), this.deps.pollMs ?? POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The pass's step: a manager that has just started acting polls at once. */
  async step(): Promise<StepResult | undefined> {
    if (this.deps.isActing() && (!this.acting || !this.polledWhileActing)) await this.tick();
    return undefined;
  }

  /** One poll when acting (one at a time); exposed for tests. */
  tick(): Promise<void> {
    if (!this.deps.isActing()) {
      this.acting = false;
      this.polledWhileActing = false;
      return Promise.resolve();
    }
    return (this.polling ??= this.poll().finally(() => (this.polling = undefined)));
  }

  private async poll(): Promise<void> {
    const { store, log, clock } = this.deps;
    try {
      if (!this.inbox) {
        const { RequestInbox } = await import('../control/requests.js');
        this.inbox = new RequestInbox(store, { runner: this.deps.runner, now: () => clock.wallNow(), fallbackListMs: this.deps.fallbackListMs ?? FALLBACK_LIST_MS });
      }
      if (!this.acting) {
        this.inbox.reset(); // a manager that starts acting lists at once
        this.acting = true;
      }
      const polled = await this.inbox.poll();
      this.polledWhileActing = true;
      for (const problem of polled.invalid) this.warnOnce(problem, 'request.invalid');
      if (polled.listed) {
        const { listControl } = await import('../control/restore-plan.js');
        const listing = await listControl(store);
        for (const bad of listing.invalid) this.warnOnce(`${bad.path}: ${bad.error}`, 'command.invalid');
        for (const bad of listing.invalidOutcomes) this.warnOnce(bad, 'command.invalid');
        this.deps.onCommands(listing);
      }
      if (polled.pending.length > 0) this.deps.onRequests(polled.pending, this.inbox);
      if (this.failing) log.info('control inbox reachable again', { event: 'control.poll-recovered' });
      this.failing = false;
    } catch (err) {
      if (!this.failing) log.warn('cannot poll the control inbox (retrying)', { event: 'control.poll-failed', err });
      this.failing = true;
    }
  }

  private warnOnce(problem: string, event: string): void {
    if (this.warned.has(problem)) return;
    this.warned.add(problem);
    this.deps.log.warn('ignoring an operator file that does not parse (delete it or write it again)', { event, problem });
  }
}
