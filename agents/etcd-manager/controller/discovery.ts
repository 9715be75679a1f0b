// Discovery as steps of the pass: every --discovery-poll-interval this manager
// re-registers (discovery.ts) and rewrites its /etc/hosts block; right after
// its first registration it announces itself to the managers it found, so a
// leader waiting for members looks again at once instead of an interval later.
// The leader prunes the records of managers silent for too long.
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import { listPeers, pruneStaleRecords, recordTTLms, registerPeer, type PeerRecord } from '../discovery.js';
import type { Clock, Pass, StepResult } from './types.js';

export interface DiscoveryDeps {
  backups: StateStore;
  /** This manager's record, as of now. */
  record(): PeerRecord;
  /** Rewrites the hosts-file block from the records. */
  updateHosts(records: PeerRecord[]): Promise<void>;
  pollIntervalMs: number;
  clock: Clock;
  log: Logger;
  /** Tells these managers that this one changed (here: registered). */
  announce(records: PeerRecord[], reason: string): void;
}

export class Discovery {
  private last = 0;
  private announced = false;
  private known: PeerRecord[] = [];

  constructor(private readonly deps: DiscoveryDeps) {}

  /** The records as of the last registration (for announcements between passes). */
  get records(): PeerRecord[] {
    return this.known;
  }

  async step(): Promise<StepResult | undefined> {
    const { backups, clock } = this.deps;
    const now = clock.now();
    if (this.last > 0 && now - this.last < this.deps.pollIntervalMs) return undefined;
    const self = this.deps.record();
    await registerPeer(backups, self);
    this.known = await listPeers(backups);
    await this.deps.updateHosts(this.known);
    this.last = now;
    if (!this.announced) {
      this.announced = true;
      this.deps.announce(this.known.filter((r) => r.member !== self.member), 'registered');
    }
    return undefined;
  }

  /** The leader's part: forget managers that neither answered nor re-registered for the record TTL. */
  async prune(pass: Pass): Promise<StepResult | undefined> {
    const survey = pass.survey;
    if (!survey) return undefined;
    const ttlMs = recordTTLms(this.deps.pollIntervalMs);
    const pruned = await pruneStaleRecords(this.deps.backups, survey.records, new Set(survey.alive.map((a) => a.record.member)), ttlMs, this.deps.clock.wallNow());
    if (pruned.length === 0) return undefined;
    this.deps.log.info('pruned the discovery records of managers silent for too long', { event: 'discovery.pruned', members: pruned, ttlMs });
    return { did: `pruned ${pruned.join(',')}` };
  }
}
