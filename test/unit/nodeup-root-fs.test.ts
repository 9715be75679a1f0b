// NodeRoot: node paths resolved component by component inside --root.
// Relative links that stay inside are followed, links that climb out or are
// absolute are refused naming the link, a final link of an entry nodeup
// replaces is never followed, and under / the kernel's own rules apply.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeRoot, RootPathError } from '../../agents/nodeup/host/fs.js';
import { tempDir } from '../harness/tmp.js';

function world(t: Test): { root: string; outside: string; fs: NodeRoot } {
  const base = realpathSync(tempDir(t, 'nodeup-rootfs-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'usr/lib'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'outside\n');
  return { root, outside, fs: new NodeRoot(root) };
}

async function refusal(t: Test, fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof RootPathError) return err.message;
    throw err;
  }
  t.fail('expected a RootPathError');
  return '';
}

t.test('relative links inside the root are followed, chains too', async (t) => {
  const { root, fs } = world(t);
  writeFileSync(join(root, 'usr/lib/os-release'), 'ID=debian\n');
  symlinkSync('../usr/lib/os-release', join(root, 'etc/os-release'));
  t.equal(await fs.resolve('/etc/os-release'), join(root, 'usr/lib/os-release'));
  t.equal((await fs.read('/etc/os-release'))?.toString(), 'ID=debian\n');
  mkdirSync(join(root, 'data/a/b'), { recursive: true });
  symlinkSync('data/a', join(root, 'one'));
  symlinkSync('../one/b', join(root, 'etc/two'));
  t.equal(await fs.resolve('/etc/two/file'), join(root, 'data/a/b/file'), 'a link inside a link target');
  t.equal(await fs.resolve('/nope/a/b'), join(root, 'nope/a/b'), 'missing parts are taken as written');
  t.equal(await fs.resolve('/'), root);
});

t.test('a link whose .. climbs out of the root is refused, naming that link', async (t) => {
  const { root, fs } = world(t);
  mkdirSync(join(root, 'etc/deep/er'), { recursive: true });
  symlinkSync('../../outside', join(root, 'etc/kubernetes'));
  t.equal(await refusal(t, () => fs.resolve('/etc/kubernetes/manifests/x')), `${root}/etc/kubernetes is a symlink to ../../outside, which leads out of --root ${root}`);
  // sub -> deep/er, then a -> sub/../../../../x: the `..` that climbs out is a's, not sub's.
  symlinkSync('deep/er', join(root, 'etc/sub'));
  symlinkSync('sub/../../../../x', join(root, 'etc/a'));
  t.match(await refusal(t, () => fs.resolve('/etc/a/f')), `${root}/etc/a is a symlink to sub/../../../../x`);
  // Out and back in is refused too: on the booted machine `..` of / is /, so it means something else.
  symlinkSync(`../../root/usr`, join(root, 'etc/back'));
  t.match(await refusal(t, () => fs.resolve('/etc/back/lib')), `${root}/etc/back is a symlink to ../../root/usr, which leads out`);
});

t.test('an absolute link under a root other than / is refused', async (t) => {
  const { root, outside, fs } = world(t);
  symlinkSync(outside, join(root, 'srv'));
  t.equal(await refusal(t, () => fs.entry('/srv/kubernetes/key')), `${root}/srv is a symlink to ${outside}, an absolute path; under --root ${root} nodeup follows only relative links`);
  symlinkSync('/usr/lib', join(root, 'lib')); // even one that would stay inside under chroot
  t.match(await refusal(t, () => fs.resolve('/lib/x')), 'an absolute path');
});

t.test('a link loop ends with an error', async (t) => {
  const { root, fs } = world(t);
  symlinkSync('b', join(root, 'a'));
  symlinkSync('a', join(root, 'b'));
  t.match(await refusal(t, () => fs.resolve('/a/x')), `${root}/`, 'names a link of the loop');
  t.match(await refusal(t, () => fs.resolve('/a/x')), 'too many levels of symbolic links');
});

t.test('unclean node paths are refused', async (t) => {
  const { fs } = world(t);
  for (const path of ['etc/hosts', '/etc/../x', '/etc/./x', '/etc/x\0y']) {
    t.match(await refusal(t, () => fs.entry(path)), 'path ', JSON.stringify(path));
  }
});

