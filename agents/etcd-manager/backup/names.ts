// Backup names, kOps' form (etcd-manager docs/backupstructure.md):
// `<UTC RFC 3339, whole seconds>-<6-digit suffix>`, e.g. `2026-11-30T08:15:00Z-123456`.
// The name is the backup's folder in the store and carries its time: retention
// and listings read the time from the name, never from object dates.
//
// kOps' suffix is a per-process counter, so two leaders (one just deposed, one
// new) backing up in the same second can pick the same name. Ours is the
// millisecond within the second (3 digits) followed by 3 random digits: names of
// one second still sort by time to the millisecond, two writers collide only
// with the same millisecond and the same 1-in-1000 draw, and one namer never
// repeats or goes backwards (it bumps the suffix when the clock stalls or steps back).

/** Clock and randomness, injected so tests are deterministic. */
export interface NamerDeps {
  /** Milliseconds since the epoch. */
  now(): number;
  /** An integer in [0, below). */
  randomInt(below: number): number;
}

export interface ParsedBackupName {
  name: string;
  /** The time the name carries (whole seconds, UTC). */
  time: Date;
  /** What follows `Z-`; kOps allows any string here. */
  suffix: string;
}

const NAME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)-(.+)$/;
const OUR_SUFFIX = /^\d{6}$/;

/**
 * The time and suffix of a backup name, or undefined when the name does not
 * start with an RFC 3339 UTC time followed by `-` (kOps' parse.go rule: such
 * names are ignored by retention, never deleted). Names with fractional seconds
 * or offsets other than Z are not produced by etcd-manager and are not accepted.
 */
export function parseBackupName(name: string): ParsedBackupName | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  const time = new Date(m[1]);
  // Date accepts 2026-02-30 by rolling over; a real name round-trips.
  if (Number.isNaN(time.getTime()) || formatSecond(time.getTime()) !== m[1]) return undefined;
  return { name, time, suffix: m[2] };
}

/** `2026-11-30T08:15:00Z`: RFC 3339 in UTC, whole seconds (Go's time.RFC3339 of a UTC time). */
export function formatSecond(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** A backup name for a given second and suffix number (0..999999). */
export function formatBackupName(ms: number, suffix: number): string {
  if (!Number.isInteger(suffix) || suffix < 0 || suffix > 999_999) throw new RangeError(`backup name suffix ${suffix} is not in 0..999999`);
  return `${formatSecond(ms)}-${String(suffix).padStart(6, '0')}`;
}

/**
 * Hands out backup (and command) names that sort in the order they were
 * handed out, even across clock steps backwards within this process.
 */
export class BackupNamer {
  private lastSecond = -Infinity;
  private lastSuffix = -1;

  constructor(private readonly deps: NamerDeps) {}

  next(): string {
    const now = this.deps.now();
    let second = Math.floor(now / 1000) * 1000;
    let suffix = (now - second) * 1000 + this.deps.randomInt(1000);
    if (second < this.lastSecond || (second === this.lastSecond && suffix <= this.lastSuffix)) {
      // Same second (or the clock went back): stay after the last name.
      second = this.lastSecond;
      suffix = this.lastSuffix + 1;
      if (suffix > 999_999) {
        second += 1000;
        suffix = 0;
      }
    }
    this.lastSecond = second;
    this.lastSuffix = suffix;
    return formatBackupName(second, suffix);
  }
}

/** True for names this project writes (6-digit suffix); kOps' are the same shape. */
export function isCanonicalBackupName(name: string): boolean {
  const parsed = parseBackupName(name);
  return parsed !== undefined && OUR_SUFFIX.test(parsed.suffix);
}
