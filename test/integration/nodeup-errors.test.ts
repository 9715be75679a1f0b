// Bad input: a wrong asset hash, an unreachable mirror, a node config whose
// hash is not the boot config's, an unknown distro. Each must give a clear
// error naming the task (or the input) and leave what is installed intact.
import t, { type Test } from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAssetServer } from '../harness/asset-server.js';
import { CLUSTER, CONTROL_PLANE, generatedAssets, makeCluster, makeRoot, nodeup, WORKER } from '../harness/nodeup.js';
import { snapshotTree } from '../harness/tmp.js';

async function installedWorker(t: Test) {
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const cluster = await makeCluster(t);
  const containerd = server.spec('/containerd-1.7.24-linux-amd64.tar.gz');
  await cluster.setAssets([server.spec('/kubelet'), containerd]);
  const root = makeRoot(t);
  const first = await nodeup(['--conf', await cluster.bootConfig(WORKER), '--root', root]);
  t.equal(first.code, 0, 'the worker installs cleanly first');
  return { server, cluster, root, containerd };
}

t.test('a wrong asset hash fails the asset task, skips its dependents, keeps the installed binary', async (t) => {
  const { server, cluster, root, containerd } = await installedWorker(t);
  server.put('/v2/kubelet', Buffer.from('#!/bin/sh\necho kubelet v2\n'));
  const wrong = `${'0'.repeat(64)}@${server.url}/v2/kubelet`;
  await cluster.setAssets([wrong, containerd]);
  const before = await snapshotTree(root);
  const r = await nodeup(['--conf', await cluster.bootConfig(WORKER), '--root', root, '--retries', '0']);
  t.equal(r.code, 1, 'exit 1: a task failed');
  t.match(r.stdout, /Failed \(2\):\n  Asset:\/usr\/local\/bin\/kubelet: download kubelet failed from every mirror: http:\/\/127\.0\.0\.1:\d+\/v2\/kubelet: sha256 mismatch: got [0-9a-f]{64}, want 0{64}/);
  t.match(r.stdout, /Service:kubelet\.service: skipped, dependency failed: Asset:\/usr\/local\/bin\/kubelet/);
  t.same(await snapshotTree(root), before, 'the installed kubelet (and everything else) is intact; no partial file left');
  t.equal(readFileSync(join(root, 'usr/local/bin/kubelet'), 'utf8'), '#!/bin/sh\necho "kubelet stand-in $*"\n');
});

t.test('mirrors are tried in order; only an all-unreachable list fails, naming every mirror', async (t) => {
  const { server, cluster, root, containerd } = await installedWorker(t);
  const dead = await startAssetServer(undefined);
  const deadURL = dead.url;
  await dead.close(); // nothing listens there any more: connection refused
  server.put('/v2/kubelet', Buffer.from('#!/bin/sh\necho kubelet v2\n'));
  const good = server.spec('/v2/kubelet', [], [`${deadURL}/v2/kubelet`]);
  await cluster.setAssets([good, containerd]);
  const ok = await nodeup(['--conf', await cluster.bootConfig(WORKER), '--root', root, '--retries', '0']);
  t.equal(ok.code, 0, 'the second mirror serves it');
  t.equal(readFileSync(join(root, 'usr/local/bin/kubelet'), 'utf8'), '#!/bin/sh\necho kubelet v2\n');

  await cluster.setAssets([`${'a'.repeat(64)}@${deadURL}/v3/kubelet,${deadURL}/mirror/v3/kubelet`, containerd]);
  const before = await snapshotTree(root);
  const bad = await nodeup(['--conf', await cluster.bootConfig(WORKER), '--root', root, '--retries', '1']);
  t.equal(bad.code, 1);
  t.match(bad.stdout, new RegExp(`Asset:/usr/local/bin/kubelet: download kubelet failed from every mirror: ${deadURL}/v3/kubelet: fetch failed \\(connect ECONNREFUSED[^)]*\\); ${deadURL}/mirror/v3/kubelet: fetch failed`));
  t.match(bad.stderr, /task failed, retrying task=Asset:\/usr\/local\/bin\/kubelet attempt=1/, 'retried once, as asked');
  t.same(await snapshotTree(root), before, 'installed kubelet intact');
});

t.test('a node config whose hash differs from the boot config is refused before anything happens', async (t) => {
  const { cluster, root } = await installedWorker(t);
  const conf = await cluster.bootConfig(WORKER);
  const path = join(cluster.storeDir, CLUSTER, 'igconfig/node', WORKER, 'nodeupconfig.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace('clusterDNS: 100.64.0.10', 'clusterDNS: 100.64.0.11'));
  const before = await snapshotTree(root);
  for (const args of [[], ['--dry-run']]) {
    const r = await nodeup(['--conf', conf, '--root', root, ...args]);
    t.equal(r.code, 3, 'exit 3: invalid input');
    t.match(r.stderr, /load node config file:\/\/.*nodeupconfig\.yaml: node config hash sha256:[0-9a-f]{64} does not match the boot config's sha256:[0-9a-f]{64}/);
  }
  t.same(await snapshotTree(root), before, 'nothing written');
});

t.test('an unknown distro fails the package tasks by name; the rest of the node is still configured', async (t) => {
  const cluster = await makeCluster(t);
  const root = makeRoot(t, { osRelease: 'ID=plan9\nVERSION_ID=4\n' });
  const r = await nodeup(['--conf', await cluster.bootConfig(CONTROL_PLANE), '--root', root, '--dry-run']);
  t.equal(r.code, 1);
  t.match(r.stdout, /Packages:base: unknown distro ID="plan9" in .*\/etc\/os-release; cannot choose a package manager/);
  t.match(r.stdout, /Will create:\n  Directory:\/etc\/kubernetes/, 'independent tasks are still planned');
});

t.test('a missing os-release is a clear error', async (t) => {
  const cluster = await makeCluster(t);
  const root = makeRoot(t);
  rmSync(join(root, 'etc/os-release'));
  const r = await nodeup(['--conf', await cluster.bootConfig(CONTROL_PLANE), '--root', root, '--dry-run']);
  t.equal(r.code, 1);
  t.match(r.stderr, /detect distro: cannot read .*\/etc\/os-release/);
});
