// TTL → lease grouping for the v2 → v3 migration. A v2 key with a TTL becomes a
// v3 key attached to a lease, and keys whose expiries are close together share
// one lease, so the number of leases is bounded whatever the number of keys.
//
// The rule. Every expiry is measured from the migration's start T0 (stored in
// the target, so a resumed run buckets alike): remaining r = expiry − T0.
//   r ≤ 100 s: one bucket per second, bucket i covers ((i−1) s, i s];
//   r > 100 s: each bucket 1% wider than the one before: bucket 100+j covers
//              (100 s·1.01^(j−1), 100 s·1.01^j].
// A key's lease ends at its bucket's end: never before the key's own expiry,
// and at most max(1 s, 1% of r) after it (plus etcd's own rounding of a
// lease's TTL to whole seconds, and its lease expiry check every 500 ms).
// Bound: 100 + ⌈log₁.₀₁(r_max / 100 s)⌉ leases: 461 when every TTL is under an
// hour, 1,373 under a year, and LEASE_BOUND (1,941) for the longest TTL etcd's
// leases can carry (9·10⁹ s), longer ones being capped there.
//
// Lease IDs are chosen by us, from the migration's id and the bucket: a resumed
// run grants the same IDs (etcd answers "lease already exists" and the lease is
// reused), so a migration killed and restarted never leaves a stray lease.
import { createHash } from 'node:crypto';

const LINEAR_BUCKETS = 100;
const SECOND_MS = 1000;
const LINEAR_END_MS = LINEAR_BUCKETS * SECOND_MS;
const GROWTH = 1.01;
/** etcd's MaxLeaseTTL (lease.MaxLeaseTTL): the longest TTL a grant may ask for. */
export const MAX_LEASE_TTL_S = 9_000_000_000;
const MAX_REMAINING_MS = MAX_LEASE_TTL_S * SECOND_MS;

/** Where bucket i ends, in ms after T0. Bucket 0 does not exist (keys without TTL have no lease). */
export function bucketEndMs(i: number): number {
  if (i <= LINEAR_BUCKETS) return i * SECOND_MS;
  return Math.ceil(LINEAR_END_MS * GROWTH ** (i - LINEAR_BUCKETS));
}

/** Where bucket i starts (exclusive), in ms after T0. */
export function bucketStartMs(i: number): number {
  return i <= 1 ? 0 : bucketEndMs(i - 1);
}

/** The bucket of a key that expires `remainingMs` after T0 (> 0; capped at etcd's longest lease). */
export function bucketOf(remainingMs: number): number {
  const r = Math.min(Math.max(remainingMs, 1), MAX_REMAINING_MS);
  if (r <= LINEAR_END_MS) return Math.ceil(r / SECOND_MS);
  let i = LINEAR_BUCKETS + Math.max(1, Math.ceil(Math.log(r / LINEAR_END_MS) / Math.log(GROWTH)));
  // Floating point can land one off at a boundary: settle on the bucket whose interval holds r.
  while (bucketEndMs(i) < r) i++;
  while (i > LINEAR_BUCKETS + 1 && bucketEndMs(i - 1) >= r) i--;
  return i;
}

/** The most leases a migration can use when no key expires later than `maxRemainingMs` after T0. */
export function leaseBound(maxRemainingMs: number): number {
  return bucketOf(maxRemainingMs);
}

/** The most leases any migration can use. */
export const LEASE_BOUND = leaseBound(MAX_REMAINING_MS);

/** The rule's name, stored with the migration so a run of another build cannot bucket differently. */
export const LEASE_RULE = 'linear-1s-to-100s-then-1pct';

/**
 * Our lease ID for a bucket: 63 bits of sha256(migration id, bucket), never 0
 * (0 asks etcd to pick). A decimal string, as the etcd3 client takes int64s.
 */
export function leaseIdFor(migrationId: string, bucket: number): string {
  const digest = createHash('sha256').update(`mooring-migrate-v2\0${migrationId}\0${bucket}`).digest();
  const id = digest.readBigUInt64BE(0) & 0x7fff_ffff_ffff_ffffn;
  return (id === 0n ? 1n : id).toString();
}

/** The TTL (whole seconds, at least 1) to grant at `nowMs` so a lease ends no earlier than its bucket. */
export function grantTTLSeconds(t0Ms: number, bucket: number, nowMs: number): number {
  return Math.min(MAX_LEASE_TTL_S, Math.max(1, Math.ceil((t0Ms + bucketEndMs(bucket) - nowMs) / SECOND_MS)));
}
