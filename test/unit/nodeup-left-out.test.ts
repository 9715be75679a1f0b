// Assets a mirror leaves out on purpose (the local cloud's has no Kubernetes
// binaries): `update cluster` records them with the reason in the node config,
// and nodeup reports the tasks needing them — and what depends on those — as
// skipped with that reason: never passed, never a failure of the run.
import t from 'tap';
import { resolveNodeAssets } from '../../shared/api/assets.js';
import { completeCluster, newClusterObjects } from '../../shared/api/complete.js';
import { buildNodeConfig, parseNodeConfig, serializeNodeConfig } from '../../shared/api/nodeconfig.js';
import { configureLogging, logger } from '../../shared/log.js';
import { formatPlan, summaryLine, reportJSON } from '../../agents/nodeup/engine/report.js';
import { runTasks, type RunOptions } from '../../agents/nodeup/engine/run.js';
import type { Task } from '../../agents/nodeup/engine/task.js';
import { LeftOutTask, UnsatisfiableTask } from '../../agents/nodeup/tasks/missing.js';

configureLogging({ write: () => undefined });

const options: RunOptions = {
  root: '/nonexistent-root',
  dryRun: false,
  host: { id: 'debian', versionID: '12', family: 'debian', arch: 'amd64', source: 'test' },
  cache: '/nonexistent-cache',
  log: logger('test'),
  retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 },
};

function plain(id: string, deps: string[], applied: string[]): Task {
  return {
    id,
    deps,
    async plan() {
      return { action: 'create', changes: [] };
    },
    async apply() {
      applied.push(id);
    },
  };
}

t.test('a left-out task and its dependents are skipped with the reason; the run does not fail', async (t) => {
  const applied: string[] = [];
  const report = await runTasks([
    new LeftOutTask('Asset:/usr/local/bin/kubelet', 'kubelet: not in the local mirror'),
    plain('Service:kubelet.service', ['Asset:/usr/local/bin/kubelet'], applied),
    plain('File:/etc/other', [], applied),
  ], options);
  const byId = Object.fromEntries(report.results.map((r) => [r.id, r]));
  t.equal(byId['Asset:/usr/local/bin/kubelet'].status, 'skipped');
  t.equal(byId['Asset:/usr/local/bin/kubelet'].reason, 'kubelet: not in the local mirror');
  t.equal(byId['Asset:/usr/local/bin/kubelet'].error, undefined, 'no error: it did not fail');
  t.equal(byId['Service:kubelet.service'].status, 'skipped');
  t.match(byId['Service:kubelet.service'].reason, /dependency skipped: Asset:\/usr\/local\/bin\/kubelet \(kubelet: not in the local mirror\)/);
  t.same(applied, ['File:/etc/other'], 'the dependent never ran; the rest did');
  t.same(report.failed, [], 'nothing failed');
  t.match(summaryLine(report), /1 changed, 0 unchanged, 0 failed, 2 skipped/);
  const json = JSON.parse(reportJSON(report, false)) as { tasks: Array<{ id: string; status: string; reason?: string }>; failed: string[] };
  t.same(json.failed, []);
  t.match(json.tasks.find((x) => x.id === 'Asset:/usr/local/bin/kubelet'), { status: 'skipped', reason: 'kubelet: not in the local mirror' });
  t.match(formatPlan(report), /Skipped \(2\):\n  Asset:\/usr\/local\/bin\/kubelet: kubelet: not in the local mirror\n/);
});

t.test('a failure is still a failure, and its dependents are skipped as failed', async (t) => {
  const report = await runTasks([
    new UnsatisfiableTask('Asset:/x', 'no asset named x'),
    plain('Service:x', ['Asset:/x'], []),
    new LeftOutTask('Asset:/y', 'left out'),
  ], options);
  t.same(report.failed.map((r) => r.id).sort(), ['Asset:/x', 'Service:x'], 'the failed task and the one it blocked count as failures; the left-out one does not');
  t.match(report.results.find((r) => r.id === 'Service:x'), { status: 'skipped', error: 'dependency failed: Asset:/x' });
});

t.test('a rerun where everything else is unchanged says no changes are needed', async (t) => {
  const unchanged: Task = { id: 'File:/same', deps: [], plan: async () => ({ action: 'unchanged', changes: [] }), apply: async () => undefined };
  const report = await runTasks([unchanged, new LeftOutTask('Asset:/k', 'left out')], { ...options, dryRun: true });
  t.match(formatPlan(report), /No changes needed\./);
});

t.test('update cluster: hashes the mirror leaves out land in the node config with their reason, and round-trip', async (t) => {
  const user = newClusterObjects({ name: 'lc.example.com', zones: ['local-a'], controlPlaneCount: 1, nodeCount: 0, cloud: 'local' });
  user.cluster.spec.assets = { fileRepository: 'http://198.18.0.1:8080' };
  const completed = completeCluster(user.cluster, user.instanceGroups, { configBase: 's3://mooring/lc.example.com' });
  const sha = 'a'.repeat(64);
  const assets = await resolveNodeAssets(completed.cluster, completed.instanceGroups, {
    mirrorHash: async (url) => (url.includes('/etcd-io/') && url.includes('amd64') ? sha : { leftOut: 'not in the local mirror' }),
  });
  const ig = completed.instanceGroups[0];
  const mine = assets.byGroup.get(ig.metadata.name);
  t.equal(mine?.amd64.length, 1, 'only the etcd tarball for amd64 has a hash');
  t.match(mine?.amd64[0], /\/etcd-v3\.4\.23-linux-amd64\.tar\.gz$/);
  t.equal(mine?.leftOut?.amd64?.kubelet, 'not in the local mirror');
  t.equal(mine?.leftOut?.arm64?.['etcd-v3.4.23-linux-arm64.tar.gz'], 'not in the local mirror');
  const nc = buildNodeConfig(completed.cluster, ig, {}, mine);
  const text = serializeNodeConfig(nc);
  t.match(text, /assetsLeftOut:\n  amd64:\n/);
  t.same(parseNodeConfig(text, 'test').assetsLeftOut, nc.assetsLeftOut, 'parsed back as written');
  const without = serializeNodeConfig(buildNodeConfig(completed.cluster, ig, {}, { amd64: [], arm64: [] }));
  t.notMatch(without, /assetsLeftOut/, 'absent when nothing is left out, so other node configs keep their bytes and hashes');
  t.throws(() => parseNodeConfig(text.replace(/kubelet: .*/, 'kubelet: [1]'), 'test'), /assetsLeftOut/, 'a reason must be a string');
});
