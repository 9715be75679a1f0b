// One manager's side of leadership: its vote and its fence.
//
// A leader holds a term number granted by a majority of the members. Each
// voter promises itself to at most one leader per term, writes the promise to
// its volume before answering (so a restart cannot vote twice in one term),
// and grants a lease: it will not promise a different leader until that lease
// has run out on its own monotonic clock. After a restart it waits a full
// lease before promising anyone new, since the old lease's start is lost.
// Two majorities always share a voter, so two leaders can never hold leases
// at once. A leader paused past its lease (SIGSTOP) can still send a late
// command; every command carries its term, and a voter refuses any term lower
// than the one it has promised: that is the fence.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

/** Where a voter keeps its promise: a file on the member's volume, or memory in tests. */
export interface VoteStore {
  load(): Promise<Promised | undefined>;
  /** Durable once it resolves: a restarted voter loads what was saved. */
  save(promised: Promised): Promise<void>;
}

/** The promise as a small JSON file, replaced atomically (write, then rename). */
export function voteFile(path: string): VoteStore {
  return {
    async load() {
      try {
        const saved = JSON.parse(await readFile(path, 'utf8')) as Promised;
        return Number.isInteger(saved.term) && typeof saved.leader === 'string' ? saved : undefined;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async save(next) {
      await writeFile(`${path}.tmp`, JSON.stringify(next) + '\n', { mode: 0o600 });
      await rename(`${path}.tmp`, path);
    },
  };
}

export interface Promised {
  term: number;
  leader: string;
}

export interface VoteResult {
  granted: boolean;
  /** The voter's promised term after this request. */
  term: number;
  leader?: string;
  reason?: string;
}

export class Voter {
  private promised: Promised = { term: 0, leader: '' };
  private leaseUntil: number;
  /** Requests are answered one at a time: two interleaved across the persist could both be granted. */
  private queue: Promise<unknown> = Promise.resolve();

  private readonly store: VoteStore;

  /** `store`: a path (the vote file on the volume) or a VoteStore. */
  constructor(
    store: string | VoteStore,
    private readonly leaseMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.store = typeof store === 'string' ? voteFile(store) : store;
    // Unknown past: behave as if a lease was just granted.
    this.leaseUntil = now() + leaseMs;
  }

  async load(): Promise<void> {
    const saved = await this.store.load();
    if (saved) this.promised = saved;
  }

  get current(): Promised {
    return { ...this.promised };
  }

  /**
   * How long the lease this voter granted still runs (0 when it has lapsed or nobody holds it).
   * A follower watches this: a leader that stopped renewing is gone once it reaches 0.
   */
  leaseRemainingMs(): number {
    if (this.promised.leader === '') return 0;
    return Math.max(0, this.leaseUntil - this.now());
  }

  /** Saved before it is kept or answered: a promise a restart could forget is no promise. */
  private async persist(next: Promised): Promise<void> {
    await this.store.save(next);
    this.promised = next;
  }

  /**
   * A candidate asks for (or renews) a lease in `term`. With `dryRun` (a
   * pre-vote) the answer is what a real request would get, and nothing is
   * promised: a candidate that cannot win never raises anyone's term, so it
   * cannot lock a working leader out of its own voters.
   */
  requestVote(candidate: string, term: number, options: { dryRun?: boolean } = {}): Promise<VoteResult> {
    return this.serially(() => this.decideVote(candidate, term, options));
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async decideVote(candidate: string, term: number, options: { dryRun?: boolean }): Promise<VoteResult> {
    const { term: promisedTerm, leader } = this.promised;
    const t = this.now();
    if (term < promisedTerm) return { granted: false, term: promisedTerm, leader, reason: `term ${term} is older than promised term ${promisedTerm}` };
    if (term === promisedTerm) {
      if (leader !== candidate) return { granted: false, term, leader, reason: `term ${term} already promised to ${leader}` };
      if (!options.dryRun) this.leaseUntil = t + this.leaseMs; // renewal by the same leader
      return { granted: true, term, leader };
    }
    if (leader !== '' && leader !== candidate && t < this.leaseUntil) {
      return { granted: false, term: promisedTerm, leader, reason: `lease for ${leader} still runs for ${Math.ceil(this.leaseUntil - t)} ms` };
    }
    if (options.dryRun) return { granted: true, term: promisedTerm, leader };
    await this.persist({ term, leader: candidate });
    this.leaseUntil = t + this.leaseMs;
    return { granted: true, term, leader: candidate };
  }

  /**
   * The fence every command passes: accepted only from the leader of the
   * promised term, or from a newer term (which is then promised, so older
   * leaders are locked out from here on).
   */
  admit(leader: string, term: number): Promise<{ ok: boolean; reason?: string }> {
    return this.serially(() => this.decideAdmit(leader, term));
  }

  private async decideAdmit(leader: string, term: number): Promise<{ ok: boolean; reason?: string }> {
    const { term: promisedTerm, leader: promisedLeader } = this.promised;
    if (term < promisedTerm) return { ok: false, reason: `stale term ${term} < ${promisedTerm}` };
    if (term === promisedTerm && leader !== promisedLeader) return { ok: false, reason: `term ${term} belongs to ${promisedLeader}` };
    if (term > promisedTerm) await this.persist({ term, leader });
    return { ok: true };
  }
}
