// Golden plans: `nodeup --dry-run` for a control-plane group and a worker
// group of the fixture cluster, against a fresh Debian-like root. A change
// prints a unified diff; UPDATE_GOLDEN=1 rewrites the golden files (refused
// when CI is set), and nothing else ever writes them.
import t, { type Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createTwoFilesPatch } from 'diff';
import { CLUSTER, CONTROL_PLANE, makeCluster, makeRoot, nodeup, WORKER } from '../harness/nodeup.js';
import { mooring } from '../harness/cli.js';
import { snapshotTree } from '../harness/tmp.js';

const GOLDEN = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
// Fixed asset specs: a dry run never downloads, so these URLs are never contacted.
const ASSETS = [
  `${'1'.repeat(64)}@http://127.0.0.1:9/kubelet,http://127.0.0.1:9/mirror2/kubelet`,
  `${'2'.repeat(64)}@http://127.0.0.1:9/etcd-v3.4.23-linux-amd64.tar.gz`,
  `${'3'.repeat(64)}@http://127.0.0.1:9/containerd-1.7.24-linux-amd64.tar.gz`,
];

const RECREATE = 'UPDATE_GOLDEN=1 npx tap test/integration/nodeup-plan.test.ts';
const updating = process.env.UPDATE_GOLDEN === '1';
// The same test as is-in-ci (execa's and ink's): CI set to anything but "0" or "false".
const underCI = process.env.CI !== undefined && process.env.CI !== '0' && process.env.CI !== 'false';

/**
 * Compares a plan with its golden file. A golden file is written only on request
 * (UPDATE_GOLDEN=1, refused under CI), and a rewrite is reported as a skipped
 * comparison, not a pass. Without UPDATE_GOLDEN a missing golden file is a
 * failure that says how to create it.
 */
function checkGolden(t: Test, name: string, actual: string): void {
  const path = `${GOLDEN}${name}`;
  const expected = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  const diff = expected === undefined || expected === actual ? '' : createTwoFilesPatch(`golden/${name}`, 'actual', expected, actual, '', '', { context: 2 });
  if (updating && underCI) {
    t.fail(`UPDATE_GOLDEN=1 is refused when CI is set: golden files change only by a reviewed commit (${name} not written)`);
    return;
  }
  if (updating && (expected === undefined || diff)) {
    if (diff) t.comment(diff);
    writeFileSync(path, actual);
    t.pass(`${name} compared with its golden file`, { skip: `UPDATE_GOLDEN=1 ${expected === undefined ? 'created' : 'rewrote'} ${path}: review it before committing` });
    return;
  }
  if (expected === undefined) {
    t.fail(`golden file ${path} is missing: create it with ${RECREATE}, review it and commit it`);
    return;
  }
  if (!diff) {
    t.pass(`${name} matches its golden file`);
    return;
  }
  t.comment(diff); // printed as is, one line per line, above the failure
  t.fail(`${name} differs from its golden file (after an intended change: ${RECREATE}, then review the diff):\n${diff}`);
}

t.test('golden plans for a control-plane and a worker group', async (t) => {
  const cluster = await makeCluster(t);
  await cluster.setAssets(ASSETS);
  for (const group of [CONTROL_PLANE, WORKER]) {
    const root = makeRoot(t);
    const before = await snapshotTree(root);
    const conf = await cluster.bootConfig(group);
    const r = await nodeup(['--conf', conf, '--root', root, '--dry-run']);
    t.equal(r.code, 0, 'dry run exits 0');
    if (r.code !== 0) t.comment(r.stdout, r.stderr);
    t.same(await snapshotTree(root), before, 'the dry run wrote nothing');
    // The store's temp path is the only per-run value in a plan.
    const plan = r.stdout.split(cluster.storeDir).join('/STATE');
    checkGolden(t, `nodeup-${group}.plan.txt`, plan);
    t.notMatch(plan, /PRIVATE KEY/, 'no private key material in the plan');

    const json = await nodeup(['--conf', conf, '--root', root, '--dry-run', '-o', 'json']);
    t.equal(json.code, 0);
    const parsed = JSON.parse(json.stdout) as { dryRun: boolean; tasks: Array<{ id: string; action: string }> };
    t.equal(parsed.dryRun, true);
    t.ok(parsed.tasks.some((task) => task.id === 'Asset:/usr/local/bin/kubelet' && task.action === 'create'), 'json names the kubelet asset');
    t.notMatch(json.stdout, /PRIVATE KEY/);

    const ids = parsed.tasks.map((task) => task.id);
    if (group === WORKER) {
      for (const cp of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd', 'service-account', 'Kubeconfig:/var/lib/protokube']) {
        t.notOk(ids.some((id) => id.includes(cp)), `worker plan has no ${cp} task`);
      }
      t.ok(ids.includes('Service:protokube.service'), 'worker runs protokube (names-only)');
      t.match(plan, /PROTOKUBE_NAMES_ONLY=true/);
      t.ok(ids.includes('File:/etc/kubernetes/manifests/kube-proxy.manifest'), 'worker runs kube-proxy');
    } else {
      for (const id of [
        'File:/etc/kubernetes/manifests/kube-apiserver.manifest',
        'Service:etcd-manager@main.service',
        'Service:etcd-manager@events.service',
        'Service:protokube.service',
        'Kubeconfig:/var/lib/protokube/kubeconfig',
      ]) t.ok(ids.includes(id), `control plane has ${id}`);
      t.notMatch(plan, /PROTOKUBE_NAMES_ONLY/);
      t.match(plan, /--etcd-servers=https:\/\/127\.0\.0\.1:4001/);
      t.match(plan, /--etcd-servers-overrides=\/events#https:\/\/127\.0\.0\.1:4002/);
    }
  }
});

t.test('mooring get bootconfig prints the boot config that user-data carries', async (t) => {
  const cluster = await makeCluster(t);
  for (const group of [CONTROL_PLANE, WORKER]) {
    const boot = readFileSync(await cluster.bootConfig(group), 'utf8');
    t.match(boot, new RegExp(`^instanceGroupName: ${group}$`, 'm'));
    const ud = await mooring(['--state', cluster.storeURL, 'get', 'userdata', CLUSTER, '--instance-group', group]);
    t.equal(ud.code, 0);
    t.ok(ud.stdout.includes(boot), `${group}: user-data embeds exactly this boot config`);
  }
  const missing = await mooring(['--state', cluster.storeURL, 'get', 'bootconfig', CLUSTER, '--instance-group', 'nope']);
  t.equal(missing.code, 4, 'unknown group: not found');
  t.match(missing.stderr, 'instance group "nope" not found');
});
