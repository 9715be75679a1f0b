// Backup retention, kOps' rules (etcd-manager pkg/backupcontroller/cleanup.go)
// with the bands as a policy:
//   age < keepAllFor (1 h)   keep every backup
//   age < hourlyFor  (7 d)   keep the oldest backup of each UTC hour
//   age < dailyFor   (90 d)  keep the oldest backup of each UTC day
//   older                    delete
// The age is read from the name. Names that do not parse are never deleted.
// One difference from kOps: kOps keys hour and day buckets in one map, so when
// the hourly/daily boundary falls inside a day's first hour the two buckets
// merge and one backup is lost; here hour and day buckets are apart.
//
// cleanupBackups does ONE listing of the store per pass (kOps walks the tree:
// ~700 S3 list calls a run) and deletes what the plan says, plus incomplete
// folders (no meta) older than a bound: abandoned uploads.
import type { StateStore } from '../../../shared/store/types.js';
import { metaPath } from './layout.js';
import { listBackups, type IncompleteBackup } from './list.js';
import { parseBackupName } from './names.js';

export interface RetentionPolicy {
  keepAllForMs: number;
  hourlyForMs: number;
  dailyForMs: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const DEFAULT_RETENTION: RetentionPolicy = { keepAllForMs: HOUR, hourlyForMs: 7 * DAY, dailyForMs: 90 * DAY };

/** Incomplete folders younger than this are left alone: an upload may still be running. */
export const DEFAULT_INCOMPLETE_AFTER_MS = 6 * HOUR;

export type RetentionReason = 'recent' | 'hourly' | 'daily' | 'unparseable';

export interface RetentionPlan {
  /** Kept names with why, in name order. */
  keep: Array<{ name: string; reason: RetentionReason }>;
  /** Names to delete, in name order. */
  delete: string[];
}

/** Checks the bands are ordered; throws naming the policy field. */
export function checkPolicy(policy: RetentionPolicy): void {
  const { keepAllForMs, hourlyForMs, dailyForMs } = policy;
  for (const [k, v] of Object.entries(policy)) if (!Number.isFinite(v) || v < 0) throw new RangeError(`retention ${k} must be a non-negative duration (got ${v})`);
  if (hourlyForMs < keepAllForMs) throw new RangeError('retention: the hourly band must not end before the keep-all band');
  if (dailyForMs < hourlyForMs) throw new RangeError('retention: the daily band must not end before the hourly band');
}

/** Pure: which backups to keep and which to delete, given their names and the time now. */
export function planRetention(names: string[], nowMs: number, policy: RetentionPolicy = DEFAULT_RETENTION): RetentionPlan {
  checkPolicy(policy);
  const reasons = new Map<string, RetentionReason>();
  // bucket key → the oldest backup in it
  const oldest = new Map<string, { name: string; t: number; band: 'hourly' | 'daily' }>();
  for (const name of names) {
    const parsed = parseBackupName(name);
    if (!parsed) {
      reasons.set(name, 'unparseable');
      continue;
    }
    const t = parsed.time.getTime();
    const age = nowMs - t;
    if (age < policy.keepAllForMs) {
      reasons.set(name, 'recent');
      continue;
    }
    let key: string;
    let band: 'hourly' | 'daily';
    if (age < policy.hourlyForMs) {
      band = 'hourly';
      key = `h${Math.floor(t / HOUR)}`;
    } else if (age < policy.dailyForMs) {
      band = 'daily';
      key = `d${Math.floor(t / DAY)}`; // epoch days are UTC days
    } else continue;
    const current = oldest.get(key);
    // Oldest wins; equal times (same second) go to the smaller name, which sorts first.
    if (!current || t < current.t || (t === current.t && name < current.name)) oldest.set(key, { name, t, band });
  }
  for (const { name, band } of oldest.values()) reasons.set(name, band);
  const sorted = [...new Set(names)].sort();
  return {
    keep: sorted.filter((n) => reasons.has(n)).map((name) => ({ name, reason: reasons.get(name)! })),
    delete: sorted.filter((n) => !reasons.has(n)),
  };
}

export interface CleanupOptions {
  policy?: RetentionPolicy;
  /** Incomplete folders whose name is older than this are deleted. Default 6 h. */
  incompleteAfterMs?: number;
  now: number;
  /** Plan only: nothing is deleted. */
  dryRun?: boolean;
}

export interface CleanupResult {
  plan: RetentionPlan;
  /** Backups deleted (all of their objects). */
  deleted: string[];
  /** Incomplete folders deleted. */
  deletedIncomplete: string[];
  /** Deletions that failed, with why; the next pass tries again. */
  failed: Array<{ name: string; error: string }>;
}

/** Incomplete folders past the bound (pure). Unparseable names are never deleted. */
export function staleIncomplete(incomplete: IncompleteBackup[], nowMs: number, afterMs: number): IncompleteBackup[] {
  return incomplete.filter((i) => i.time !== undefined && nowMs - i.time.getTime() > afterMs);
}

/**
 * One pass: one listing, then deletes. A backup is deleted meta first, so a
 * pass cut off half way leaves an incomplete folder (never a backup missing
 * its data), which a later pass removes.
 */
export async function cleanupBackups(store: StateStore, options: CleanupOptions): Promise<CleanupResult> {
  const listing = await listBackups(store);
  const plan = planRetention(listing.backups.map((b) => b.name), options.now, options.policy ?? DEFAULT_RETENTION);
  const result: CleanupResult = { plan, deleted: [], deletedIncomplete: [], failed: [] };
  if (options.dryRun) return result;
  const objectsOf = new Map(listing.backups.map((b) => [b.name, b.objects]));
  for (const name of plan.delete) {
    try {
      // Meta first: from then on the folder is merely incomplete.
      const meta = metaPath(name);
      await store.delete(meta);
      for (const path of objectsOf.get(name) ?? []) if (path !== meta) await store.delete(path);
      result.deleted.push(name);
    } catch (err) {
      result.failed.push({ name, error: (err as Error).message });
    }
  }
  for (const folder of staleIncomplete(listing.incomplete, options.now, options.incompleteAfterMs ?? DEFAULT_INCOMPLETE_AFTER_MS)) {
    try {
      for (const path of folder.objects) await store.delete(path);
      result.deletedIncomplete.push(folder.name);
    } catch (err) {
      result.failed.push({ name: folder.name, error: (err as Error).message });
    }
  }
  return result;
}
