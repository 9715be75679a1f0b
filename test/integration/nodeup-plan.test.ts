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
      for (const cp of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd', 'protokube', 'service-account']) {
        t.notOk(ids.some((id) => id.includes(cp)), `worker plan has no ${cp} task`);
      }
      t.ok(ids.includes('File:/etc/kubernetes/manifests/kube-proxy.manifest'), 'worker runs kube-proxy');
    } else {
      for (const id of [
        'File:/etc/kubernetes/manifests/kube-apiserver.manifest',
        'Service:etcd-manager@main.service',
        'Service:etcd-manager@events.service',
        'Service:protokube.service',
      ]) t.ok(ids.includes(id), `control plane has ${id}`);
      t.match(plan, /--etcd-servers=https:\/\/127\.0\.0\.1:4001/);
      t.match(plan, /--etcd-servers-overrides=\/events#https:\/\/127\.0\.0\.1:4002/);
    }
  }
});

/** A spec that sets many fields of every component, as a kOps user would. */
function manyFields(spec: Record<string, unknown>): void {
  Object.assign(spec, {
    kubeAPIServer: {
      oidcIssuerURL: 'https://sso.example.com/realms/ops',
      oidcClientID: 'kubernetes',
      oidcRequiredClaim: ['team=ops', 'env=prod'],
      appendAdmissionPlugins: ['PodNodeSelector'],
      runtimeConfig: { 'batch/v2alpha1': 'true', 'api/all': 'true' },
      featureGates: { InPlacePodVerticalScaling: 'true' },
      auditLogPath: '/var/log/kube-apiserver/audit.log',
      auditLogMaxAge: 10,
      auditWebhookBatchThrottleQps: 3.14,
      serviceNodePortRange: '28000-32767',
      compactionInterval: '10m',
      logLevel: 4,
      cpuRequest: '200m',
      memoryLimit: '1000Mi',
      env: [{ name: 'GOMAXPROCS', value: '2' }],
    },
    kubelet: {
      maxPods: 50,
      featureGates: { GracefulNodeShutdownBasedOnPodPriority: 'true' },
      evictionHard: 'memory.available<200Mi,nodefs.available<15%',
      kubeReserved: { cpu: '100m', memory: '256Mi' },
      systemReserved: { cpu: '100m', memory: '128Mi' },
      imageGCHighThresholdPercent: 80,
      serializeImagePulls: false,
      shutdownGracePeriod: '1m',
      containerLogMaxSize: '20Mi',
      allowedUnsafeSysctls: ['net.core.somaxconn'],
      registryBurst: 20,
    },
    masterKubelet: { maxPods: 30 },
    kubeControllerManager: {
      horizontalPodAutoscalerSyncPeriod: '30s',
      terminatedPodGCThreshold: 100,
      featureGates: { InPlacePodVerticalScaling: 'true' },
      leaderElection: { leaderElectLeaseDuration: '30s' },
      cpuRequest: '200m',
    },
    kubeScheduler: { qps: 3.5, burst: 10, featureGates: { InPlacePodVerticalScaling: 'true' } },
    kubeProxy: { proxyMode: 'ipvs', ipvsScheduler: 'rr', metricsBindAddress: '0.0.0.0:10249', conntrackMaxPerCore: 65536 },
    containerd: {
      version: '1.7.24',
      registryMirrors: { 'docker.io': ['https://mirror.example.com'] },
      configAdditions: { 'plugins."io.containerd.grpc.v1.cri".max_container_log_line_size': 32768 },
    },
  });
}

