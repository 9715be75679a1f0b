// Single tasks against real tools in a temp root: files (mode-only changes do
// not rewrite), symlinks, users and groups (shadow's useradd --root),
// certificates (reused while valid, reissued when SANs, CA or key change),
// a .deb from a hash-verified local asset (dpkg --root), with an interrupted
// dpkg repaired first.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configureLogging, logger } from '../../shared/log.js';
import { createCA, parseCertificate } from '../../shared/pki/x509.js';
import type { Keypair } from '../../shared/pki/keyset.js';
import { runTasks, type RunReport } from '../../agents/nodeup/engine/run.js';
import type { Task } from '../../agents/nodeup/engine/task.js';
import { parseAssetSpec } from '../../agents/nodeup/host/assets.js';
import { CertificateTask, type CASource } from '../../agents/nodeup/tasks/certificate.js';
import { DirectoryTask, FileTask, SymlinkTask } from '../../agents/nodeup/tasks/file.js';
import { DebPackageTask } from '../../agents/nodeup/tasks/package.js';
import { GroupTask, UserTask } from '../../agents/nodeup/tasks/user.js';
import { startAssetServer } from '../harness/asset-server.js';
import { makeRoot } from '../harness/nodeup.js';
import { tempDir } from '../harness/tmp.js';

configureLogging({ write: () => undefined });

async function run(root: string, tasks: Task[], dryRun = false): Promise<RunReport> {
  return runTasks(tasks, {
    root,
    dryRun,
    host: { id: 'debian', versionID: '12', family: 'debian', arch: 'amd64', source: 'test' },
    cache: '/var/cache/nodeup',
    log: logger('test'),
    retry: { retries: 0, baseDelayMs: 1, maxDelayMs: 1 },
  });
}

const statuses = (r: RunReport): string[] => r.results.map((x) => `${x.id}:${x.status}${x.error ? ` (${x.error})` : ''}`);

t.test('file: content, mode-only change is a chmod, symlink and directory', async (t) => {
  const root = makeRoot(t);
  const file = (mode: number) => new FileTask({ path: '/etc/demo/a.conf', content: 'hello\n', mode });
  t.same(statuses(await run(root, [file(0o644), new DirectoryTask({ path: '/var/lib/demo', mode: 0o700 }), new SymlinkTask({ path: '/usr/local/bin/demo', target: '/opt/demo/bin/demo' })])), [
    'File:/etc/demo/a.conf:changed', 'Directory:/var/lib/demo:changed', 'Symlink:/usr/local/bin/demo:changed',
  ]);
  const before = lstatSync(join(root, 'etc/demo/a.conf'));
  const report = await run(root, [file(0o600)]);
  t.same(report.results[0].plan?.changes, [{ field: 'mode', old: '0644', new: '0600' }]);
  const after = lstatSync(join(root, 'etc/demo/a.conf'));
  t.equal(after.mode & 0o777, 0o600);
  t.equal(after.ino, before.ino, 'same inode: not rewritten');
  t.equal(after.mtimeMs, before.mtimeMs, 'same mtime');
  t.equal(lstatSync(join(root, 'var/lib/demo')).mode & 0o777, 0o700);
  t.equal(readlinkSync(join(root, 'usr/local/bin/demo')), '/opt/demo/bin/demo');
  const relink = await run(root, [new SymlinkTask({ path: '/usr/local/bin/demo', target: '/opt/demo2/bin/demo' })]);
  t.same(relink.results[0].plan?.changes, [{ field: 'target', old: '/opt/demo/bin/demo', new: '/opt/demo2/bin/demo' }]);
  t.equal(readlinkSync(join(root, 'usr/local/bin/demo')), '/opt/demo2/bin/demo');
});

t.test('user and group via useradd/groupadd --root, and a file owned by them', async (t) => {
  const root = makeRoot(t);
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
  writeFileSync(join(root, 'etc/gshadow'), 'root:*::\n', { mode: 0o600 });
  const tasks = (): Task[] => [
    new GroupTask('etcd'),
    new UserTask({ name: 'etcd', group: 'etcd', home: '/var/lib/etcd' }),
    new FileTask({ path: '/var/lib/etcd/owned', content: 'x', owner: 'etcd', group: 'etcd', deps: ['User:etcd'] }),
  ];
  const first = await run(root, tasks());
  t.same(statuses(first), ['Group:etcd:changed', 'User:etcd:changed', 'File:/var/lib/etcd/owned:changed']);
  const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
  const uid = Number(/^etcd:x:(\d+):/m.exec(passwd)?.[1]);
  t.ok(uid > 0, `etcd user created: ${passwd}`);
  t.equal(lstatSync(join(root, 'var/lib/etcd/owned')).uid, uid, 'file owned by the new user');
  t.same(statuses(await run(root, tasks())), ['Group:etcd:unchanged', 'User:etcd:unchanged', 'File:/var/lib/etcd/owned:unchanged']);
});

