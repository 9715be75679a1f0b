// The loop-volume harness reaps what killed test processes leave behind: an
// area whose owner process is gone is unmounted, detached and deleted by the
// next loop test; an area of a live process, and one that records no owner,
// are left alone. Real loop device, real ext4 mount.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { attachLoopDevice, detachLoopDevice, findLoopDevice, makeExt4, mount, mountedAt, mounts, unmount } from '../../shared/volumes/blockdev.js';
import { recordOf } from '../../agents/mooring/cloud/local/procs.js';
import { loopSkipReason, OWNER_FILE, reapStaleLoopAreas } from '../harness/loop.js';

const skip = await loopSkipReason();

t.test('an area whose owner is gone is reaped; live and unowned ones are not', { skip }, async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'mooring-reaper-'));
  const stale = join(parent, 'mooring-vol-stale');
  const image = join(stale, 'volumes', 'a.img');
  const mnt = join(stale, 'mnt', 'a');
  t.teardown(async () => {
    // Only if the reaper did not: this test's own mount and device.
    if (await mountedAt(mnt)) await unmount(mnt);
    const dev = existsSync(image) ? await findLoopDevice(image) : undefined;
    if (dev) await detachLoopDevice(dev);
    await rm(parent, { recursive: true, force: true });
  });
  mkdirSync(join(stale, 'volumes'), { recursive: true });
  mkdirSync(mnt, { recursive: true });
  await execa('truncate', ['-s', '32M', image]);
  const device = await attachLoopDevice(image);
  await makeExt4(device, 'reaper');
  await mount(device, mnt);
  // A process that has exited: its pid names nobody now (or somebody else, with another start time).
  const gone = spawnSync('true').pid;
  writeFileSync(join(stale, OWNER_FILE), JSON.stringify({ pid: gone, startTime: '1' }));

  const live = join(parent, 'mooring-vol-live');
  mkdirSync(live);
  writeFileSync(join(live, OWNER_FILE), JSON.stringify(recordOf(process.pid)));
  const unowned = join(parent, 'mooring-vol-unowned');
  mkdirSync(unowned);

  const reaped = await reapStaleLoopAreas(parent);
  t.same(reaped, [stale], 'the stale area, and only it');
  t.notOk((await mounts()).some((m) => m.mountPoint.startsWith(stale + '/')), 'nothing mounted under it');
  const listed = JSON.parse((await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'])).stdout || '{"loopdevices":[]}') as { loopdevices: Array<{ name: string; 'back-file': string | null }> };
  t.notOk(listed.loopdevices.some((d) => (d['back-file'] ?? '').startsWith(stale)), 'its loop device detached');
  t.notOk(existsSync(stale), 'its directory deleted');
  t.ok(existsSync(live), 'the live process\'s area is left');
  t.ok(existsSync(unowned), 'an area with no owner recorded is left');
});