t.test('golden plans for a cluster that sets many fields: each reaches its component', async (t) => {
  const cluster = await makeCluster(t);
  await cluster.editCluster(manyFields);
  await cluster.setAssets(ASSETS);
  const plans: Record<string, string> = {};
  for (const group of [CONTROL_PLANE, WORKER]) {
    const r = await nodeup(['--conf', await cluster.bootConfig(group), '--root', makeRoot(t), '--dry-run']);
    t.equal(r.code, 0, `${group}: dry run exits 0`);
    if (r.code !== 0) t.comment(r.stdout, r.stderr);
    plans[group] = r.stdout.split(cluster.storeDir).join('/STATE');
    checkGolden(t, `nodeup-${group}.many-fields.plan.txt`, plans[group]);
  }
  const cp = plans[CONTROL_PLANE];
  for (const flag of [
    '--oidc-issuer-url=https://sso.example.com/realms/ops',
    '--oidc-required-claim=team=ops',
    '--oidc-required-claim=env=prod',
    'NodeRestriction,ResourceQuota,RuntimeClass,ServiceAccount,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook,PodNodeSelector',
    '--runtime-config=api/all=true,batch/v2alpha1=true',
    '--feature-gates=InPlacePodVerticalScaling=true',
    '--audit-webhook-batch-throttle-qps=3.140',
    '--etcd-compaction-interval=10m0s',
    '--service-node-port-range=28000-32767',
    '--v=4',
    '--horizontal-pod-autoscaler-sync-period=30s',
    '--terminated-pod-gc-threshold=100',
    '--leader-elect-lease-duration=30s',
    '--proxy-mode=ipvs',
    '--ipvs-scheduler=rr',
    '--conntrack-max-per-core=65536',
  ]) t.ok(cp.includes(flag), `control plane: ${flag}`);
  t.match(cp, /qps: 3\.5\n.*burst: 10|burst: 10\n.*qps: 3\.5/s, "kube-scheduler's config file: qps and burst");
  t.match(cp, /maxPods: 30/, 'control-plane kubelet: masterKubelet.maxPods');
  t.match(cp, /mountPath: \/var\/log\/kube-apiserver\n.*readOnly: false/, 'the audit log folder is mounted writable');
  t.match(cp, /name: GOMAXPROCS/, "the API server's environment");
  const worker = plans[WORKER];
  for (const line of ['maxPods: 50', 'memory.available: 200Mi', 'GracefulNodeShutdownBasedOnPodPriority: true', 'serializeImagePulls: false', 'shutdownGracePeriod: 1m0s', 'containerLogMaxSize: 20Mi', 'imageGCHighThresholdPercent: 80']) {
    t.ok(worker.includes(line), `worker kubelet config: ${line}`);
  }
  t.ok(worker.includes('--registry-burst=20'), 'worker kubelet flag: --registry-burst=20');
  t.match(worker, /max_container_log_line_size = 32768/, "containerd: the spec's configAdditions");
  t.match(worker, /certs\.d\/docker\.io\/hosts\.toml/, 'containerd: a registry mirror');
});

t.test("the local cloud's default node configs: kOps' upstream assets, and Debian's etcd on the control plane", async (t) => {
  const cluster = await makeCluster(t);
  const r = await nodeup(['--conf', await cluster.bootConfig(CONTROL_PLANE), '--root', makeRoot(t), '--dry-run', '-o', 'json']);
  t.equal(r.code, 0, 'the dry run plans every task');
  const tasks = (JSON.parse(r.stdout) as { tasks: Array<{ id: string; changes?: Array<{ field: string; new?: unknown }>; diff?: string }> }).tasks;
  const etcd = tasks.find((task) => task.id === 'Packages:etcd');
  t.same(etcd?.changes, [{ field: 'install', new: 'etcd-server' }], "etcd 3.4.23 without a release tarball: Debian 12's etcd-server package");
  const env = tasks.find((task) => task.id === 'File:/etc/mooring/etcd-manager/main.env');
  t.ok(env?.diff?.includes('ETCD_MANAGER_CLUSTER_NAME=etcd'), 'the manager is configured');
  t.notOk(env?.diff?.includes('ETCD_MANAGER_ETCD_BINARY_DIR'), 'and runs /usr/bin/etcd (no versioned binary folder)');
  t.ok(tasks.some((task) => task.id === 'Asset:/usr/local/bin/kubelet'), 'kubelet from its upstream URL');
});

t.test('an IPv6 cluster (nonMasqueradeCIDR ::/0): IPv6 services, DNS and node addresses; kops-controller allocates pod ranges', async (t) => {
  const cluster = await makeCluster(t);
  await cluster.editCluster((spec) => {
    spec.nonMasqueradeCIDR = '::/0';
    (spec.subnets as Array<Record<string, unknown>>)[0].ipv6CIDR = '2001:db8:0:111::/64';
  });
  await cluster.setAssets(ASSETS);
  const plans: string[] = [];
  for (const group of [CONTROL_PLANE, WORKER]) {
    const r = await nodeup(['--conf', await cluster.bootConfig(group), '--root', makeRoot(t), '--dry-run']);
    t.equal(r.code, 0, `${group}: dry run exits 0`);
    plans.push(r.stdout);
  }
  const [cp, worker] = plans;
  for (const plan of plans) {
    t.match(plan, /clusterDNS:\n.*- fd00:5e4f:ce::a/, 'cluster DNS: the 10th address of fd00:5e4f:ce::/108');
    t.ok(plan.includes('--node-ip=::'), "kubelet registers the node's IPv6 address");
  }
  for (const flag of ['"--bind-address=::"', '--service-cluster-ip-range=fd00:5e4f:ce::/108', '--allocate-node-cidrs=false', '--controllers=*,-nodeipam']) {
    t.ok(cp.includes(flag), `control plane: ${flag}`);
  }
  t.match(cp, /SANs=\[.*fd00:5e4f:ce::1,127\.0\.0\.1\]/, "the API server's certificate names the first service address");
  t.notOk(worker.includes('--cluster-cidr='), 'kube-proxy gets no IPv4 cluster range');
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
