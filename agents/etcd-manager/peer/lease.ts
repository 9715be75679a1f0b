// The one lease length of leadership, used by both sides: a voter grants a
// lease this long (counted from when it received the request) and a leader
// believes in it for LEADER_SHARE of that (counted from when it SENT the
// request), so a leader always deposes itself before its voters free
// themselves. The leader renews on its own timer, every RENEW_SHARE of a
// lease, whatever the reconcile interval: two renewals may fail before it
// loses the lease.
//
// The length is three reconcile intervals, at least 1 s and at most 4 s: at
// the default 10 s interval a killed leader's lease lapses within 4 s; tests
// that run short intervals (300 ms) get short leases (1 s), as they always had.

export const LEASE_MIN_MS = 1_000;
export const LEASE_MAX_MS = 4_000;

/** The share of a lease a leader counts on (the rest is margin for clock rates and the round trip). */
export const LEADER_SHARE = 3 / 4;

/** A leader renews every this share of a lease. */
export const RENEW_SHARE = 1 / 4;

export function leaseMs(reconcileIntervalMs: number): number {
  return Math.min(Math.max(3 * reconcileIntervalMs, LEASE_MIN_MS), LEASE_MAX_MS);
}
