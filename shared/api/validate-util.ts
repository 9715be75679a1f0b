// Small pieces the validators share. Specs come from users, so every field is
// checked as `unknown` first: a wrong type is a message, never a crash.
import { formatCIDR, parseCIDR, type IPv4CIDR } from './cidr.js';
import { joinPath } from './fieldpath.js';

/** Records one problem at a field path of the object being checked. */
export type Report = (path: string, reason: string) => void;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** A required non-empty string; reports and returns undefined otherwise. */
export function requireString(value: unknown, path: string, report: Report): string | undefined {
  if (value === undefined || value === null || value === '') {
    report(path, 'missing');
    return undefined;
  }
  if (typeof value !== 'string') {
    report(path, `must be a string (got ${show(value)})`);
    return undefined;
  }
  return value;
}

/** An optional list; reports a non-list and returns [] for it. */
export function optionalList(value: unknown, path: string, report: Report): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    report(path, 'must be a list');
    return [];
  }
  return value;
}

/** Parses an optional CIDR field; a bad value (or host bits set) is reported. */
export function checkCIDR(value: unknown, path: string, report: Report): IPv4CIDR | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    report(path, `must be a CIDR string such as "10.0.0.0/16" (got ${show(value)})`);
    return undefined;
  }
  let cidr: IPv4CIDR;
  try {
    cidr = parseCIDR(value);
  } catch (err) {
    report(path, (err as Error).message);
    return undefined;
  }
  if (cidr.hostBitsSet) {
    report(path, `invalid CIDR ${show(value)} (host bits set; did you mean ${formatCIDR(cidr)}?)`);
    return undefined;
  }
  return cidr;
}

export function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/**
 * kOps' `sysctlParameters` entries: `key=value`, one line of sysctl.d each: the
 * key a sysctl name, the value anything printable (`4096 87380 16777216`).
 */
export function checkSysctls(value: unknown, path: string, report: Report): void {
  optionalList(value, path, report).forEach((entry, i) => {
    if (typeof entry !== 'string' || !/^[A-Za-z0-9_.\/-]+\s*=[^\p{Cc}]*$/u.test(entry)) {
      report(`${path}[${i}]`, `invalid sysctl ${show(entry)} (want key=value on one line, the key letters, digits, '_', '.', '/' or '-')`);
    }
  });
}

/** Kubernetes' largest supported cluster: an instance group never needs more nodes. */
export const MAX_GROUP_SIZE = 5000;

/**
 * Reports every number below value whose size JSON and YAML cannot carry
 * exactly (beyond ±2^53, e.g. 1e20 would be stored as 1e+20), skipping paths
 * that already have a problem.
 */
export function checkNumbers(value: unknown, path: string, report: Report, reported: (path: string) => boolean): void {
  if (typeof value === 'number') {
    if (Math.abs(value) > Number.MAX_SAFE_INTEGER && !reported(path)) report(path, `${value} is too large to keep exactly (at most ${Number.MAX_SAFE_INTEGER})`);
  } else if (Array.isArray(value)) {
    value.forEach((item: unknown, i) => checkNumbers(item, `${path}[${i}]`, report, reported));
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) checkNumbers(item, joinPath(path, key), report, reported);
  }
}
