// Capped, jittered exponential backoff (kOps retries forever with a growing
// wait: 34+ minutes reported in kops#16935). Here: a fixed number of attempts,
// and a delay that never exceeds maxDelayMs.
export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 3, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** Delay before retry number `attempt` (1-based): full exponential, capped, then "equal jitter" (half fixed, half random). */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
