// Winning and keeping leadership: ask every member for a vote in a new term;
// a majority of the cluster's memberCount (not of whoever answers) makes a
// leader. The lease is counted from when the requests were SENT, and ends a
// safety margin before the voters' leases (counted from when they received
// them), so the leader always believes itself deposed first. `isLeader()` is
// checked before each action; the voters' fence stops what slips through.
// As in Raft: a candidate first asks for a pre-vote (nothing promised) and only
// campaigns when a majority would grant it, so a member that cannot win never
// raises terms; and a leader that hears of a newer promised term steps down,
// since the voter that promised it would refuse its commands.
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../../shared/log.js';
import type { PeerTransport } from './api.js';
import { LEADER_SHARE } from './lease.js';

export interface Member {
  member: string;
  /** host:port of its peer API */
  endpoint: string;
}

export interface LeadershipOptions {
  self: string;
  /**
   * The peer API client to ask with, looked up for every round: a renewed manager certificate gives a
   * new client, and votes asked with the old one fail once its certificate has expired.
   */
  client: () => Pick<PeerTransport, 'vote'>;
  memberCount: number;
  leaseMs: number;
  log: Logger;
  now?: () => number;
}

export class Leadership {
  private term = 0;
  private leaseEnd = 0;
  private highestSeen = 0;
  private readonly now: () => number;

  constructor(private readonly options: LeadershipOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get currentTerm(): number {
    return this.term;
  }

  /** True only while a majority lease is known to hold. */
  isLeader(): boolean {
    return this.term > 0 && this.now() < this.leaseEnd;
  }

  private quorum(): number {
    return Math.floor(this.options.memberCount / 2) + 1;
  }

  /** A new memberCount changes the quorum: any lease won under the old one is dropped. */
  setMemberCount(memberCount: number): void {
    if (memberCount === this.options.memberCount) return;
    this.options.memberCount = memberCount;
    this.term = 0;
    this.leaseEnd = 0;
  }

  /**
   * Asks every member and returns as soon as a quorum has granted, or everyone has answered: one
   * stopped member must not hold a renewal up until its request times out, which would outlast the
   * lease. A pre-vote also waits for the candidate's own voter, so the campaign starts above the term
   * that one has promised. Every answer, even a late one, raises highestSeen to its voter's promise.
   */
  private ask(members: Member[], term: number, dryRun: boolean): Promise<{ votes: number }> {
    const { self } = this.options;
    const client = this.options.client();
    const quorum = this.quorum();
    let votes = 0;
    let pending = members.length;
    let selfAnswered = !dryRun || !members.some((m) => m.member === self);
    return new Promise((resolve) => {
      if (pending === 0) resolve({ votes });
      for (const m of members) {
        client.vote(m.endpoint, self, term, dryRun).then(
          (r) => {
            if (r.status !== 200) return;
            this.highestSeen = Math.max(this.highestSeen, r.body.term);
            if (r.body.granted) votes++;
          },
          () => undefined, // no answer: no vote
        ).finally(() => {
          pending--;
          if (m.member === self) selfAnswered = true;
          if ((votes >= quorum && selfAnswered) || pending === 0) resolve({ votes });
        });
      }
    });
  }

  /** True between a lapsed lease and the next round: this manager led the last term it knows of. */
  get incumbent(): boolean {
    return this.term > 0;
  }

  /** One round: renew in the current term while leading, else campaign in a new one (after a pre-vote). */
  async round(members: Member[]): Promise<boolean> {
    const { log, leaseMs } = this.options;
    const renewing = this.isLeader();
    let term = renewing ? this.term : this.highestSeen + 1;
    if (!renewing) {
      const pre = await this.ask(members, term, true);
      if (pre.votes < this.quorum()) {
        if (this.term > 0) log.warn('lost leadership', { event: 'leader.lost', term: this.term, votes: pre.votes, quorum: this.quorum() });
        this.term = 0;
        this.leaseEnd = 0;
        return false;
      }
      // A voter that answered with a newer promised term would refuse this one: campaign above it (a higher
      // term only makes a grant easier, so the pre-vote's answer still holds).
      term = Math.max(term, this.highestSeen + 1);
    }
    const sentAt = this.now();
    const { votes } = await this.ask(members, term, false);
    this.highestSeen = Math.max(this.highestSeen, term);
    // highestSeen also takes answers that came after the quorum, in this round or the last one.
    if (renewing && this.highestSeen > term) {
      log.warn('stepping down: a member has promised a newer term', { event: 'leader.stepped-down', term, newerTerm: this.highestSeen });
      this.term = 0;
      this.leaseEnd = 0;
      return false;
    }
    if (votes >= this.quorum()) {
      if (!renewing) log.info('became leader', { event: 'leader.elected', term, votes, quorum: this.quorum() });
      this.term = term;
      // A share of the lease is kept as margin for clock-rate differences and the round trip.
      this.leaseEnd = sentAt + leaseMs * LEADER_SHARE;
      return true;
    }
    if (renewing || this.term > 0) log.warn('lost leadership', { event: 'leader.lost', term: this.term, votes, quorum: this.quorum() });
    this.term = 0;
    this.leaseEnd = 0;
    return false;
  }
}
