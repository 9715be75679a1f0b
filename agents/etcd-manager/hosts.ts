// This etcd cluster's guarded block in /etc/hosts: the member names mapped to
// their addresses. Every block this cluster ever wrote is replaced by exactly
// one (kOps could leave duplicates, kops#6376); lines outside the block are
// kept byte for byte. Written atomically (temp file + rename in the same
// directory) so a resolver never reads half a file; when the file is a mount
// point (containers bind-mount /etc/hosts) rename fails with EBUSY and the
// content is written in place instead.
import { randomBytes } from 'node:crypto';
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import type { Logger } from '../../shared/log.js';

export interface HostEntry {
  address: string;
  names: string[];
}

export function blockMarkers(clusterName: string): { begin: string; end: string } {
  return {
    begin: `# Begin host entries managed by etcd-manager[${clusterName}] - do not edit`,
    end: `# End host entries managed by etcd-manager[${clusterName}]`,
  };
}

/** The new file content: the old one without any of our blocks, plus one block (none when entries is empty). */
export function renderHosts(current: string, clusterName: string, entries: HostEntry[]): string {
  const { begin, end } = blockMarkers(clusterName);
  const lines = current === '' ? [] : current.replace(/\n$/, '').split('\n');
  const kept: string[] = [];
  let inside = false;
  // Where our first block was: the new one goes back there, so blocks of other writers (nodeup, the
  // other etcd cluster's manager) never see theirs moved and nobody rewrites the file in turn.
  let at = -1;
  for (const line of lines) {
    if (line.trim() === begin) { inside = true; if (at === -1) at = kept.length; continue; }
    if (inside && line.trim() === end) { inside = false; continue; }
    if (!inside) kept.push(line);
  }
  // An unterminated block (a torn hand edit) is dropped up to the end of file: it was ours.
  if (entries.length > 0) {
    const sorted = [...entries].sort((a, b) => (a.names[0] ?? '').localeCompare(b.names[0] ?? ''));
    kept.splice(at === -1 ? kept.length : at, 0, begin, ...sorted.map((e) => `${e.address}\t${e.names.join(' ')}`), end);
  }
  return kept.length === 0 ? '' : kept.join('\n') + '\n';
}

/** Returns true when the file changed. */
export async function updateHostsFile(path: string, clusterName: string, entries: HostEntry[], log: Logger): Promise<boolean> {
  let current = '';
  let mode = 0o644;
  try {
    current = await readFile(path, 'utf8');
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const next = renderHosts(current, clusterName, entries);
  if (next === current) return false;
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, next, { mode });
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
    log.warn('hosts file is a mount point; writing it in place', { path });
    await writeFile(path, next);
  }
  log.info('hosts file updated', { path, entries: entries.map((e) => `${e.names.join(' ')}=${e.address}`) });
  return true;
}
