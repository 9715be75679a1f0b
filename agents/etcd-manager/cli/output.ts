// How operator commands print: tables for people, one JSON document for
// scripts (-o json; field names are part of the interface and do not change),
// sizes and durations people can read.
import { ExitCode, UserError } from '../../../shared/errors.js';

export type OutputFormat = 'table' | 'json';

export function parseOutputFormat(value: string | string[] | undefined): OutputFormat {
  const format = typeof value === 'string' ? value : 'table';
  if (format === 'table' || format === 'json') return format;
  throw new UserError(`-o/--output: unknown format ${JSON.stringify(format)} (want table or json)`, ExitCode.Usage);
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd() + '\n';
  return line(header) + rows.map(line).join('');
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB"; whole bytes below 1 KiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** 3200 → "3.2 s", 125000 → "2 min 5 s", 7_500_000 → "2 h 5 min". */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** "5 min ago" from two instants (ms). */
export function ago(thenMs: number, nowMs: number): string {
  const s = Math.round((nowMs - thenMs) / 1000);
  if (s < 0) return 'in the future';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** The whole-second ISO form of an instant, as backup names carry it. */
export function isoSecond(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
