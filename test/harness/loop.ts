// Loop-device volumes for tests: a fresh directory for images and mount points,
// and one teardown that unmounts, detaches (losetup -d) and deletes, in that
// order, whether the test passed or not. Only devices backed by this test's own
// images are touched.
// A test process killed outright (kill -9, a CI run cut off) runs no teardown
// and leaves its area mounted and attached. Each area records its owner (the
// local cloud's ProcessRecord: pid and start time); a new area first reaps the
// areas whose owner is gone, so such leftovers last until the next loop test,
// not until someone notices. Areas of live processes (tap runs files in
// parallel) are never touched.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { loopDevicesRefused, mounts } from '../../agents/etcd-manager/volumes/blockdev.js';
import { isAlive, recordOf, type ProcessRecord } from '../../agents/mooring/cloud/local/procs.js';
import type { Teardown } from './tmp.js';

/**
 * Why loop devices cannot be used here, or false (for tap's `skip`). Every test
 * file that uses loop devices asks this first, so it is also where the areas of
 * killed test processes are reaped (reapStaleLoopAreas).
 */
export async function loopSkipReason(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'loop devices need root';
  const refused = await loopDevicesRefused();
  if (refused) return `loop devices refused: ${refused}`;
  await reapStaleLoopAreas();
  return false;
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
  const root = mkdtempSync(join(tmpdir(), AREA_PREFIX));
  writeFileSync(join(root, OWNER_FILE), JSON.stringify(recordOf(process.pid)));
  const volumeDir = join(root, 'volumes');
  const mountRoot = join(root, 'mnt');
  let done: Promise<void> | undefined;
  const cleanup = () => (done ??= cleanArea(root));
  t.teardown(cleanup);
  return { root, volumeDir, mountRoot, cleanup };
}

const AREA_PREFIX = 'mooring-vol-';
export const OWNER_FILE = '.owner.json';

/**
 * Cleans the areas under `dir` whose owner process is gone (those with no owner
 * file, made before owners were recorded, are left alone). Returns the roots it
 * cleaned; an area still mounted (a survivor of the killed test keeps it busy)
 * is reported and kept.
 */
export async function reapStaleLoopAreas(dir = tmpdir()): Promise<string[]> {
  const reaped: string[] = [];
  for (const name of (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith(AREA_PREFIX))) {
    const root = join(dir, name);
    let owner: ProcessRecord;
    try {
      owner = JSON.parse(await readFile(join(root, OWNER_FILE), 'utf8')) as ProcessRecord;
    } catch {
      continue;
    }
    if (isAlive(owner)) continue;
    try {
      await cleanArea(root);
      reaped.push(root);
      console.log(`# reaped the loop area of a test process that is gone (pid ${owner.pid}): ${root}`);
    } catch (err) {
      console.log(`# could not reap ${root} (its owner pid ${owner.pid} is gone): ${(err as Error).message}`);
    }
  }
  return reaped;
}

/** Unmounts, detaches and deletes one area; throws (deleting nothing) if something stays mounted. */
async function cleanArea(root: string): Promise<void> {
  for (const m of (await mounts()).filter((m) => m.mountPoint.startsWith(root + '/')).reverse()) {
    await execa('umount', [m.mountPoint], { reject: false });
  }
  const left = (await mounts()).filter((m) => m.mountPoint.startsWith(root + '/'));
  if (left.length > 0) throw new Error(`still mounted, not deleting ${root}: ${left.map((m) => m.mountPoint).join(', ')}`);
  const volumeDir = join(root, 'volumes');
  const images = await readdir(volumeDir).catch(() => [] as string[]);
  for (const image of images.filter((n) => n.endsWith('.img'))) {
    const out = await execa('losetup', ['--associated', join(volumeDir, image), '--noheadings', '--output', 'NAME'], { reject: false });
    for (const dev of String(out.stdout).split('\n').map((l) => l.trim()).filter((l) => l !== '')) {
      await execa('losetup', ['--detach', dev], { reject: false });
    }
  }
  await rm(root, { recursive: true, force: true, maxRetries: 3 });
}
