// kOps' additional objects: other Kubernetes objects in the file that holds the
// Cluster. They are kept with the cluster (clusteraddons/default), listed by
// `get all` (so its output can be given back to replace -f), a
// KubeSchedulerConfiguration becomes the control plane's kube-scheduler config
// (nodeup sets its kubeconfig), and the rest are written as the addon
// cluster-addons.kops.k8s.io for the cluster.
import t from 'tap';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parseNodeConfig } from '../../shared/api/nodeconfig.js';
import { openStore } from '../../shared/store/index.js';
import { mooring, TEST_AGENT_ARGS } from '../harness/cli.js';
import { CLUSTER, CONTROL_PLANE, makeRoot, nodeup, WORKER } from '../harness/nodeup.js';
import { snapshotStore, tempDir } from '../harness/tmp.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/nodeup/', import.meta.url));

const SCHEDULER = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
`;
const CONFIGMAP = `apiVersion: v1
kind: ConfigMap
metadata:
  name: team-settings
  namespace: kube-system
data:
  owner: platform
`;

async function ok(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await mooring(args);
  if (r.code !== 0) throw new Error(`mooring ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

t.test('kept with the cluster, listed, passed to the scheduler and to the cluster', async (t) => {
  const storeDir = tempDir(t, 'addobj-store-');
  const state = ['--state', `file://${storeDir}`];
  const file = join(tempDir(t, 'addobj-'), 'all.yaml');
  writeFileSync(file, [readFileSync(join(FIXTURES, 'cluster.yaml'), 'utf8'), SCHEDULER, CONFIGMAP].join('---\n'));
  const created = await ok([...state, 'create', '-f', file]);
  t.match(created.stdout, `created cluster "${CLUSTER}", instance group "control-plane-local-a", instance group "nodes-local-a", 2 additional objects`);
  const cs = openStore(`file://${storeDir}`).sub(CLUSTER);
  const kept = YAML.parseAllDocuments((await cs.read('clusteraddons/default')).toString()).map((d) => d.toJS() as { kind: string });
  t.same(kept.map((o) => o.kind), ['KubeSchedulerConfiguration', 'ConfigMap'], 'kept in the store, in file order');

  const table = await ok([...state, 'get', 'all', CLUSTER]);
  t.match(table.stdout, /ADDITIONAL OBJECT\nKubeSchedulerConfiguration kubescheduler\.config\.k8s\.io\/v1\nConfigMap\/team-settings v1 \(namespace kube-system\)/);
  const all = (await ok([...state, 'get', 'all', CLUSTER, '-o', 'yaml'])).stdout;
  t.same(YAML.parseAllDocuments(all).map((d) => (d.toJS() as { kind: string }).kind), ['Cluster', 'InstanceGroup', 'InstanceGroup', 'KubeSchedulerConfiguration', 'ConfigMap'], 'get all -o yaml lists them after the groups');
  const again = join(tempDir(t, 'addobj-again-'), 'all.yaml');
  writeFileSync(again, all);
  t.match((await ok([...state, 'replace', '-f', again])).stdout, '2 additional objects', "get all's output goes back to replace -f");

  cpSync(join(FIXTURES, 'ca-store/pki'), join(storeDir, CLUSTER, 'pki'), { recursive: true });
  await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  const applied = YAML.parseAllDocuments((await cs.read('addons/cluster-addons.kops.k8s.io/default.yaml')).toString()).map((d) => d.toJS() as { kind: string });
  t.same(applied.map((o) => o.kind), ['ConfigMap'], 'the addon for the cluster: every object but the scheduler configuration');
  const cpNC = parseNodeConfig((await cs.read(`igconfig/control-plane/${CONTROL_PLANE}/nodeupconfig.yaml`)).toString(), 'cp');
  t.match(cpNC.kubeSchedulerConfig, { kind: 'KubeSchedulerConfiguration', profiles: [{ schedulerName: 'default-scheduler' }] }, 'the control plane carries the scheduler configuration');
  const workerNC = parseNodeConfig((await cs.read(`igconfig/node/${WORKER}/nodeupconfig.yaml`)).toString(), 'worker');
  t.equal(workerNC.kubeSchedulerConfig, undefined, 'workers do not');

  const conf = join(tempDir(t, 'addobj-conf-'), 'cp.yaml');
  writeFileSync(conf, (await ok([...state, 'get', 'bootconfig', CLUSTER, '--instance-group', CONTROL_PLANE])).stdout);
  const r = await nodeup(['--conf', conf, '--root', makeRoot(t), '--dry-run', '-o', 'json']);
  t.equal(r.code, 0, 'nodeup plans it');
  if (r.code !== 0) t.comment(r.stderr, JSON.stringify((JSON.parse(r.stdout) as { failed: unknown }).failed));
  const plan = JSON.parse(r.stdout) as { tasks: Array<{ id: string; diff?: string }> };
  const schedulerFile = plan.tasks.find((task) => task.id === 'File:/var/lib/kube-scheduler/config.yaml');
  t.match(schedulerFile?.diff, /type: MostAllocated/, "kube-scheduler's config file is the user's configuration");
  t.match(schedulerFile?.diff, /kubeconfig: \/var\/lib\/kube-scheduler\/kubeconfig/, "with nodeup's kubeconfig");
});

t.test('what kOps refuses is refused, naming the file and field, and nothing is written', async (t) => {
  const storeDir = tempDir(t, 'addobj-bad-');
  const state = ['--state', `file://${storeDir}`];
  const store = openStore(`file://${storeDir}`);
  const before = await snapshotStore(store);
  const dir = tempDir(t, 'addobj-bad-files-');
  const cluster = readFileSync(join(FIXTURES, 'cluster.yaml'), 'utf8');

  const ownKubeconfig = join(dir, 'kubeconfig.yaml');
  writeFileSync(ownKubeconfig, [cluster, `${SCHEDULER}clientConnection:\n  kubeconfig: /etc/evil\n`].join('---\n'));
  const r1 = await mooring([...state, 'create', '-f', ownKubeconfig]);
  t.equal(r1.code, 3);
  t.match(r1.stderr, /kubeconfig\.yaml:\d+: clientConnection\.kubeconfig: KubeSchedulerConfiguration: is set by nodeup/, "the scheduler's kubeconfig is nodeup's to set");

  const alone = join(dir, 'alone.yaml');
  writeFileSync(alone, [cluster.split('---\n').slice(1).join('---\n'), CONFIGMAP].join('---\n'));
  const r2 = await mooring([...state, 'create', '-f', alone]);
  t.equal(r2.code, 3);
  t.match(r2.stderr, /ConfigMap: additional objects go with exactly one Cluster in the same file \(the file holds no Cluster\)/);
  t.same(await snapshotStore(store), before, 'the store is unchanged');
});
