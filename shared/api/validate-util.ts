// Small pieces the validators share. Specs come from users, so every field is
// checked as `unknown` first: a wrong type is a message, never a crash.
import { formatCIDR, parseCIDR, type IPv4CIDR } from './cidr.js';

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

/** kOps' `sysctlParameters` entries: `key=value`. */
export function checkSysctls(value: unknown, path: string, report: Report): void {
  optionalList(value, path, report).forEach((entry, i) => {
    if (typeof entry !== 'string' || !/^[a-z0-9_.\/-]+\s*=/.test(entry)) {
      report(`${path}[${i}]`, `invalid sysctl ${show(entry)} (want key=value)`);
    }
  });
}
