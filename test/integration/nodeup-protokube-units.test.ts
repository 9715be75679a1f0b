// The contract between two agents: the environment file nodeup writes for
// protokube.service must be settings protokube itself accepts (read through
// its own flag parser, where an unknown PROTOKUBE_* name is an error), and
// must put the control plane and the workers in the right mode, with the
// kubeconfig the control plane's protokube reads.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYAML } from 'yaml';
import { parseEnvFile } from '../../shared/flags.js';
import { parseFlags } from '../../agents/protokube/flags.js';
import { resolveConfig } from '../../agents/protokube/config.js';
import { startAssetServer } from '../harness/asset-server.js';
import { CLUSTER, CONTROL_PLANE, WORKER, generatedAssets, makeCluster, makeRoot, nodeup } from '../harness/nodeup.js';

function protokubeConfigIn(root: string) {
  const env = Object.fromEntries(parseEnvFile(readFileSync(join(root, 'etc/sysconfig/protokube'), 'utf8'), 'etc/sysconfig/protokube'));
  // Only what the unit gives it: the environment file (systemd's environment sets no PROTOKUBE_*).
  return resolveConfig(parseFlags([], env));
}

t.test('protokube accepts the unit settings nodeup writes, control plane and worker', async (t) => {
  const server = await startAssetServer(t);
  for (const [path, data] of generatedAssets(t)) server.put(path, data);
  const cluster = await makeCluster(t);
  await cluster.setAssets(['/kubelet', '/etcd-v3.4.23-linux-amd64.tar.gz', '/containerd-1.7.24-linux-amd64.tar.gz'].map((p) => server.spec(p)));

  const cpRoot = makeRoot(t);
  const cp = await nodeup(['--conf', await cluster.bootConfig(CONTROL_PLANE), '--root', cpRoot, '-o', 'json']);
  t.equal(cp.code, 0, cp.stderr);
  const cpConfig = protokubeConfigIn(cpRoot);
  t.equal(cpConfig.cluster, CLUSTER);
  t.equal(cpConfig.namesOnly, false, 'the control plane runs the full protokube');
  t.equal(cpConfig.masterInternalName, `api.internal.${CLUSTER}`);
  t.same(cpConfig.channels, [`file://${cluster.storeDir}/${CLUSTER}/addons/bootstrap-channel.yaml`], 'the bootstrap channel mooring writes');
  t.same(cpConfig.nodeTaints, [{ key: 'node-role.kubernetes.io/control-plane', value: '', effect: 'NoSchedule' }], 'the group\'s taints');
  // The kubeconfig it reads is there, private, and names protokube as a cluster admin of the local API server.
  const kubeconfigPath = join(cpRoot, cpConfig.kubeconfig);
  t.equal(statSync(kubeconfigPath).mode & 0o777, 0o600, 'kubeconfig is 0600');
  const kubeconfig = parseYAML(readFileSync(kubeconfigPath, 'utf8')) as { clusters: Array<{ cluster: { server: string } }>; users: Array<{ user: Record<string, string> }> };
  t.equal(kubeconfig.clusters[0].cluster.server, 'https://127.0.0.1');
  const cert = new X509Certificate(Buffer.from(kubeconfig.users[0].user['client-certificate-data'], 'base64'));
  t.match(cert.subject, /CN=protokube/);
  t.match(cert.subject, /O=system:masters/);
  const unit = readFileSync(join(cpRoot, 'etc/systemd/system/protokube.service'), 'utf8');
  t.match(unit, /^EnvironmentFile=\/etc\/sysconfig\/protokube$/m);
  t.match(unit, /^ExecStart=\/opt\/mooring\/bin\/protokube$/m);
  // nodeup no longer keeps api.internal itself where protokube does (two blocks, the stale one first, would win).
  t.notMatch(readFileSync(join(cpRoot, 'etc/hosts'), 'utf8'), /api\.internal/);

  const workerRoot = makeRoot(t);
  const worker = await nodeup(['--conf', await cluster.bootConfig(WORKER), '--root', workerRoot, '-o', 'json']);
  t.equal(worker.code, 0, worker.stderr);
  const workerConfig = protokubeConfigIn(workerRoot);
  t.equal(workerConfig.namesOnly, true, 'workers run names-only');
  t.equal(workerConfig.configBase, `file://${cluster.storeDir}/${CLUSTER}`, 'and read the published addresses from the cluster\'s folder');
  t.same(workerConfig.nodeTaints, [], 'no taints to keep on a worker');
  t.notOk(statSync(join(workerRoot, 'var/lib/protokube'), { throwIfNoEntry: false }), 'no kubeconfig, no admin credentials on a worker');
});

t.test('a PROTOKUBE_* name protokube does not know is refused, naming it', async (t) => {
  t.throws(() => parseFlags([], { PROTOKUBE_CLUSTR: 'x' }), /PROTOKUBE_CLUSTR is not a protokube setting/);
});
