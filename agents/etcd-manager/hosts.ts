// This etcd cluster's guarded block in /etc/hosts: the member names mapped to
// their addresses, one block per cluster (markers name it), written with the
// guarded-block writer every agent shares (shared/hosts.ts: atomic, never
// duplicated, confirmed by reading back, every other line kept byte for byte).
import { renderHostsBlock, updateHostsBlock, type BlockMarkers, type HostEntry } from '../../shared/hosts.js';
import type { Logger } from '../../shared/log.js';

export type { HostEntry } from '../../shared/hosts.js';

export function blockMarkers(clusterName: string): BlockMarkers {
  return {
    begin: `# Begin host entries managed by etcd-manager[${clusterName}] - do not edit`,
    end: `# End host entries managed by etcd-manager[${clusterName}]`,
  };
}

/** The new file content: the old one without any of our blocks, plus one block (none when entries is empty). */
export function renderHosts(current: string, clusterName: string, entries: HostEntry[]): string {
  return renderHostsBlock(current, blockMarkers(clusterName), entries);
}

/** Returns true when the file changed. */
export async function updateHostsFile(path: string, clusterName: string, entries: HostEntry[], log: Logger): Promise<boolean> {
  const result = await updateHostsBlock(path, blockMarkers(clusterName), entries, {
    onInPlace: () => log.warn('hosts file is a mount point; writing it in place', { path }),
  });
  if (result.changed) {
    log.info('hosts file updated', { path, entries: entries.map((e) => `${e.names.join(' ')}=${e.address}`), ...(result.retries > 0 ? { retries: result.retries } : {}) });
  }
  return result.changed;
}
