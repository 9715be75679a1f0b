// The `static` provider, for bare metal: --data-dir is an already-mounted
// directory that is this member's volume. Its member name comes from the
// volume's name tag in <data-dir>/volume-tags.json when present, else from the
// --instance-id, so a static member can still be named like kOps' ones.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../../shared/log.js';
import { parseNameTag, type Volume, type VolumeProvider } from './types.js';

export class StaticVolumeProvider implements VolumeProvider {
  readonly name = 'static';

  constructor(private readonly options: { dataDir: string; nameTag: string; defaultMember: string; log: Logger }) {}

  async acquire(): Promise<Volume> {
    const { dataDir, nameTag, defaultMember, log } = this.options;
    await mkdir(dataDir, { recursive: true });
    let tags: Record<string, string> = {};
    try {
      tags = (JSON.parse(await readFile(join(dataDir, 'volume-tags.json'), 'utf8')) as { tags?: Record<string, string> }).tags ?? {};
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${join(dataDir, 'volume-tags.json')}: ${(err as Error).message}`);
    }
    const member = parseNameTag(tags[nameTag]) ?? { memberName: defaultMember, allMembers: [] };
    log.info('volume claimed', { event: 'volume.claimed', volume: dataDir, member: member.memberName, reason: '--volume-provider=static uses --data-dir as is' });
    return { id: dataDir, mountPoint: dataDir, tags, ...member };
  }

  async release(): Promise<void> {
    // Nothing to give up: the directory belongs to the machine.
  }
}
