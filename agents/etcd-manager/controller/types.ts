// What the controller's modules share: the clock, the test hooks, and the
// shape of a reconcile pass (steps that each return what they did).
import { performance } from 'node:perf_hooks';
import type { EtcdClusterSpecFile } from './spec.js';
import type { Survey } from './election.js';

/** Two clocks: monotonic for leases and timeouts, wall-clock for what other hosts read (etcd, the store). */
export interface Clock {
  /** Monotonic milliseconds (leases, deadlines). */
  now(): number;
  /** Unix milliseconds (timestamps shared with other hosts). */
  wallNow(): number;
}

export const systemClock: Clock = { now: () => performance.now(), wallNow: () => Date.now() };

/**
 * Test-only behaviour, injected (never read from the environment by the
 * controller). The binary builds it from the hidden, test-only
 * `--test-hook=` flag (see test-hooks.ts); production runs have none.
 */
export interface TestHooks {
  /** SIGSTOP this process once, between the leader's leadership check and the etcd fence (etcd-manager-fence.test.ts). */
  stopBeforeFence?: boolean;
  /** The leader's pass hangs (its peer API still answering) until the manager stops (etcd-manager-scenarios-stuck.test.ts). */
  hangWhileLeading?: boolean;
  /** Issue certificates this short-lived, renewed with a third left (etcd-manager-cert-renewal*.test.ts). */
  certLifetimeMs?: number;
  /** The on-demand backup asked with this reason holds its upload half way until the manager is killed (etcd-manager-backups*.test.ts). */
  holdBackupUpload?: string;
}

/** What one step of a pass did. */
export interface StepResult {
  /** A short description of a change made (logged, and it makes the pass count as progress). */
  did?: string;
  /** Something changed that the next pass should look at at once, without a description worth logging. */
  progress?: boolean;
  /** A condition this member waits on (etcd healthy, a learner caught up): the next pass comes after a short poll, not the interval. */
  waitFor?: string;
  /** Nothing after this step makes sense in this pass (no spec yet, standing by). */
  stop?: boolean;
}

/** What a whole pass did: kOps' controller calls `progress` the reason to run again at once. */
export interface PassReport {
  did: string[];
  progress: boolean;
  waitingFor: string[];
}

/** The facts a pass gathers as its steps run, for the steps after them. */
export interface Pass {
  spec?: EtcdClusterSpecFile;
  /** The managers that answered, this pass (multi-member clusters). */
  survey?: Survey;
  /** True once the election step found this manager leading, for this pass. */
  leading: boolean;
  /** control/etcd-cluster-created exists (read by the leader). */
  created?: boolean;
  /** A restore is under way (or starting): no formation, membership change or scheduled backup this pass. */
  restoring?: boolean;
}

export type StepName = 'certificates' | 'discovery' | 'spec' | 'local-start' | 'election' | 'newcluster' | 'membership' | 'local-health'
  | 'commands' | 'restore' | 'version' | 'backup' | 'status' | 'trash';

/**
 * One concern's part of a pass. `leaderOnly` steps run only while the
 * election step found this manager leading. A step may throw: the pass then
 * fails (logged, counted) and the next one comes after the interval.
 */
export interface Step {
  name: StepName;
  leaderOnly?: boolean;
  run(pass: Pass): Promise<StepResult | undefined>;
}
