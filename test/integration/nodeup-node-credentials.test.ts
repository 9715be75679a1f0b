// Workers get no control-plane material: a worker's nodeup, applied into a
// --root, against a state store that records every read and refuses (AccessDenied)
// every private keyset but the node's own client keypairs. It must succeed, use
// the keypairs `mooring update cluster` issued, and read CA certificates from
// pki/issued only. The control plane, which does issue from the CAs, still works.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { DEFAULT_CACHE, runNodeup, type NodeupOptions } from '../../agents/nodeup/nodeup.js';
import { loadKeyset, primaryKeypair } from '../../shared/pki/keyset.js';
import { openStore } from '../../shared/store/index.js';
import { startAssetServer } from '../harness/asset-server.js';
import { CLUSTER, CONTROL_PLANE, generatedAssets, makeCluster, makeRoot, WORKER } from '../harness/nodeup.js';
import { recordingStores } from '../harness/recording-store.js';

/** A worker's policy: private keysets only for its own client keypairs. */
const workerDenies = (url: string): boolean => /\/pki\/private\//.test(url) && !/\/pki\/private\/(kubelet|kube-proxy)\/keyset\.yaml$/.test(url);

function options(conf: string, root: string, open: NodeupOptions['openStore']): NodeupOptions {
  return { conf, root, dryRun: false, output: 'json', installSystemdUnit: false, cache: DEFAULT_CACHE, retries: 0, retryBaseMs: 1, openStore: open };
}

async function run(opts: NodeupOptions): Promise<{ code: number; stdout: string; stderr: string; error?: Error }> {
  let stdout = '';
  let stderr = '';
  try {
    const { code } = await runNodeup(opts, { out: (s) => void (stdout += s), err: (s) => void (stderr += s) });
    return { code, stdout, stderr };
  } catch (err) {
    return { code: -1, stdout, stderr, error: err as Error };
  }
}

function kubeconfigPair(path: string): { ca: string; cert: string; key: string } {
  const doc = YAML.parse(readFileSync(path, 'utf8')) as {
    clusters: Array<{ cluster: Record<string, string> }>;
    users: Array<{ user: Record<string, string> }>;
  };
  const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
  return { ca: unb64(doc.clusters[0].cluster['certificate-authority-data']), cert: unb64(doc.users[0].user['client-certificate-data']), key: unb64(doc.users[0].user['client-key-data']) };
}

t.test('a worker applies with no CA private key readable; the control plane still issues', async (t) => {
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const cluster = await makeCluster(t);
  await cluster.setAssets(['/kubelet', '/containerd-1.7.24-linux-amd64.tar.gz', '/etcd-v3.4.23-linux-amd64.tar.gz'].map((p) => server.spec(p)));
  const store = openStore(cluster.storeURL).sub(CLUSTER);

  const worker = recordingStores(openStore, workerDenies);
  const root = makeRoot(t);
  const r = await run(options(await cluster.bootConfig(WORKER), root, worker.open));
  t.equal(r.code, 0, `worker nodeup succeeds${r.error ? `: ${r.error.message}` : ''}`);
  if (r.code !== 0) t.comment(r.stdout, r.stderr);
  t.same(worker.denied, [], 'no read was refused');
  const rel = worker.reads.map((url) => url.slice(cluster.storeURL.length + CLUSTER.length + 2));
  t.same(rel.filter((p) => p.startsWith('pki/private/')).sort(), ['pki/private/kube-proxy/keyset.yaml', 'pki/private/kubelet/keyset.yaml'], 'the only private keysets read are its own client keypairs');
  t.notOk(rel.some((p) => /service-account|etcd/.test(p)), 'nothing of service-account or etcd is read');
  t.ok(rel.includes('pki/issued/kubernetes-ca/keyset.yaml'), 'the CA certificate comes from pki/issued');

  const ca = primaryKeypair((await loadKeyset(store, 'kubernetes-ca'))!);
  for (const [name, path] of [['kubelet', 'var/lib/kubelet/kubeconfig'], ['kube-proxy', 'var/lib/kube-proxy/kubeconfig']] as const) {
    const want = primaryKeypair((await loadKeyset(store, name))!);
    const got = kubeconfigPair(join(root, path));
    t.equal(got.cert, want.certPEM, `${name} kubeconfig carries the pre-issued certificate`);
    t.equal(got.key, want.keyPEM, `${name} kubeconfig carries the pre-issued key`);
    t.equal(got.ca, ca.certPEM, `${name} kubeconfig trusts kubernetes-ca`);
    t.ok(new X509Certificate(got.cert).verify(new X509Certificate(ca.certPEM).publicKey), `${name} certificate verifies against the CA`);
  }
  t.equal(readFileSync(join(root, 'srv/kubernetes/ca.crt'), 'utf8'), ca.certPEM, 'ca.crt is the CA certificate');

  // Rerun: the kubeconfigs are already right.
  const again = await run(options(await cluster.bootConfig(WORKER), root, recordingStores(openStore, workerDenies).open));
  t.equal(again.code, 0);
  const report = JSON.parse(again.stdout) as { tasks: Array<{ id: string; status: string }> };
  t.same(report.tasks.filter((task) => task.id.startsWith('Kubeconfig:') && task.status !== 'unchanged'), [], 'second run leaves the kubeconfigs alone');

  // The policy bites: the control plane under the worker's policy cannot run…
  const cpConf = await cluster.bootConfig(CONTROL_PLANE);
  const refused = await run(options(cpConf, makeRoot(t), recordingStores(openStore, workerDenies).open));
  t.not(refused.code, 0, 'the control plane cannot run under the worker policy');
  t.match(refused.error?.message ?? refused.stderr + refused.stdout, /AccessDenied|access denied/i, 'because a CA private key was refused');

  // …and with its own access it still issues from the CAs.
  const cp = recordingStores(openStore, () => false);
  const cpRoot = makeRoot(t);
  const cpRun = await run(options(cpConf, cpRoot, cp.open));
  t.equal(cpRun.code, 0, `control-plane nodeup succeeds${cpRun.error ? `: ${cpRun.error.message}` : ''}`);
  if (cpRun.code !== 0) t.comment(cpRun.stdout, cpRun.stderr);
  t.ok(cp.reads.some((url) => url.endsWith('/pki/private/kubernetes-ca/keyset.yaml')), 'the control plane reads the CA key');
  const cpKubelet = kubeconfigPair(join(cpRoot, 'var/lib/kubelet/kubeconfig'));
  t.ok(new X509Certificate(cpKubelet.cert).verify(new X509Certificate(ca.certPEM).publicKey), 'control-plane kubelet certificate issued by kubernetes-ca');
});

t.test('a worker whose client keypair is missing fails with a message naming it', async (t) => {
  const cluster = await makeCluster(t);
  const store = openStore(cluster.storeURL).sub(CLUSTER);
  await store.delete('pki/private/kube-proxy/keyset.yaml');
  const r = await run({ ...options(await cluster.bootConfig(WORKER), makeRoot(t), recordingStores(openStore, workerDenies).open), dryRun: true, output: 'text' });
  t.not(r.code, 0, 'fails');
  t.match(r.stdout + r.stderr + (r.error?.message ?? ''), /kube-proxy/, 'names the keypair');
});
