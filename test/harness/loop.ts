// Loop-device volumes for tests: a fresh directory for images and mount points,
// and one teardown that unmounts, detaches (losetup -d) and deletes, in that
// order, whether the test passed or not. Only devices backed by this test's own
// images are touched.
import { mkdtempSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { loopDevicesRefused, mounts } from '../../agents/etcd-manager/volumes/blockdev.js';
import type { Teardown } from './tmp.js';

/** Why loop devices cannot be used here, or false (for tap's `skip`). */
export async function loopSkipReason(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'loop devices need root';
  const refused = await loopDevicesRefused();
  return refused ? `loop devices refused: ${refused}` : false;
}

export interface LoopArea {
  root: string;
  volumeDir: string;
  mountRoot: string;
  cleanup(): Promise<void>;
}

/**
 * Call it before starting anything that uses the area: tap runs teardowns last
 * registered first, so processes started later are stopped before the unmount.
 */
export function loopArea(t: Teardown): LoopArea {
  const root = mkdtempSync(join(tmpdir(), 'mooring-vol-'));
  const volumeDir = join(root, 'volumes');
  const mountRoot = join(root, 'mnt');
  let done: Promise<void> | undefined;
  const cleanup = () =>
    (done ??= (async () => {
      for (const m of (await mounts()).filter((m) => m.mountPoint.startsWith(root + '/')).reverse()) {
        await execa('umount', [m.mountPoint], { reject: false });
      }
      const left = (await mounts()).filter((m) => m.mountPoint.startsWith(root + '/'));
      if (left.length > 0) throw new Error(`still mounted, not deleting ${root}: ${left.map((m) => m.mountPoint).join(', ')}`);
      const images = await readdir(volumeDir).catch(() => [] as string[]);
      for (const image of images.filter((n) => n.endsWith('.img'))) {
        const out = await execa('losetup', ['--associated', join(volumeDir, image), '--noheadings', '--output', 'NAME'], { reject: false });
        for (const dev of String(out.stdout).split('\n').map((l) => l.trim()).filter((l) => l !== '')) {
          await execa('losetup', ['--detach', dev], { reject: false });
        }
      }
      await rm(root, { recursive: true, force: true, maxRetries: 3 });
    })());
  t.teardown(cleanup);
  return { root, volumeDir, mountRoot, cleanup };
}
