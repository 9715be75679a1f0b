// Who leads: a survey of the managers that answer, kOps' candidate rule, and
// the majority lease of peer/leadership.ts, kept on its own timer.
//
// Only the lowest-named manager that answers *and can lead* campaigns (kOps'
// rule, which keeps split votes rare; the votes make it safe). A manager that
// misses one `info` answer is not passed over yet (after a pause every request
// in flight times out at once), only after two in a row; one whose port
// refuses the connection is not running at all and is passed over at once.
//
// The lease is renewed every RENEW_SHARE of a lease by a timer of its own,
// whatever the reconcile interval, but only while this manager's reconcile
// loop is alive: a manager whose pass is stuck lets its lease lapse, so it
// cannot hold leadership it cannot use. A follower's timer watches the lease
// its own voter granted: once that ran out without a renewal the leader is gone
// (or cut off), and the follower's controller is woken to elect another.
import type { Logger } from '../../../shared/log.js';
import type { PeerRecord } from '../discovery.js';
import type { PeerTransport } from '../peer/api.js';
import { Leadership, type Member } from '../peer/leadership.js';
import { RENEW_SHARE } from '../peer/lease.js';
import type { PeerInfo } from '../peer/protocol.js';
import type { Clock, Pass, StepResult } from './types.js';

export interface LivePeer {
  record: PeerRecord;
  info: PeerInfo;
}

/** The managers that answered one round of `info`, by member name, and who may campaign. */
export interface Survey {
  records: PeerRecord[];
  alive: LivePeer[];
  /** The lowest-named manager that answers and can lead (or that missed only one answer). */
  firstCandidate?: string;
}

export interface ElectionDeps {
  self: string;
  /** The peer API client to use now (a renewed certificate gives a new one). */
  transport(): PeerTransport;
  /** This manager's own voter: how long the lease it granted still runs. */
  voter: { leaseRemainingMs(): number };
  leaseMs: number;
  clock: Clock;
  log: Logger;
  /** False while this manager's reconcile loop is stuck: it then stops renewing. */
  canRenew(): boolean;
  /** Runs a pass soon (a lease lost or lapsed). */
  wake(reason: string): void;
}

export class Election {
  private leadership?: Leadership;
  private readonly missedInfo = new Map<string, number>();
  private members: Member[] = [];
  private inFlight?: Promise<boolean>;
  private timer?: NodeJS.Timeout;
  private sawLeaderLease = false;
  private warnedNoRenew = false;
  private wokeOnLapse = false;

  constructor(private readonly deps: ElectionDeps) {}

  isLeader(): boolean {
    return this.leadership?.isLeader() ?? false;
  }

  get currentTerm(): number {
    return this.leadership?.currentTerm ?? 0;
  }

  /** Asks every registered manager for its info; counts misses for the candidate rule. */
  async survey(records: PeerRecord[]): Promise<Survey> {
    const transport = this.deps.transport();
    const answers = await Promise.all(records.map(async (record): Promise<{ live?: LivePeer; refused: boolean }> => {
      try {
        const r = await transport.info(record.grpcEndpoint);
        return { live: { record, info: r.body }, refused: false };
      } catch (err) {
        return { refused: (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' };
      }
    }));
    const alive = answers.flatMap((a) => (a.live ? [a.live] : [])).sort((a, b) => a.info.member.localeCompare(b.info.member));
    let firstCandidate: string | undefined;
    for (const [i, record] of records.entries()) {
      const { live, refused } = answers[i];
      // A refused connection is positive evidence that nothing runs there (a paused process's kernel still accepts).
      const missed = live ? 0 : (this.missedInfo.get(record.member) ?? 0) + (refused ? 2 : 1);
      this.missedInfo.set(record.member, missed);
      if (firstCandidate === undefined && (live ? live.info.canLead !== false : missed < 2)) firstCandidate = record.member;
    }
    return { records, alive, firstCandidate };
  }

  /**
   * The pass's election step: campaign when this manager is the candidate (or led the last term it
   * knows of), else follow. `voters` is the member count votes are counted against.
   */
  async step(pass: Pass, voters: number): Promise<StepResult | undefined> {
    const survey = pass.survey;
    if (!survey) return undefined;
    const { self, log, leaseMs, clock } = this.deps;
    const leadership = (this.leadership ??= new Leadership({ self, client: () => this.deps.transport(), memberCount: voters, leaseMs, log, now: () => clock.now() }));
    leadership.setMemberCount(voters);
    this.members = survey.alive.map((a) => ({ member: a.info.member, endpoint: a.record.grpcEndpoint }));
    // The incumbent whose lease lapsed (a slow renewal) may campaign too: its voters grant it at once,
    // where anyone else waits out the lease, so leadership does not move for nothing.
    if (!leadership.isLeader() && (leadership.incumbent || survey.firstCandidate === self)) await this.round('campaign');
    pass.leading = leadership.isLeader();
    if (pass.leading) {
      this.wokeOnLapse = false;
      return undefined;
    }
    // Nobody holds a lease this voter granted: no leader is known, so look again soon, not in an interval.
    return this.deps.voter.leaseRemainingMs() > 0 ? undefined : { waitFor: 'a leader' };
  }

  /** One leadership round at a time: a campaign from the pass and a renewal from the timer never overlap. */
  private async round(why: 'campaign' | 'renew'): Promise<boolean> {
    const leadership = this.leadership;
    if (!leadership) return false;
    if (this.inFlight) {
      if (why === 'renew') return this.inFlight;
      await this.inFlight.catch(() => false);
      if (leadership.isLeader()) return true;
    }
    this.inFlight = leadership.round(this.members).finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  /** The lease keeper: renews while leading, and wakes a follower whose leader's lease ran out. */
  start(): void {
    const every = Math.max(50, Math.round(this.deps.leaseMs * RENEW_SHARE));
    this.timer = setInterval(() => void this.tick().catch((err: unknown) => this.deps.log.warn('lease keeper failed', { err })), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One tick of the keeper (exposed for the unit test, which drives it with a fake clock). */
  async tick(): Promise<void> {
    const { log, voter, wake } = this.deps;
    const leadership = this.leadership;
    if (leadership?.isLeader()) {
      if (!this.deps.canRenew()) {
        if (!this.warnedNoRenew) log.warn('not renewing the leader lease: this manager\'s reconcile loop is stuck', { event: 'leader.renewal-withheld', term: leadership.currentTerm });
        this.warnedNoRenew = true;
        return;
      }
      this.warnedNoRenew = false;
      if (!(await this.round('renew'))) wake('lost leadership');
      return;
    }
    if (leadership?.incumbent && !this.wokeOnLapse && this.deps.canRenew()) {
      // Led the last term it knows of, and the lease lapsed between renewals: campaign again now.
      this.wokeOnLapse = true;
      wake('the leader lease lapsed');
      return;
    }
    const held = voter.leaseRemainingMs() > 0;
    if (this.sawLeaderLease && !held) wake('the leader\'s lease lapsed');
    this.sawLeaderLease = held;
  }
}