t.test('certificate: reused while valid; reissued when SANs, CA or key change', async (t) => {
  const root = makeRoot(t);
  const caA = await createCA('kubernetes-ca', 3650, { keyAlgorithm: 'ECDSA-P256' });
  const caB = await createCA('kubernetes-ca', 3650, { keyAlgorithm: 'ECDSA-P256' });
  let current: Keypair = { id: '1', ...caA };
  const source: CASource = async () => current;
  const cert = (dns: string[]) => new CertificateTask('/srv/k/server.crt', '/srv/k/server.key', { ca: 'kubernetes-ca', commonName: 'server', dnsNames: dns, usage: 'server' }, source);
  const serial = () => parseCertificate(readFileSync(join(root, 'srv/k/server.crt'), 'utf8')).serialHex;

  t.same(statuses(await run(root, [cert(['a.example'])])), ['Certificate:/srv/k/server.crt:changed']);
  const first = serial();
  t.same(statuses(await run(root, [cert(['a.example'])])), ['Certificate:/srv/k/server.crt:unchanged'], 'valid certificate reused');
  t.equal(serial(), first);

  const dry = await run(root, [cert(['a.example', 'b.example'])], true);
  t.match(dry.results[0].plan?.changes[0].new ?? '', /DNS names differ \(missing b\.example\)/);
  t.equal(serial(), first, 'dry run issued nothing');
  await run(root, [cert(['a.example', 'b.example'])]);
  const second = serial();
  t.not(second, first, 'reissued for the new SAN');

  current = { id: '2', ...caB };
  const rotated = await run(root, [cert(['a.example', 'b.example'])]);
  t.match(rotated.results[0].plan?.changes[0].new ?? '', /not issued by the current kubernetes-ca/);
  t.not(serial(), second, 'reissued by the new CA');

  rmSync(join(root, 'srv/k/server.key'));
  const nokey = await run(root, [cert(['a.example', 'b.example'])]);
  t.match(nokey.results[0].plan?.changes[0].new ?? '', /no private key/);
  t.equal(lstatSync(join(root, 'srv/k/server.key')).mode & 0o777, 0o600);
  t.notMatch(JSON.stringify(nokey.results), /PRIVATE KEY/, 'no key material in the plan');
});

function buildDeb(t: Test, name: string, version: string): Buffer {
  const dir = tempDir(t, 'nodeup-deb-');
  mkdirSync(join(dir, 'pkg/DEBIAN'), { recursive: true });
  mkdirSync(join(dir, 'pkg/usr/bin'), { recursive: true });
  writeFileSync(join(dir, 'pkg/DEBIAN/control'), `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: test <test@example.com>\nDescription: nodeup test package\n`);
  writeFileSync(join(dir, `pkg/usr/bin/${name}`), `#!/bin/sh\necho ${name} ${version}\n`, { mode: 0o755 });
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', join(dir, 'pkg'), join(dir, 'out.deb')], { stdio: 'ignore' });
  return readFileSync(join(dir, 'out.deb'));
}

t.test('a .deb from a hash-verified local asset, after repairing an interrupted dpkg', async (t) => {
  const root = makeRoot(t);
  const server = await startAssetServer(t);
  server.put('/pool/mooring-hello_1.0_all.deb', buildDeb(t, 'mooring-hello', '1.0'));
  // An interrupted install: a package unpacked but never configured.
  const half = join(tempDir(t, 'nodeup-half-'), 'half.deb');
  writeFileSync(half, buildDeb(t, 'mooring-half', '1.0'));
  execFileSync('dpkg', [`--root=${root}`, '--unpack', half], { stdio: 'ignore' });
  t.match(execFileSync('dpkg', [`--root=${root}`, '--audit']).toString(), /mooring-half/, 'dpkg reports the interrupted package');

  const asset = parseAssetSpec(server.spec('/pool/mooring-hello_1.0_all.deb'));
  const deb = () => new DebPackageTask(asset, { name: 'mooring-hello', version: '1.0' });
  const dry = await run(root, [deb()], true);
  t.same(statuses(dry), ['DebPackage:mooring-hello:changed']);
  t.equal(server.requests.length, 0, 'dry run fetched nothing');

  t.same(statuses(await run(root, [deb()])), ['DebPackage:mooring-hello:changed']);
  const query = (pkg: string) => execFileSync('dpkg-query', ['--admindir', join(root, 'var/lib/dpkg'), '-W', '-f', '${db:Status-Abbrev}', pkg]).toString().trim();
  t.equal(query('mooring-hello'), 'ii', 'installed by dpkg');
  t.equal(query('mooring-half'), 'ii', 'the interrupted package was configured first');
  t.equal(readFileSync(join(root, 'usr/bin/mooring-hello'), 'utf8'), '#!/bin/sh\necho mooring-hello 1.0\n');
  t.same(statuses(await run(root, [deb()])), ['DebPackage:mooring-hello:unchanged'], 'rerun: nothing to do');
  t.equal(server.requests.length, 1, 'downloaded once');

  const wrong = parseAssetSpec(`${'f'.repeat(64)}@${server.url}/pool/mooring-hello_1.0_all.deb`);
  const bad = await run(root, [new DebPackageTask(wrong, { name: 'mooring-hello', version: '2.0' })]);
  t.match(bad.results[0].error ?? '', /download mooring-hello_1\.0_all\.deb failed from every mirror: .*sha256 mismatch/);
  t.equal(query('mooring-hello'), 'ii', 'installed package intact');
});
