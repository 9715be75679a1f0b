// Where a version change's progress is kept: `control/etcd-version-change` in
// the backup store, beside `control/etcd-cluster-spec`. Not in etcd: a restore
// replaces etcd's data with the backup's, which predates the record's later
// steps. Written with the store's compare-and-swap (createIfAbsent /
// replaceIfVersion), and refused when the stored record carries a higher
// leadership term, so a deposed leader that wakes up cannot roll it back.
import type { StateStore } from '../../../shared/store/types.js';
import type { PlanStep, VersionChangeRecord, WaitReason } from './plan.js';
import { parseEtcdVersion } from './version.js';

export const VERSION_CHANGE_PATH = 'control/etcd-version-change';

export class RecordError extends Error {}

export function encodeVersionChange(record: VersionChangeRecord): string {
  return JSON.stringify(record, null, 2) + '\n';
}

const STEP_KINDS = new Set<PlanStep['kind']>(['backup', 'upgrade-member', 'restore-snapshot', 'convert-v2']);
const TRANSITIONS = new Set<VersionChangeRecord['transition']>(['in-place', 'restore', 'migrate-v2']);
const WAIT_REASONS = new Set<WaitReason>(['member-unhealthy', 'member-behind', 'member-unexpected-version', 'no-leader']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Strict: every field checked, the first problem named with its path. */
export function decodeVersionChange(text: string, source: string): VersionChangeRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new RecordError(`${source}: not JSON: ${(err as Error).message}`);
  }
  const fail = (field: string, why: string): never => {
    throw new RecordError(`${source}: ${field}: ${why}`);
  };
  if (!isObject(raw)) return fail('(top)', 'not an object');
  if (raw.format !== 1) fail('format', `unknown format ${JSON.stringify(raw.format)} (this build reads 1)`);
  const str = (o: Record<string, unknown>, field: string, path = field): string => {
    const v = o[field];
    if (typeof v !== 'string' || v === '') return fail(path, 'must be a non-empty string');
    return v;
  };
  for (const field of ['from', 'to']) {
    try {
      parseEtcdVersion(str(raw, field));
    } catch (err) {
      if (err instanceof RecordError) throw err;
      fail(field, (err as Error).message);
    }
  }
  if (!TRANSITIONS.has(raw.transition as VersionChangeRecord['transition'])) fail('transition', `must be one of ${[...TRANSITIONS].join(', ')}`);
  str(raw, 'id');
  str(raw, 'reason');
  if (Number.isNaN(Date.parse(str(raw, 'createdAt')))) fail('createdAt', 'not a time');
  if (typeof raw.term !== 'number' || !Number.isSafeInteger(raw.term) || raw.term < 0) fail('term', 'must be a whole number');
  if (!Array.isArray(raw.steps) || raw.steps.length === 0) fail('steps', 'must be a non-empty list');
  const ids = new Set<string>();
  (raw.steps as unknown[]).forEach((s, i) => {
    const path = `steps[${i}]`;
    if (!isObject(s)) return fail(path, 'not an object');
    const id = str(s, 'id', `${path}.id`);
    if (ids.has(id)) fail(`${path}.id`, `${id} appears twice`);
    ids.add(id);
    if (!STEP_KINDS.has(s.kind as PlanStep['kind'])) fail(`${path}.kind`, `unknown step kind ${JSON.stringify(s.kind)}`);
    if (s.state !== 'pending' && s.state !== 'done') fail(`${path}.state`, 'must be pending or done');
    if (s.kind === 'upgrade-member') str(s, 'member', `${path}.member`);
  });
  if (raw.blocked !== undefined) {
    if (!isObject(raw.blocked) || !WAIT_REASONS.has(raw.blocked.reason as WaitReason)) fail('blocked.reason', `must be one of ${[...WAIT_REASONS].join(', ')}`);
  }
  if (raw.lastError !== undefined) {
    if (!isObject(raw.lastError)) return fail('lastError', 'not an object');
    if (!ids.has(str(raw.lastError, 'step', 'lastError.step'))) fail('lastError.step', 'names no step of this change');
    str(raw.lastError, 'message', 'lastError.message');
    if (typeof raw.lastError.attempts !== 'number' || !Number.isSafeInteger(raw.lastError.attempts) || raw.lastError.attempts < 1) fail('lastError.attempts', 'must be a whole number from 1');
  }
  return raw as unknown as VersionChangeRecord;
}

export interface StoredVersionChange {
  record: VersionChangeRecord;
  /** The store's version tag, for the next save. */
  version: string;
}

export async function readVersionChange(store: StateStore): Promise<StoredVersionChange | undefined> {
  const got = await store.readVersioned(VERSION_CHANGE_PATH);
  if (!got) return undefined;
  return { record: decodeVersionChange(got.data.toString('utf8'), store.urlOf(VERSION_CHANGE_PATH)), version: got.version };
}

export type SaveResult = { saved: true; version: string } | { saved: false; why: 'changed' | 'newer-term'; current?: StoredVersionChange };

/**
 * Stores `record` if the stored one is still `expected` (undefined: none yet) and
 * was not written under a higher term. On `changed`, read it again and decide anew.
 */
export async function saveVersionChange(store: StateStore, record: VersionChangeRecord, expected: StoredVersionChange | undefined): Promise<SaveResult> {
  const current = await readVersionChange(store);
  if (current && current.record.term > record.term) return { saved: false, why: 'newer-term', current };
  if ((current?.version ?? undefined) !== (expected?.version ?? undefined)) return { saved: false, why: 'changed', current };
  const text = encodeVersionChange(record);
  const version = current ? await store.replaceIfVersion(VERSION_CHANGE_PATH, text, current.version) : await store.createIfAbsent(VERSION_CHANGE_PATH, text);
  return version === undefined ? { saved: false, why: 'changed', current: await readVersionChange(store) } : { saved: true, version };
}

/**
 * Removes a finished change's record (kept until then so `get` can show it).
 * Returns false when it changed under us.
 */
export async function clearVersionChange(store: StateStore, stored: StoredVersionChange): Promise<boolean> {
  return store.deleteIfVersion(VERSION_CHANGE_PATH, stored.version);
}
