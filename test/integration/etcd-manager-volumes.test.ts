// The local and static volume providers against real loop devices, ext4 and
// mounts: format only blank disks, mount at <mount-root>/master-<id>, atomic
// claims under races, deterministic choice with the reason logged.
import t from 'tap';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configureLogging, logger } from '../../shared/log.js';
import { createLocalVolume, LocalVolumeProvider, localPaths } from '../../agents/etcd-manager/volumes/local.js';
import { StaticVolumeProvider } from '../../agents/etcd-manager/volumes/static.js';
import { filesystemType, mountedAt } from '../../agents/etcd-manager/volumes/blockdev.js';
import { loopArea, loopSkipReason } from '../harness/loop.js';
import { tempDir } from '../harness/tmp.js';

const loopSkip = await loopSkipReason();
if (loopSkip) console.log(`# skipping loop-device tests: ${loopSkip}`);

const lines: string[] = [];
configureLogging({ format: 'json', write: (line) => lines.push(line) });
const log = logger('test');
const NAME_TAG = 'k8s.io/etcd/main';
const tags = (member: string, extra: Record<string, string> = {}) => ({
  [NAME_TAG]: `${member}/a,b,c`, 'k8s.io/role/control-plane': '1', ...extra,
});

function provider(area: { volumeDir: string; mountRoot: string }, holder: string, tagFilters = ['k8s.io/role/control-plane=1']) {
  return new LocalVolumeProvider({ volumeDir: area.volumeDir, mountRoot: area.mountRoot, holder, tagFilters, nameTag: NAME_TAG, log });
}

t.test('a blank image is formatted once, mounted, and kept across restarts', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  t.equal(await createLocalVolume({ volumeDir: area.volumeDir, id: 'vol-a', tags: tags('a'), kind: 'image' }), 'image');
  const first = provider(area, 'node-1');
  const volume = await first.acquire();
  t.equal(volume.mountPoint, join(area.mountRoot, 'master-vol-a'));
  t.equal(volume.memberName, 'a');
  t.same(volume.allMembers, ['a', 'b', 'c']);
  t.match(volume.device, /^\/dev\/loop\d+$/);
  t.equal((await mountedAt(volume.mountPoint))?.fsType, 'ext4', 'ext4 mounted at master-<id>');
  t.equal(await filesystemType(volume.device!), 'ext4');
  writeFileSync(join(volume.mountPoint, 'marker'), 'kept');

  // A restarted manager (same holder, fresh provider) gets the same, still mounted, volume.
  const again = await provider(area, 'node-1').acquire();
  t.equal(again.id, 'vol-a');
  t.equal(again.device, volume.device, 'the loop device is reused, not attached twice');
  t.match(lines.join('\n'), /already claimed by this instance/);

  // Unmounted and detached, then taken again: the data is there, so it was not reformatted.
  await first.release();
  t.notOk(await mountedAt(volume.mountPoint), 'unmounted');
  t.notOk(existsSync(localPaths(area.volumeDir, 'vol-a').claim), 'claim given up');
  const later = await provider(area, 'node-2').acquire();
  t.equal(readFileSync(join(later.mountPoint, 'marker'), 'utf8'), 'kept', 'an ext4 volume is never reformatted');
});

t.test('a volume holding another filesystem is refused, not formatted', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  await createLocalVolume({ volumeDir: area.volumeDir, id: 'vol-x', tags: tags('a'), kind: 'image' });
  // An ext2 signature: not blank, not ext4.
  const { execa } = await import('execa');
  await execa('mkfs.ext2', ['-q', '-F', localPaths(area.volumeDir, 'vol-x').image]);
  await t.rejects(provider(area, 'node-1').acquire(), /holds a ext2 filesystem, not ext4; refusing/);
});

t.test('racing managers never win the same volume; the choice is deterministic and logged', { skip: loopSkip }, async (t) => {
  const area = loopArea(t);
  for (const m of ['c', 'a', 'b']) await createLocalVolume({ volumeDir: area.volumeDir, id: `vol-${m}`, tags: tags(m), kind: 'image', sizeMiB: 32 });
  await createLocalVolume({ volumeDir: area.volumeDir, id: 'vol-events', tags: { 'k8s.io/etcd/events': 'a/a' }, kind: 'image' });
  const holders = ['n1', 'n2', 'n3', 'n4'];
  const results = await Promise.allSettled(holders.map((h) => provider(area, h).acquire()));
  const won = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.id).sort();
  t.same(won, ['vol-a', 'vol-b', 'vol-c'], 'each of the three volumes won exactly once');
  const lost = results.filter((r) => r.status === 'rejected');
  t.equal(lost.length, 1, 'the fourth manager gets none');
  t.match(String((lost[0] as PromiseRejectedResult).reason), /every candidate volume is claimed by another instance/);
  const claims = ['a', 'b', 'c'].map((m) => JSON.parse(readFileSync(localPaths(area.volumeDir, `vol-${m}`).claim, 'utf8')).holder);
  t.equal(new Set(claims).size, 3, 'three distinct holders in the claim files');
  const mounted = (await Promise.all(['a', 'b', 'c'].map((m) => mountedAt(join(area.mountRoot, `master-vol-${m}`))))).filter(Boolean);
  t.equal(mounted.length, 3, 'each claimed volume mounted once');
  t.notOk(existsSync(join(area.mountRoot, 'master-vol-events')), 'a volume without the filter tags is never touched');
});

t.test('directory volumes (no loop devices): same claims, deterministic order, 20 races', async (t) => {
  const dir = tempDir(t);
  const area = { volumeDir: join(dir, 'volumes'), mountRoot: join(dir, 'mnt') };
  for (const m of ['b', 'a']) t.equal(await createLocalVolume({ volumeDir: area.volumeDir, id: `vol-${m}`, tags: tags(m), kind: 'directory' }), 'directory');
  const first = await provider(area, 'solo').acquire();
  t.equal(first.id, 'vol-a', 'lowest member name first');
  t.equal(first.mountPoint, localPaths(area.volumeDir, 'vol-a').directory);
  const entry = lines.map((l) => JSON.parse(l) as Record<string, unknown>).reverse().find((e) => e.event === 'volume.claimed' && e.volume === 'vol-a');
  t.match(entry?.reason, /first unclaimed candidate by \(member, id\) among 2/, 'the log says which and why');
  await provider(area, 'solo').release(); // a fresh provider holds nothing: no-op
  for (let round = 0; round < 20; round++) {
    for (const m of ['a', 'b']) rmSync(localPaths(area.volumeDir, `vol-${m}`).claim, { force: true });
    const results = await Promise.allSettled(['x', 'y', 'z'].map((h) => provider(area, `${h}${round}`).acquire()));
    const won = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.id).sort();
    t.same(won, ['vol-a', 'vol-b'], `round ${round}: two winners on two volumes`);
  }
});

t.test('static provider uses --data-dir as the volume', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const p = new StaticVolumeProvider({ dataDir: data, nameTag: NAME_TAG, defaultMember: 'node-x', log });
  const v = await p.acquire();
  t.equal(v.mountPoint, data);
  t.equal(v.memberName, 'node-x');
  writeFileSync(join(data, 'volume-tags.json'), JSON.stringify({ tags: { [NAME_TAG]: 'b/a,b,c' } }));
  t.equal((await p.acquire()).memberName, 'b', 'name tag in volume-tags.json wins');
});
