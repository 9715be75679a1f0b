// Which cloud a cluster runs on. kOps v1alpha2 files say `cloudProvider: aws`;
// newer kOps writes `cloudProvider: {aws: {}}`. Both are kept as the user wrote them.
import type { Cluster } from './types.js';

/** Clouds Mooring can run nodes on: AWS, and `local` (systemd-nspawn instances). */
export const SUPPORTED_CLOUDS = ['aws', 'local'] as const;
export type SupportedCloud = (typeof SUPPORTED_CLOUDS)[number];

/** The cloud's name in either form; '' when the spec names none. */
export function cloudOf(cluster: Cluster): SupportedCloud | string {
  const provider: unknown = cluster.spec.cloudProvider;
  if (typeof provider === 'string') return provider;
  if (typeof provider === 'object' && provider !== null && !Array.isArray(provider)) {
    return Object.keys(provider)[0] ?? '';
  }
  return '';
}
