// Node assets end to end. Without spec.assets.fileRepository, `mooring update
// cluster` lists kOps' upstream URLs with hashes from the shipped table and makes
// no request. With one, every file comes from the mirror (a real HTTP server on
// 127.0.0.1); a release the table does not know has its hash read from
// `<url>.sha256` there, and a missing one refuses the update (store untouched);
// nodeup then installs kubelet from that mirror with hash verification.
import t from 'tap';
import { createHash } from 'node:crypto';
import { cpSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNodeConfig } from '../../shared/api/nodeconfig.js';
import { fetchSha256, knownAssetSha256 } from '../../shared/api/assets.js';
import { openStore } from '../../shared/store/index.js';
import { startAssetServer } from '../harness/asset-server.js';
import { mooring, TEST_AGENT_ARGS } from '../harness/cli.js';
import { CLUSTER, CONTROL_PLANE, generatedAssets, makeRoot, nodeup, WORKER } from '../harness/nodeup.js';
import { snapshotStore, tempDir, type Teardown } from '../harness/tmp.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/nodeup/', import.meta.url));
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function ok(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await mooring(args);
  if (r.code !== 0) throw new Error(`mooring ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** Edits the stored Cluster through get -o json / replace -f, as an operator would. */
async function editSpec(t: Teardown, state: string[], edit: (spec: Record<string, unknown>) => void): Promise<void> {
  const cluster = JSON.parse((await ok([...state, 'get', 'cluster', CLUSTER, '-o', 'json'])).stdout) as { spec: Record<string, unknown> };
  edit(cluster.spec);
  const edited = join(tempDir(t, 'assets-edit-'), 'cluster.json');
  writeFileSync(edited, JSON.stringify(cluster));
  await ok([...state, 'replace', '-f', edited]);
}

t.test('without a file repository: kOps upstream URLs, hashes from the shipped table, no request', async (t) => {
  const storeDir = tempDir(t, 'assets-store-');
  const state = ['--state', `file://${storeDir}`];
  await ok([...state, 'create', '-f', join(FIXTURES, 'cluster.yaml')]);
  cpSync(join(FIXTURES, 'ca-store/pki'), join(storeDir, CLUSTER, 'pki'), { recursive: true });
  // The test harness refuses any fetch off this machine, so a look-up would fail the update.
  const first = await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.notMatch(first.stderr, /fileRepository|sha256/, 'no warning, no look-up note');
  const cs = openStore(`file://${storeDir}`).sub(CLUSTER);
  const upstream = (arch: string): string[] => [
    `https://dl.k8s.io/release/v1.34.10/bin/linux/${arch}/kubelet`,
    `https://dl.k8s.io/release/v1.34.10/bin/linux/${arch}/kubectl`,
    `https://github.com/containernetworking/plugins/releases/download/v1.7.1/cni-plugins-linux-${arch}-v1.7.1.tgz`,
    `https://github.com/containerd/containerd/releases/download/v1.7.24/containerd-1.7.24-linux-${arch}.tar.gz`,
  ];
  const entries = (arch: string): string[] => upstream(arch).map((url) => `${knownAssetSha256(url)}@${url}`);
  for (const [path, name] of [[`igconfig/node/${WORKER}/nodeupconfig.yaml`, 'worker'], [`igconfig/control-plane/${CONTROL_PLANE}/nodeupconfig.yaml`, 'control plane']] as const) {
    const nc = parseNodeConfig((await cs.read(path)).toString(), path);
    t.same(nc.assets, { amd64: entries('amd64'), arm64: entries('arm64') }, `${name}: kubelet, kubectl, CNI plugins, containerd for both architectures (the local cloud's etcd is Debian's)`);
    for (const entry of [...nc.assets.amd64, ...nc.assets.arm64]) t.match(entry, /^[0-9a-f]{64}@https:\/\//, `${entry.split('@')[1]}: a known hash`);
  }
});

t.test('with spec.assets.fileRepository: unknown releases are looked up on the mirror; nodeup installs from it', async (t) => {
  const server = await startAssetServer(t);
  const generated = generatedAssets(t);
  // Releases the shipped table does not know (Kubernetes 1.30.5, containerd 1.7.99, Debian's etcd
  // 3.4.23), so every hash comes from the mirror's .sha256. Calico brings its own CNI plugins
  // (kOps installs the CNI plugins release only for other network plugins), whose known hash a
  // stand-in could never match.
  const mirror = '/mirror';
  const files = new Map<string, Buffer>();
  for (const arch of ['amd64', 'arm64']) {
    const tag = (data: Buffer): Buffer => (arch === 'amd64' ? data : Buffer.concat([data, Buffer.from(`# ${arch}\n`)]));
    files.set(`${mirror}/release/v1.30.5/bin/linux/${arch}/kubelet`, tag(generated.get('/kubelet')!));
    files.set(`${mirror}/release/v1.30.5/bin/linux/${arch}/kubectl`, tag(Buffer.from('#!/bin/sh\necho kubectl stand-in\n')));
    files.set(`${mirror}/containerd/containerd/releases/download/v1.7.99/containerd-1.7.99-linux-${arch}.tar.gz`, generated.get('/containerd-1.7.24-linux-amd64.tar.gz')!);
    files.set(`${mirror}/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-${arch}.tar.gz`, generated.get('/etcd-v3.4.23-linux-amd64.tar.gz')!);
  }
  const missing = `${mirror}/containerd/containerd/releases/download/v1.7.99/containerd-1.7.99-linux-arm64.tar.gz`;
  for (const [path, data] of files) {
    server.put(path, data);
    // kOps' .sha256 files: the digest, sometimes followed by the file name.
    if (path !== missing) server.put(`${path}.sha256`, Buffer.from(`${sha256(data)}  ${path.split('/').pop()}\n`));
  }

  const storeDir = tempDir(t, 'assets-store-');
  const state = ['--state', `file://${storeDir}`];
  await ok([...state, 'create', '-f', join(FIXTURES, 'cluster.yaml')]);
  cpSync(join(FIXTURES, 'ca-store/pki'), join(storeDir, CLUSTER, 'pki'), { recursive: true });
  await editSpec(t, state, (spec) => {
    spec.kubernetesVersion = '1.30.5';
    spec.containerd = { version: '1.7.99' };
    spec.networking = { calico: {} };
    spec.assets = { fileRepository: `${server.url}${mirror}/`, someFutureAssetField: 'kept' };
  });
  const kept = JSON.parse((await ok([...state, 'get', 'cluster', CLUSTER, '-o', 'json'])).stdout) as { spec: { assets: Record<string, unknown> } };
  t.equal(kept.spec.assets.someFutureAssetField, 'kept', 'unknown assets fields survive');

  // A missing .sha256: a clear error naming the URL, and the store exactly as it was.
  const store = openStore(`file://${storeDir}`);
  const before = await snapshotStore(store);
  const refused = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.equal(refused.code, 1, 'update fails');
  t.match(refused.stderr, `${server.url}${missing}.sha256`, 'the error names the hash URL');
  t.match(refused.stderr, /HTTP 404/, 'and what went wrong');
  t.match(refused.stderr, /not a release in Mooring's table of known hashes/, 'and why it was looked up');
  t.same(await snapshotStore(store), before, 'the store is unchanged');

  server.put(`${missing}.sha256`, Buffer.from(`${sha256(files.get(missing)!)}\n`));
  const applied = await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  const kubeletURL = `${server.url}${mirror}/release/v1.30.5/bin/linux/amd64/kubelet`;
  t.match(applied.stderr, `note: ${kubeletURL} is not a release in Mooring's table of known hashes; its sha256 was read from ${kubeletURL}.sha256`, 'update says which hashes it looked up');
  t.match(applied.stderr, /note: etcd 3\.4\.23 for "main", "events": the local cloud installs Debian 12's etcd-server package offline; kOps would use etcd 3\.5\.31 for Kubernetes 1\.30\.5/, 'and where the local cloud differs from kOps');

  const cs = store.sub(CLUSTER);
  const entry = (path: string): string => `${sha256(files.get(path)!)}@${server.url}${path}`;
  const want = (arch: string, etcd: boolean): string[] => [
    entry(`${mirror}/release/v1.30.5/bin/linux/${arch}/kubelet`),
    entry(`${mirror}/release/v1.30.5/bin/linux/${arch}/kubectl`),
    entry(`${mirror}/containerd/containerd/releases/download/v1.7.99/containerd-1.7.99-linux-${arch}.tar.gz`),
    ...(etcd ? [entry(`${mirror}/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-${arch}.tar.gz`)] : []),
  ];
  const workerNC = parseNodeConfig((await cs.read(`igconfig/node/${WORKER}/nodeupconfig.yaml`)).toString(), 'worker');
  t.same(workerNC.assets, { amd64: want('amd64', false), arm64: want('arm64', false) }, 'worker: kubelet, kubectl and containerd for both architectures');
  const cpNC = parseNodeConfig((await cs.read(`igconfig/control-plane/${CONTROL_PLANE}/nodeupconfig.yaml`)).toString(), 'cp');
  t.same(cpNC.assets, { amd64: want('amd64', true), arm64: want('arm64', true) }, 'control plane: also the etcd it hosts (from a file repository, the local cloud fetches it too)');
  t.equal((await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS])).stdout.includes('No changes needed'), true, 'a second update changes nothing');

  // mooring → nodeup: the worker boots from this store and installs kubelet from the mirror.
  const conf = join(tempDir(t, 'assets-conf-'), 'worker.yaml');
  writeFileSync(conf, (await ok([...state, 'get', 'bootconfig', CLUSTER, '--instance-group', WORKER])).stdout);
  const root = makeRoot(t);
  server.requests.length = 0;
  const r = await nodeup(['--conf', conf, '--root', root, '-o', 'json']);
  t.equal(r.code, 0, 'worker nodeup applies');
  if (r.code !== 0) t.comment(r.stdout, r.stderr);
  const kubelet = files.get(`${mirror}/release/v1.30.5/bin/linux/amd64/kubelet`)!;
  t.equal(sha256(readFileSync(join(root, 'usr/local/bin/kubelet'))), sha256(kubelet), 'kubelet installed with the mirror hash');
  t.equal(lstatSync(join(root, 'usr/local/bin/kubelet')).mode & 0o777, 0o755);
  t.ok(lstatSync(join(root, 'usr/local/bin/kubectl')).isFile(), 'kubectl beside it, as kOps installs it');
  t.ok(lstatSync(join(root, 'opt/containerd-1.7.99/bin/containerd')).isFile(), 'containerd from the mirror tarball');
  t.ok(server.requests.includes(`${mirror}/release/v1.30.5/bin/linux/amd64/kubelet`), 'downloaded from the file repository');
});

t.test('a mirror serving the wrong bytes: nodeup refuses the file', async (t) => {
  const server = await startAssetServer(t);
  const storeDir = tempDir(t, 'assets-store-');
  const state = ['--state', `file://${storeDir}`];
  await ok([...state, 'create', '-f', join(FIXTURES, 'cluster.yaml')]);
  cpSync(join(FIXTURES, 'ca-store/pki'), join(storeDir, CLUSTER, 'pki'), { recursive: true });
  await editSpec(t, state, (spec) => {
    spec.kubernetesVersion = '1.30.5';
    spec.containerd = { version: '1.7.99' };
    spec.networking = { calico: {} };
    spec.assets = { fileRepository: server.url };
  });
  const paths = ['amd64', 'arm64'].flatMap((arch) => [
    `/release/v1.30.5/bin/linux/${arch}/kubelet`,
    `/release/v1.30.5/bin/linux/${arch}/kubectl`,
    `/containerd/containerd/releases/download/v1.7.99/containerd-1.7.99-linux-${arch}.tar.gz`,
    `/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-${arch}.tar.gz`,
  ]);
  for (const path of paths) {
    server.put(path, Buffer.from(`real ${path}\n`));
    server.put(`${path}.sha256`, Buffer.from(sha256(Buffer.from(`real ${path}\n`))));
  }
  await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  server.put('/release/v1.30.5/bin/linux/amd64/kubelet', Buffer.from('tampered\n'));
  const conf = join(tempDir(t, 'assets-conf-'), 'worker.yaml');
  writeFileSync(conf, (await ok([...state, 'get', 'bootconfig', CLUSTER, '--instance-group', WORKER])).stdout);
  const root = makeRoot(t);
  const r = await nodeup(['--conf', conf, '--root', root, '--retries', '0']);
  t.not(r.code, 0, 'nodeup fails');
  t.match(r.stdout + r.stderr, /Asset:\/usr\/local\/bin\/kubelet/, 'the kubelet asset task fails');
  t.match(r.stdout + r.stderr, /sha256|hash/i, 'on the hash');
  t.throws(() => lstatSync(join(root, 'usr/local/bin/kubelet')), 'no kubelet installed');
});

t.test('fetchSha256: bad content and a server that does not answer in time', async (t) => {
  const server = await startAssetServer(t);
  server.put('/x.sha256', Buffer.from('not a digest\n'));
  await t.rejects(fetchSha256(`${server.url}/x`), /asset hash http:\/\/127\.0\.0\.1:\d+\/x\.sha256: not a sha256 hex digest/);
  await t.rejects(fetchSha256(`${server.url}/y`), /\/y\.sha256: HTTP 404/);
  const slow = await startAssetServer(t, { latencyMs: 5_000 });
  slow.put('/z.sha256', Buffer.from('a'.repeat(64)));
  await t.rejects(fetchSha256(`${slow.url}/z`, 50), /\/z\.sha256: no answer within 50 ms/);
  const closed = await startAssetServer(undefined);
  await closed.close();
  await t.rejects(fetchSha256(`${closed.url}/w`), new RegExp(`${closed.url.replace(/\./g, '\\.')}/w\\.sha256: `), 'a refused connection names the URL');
});
