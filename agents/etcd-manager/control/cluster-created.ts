// control/etcd-cluster-created: present (and non-empty) once a cluster was
// formed; a new cluster may only be created while it is absent. kOps writes
// `{"timestamp":<unix nanoseconds>}` with encoding/json (unknown fields ignored
// when read), and treats an empty file as an error. We write kOps' field plus
// who created it; any non-empty content counts as created.
import type { StateStore } from '../../../shared/store/types.js';
import { ControlFileError } from './cluster-spec.js';

export const CLUSTER_CREATED_PATH = 'control/etcd-cluster-created';

export interface ClusterCreatedMarker {
  /** When, in ms since the epoch (written as kOps' nanoseconds). */
  atMs: number;
  /** Extra facts kept beside kOps' field (e.g. leader, term, members, restoredFrom). */
  extra?: Record<string, string | number | string[]>;
}

export function formatClusterCreated(marker: ClusterCreatedMarker): string {
  // Nanoseconds exceed a double's exact range: write the integer text ourselves.
  const nanos = (BigInt(Math.floor(marker.atMs)) * 1_000_000n).toString();
  if (marker.extra && 'timestamp' in marker.extra) throw new Error('the created marker\'s extra facts cannot replace kOps\' timestamp');
  const extra = marker.extra ? JSON.stringify(marker.extra).slice(1, -1) : '';
  return `{"timestamp":${nanos}${extra ? `,${extra}` : ''}}`;
}

/** True when the marker exists. An empty marker is an error (kOps' rule: it cannot tell created from not). */
export async function isClusterCreated(store: StateStore): Promise<boolean> {
  const data = await store.readIfExists(CLUSTER_CREATED_PATH);
  if (data === undefined) return false;
  if (data.toString('utf8').trim() === '') throw new ControlFileError(`${store.urlOf(CLUSTER_CREATED_PATH)} is empty: cannot tell whether the cluster was created; remove it only if no cluster exists`);
  return true;
}

export async function markClusterCreated(store: StateStore, marker: ClusterCreatedMarker): Promise<void> {
  await store.write(CLUSTER_CREATED_PATH, formatClusterCreated(marker));
}

export interface ClusterCreatedFacts {
  /** kOps' timestamp, in ms since the epoch; undefined when the marker has none. */
  atMs?: number;
  /** Every other field, as written (leader, term, members, restoredFrom, …). */
  extra: Record<string, unknown>;
}

/**
 * What the marker says, for operators (`etcd-manager get`): undefined when it
 * does not exist. Content that is not a JSON object still means "created"
 * (isClusterCreated's rule) and is reported with no facts.
 */
export async function readClusterCreated(store: StateStore): Promise<ClusterCreatedFacts | undefined> {
  const data = await store.readIfExists(CLUSTER_CREATED_PATH);
  if (data === undefined) return undefined;
  const text = data.toString('utf8');
  if (text.trim() === '') throw new ControlFileError(`${store.urlOf(CLUSTER_CREATED_PATH)} is empty: cannot tell whether the cluster was created; remove it only if no cluster exists`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { extra: {} };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { extra: {} };
  const { timestamp, ...extra } = doc as Record<string, unknown>;
  // Nanoseconds as a JSON number lose precision past 2^53, far below a millisecond.
  const nanos = typeof timestamp === 'number' || typeof timestamp === 'string' ? Number(timestamp) : NaN;
  return { ...(Number.isFinite(nanos) && nanos > 0 ? { atMs: Math.floor(nanos / 1e6) } : {}), extra };
}
