// The contract between two agents: the env files nodeup writes for the
// etcd-manager@<cluster> units must be settings etcd-manager itself accepts
// (read through its own flag parser, where an unknown ETCD_MANAGER_* key is an error).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags } from '../../agents/etcd-manager/flags.js';
import { resolveConfig } from '../../agents/etcd-manager/config.js';
import { resolveEtcdBinary } from '../../agents/etcd-manager/etcd/binary.js';
import { startAssetServer } from '../harness/asset-server.js';
import { CLUSTER, CONTROL_PLANE, generatedAssets, makeCluster, makeRoot, nodeup } from '../harness/nodeup.js';

t.test('etcd-manager accepts the unit settings nodeup writes', async (t) => {
  const server = await startAssetServer(t);
  const assets = generatedAssets(t);
  for (const [path, data] of assets) server.put(path, data);
  // What the etcd tarball holds as etcd-v3.4.23-linux-amd64/etcd.
  const etcdStandIn = execFileSync('tar', ['-xzO', 'etcd-v3.4.23-linux-amd64/etcd'], { input: assets.get('/etcd-v3.4.23-linux-amd64.tar.gz') });
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const cluster = await makeCluster(t);
  await cluster.setAssets(['/kubelet', '/etcd-v3.4.23-linux-amd64.tar.gz', '/containerd-1.7.24-linux-amd64.tar.gz'].map((p) => server.spec(p)));
  const root = makeRoot(t);
  const run = await nodeup(['--conf', await cluster.bootConfig(CONTROL_PLANE), '--root', root, '-o', 'json']);
  t.equal(run.code, 0, run.stderr);

  for (const [etcd, clusterName, clientPort] of [['main', 'etcd', 4001], ['events', 'etcd-events', 4002]] as const) {
    const path = join(root, 'etc/mooring/etcd-manager', `${etcd}.env`);
    const config = resolveConfig(parseFlags(['--env-file', path], {}));
    t.equal(config.clusterName, clusterName, `${etcd}: cluster name as kOps passes it`);
    t.match(config.backupStore, new RegExp(`/${CLUSTER.replace(/\./g, '\\.')}/backups/etcd/${etcd}$`), `${etcd}: backup store`);
    t.match(readFileSync(path, 'utf8'), `ETCD_MANAGER_CLIENT_URLS=https://__name__:${clientPort}`);
    // etcd-manager's own lookup, inside the root: the stand-in from the etcd tarball, not a fall-back to /usr/bin/etcd.
    t.ok(config.etcdBinaryDir, `${etcd}: --etcd-binary-dir is set`);
    const binary = await resolveEtcdBinary('3.4.23', join(root, config.etcdBinaryDir ?? ''));
    t.equal(binary, join(root, 'opt/etcd/3.4.23/etcd'), `${etcd}: etcd-manager finds etcd 3.4.23 where --etcd-binary-dir points`);
    t.equal(sha256(readFileSync(binary)), sha256(etcdStandIn), `${etcd}: and it is the etcd from the release tarball`);
  }
  const main = readFileSync(join(root, 'etc/mooring/etcd-manager/main.env'), 'utf8');
  const events = readFileSync(join(root, 'etc/mooring/etcd-manager/events.env'), 'utf8');
  t.not(/PKI_DIR=(.*)/.exec(main)?.[1], /PKI_DIR=(.*)/.exec(events)?.[1], 'main and events keep their keys apart');
});
