// Winning and keeping leadership: ask every member for a vote in a new term;
// a majority of the cluster's memberCount (not of whoever answers) makes a
// leader. The lease is counted from when the requests were SENT, and ends a
// safety margin before the voters' leases (counted from when they received
// them), so the leader always believes itself deposed first. `isLeader()` is
// checked before each action; the voters' fence stops what slips through.
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../../shared/log.js';
import type { PeerClient } from './api.js';

export interface Member {
  member: string;
  /** host:port of its peer API */
  endpoint: string;
}

export interface LeadershipOptions {
  self: string;
  client: PeerClient;
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

  /** One round: renew in the current term while leading, else campaign in a new one. */
  async round(members: Member[]): Promise<boolean> {
    const { self, client, log, leaseMs } = this.options;
    const renewing = this.isLeader();
    const term = renewing ? this.term : this.highestSeen + 1;
    const sentAt = this.now();
    const answers = await Promise.all(
      members.map(async (m) => {
        try {
          const r = await client.vote(m.endpoint, self, term);
          if (r.status !== 200) return false;
          this.highestSeen = Math.max(this.highestSeen, r.body.term);
          return r.body.granted;
        } catch {
          return false;
        }
      }),
    );
    const votes = answers.filter(Boolean).length;
    this.highestSeen = Math.max(this.highestSeen, term);
    if (votes >= this.quorum()) {
      if (!renewing) log.info('became leader', { term, votes, quorum: this.quorum() });
      this.term = term;
      // 1/4 of the lease is kept as margin for clock-rate differences and the round trip.
      this.leaseEnd = sentAt + (leaseMs * 3) / 4;
      return true;
    }
    if (renewing || this.term > 0) log.warn('lost leadership', { term: this.term, votes, quorum: this.quorum() });
    this.term = 0;
    this.leaseEnd = 0;
    return false;
  }
}