t.test('the last component of an entry is not followed; a folder path (trailing /) is', async (t) => {
  const { root, outside, fs } = world(t);
  symlinkSync(join(outside, 'secret'), join(root, 'etc/hosts'));
  t.equal(await fs.entry('/etc/hosts'), join(root, 'etc/hosts'));
  await fs.check(['/etc/hosts']);
  t.match(await refusal(t, () => fs.check(['/etc/hosts/'])), /^\/etc\/hosts: .* an absolute path/, 'a folder path follows it, and the check names what nodeup wanted');
  t.equal(await fs.readCurrent('/etc/hosts'), undefined, 'a link out reads as absent, never through');
  writeFileSync(join(root, 'usr/lib/hosts'), 'inside\n');
  symlinkSync('../usr/lib/hosts', join(root, 'etc/hosts2'));
  t.equal((await fs.readCurrent('/etc/hosts2'))?.toString(), 'inside\n', 'a link inside the root is read through');
  await fs.writeFileAtomic('/etc/hosts', 'mine\n', { mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  t.ok(lstatSync(join(root, 'etc/hosts')).isFile(), 'the write replaced the link');
  t.equal(lstatSync(join(root, 'etc/hosts')).mode & 0o777, 0o600);
  t.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'outside\n', 'its target is untouched');
  t.same(readdirSync(join(root, 'etc')).filter((n) => n.includes('nodeup-')), [], 'no temp file left');
});

t.test('mkdirs and writes go through inside links, and never through ones that lead out', async (t) => {
  const { root, outside, fs } = world(t);
  mkdirSync(join(root, 'data'));
  symlinkSync('../data', join(root, 'etc/kubernetes'));
  t.equal(await fs.mkdirs('/etc/kubernetes/manifests'), join(root, 'data/manifests'));
  t.ok(statSync(join(root, 'data/manifests')).isDirectory());
  await fs.writeFileAtomic('/etc/kubernetes/manifests/a.yaml', 'a\n', { mode: 0o644, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  t.equal(readFileSync(join(root, 'data/manifests/a.yaml'), 'utf8'), 'a\n');
  t.equal(readlinkSync(join(root, 'etc/kubernetes')), '../data', 'the link itself is kept');

  symlinkSync('../../outside', join(root, 'etc/pki'));
  await refusal(t, () => fs.mkdirs('/etc/pki/x/y'));
  await refusal(t, () => fs.writeFileAtomic('/etc/pki/key', 'k', { mode: 0o600, uid: 0, gid: 0 }));
  t.same(readdirSync(outside), ['secret'], 'nothing made outside');
});

t.test('setOwnership acts on the entry itself, or on a folder link\'s target inside the root', async (t) => {
  const { root, outside, fs } = world(t);
  symlinkSync(join(outside, 'secret'), join(root, 'etc/link'));
  await t.rejects(fs.setOwnership('/etc/link', 0o600), /is a symlink; refusing/);
  t.equal(statSync(join(outside, 'secret')).mode & 0o777, 0o644, 'the target keeps its mode');
  mkdirSync(join(root, 'data'));
  symlinkSync('../data', join(root, 'etc/dir'));
  await fs.setOwnership('/etc/dir', 0o700, undefined, true);
  t.equal(statSync(join(root, 'data')).mode & 0o777, 0o700);
});

t.test('a FIFO where nodeup reads a file does not hang it', async (t) => {
  const { root, fs } = world(t);
  execFileSync('mkfifo', [join(root, 'etc/fifo')]);
  t.equal(await fs.readCurrent('/etc/fifo'), undefined);
  await t.rejects(fs.read('/etc/fifo'), /is not a regular file/);
});

t.test('under / the kernel\'s rules: absolute links are followed, .. stops at /', async (t) => {
  const { root, outside } = world(t);
  symlinkSync(outside, join(root, 'abs'));
  symlinkSync('../../../../../../../../../../..' + outside, join(root, 'up'));
  const fs = new NodeRoot('/');
  t.equal(await fs.resolve(`${root}/abs/secret`), join(outside, 'secret'));
  t.equal(await fs.resolve(`${root}/up/secret`), join(outside, 'secret'));
  t.equal(await fs.entry(`${root}/abs`), `${root}/abs`, 'an entry is still not followed');
  t.equal((await fs.readCurrent(`${root}/abs/secret`))?.toString(), 'outside\n');
});
