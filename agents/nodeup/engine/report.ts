// How a run reads to an operator: a progress line per task with its timing,
// the dry-run plan (create / modify with old → new and unified diffs /
// unchanged), JSON for machines, and the final list of failures.
import type { RunReport, TaskResult } from './run.js';

const STATUS_WIDTH = 9;

export function progressLine(r: TaskResult, done: number, total: number, dryRun: boolean): string {
  const width = String(total).length;
  const status = dryRun && r.status === 'changed' ? `would-${r.plan?.action ?? 'change'}` : r.status;
  const tail = r.error ? `: ${r.error}` : r.reason ? `: ${r.reason}` : r.status === 'changed' && r.plan ? ` (${r.plan.action})` : '';
  const retries = r.attempts > 1 ? `, ${r.attempts} attempts` : '';
  return `[${String(done).padStart(width)}/${total}] ${status.padEnd(STATUS_WIDTH)} ${r.id} ${r.ms} ms${retries}${tail}`;
}

function indent(text: string, prefix: string): string {
  return text.replace(/\n$/, '').split('\n').map((line) => prefix + line).join('\n');
}

/** The dry-run plan as text. Contains no timings, so it is stable for golden files. */
export function formatPlan(report: RunReport): string {
  const byAction = (action: 'create' | 'modify'): TaskResult[] => report.results.filter((r) => r.status === 'changed' && r.plan?.action === action);
  const out: string[] = [];
  for (const [title, results] of [['Will create', byAction('create')], ['Will modify', byAction('modify')]] as const) {
    if (results.length === 0) continue;
    out.push(`${title}:`);
    for (const r of results) {
      out.push(`  ${r.id}`);
      for (const c of r.plan?.changes ?? []) out.push(`    ${c.field}: ${c.old !== undefined ? `${c.old} -> ` : ''}${c.new}`);
      if (r.plan?.diff) out.push(indent(r.plan.diff, '      '));
    }
  }
  const unchanged = report.results.filter((r) => r.status === 'unchanged');
  if (unchanged.length > 0) {
    out.push(`Unchanged (${unchanged.length}):`);
    for (const r of unchanged) out.push(`  ${r.id}`);
  }
  const notApplicable = report.results.filter((r) => r.status === 'skipped' && r.reason !== undefined);
  if (notApplicable.length > 0) {
    out.push(`Skipped (${notApplicable.length}):`);
    for (const r of notApplicable) out.push(`  ${r.id}: ${r.reason}`);
  }
  if (report.failed.length > 0) out.push(formatFailures(report));
  if (report.results.every((r) => r.status === 'unchanged' || (r.status === 'skipped' && r.reason !== undefined))) out.push('No changes needed.');
  return out.join('\n') + '\n';
}

export function formatFailures(report: RunReport): string {
  const lines = [`Failed (${report.failed.length}):`];
  for (const r of report.failed) lines.push(`  ${r.id}: ${r.status === 'skipped' ? 'skipped, ' : ''}${r.error ?? 'unknown error'}`);
  return lines.join('\n');
}

export function summaryLine(report: RunReport): string {
  const count = (s: TaskResult['status']): number => report.results.filter((r) => r.status === s).length;
  return `${report.results.length} tasks: ${count('changed')} changed, ${count('unchanged')} unchanged, ${count('failed')} failed, ${count('skipped')} skipped (${report.ms} ms)`;
}

/** Machine-readable plan or report; timings only when asked (they are not part of a plan). */
export function reportJSON(report: RunReport, dryRun: boolean, withTimings = false): string {
  return JSON.stringify({
    dryRun,
    tasks: report.results.map((r) => ({
      id: r.id,
      status: r.status,
      ...(r.plan ? { action: r.status === 'unchanged' ? 'unchanged' : r.plan.action, changes: r.plan.changes, ...(r.plan.diff ? { diff: r.plan.diff } : {}) } : {}),
      ...(r.error ? { error: r.error } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
      ...(withTimings ? { ms: r.ms, attempts: r.attempts } : {}),
    })),
    failed: report.failed.map((r) => r.id),
  }, null, 2) + '\n';
}
