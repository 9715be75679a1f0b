// Table and object output for `get` commands.
import { stringifyObjects } from '../../shared/api/parse.js';
import type { Cluster, InstanceGroup } from '../../shared/api/types.js';
import { ExitCode, UserError } from '../../shared/errors.js';

export type OutputFormat = 'table' | 'yaml' | 'json';

export function parseOutputFormat(value: string | undefined, fallback: OutputFormat): OutputFormat {
  const format = value ?? fallback;
  if (format === 'table' || format === 'yaml' || format === 'json') return format;
  throw new UserError(`-o/--output: unknown format "${format}" (want table, yaml or json)`, ExitCode.Usage);
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ') + '\n';
  return fmt(header) + rows.map(fmt).join('');
}

export function zonesOf(cluster: Cluster): string {
  const zones = new Set((cluster.spec.subnets ?? []).map((s) => s.zone).filter((z): z is string => typeof z === 'string'));
  return [...zones].join(',');
}

export function cloudName(cluster: Cluster): string {
  const cp = cluster.spec.cloudProvider;
  if (typeof cp === 'string') return cp;
  if (cp && typeof cp === 'object') return Object.keys(cp)[0] ?? '';
  return '';
}

export function formatInstanceGroups(igs: InstanceGroup[], format: OutputFormat): string {
  if (format !== 'table') return stringifyObjects(igs, format);
  return table(
    ['NAME', 'ROLE', 'MACHINETYPE', 'MIN', 'MAX', 'SUBNETS'],
    igs.map((ig) => [
      ig.metadata.name,
      ig.spec.role,
      ig.spec.machineType ?? '',
      String(ig.spec.minSize ?? ''),
      String(ig.spec.maxSize ?? ''),
      (ig.spec.subnets ?? []).join(','),
    ]),
  );
}
