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
