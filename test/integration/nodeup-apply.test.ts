// nodeup applied into a --root temp dir with real tools (dpkg-query, tar,
// systemctl --root): assets from a local mirror on 127.0.0.1, then a rerun
// that must change and rewrite nothing, a one-field spec change that must
// touch only what depends on it, and a dry run against the populated root
// that must leave the tree alone and make no request.
import t from 'tap';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { startAssetServer } from '../harness/asset-server.js';
import { CLUSTER, CONTROL_PLANE, generatedAssets, makeCluster, makeRoot, nodeup, WORKER } from '../harness/nodeup.js';
import { snapshotTree } from '../harness/tmp.js';

/** path → inode, mtime and size of everything under root: a rewrite changes at least the mtime or inode. */
function statTree(root: string, dir = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = dir ? `${dir}/${entry.name}` : entry.name;
    const st = lstatSync(join(root, rel));
    out[rel] = `${st.ino}:${st.mtimeMs}:${st.size}:${st.mode.toString(8)}`;
    if (entry.isDirectory()) Object.assign(out, statTree(root, rel));
  }
  return out;
}

function changedIds(stdout: string): string[] {
  const report = JSON.parse(stdout) as { tasks: Array<{ id: string; status: string }> };
  return report.tasks.filter((task) => task.status === 'changed').map((task) => task.id).sort();
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

t.test('apply, rerun, change one field, dry run on a populated root', async (t) => {
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const cluster = await makeCluster(t);
  const specs = ['/kubelet', '/etcd-v3.4.23-linux-amd64.tar.gz', '/containerd-1.7.24-linux-amd64.tar.gz'].map((p) => server.spec(p));
  await cluster.setAssets(specs);
  const conf = await cluster.bootConfig(CONTROL_PLANE);
  const root = makeRoot(t);

  const first = await nodeup(['--conf', conf, '--root', root, '-o', 'json']);
  t.equal(first.code, 0, 'first apply succeeds');
  if (first.code !== 0) t.comment(first.stdout, first.stderr);
  t.match(first.stderr, /\[\s*\d+\/\d+\] changed\s+Asset:\/usr\/local\/bin\/kubelet \d+ ms/, 'a progress line per task, with its timing');
  t.equal(server.requests.length, 3, 'each asset downloaded once');

  // What is on disk is what was asked for.
  t.equal(sha256(readFileSync(join(root, 'usr/local/bin/kubelet'))), specs[0].split('@')[0], 'kubelet binary has the asset hash');
  t.equal(lstatSync(join(root, 'usr/local/bin/kubelet')).mode & 0o777, 0o755);
  t.ok(lstatSync(join(root, 'opt/etcd/3.4.23/etcd')).isFile(), 'etcd tarball extracted where etcd-manager --etcd-binary-dir looks');
  t.ok(lstatSync(join(root, 'opt/containerd-1.7.24/bin/containerd')).isFile(), 'containerd tarball extracted');
  // protokube only answers --help/--version in this build: its unit is reported as skipped, never installed to crash-loop.
  t.match(first.stderr, /skipped\s+Service:protokube\.service \d+ ms: protokube is not implemented in this build yet/, 'protokube service skipped with its reason');
  t.notOk(existsSync(join(root, 'etc/systemd/system/protokube.service')), 'no protokube unit written');
  for (const unit of ['kubelet.service', 'containerd.service', 'etcd-manager@main.service', 'etcd-manager@events.service']) {
    t.match(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants', unit)), /\/etc\/systemd\/system\//, `${unit} enabled by systemctl --root`);
  }
  const manifest = readFileSync(join(root, 'etc/kubernetes/manifests/kube-apiserver.manifest'), 'utf8');
  t.match(manifest, '--etcd-servers=https://127.0.0.1:4001');
  const caPEM = readFileSync(join(root, 'srv/kubernetes/ca.crt'), 'utf8');
  const server509 = new X509Certificate(readFileSync(join(root, 'srv/kubernetes/kube-apiserver/server.crt')));
  t.ok(server509.verify(new X509Certificate(caPEM).publicKey), 'API server certificate issued by the cluster CA');
  t.match(server509.subjectAltName ?? '', 'DNS:api.internal.nodeup.example.com');
  t.equal(lstatSync(join(root, 'srv/kubernetes/kube-apiserver/server.key')).mode & 0o777, 0o600, 'keys are 0600');
  const kubeconfig = YAML.parse(readFileSync(join(root, 'var/lib/kubelet/kubeconfig'), 'utf8')) as { clusters: Array<{ cluster: { server: string } }> };
  t.equal(kubeconfig.clusters[0].cluster.server, 'https://127.0.0.1');
  t.match(readFileSync(join(root, 'etc/hosts'), 'utf8'), /^127\.0\.0\.1\tlocalhost\n[^]*127\.0\.0\.1\tapi\.internal\.nodeup\.example\.com/, '/etc/hosts keeps its lines and gains ours');

  // Rerun: nothing changes, nothing is rewritten, nothing is downloaded.
  const before = statTree(root);
  const second = await nodeup(['--conf', conf, '--root', root, '-o', 'json']);
  t.equal(second.code, 0, 'second run succeeds');
  t.same(changedIds(second.stdout), [], 'second run reports no change');
  t.same(statTree(root), before, 'second run rewrote nothing (inodes and mtimes unchanged)');
  t.equal(server.requests.length, 3, 'second run made no request');

  // One spec field: kube-proxy's cluster CIDR. Only its manifest may act.
  await cluster.editCluster((spec) => {
    spec.kubeProxy = { clusterCIDR: '100.96.0.0/12' };
  });
  const third = await nodeup(['--conf', await cluster.bootConfig(CONTROL_PLANE), '--root', root, '-o', 'json']);
  t.equal(third.code, 0, 'run after the spec change succeeds');
  t.same(changedIds(third.stdout), ['File:/etc/kubernetes/manifests/kube-proxy.manifest'], 'only the kube-proxy manifest changed');
  t.match(readFileSync(join(root, 'etc/kubernetes/manifests/kube-proxy.manifest'), 'utf8'), '--cluster-cidr=100.96.0.0/12');

  // A new kubelet build: the dry run shows it, changes nothing and fetches nothing.
  server.put('/v2/kubelet', Buffer.from('#!/bin/sh\necho kubelet v2\n'));
  await cluster.setAssets([server.spec('/v2/kubelet'), ...specs.slice(1)]);
  const conf2 = await cluster.bootConfig(CONTROL_PLANE);
  const treeBefore = await snapshotTree(root);
  const statsBefore = statTree(root);
  const requestsBefore = server.requests.length;
  const dry = await nodeup(['--conf', conf2, '--root', root, '--dry-run']);
  t.equal(dry.code, 0, 'dry run succeeds');
  t.match(dry.stdout, /Will modify:\n  Asset:\/usr\/local\/bin\/kubelet\n    sha256: [0-9a-f]{64} -> [0-9a-f]{64}/, 'plan shows the kubelet asset old -> new');
  t.same(await snapshotTree(root), treeBefore, 'dry run: file contents unchanged');
  t.same(statTree(root), statsBefore, 'dry run: no file touched');
  t.equal(server.requests.length - requestsBefore, 0, 'dry run: the asset server got zero requests');

  const fourth = await nodeup(['--conf', conf2, '--root', root, '-o', 'json']);
  t.equal(fourth.code, 0, 'run with the new kubelet succeeds');
  t.same(changedIds(fourth.stdout), ['Asset:/usr/local/bin/kubelet'], 'only the kubelet binary changed');
  t.equal(readFileSync(join(root, 'usr/local/bin/kubelet'), 'utf8'), '#!/bin/sh\necho kubelet v2\n');
});

t.test('a worker gets no control-plane material', async (t) => {
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const cluster = await makeCluster(t);
  await cluster.setAssets(['/kubelet', '/containerd-1.7.24-linux-amd64.tar.gz'].map((p) => server.spec(p)));
  const root = makeRoot(t);
  const r = await nodeup(['--conf', await cluster.bootConfig(WORKER), '--root', root]);
  t.equal(r.code, 0, 'worker apply succeeds');
  if (r.code !== 0) t.comment(r.stdout, r.stderr);
  const files = Object.keys(statTree(root));
  for (const absent of ['srv/kubernetes/kube-apiserver', 'etc/kubernetes/manifests/kube-apiserver.manifest', 'opt/etcd', 'etc/mooring/etcd-manager', 'etc/systemd/system/protokube.service']) {
    t.notOk(files.includes(absent), `worker has no ${absent}`);
  }
  t.ok(files.includes('etc/kubernetes/manifests/kube-proxy.manifest'));
  t.match(readFileSync(join(root, 'var/lib/kubelet/kubeconfig'), 'utf8'), `server: https://api.internal.${CLUSTER}`);
});

t.test('--install-systemd-unit installs and enables the boot-time unit, once', async (t) => {
  const cluster = await makeCluster(t);
  const root = makeRoot(t);
  const conf = await cluster.bootConfig(WORKER);
  const first = await nodeup(['--conf', conf, '--root', root, '--install-systemd-unit']);
  t.equal(first.code, 0, 'install succeeds');
  t.match(first.stdout, /1 tasks: 1 changed/);
  t.match(readFileSync(join(root, 'etc/systemd/system/mooring-nodeup.service'), 'utf8'), 'ExecStart=/opt/mooring/bin/nodeup --conf=/opt/mooring/conf/boot.yaml');
  t.match(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/mooring-nodeup.service')), 'mooring-nodeup.service');
  const files = Object.keys(statTree(root));
  t.notOk(files.includes('usr/local/bin'), 'nothing else installed');
  const again = await nodeup(['--conf', conf, '--root', root, '--install-systemd-unit']);
  t.match(again.stdout, /1 tasks: 0 changed, 1 unchanged/);
});
