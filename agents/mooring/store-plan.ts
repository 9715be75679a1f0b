// Desired state-store contents as data, diffed against what the store holds:
// `update cluster` prints this plan without --yes and applies it with --yes.
import { createTwoFilesPatch } from 'diff';
import type { StateStore } from '../../shared/store/types.js';

export interface DesiredObject {
  path: string;
  content: string;
  /** Secret objects are never shown: their contents are neither printed nor diffed. */
  secret?: boolean;
  mode?: number;
}

export type PlanAction = 'create' | 'modify' | 'delete' | 'unchanged';

export interface PlanEntry {
  path: string;
  action: PlanAction;
  secret: boolean;
  /** Unified diff for modified, non-secret objects. */
  diff?: string;
  desired?: DesiredObject;
}

export async function diffAgainstStore(
  store: StateStore,
  desired: DesiredObject[],
  obsolete: string[] = [],
): Promise<PlanEntry[]> {
  const entries: PlanEntry[] = [];
  for (const object of desired) {
    const current = await store.readIfExists(object.path);
    const secret = object.secret === true;
    if (current === undefined) {
      entries.push({ path: object.path, action: 'create', secret, desired: object });
    } else if (current.toString('utf8') === object.content) {
      entries.push({ path: object.path, action: 'unchanged', secret, desired: object });
    } else {
      const diff = secret
        ? undefined
        : createTwoFilesPatch(`a/${object.path}`, `b/${object.path}`, current.toString('utf8'), object.content, '', '', { context: 2 });
      entries.push({ path: object.path, action: 'modify', secret, diff, desired: object });
    }
  }
  for (const path of obsolete) entries.push({ path, action: 'delete', secret: false });
  return entries;
}

export function hasChanges(entries: PlanEntry[]): boolean {
  return entries.some((e) => e.action !== 'unchanged');
}

export function formatPlan(baseURL: string, entries: PlanEntry[], applied: boolean): string {
  const sections: Array<[PlanAction, string]> = applied
    ? [['create', 'Created'], ['modify', 'Modified'], ['delete', 'Deleted']]
    : [['create', 'Will create'], ['modify', 'Will modify'], ['delete', 'Will delete']];
  let text = '';
  for (const [action, title] of sections) {
    const chosen = entries.filter((e) => e.action === action);
    if (chosen.length === 0) continue;
    text += `${title} in ${baseURL}:\n`;
    for (const e of chosen) text += `  ${e.path}${e.secret ? '  (secret: contents not shown)' : ''}\n`;
    for (const e of chosen) if (e.diff) text += indent(e.diff);
    text += '\n';
  }
  const unchanged = entries.filter((e) => e.action === 'unchanged').length;
  text += `${entries.length - unchanged} ${applied ? 'changed' : 'to change'}, ${unchanged} unchanged.\n`;
  return text;
}

function indent(diff: string): string {
  // Drop the "Index:" and "====" preamble lines jsdiff adds; keep ---/+++ and hunks.
  return diff
    .split('\n')
    .filter((l) => !l.startsWith('Index:') && !/^=+$/.test(l))
    .filter((l, i, all) => !(i === all.length - 1 && l === ''))
    .map((l) => `    ${l}\n`)
    .join('');
}

/** Applies a plan in the order given; the caller orders it so a crash leaves a usable store. */
export async function applyPlan(store: StateStore, entries: PlanEntry[]): Promise<void> {
  for (const e of entries) {
    if ((e.action === 'create' || e.action === 'modify') && e.desired) {
      await store.write(e.path, e.desired.content, e.desired.mode === undefined ? undefined : { mode: e.desired.mode });
    } else if (e.action === 'delete') {
      await store.delete(e.path);
    }
  }
}
