// protokube's guarded block in the hosts file: the API server's internal name
// on every live control-plane address, one line each, beside etcd-manager's
// blocks and every other line (shared/hosts.ts writes it).
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { findBlocks, updateHostsBlock, type BlockMarkers, type HostEntry, type HostsUpdate } from '../../../shared/hosts.js';

export function protokubeMarkers(cluster: string): BlockMarkers {
  return {
    begin: `# Begin host entries managed by protokube[${cluster}] - do not edit`,
    end: `# End host entries managed by protokube[${cluster}]`,
  };
}

export function entriesFor(addresses: string[], names: string[]): HostEntry[] {
  return addresses.map((address) => ({ address, names }));
}

export class HostsBlock {
  private readonly markers: BlockMarkers;

  constructor(private readonly path: string, cluster: string, private readonly names: string[]) {
    this.markers = protokubeMarkers(cluster);
  }

  /** The addresses our block holds now ([] without a block): what a restarted daemon keeps until the store answers. */
  async current(): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const blocks = findBlocks(text, this.markers, this.names);
    return [...new Set(blocks.flat().map((line) => line.trim().split(/\s+/)[0]).filter((a) => a !== undefined && isIP(a) !== 0))];
  }

  write(addresses: string[], onInPlace?: () => void): Promise<HostsUpdate> {
    return updateHostsBlock(this.path, this.markers, entriesFor(addresses, this.names), { onInPlace });
  }
}
