// nodeup stays inside --root: symlinks planted in the root at several depths
// (absolute, or relative ones that climb out) are refused before anything is
// changed, naming the link; a symlink as the last component of a file nodeup
// owns is replaced (never read through); links that stay inside the root are
// followed; and a node config whose etcd cluster name climbs out is refused
// when it is read. Every case snapshots a directory beside the root before
// and after: nothing outside the root may change.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseNodeConfig, serializeNodeConfig } from '../../shared/api/nodeconfig.js';
import { StorePaths } from '../../shared/api/types.js';
import { openStore } from '../../shared/store/index.js';
import { configureLogging, logger } from '../../shared/log.js';
import { runTasks } from '../../agents/nodeup/engine/run.js';
import { FileTask } from '../../agents/nodeup/tasks/file.js';
import { startAssetServer } from '../harness/asset-server.js';
import { CLUSTER, CONTROL_PLANE, generatedAssets, makeCluster, makeRoot, nodeup, WORKER, type TestCluster } from '../harness/nodeup.js';
import { tempDir } from '../harness/tmp.js';

/** Every entry below dir: type, and content hash or link target. Sees new empty folders and links too. */
function treeState(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    const full = join(dir, path);
    const st = lstatSync(full);
    if (st.isSymbolicLink()) out[path] = `link ${readlinkSync(full)}`;
    else if (st.isDirectory()) {
      out[path] = `dir ${(st.mode & 0o7777).toString(8)}`;
      Object.assign(out, treeState(dir, path));
    } else out[path] = `file ${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
  }
  return out;
}

/** A folder beside the root, with content nodeup must never read or change. */
function makeOutside(t: Test): string {
  const outside = tempDir(t, 'nodeup-outside-');
  writeFileSync(join(outside, 'secret'), 'OUTSIDE-SECRET do not read\n');
  // So that a root whose etc/ points here still looks like Debian to today's code.
  writeFileSync(join(outside, 'os-release'), 'ID=debian\nVERSION_ID="12"\n');
  writeFileSync(join(outside, 'hosts'), '127.0.0.1\tlocalhost\n# OUTSIDE-SECRET hosts line\n');
  mkdirSync(join(outside, 'pki'));
  return outside;
}

/** Replaces `nodePath` in root with a symlink to `target` (made relative to the link's folder when `relativeTo`). */
function plant(root: string, nodePath: string, target: string, relativeTarget: boolean): string {
  const link = join(root, nodePath);
  rmSync(link, { recursive: true, force: true });
  mkdirSync(dirname(link), { recursive: true });
  const value = relativeTarget ? relative(dirname(link), target) : target;
  symlinkSync(value, link);
  return value;
}

// One store for the whole file, removed when the file ends.
const shared: TestCluster = await makeCluster(t);

const run = (conf: string, root: string, extra: string[] = []) => nodeup(['--conf', conf, '--root', root, '--retries', '0', ...extra]);

interface Planted {
  name: string;
  /** Node path replaced by a link. */
  at: string;
  /** Where it points: below the outside folder. */
  into: string;
  relativeTarget: boolean;
}

const HOSTILE: Planted[] = [
  { name: 'root/etc -> /outside (absolute, depth 1)', at: '/etc', into: '', relativeTarget: false },
  { name: 'root/etc/kubernetes -> ../../outside (relative, climbs out, depth 2)', at: '/etc/kubernetes', into: '', relativeTarget: true },
  { name: 'root/etc/kubernetes/manifests -> /outside/manifests (absolute, depth 3)', at: '/etc/kubernetes/manifests', into: 'manifests', relativeTarget: false },
  { name: 'root/srv/kubernetes/kube-apiserver -> ../../../outside/pki (relative, keys, depth 3)', at: '/srv/kubernetes/kube-apiserver', into: 'pki', relativeTarget: true },
  { name: 'root/etc/sysctl.d -> ../outside (relative, depth 2)', at: '/etc/sysctl.d', into: '', relativeTarget: true },
];

for (const c of HOSTILE) {
  for (const mode of ['apply', 'dry run'] as const) {
    t.test(`${c.name}: ${mode} is refused before any change, naming the link`, async (t) => {
      const conf = await shared.bootConfig(CONTROL_PLANE);
      const root = makeRoot(t);
      const outside = makeOutside(t);
      if (c.into) mkdirSync(join(outside, c.into), { recursive: true });
      const value = plant(root, c.at, join(outside, c.into), c.relativeTarget);
      const outsideBefore = treeState(outside);
      const rootBefore = treeState(root);
      const r = await run(conf, root, mode === 'dry run' ? ['--dry-run'] : []);
      t.equal(r.code, 3, `exit 3, invalid input (stderr: ${r.stderr.slice(0, 600)})`);
      t.match(r.stderr, `${join(root, c.at)} is a symlink to ${value}`, 'names the link and its target');
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      t.notMatch(r.stdout + r.stderr, /OUTSIDE-SECRET/, 'never shows what is outside');
      t.same(treeState(outside), outsideBefore, 'nothing outside the root changed');
      t.same(treeState(root), rootBefore, 'nothing inside the root changed either');
    });
  }
}

t.test('a link in the asset cache path that climbs out is refused; a link as a cache entry is replaced', async (t) => {
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const c = shared;
  t.teardown(() => c.setAssets([]));
  const kubelet = server.spec('/kubelet');
  await c.setAssets([kubelet]);
  const conf = await c.bootConfig(WORKER);

  const root = makeRoot(t);
  const outside = makeOutside(t);
  const value = plant(root, '/var/cache', outside, true);
  const before = treeState(outside);
  const refused = await run(conf, root);
  t.equal(refused.code, 3, `exit 3 (stderr: ${refused.stderr.slice(0, 600)})`);
  t.match(refused.stderr, `${join(root, 'var/cache')} is a symlink to ${value}`);
  t.same(treeState(outside), before, 'nothing downloaded outside the root');
  t.same(server.requests, [], 'nothing downloaded at all');

  // The cache entry itself a link to a file outside: it is replaced by the download, its target untouched.
  const fresh = makeRoot(t);
  const entry = join(fresh, 'var/cache/nodeup', `${kubelet.split('@')[0]}_kubelet`);
  mkdirSync(dirname(entry), { recursive: true });
  symlinkSync(join(outside, 'secret'), entry);
  const applied = await run(conf, fresh, ['-o', 'json']);
  const report = JSON.parse(applied.stdout) as { tasks: Array<{ id: string; status: string; error?: string }> };
  t.match(report.tasks.find((x) => x.id === 'Asset:/usr/local/bin/kubelet'), { status: 'changed' }, 'kubelet installed');
  t.equal(server.requests.length, 1, 'downloaded once, into the cache inside the root');
  t.ok(lstatSync(entry).isFile(), 'the cache entry is now a regular file');
  t.same(treeState(outside), before, 'the link\'s target outside is untouched');
});

t.test('a symlink as the last component of a file nodeup owns is replaced, never read through', async (t) => {
  const conf = await shared.bootConfig(WORKER);
  const root = makeRoot(t);
  const outside = makeOutside(t);
  plant(root, '/etc/sysctl.d/99-k8s-general.conf', join(outside, 'secret'), false);
  plant(root, '/etc/hosts', join(outside, 'hosts'), true);
  const before = treeState(outside);

  const plan = await run(conf, root, ['--dry-run']);
  t.notMatch(plan.stdout + plan.stderr, /OUTSIDE-SECRET/, 'the plan never shows the content of a link\'s target');
  t.match(plan.stdout, /Sysctl:\/etc\/sysctl\.d\/99-k8s-general\.conf/, 'the sysctl file is planned');

  const applied = await run(conf, root, ['-o', 'json']);
  const report = JSON.parse(applied.stdout) as { tasks: Array<{ id: string; status: string; error?: string }> };
  for (const id of ['Sysctl:/etc/sysctl.d/99-k8s-general.conf', 'Hosts:/etc/hosts']) {
    t.match(report.tasks.find((x) => x.id === id), { status: 'changed' }, `${id} applied`);
  }
  for (const path of ['etc/sysctl.d/99-k8s-general.conf', 'etc/hosts']) {
    t.ok(lstatSync(join(root, path)).isFile(), `${path}: the link was replaced by a regular file`);
  }
  t.notMatch(readFileSync(join(root, 'etc/hosts'), 'utf8'), /OUTSIDE-SECRET/, 'no line of the outside file was copied into the root');
  t.same(treeState(outside), before, 'nothing outside the root changed');
});

t.test('links that stay inside the root are followed', async (t) => {
  const conf = await shared.bootConfig(CONTROL_PLANE);
  const root = makeRoot(t);
  mkdirSync(join(root, 'usr/lib'), { recursive: true });
  writeFileSync(join(root, 'usr/lib/os-release'), readFileSync(join(root, 'etc/os-release')));
  rmSync(join(root, 'etc/os-release'));
  symlinkSync('../usr/lib/os-release', join(root, 'etc/os-release')); // as on Debian
  mkdirSync(join(root, 'data/kubernetes'), { recursive: true });
  symlinkSync('../data/kubernetes', join(root, 'etc/kubernetes'));
  mkdirSync(join(root, 'srv'), { recursive: true });
  symlinkSync('../data/kubernetes/../srv-real', join(root, 'srv/kubernetes'));
  mkdirSync(join(root, 'data/srv-real'), { recursive: true });

  const r = await run(conf, root, ['-o', 'json']);
  const report = JSON.parse(r.stdout) as { tasks: Array<{ id: string; status: string; error?: string }> };
  const failed = report.tasks.filter((x) => x.status === 'failed').map((x) => x.id);
  t.notOk(failed.some((id) => /Directory|File|Certificate|Kubeconfig|Sysctl|Hosts|Service/.test(id)), `no file task failed (failed: ${failed.join(', ')})`);
  t.ok(lstatSync(join(root, 'data/kubernetes/manifests/kube-apiserver.manifest')).isFile(), 'manifests written through the in-root link');
  t.ok(lstatSync(join(root, 'data/srv-real/kube-apiserver/server.key')).isFile(), 'keys written through a link that climbs and comes back down inside the root');
  t.equal(readlinkSync(join(root, 'etc/kubernetes')), '../data/kubernetes', 'the link itself is kept');
});

t.test('an etcd cluster name that climbs out of the root is refused when the node config is read; nothing is written', async (t) => {
  const c = shared;
  const root = makeRoot(t);
  const outside = makeOutside(t);
  // Built so that /etc/mooring/etcd-manager/<name>.env lands in the outside folder.
  const name = join(relative(join(root, 'etc/mooring/etcd-manager'), outside), 'x');
  const store = openStore(c.storeURL).sub(CLUSTER);
  const path = StorePaths.nodeupConfig('ControlPlane', CONTROL_PLANE);
  const original = await store.read(path);
  t.teardown(() => store.write(path, original));
  const nc = parseNodeConfig(original.toString('utf8'), path);
  (nc.etcdClusters ?? [])[0].name = name;
  await store.write(path, serializeNodeConfig(nc));
  const conf = await c.bootConfig(CONTROL_PLANE); // its hash covers the edited bytes

  const outsideBefore = treeState(outside);
  const rootBefore = treeState(root);
  const r = await run(conf, root);
  t.equal(r.code, 3, `exit 3 (stderr: ${r.stderr.slice(0, 600)})`);
  t.match(r.stderr, /etcdClusters\[0\]\.name/, 'names the field');
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.same(treeState(outside), outsideBefore, 'nothing written outside the root');
  t.same(treeState(root), rootBefore, 'nothing written inside the root');
});

t.test('a link met during the run (after the check) fails only the task that meets it, at once, naming it', async (t) => {
  configureLogging({ write: () => undefined });
  const root = makeRoot(t);
  const outside = makeOutside(t);
  // No up-front check here: runTasks alone, as if the link appeared after nodeup checked the root.
  const value = plant(root, '/etc/kubernetes', outside, true);
  const before = treeState(outside);
  const report = await runTasks([
    new FileTask({ path: '/etc/kubernetes/manifests/x.manifest', content: 'x\n' }),
    new FileTask({ path: '/etc/demo.conf', content: 'y\n' }),
  ], {
    root, dryRun: false, cache: '/var/cache/nodeup', log: logger('test'),
    host: { id: 'debian', versionID: '12', family: 'debian', arch: 'amd64', source: 'test' },
    retry: { retries: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 },
  });
  const byId = Object.fromEntries(report.results.map((r) => [r.id, r]));
  t.match(byId['File:/etc/kubernetes/manifests/x.manifest'], { status: 'failed', attempts: 1 }, 'failed on its first attempt, not retried');
  t.equal(byId['File:/etc/kubernetes/manifests/x.manifest'].error, `${join(root, 'etc/kubernetes')} is a symlink to ${value}, which leads out of --root ${root}`);
  t.equal(byId['File:/etc/demo.conf'].status, 'changed', 'a task whose path stays inside still runs');
  t.same(treeState(outside), before, 'nothing outside the root changed');
});
