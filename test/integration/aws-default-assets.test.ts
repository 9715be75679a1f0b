// A default AWS cluster, as a user makes it: `mooring create cluster --cloud aws`,
// `update cluster --yes`, then `nodeup --dry-run` for each group and for both
// CPU architectures. With no fileRepository the node configs list kOps' upstream
// URLs with hashes from the shipped table, so nothing leaves this machine: the
// state store is s3rver on 127.0.0.1 and every other request fails (the CLI
// harness refuses any fetch that is not to loopback; this test counts them too).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { knownAssetSha256 } from '../../shared/api/assets.js';
import { openStore } from '../../shared/store/index.js';
import { runNodeup } from '../../agents/nodeup/nodeup.js';
import { mooring, TEST_CLOUD_AGENT_ARGS } from '../harness/cli.js';
import { makeRoot } from '../harness/nodeup.js';
import { startS3 } from '../harness/s3.js';
import { snapshotTree, tempDir } from '../harness/tmp.js';

const CLUSTER = 'default.example.com';
const CONTROL_PLANE = 'control-plane-us-east-1a';
const NODES = 'nodes-us-east-1a';

interface PlannedTask {
  id: string;
  action?: string;
  changes?: Array<{ field: string; new?: unknown }>;
}

t.test('create --cloud aws, update --yes, nodeup --dry-run: every asset planned with its known hash, no network', async (t) => {
  const offMachine: string[] = [];
  const guarded = globalThis.fetch;
  globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!/^(127\.|localhost$|\[::1\]$)/.test(url.hostname)) offMachine.push(url.href);
    return guarded(input, init);
  }) as typeof fetch;
  t.teardown(() => void (globalThis.fetch = guarded));

  const s3 = await startS3(t);
  const state = ['--state', `${s3.url}/state`];
  // s3rver ignores conditional writes, so the writer lock cannot hold there: say so explicitly.
  const unserialized = '--allow-unserialized-writes';
  const run = async (args: string[]) => {
    const r = await mooring([...state, ...args], s3.env);
    t.equal(r.code, 0, `mooring ${args.slice(0, 2).join(' ')} exits 0`);
    if (r.code !== 0) t.comment(r.stderr);
    return r;
  };
  await run(['create', 'cluster', CLUSTER, '--cloud', 'aws', '--zones', 'us-east-1a', '--control-plane-count', '1', '--node-count', '1', unserialized]);
  const update = await run(['update', 'cluster', CLUSTER, '--yes', ...TEST_CLOUD_AGENT_ARGS, unserialized]);
  t.notMatch(update.stderr, /fileRepository|sha256 was read/, 'no asset warning, no hash looked up');

  const confDir = tempDir(t, 'aws-default-conf-');
  for (const group of [CONTROL_PLANE, NODES]) {
    const conf = join(confDir, `${group}.yaml`);
    writeFileSync(conf, (await run(['get', 'bootconfig', CLUSTER, '--instance-group', group])).stdout);
    for (const arch of ['amd64', 'arm64'] as const) {
      const root = makeRoot(t);
      const before = await snapshotTree(root);
      let stdout = '';
      let stderr = '';
      const { code } = await runNodeup({
        conf,
        root,
        dryRun: true,
        output: 'json',
        installSystemdUnit: false,
        cache: '/var/cache/nodeup',
        retries: 0,
        arch,
        openStore: (url) => openStore(url, { env: s3.env }),
      }, { out: (s) => void (stdout += s), err: (s) => void (stderr += s) });
      t.equal(code, 0, `${group} ${arch}: nodeup --dry-run exits 0`);
      if (code !== 0) t.comment(stdout, stderr);
      t.same(await snapshotTree(root), before, `${group} ${arch}: the dry run wrote nothing`);
      const tasks = (JSON.parse(stdout) as { tasks: PlannedTask[] }).tasks;
      const asset = (id: string): { sha256?: unknown; source?: unknown } | undefined => {
        const task = tasks.find((x) => x.id === id);
        if (!task) return undefined;
        return Object.fromEntries((task.changes ?? []).map((c) => [c.field, c.new]));
      };
      const want: Array<[string, string]> = [
        ['Asset:/usr/local/bin/kubelet', `https://dl.k8s.io/release/v1.34.10/bin/linux/${arch}/kubelet`],
        ['Asset:/usr/local/bin/kubectl', `https://dl.k8s.io/release/v1.34.10/bin/linux/${arch}/kubectl`],
        ['Asset:/opt/containerd-2.3.4', `https://github.com/containerd/containerd/releases/download/v2.3.4/containerd-2.3.4-linux-${arch}.tar.gz`],
        ['Asset:/usr/local/sbin/runc', `https://github.com/opencontainers/runc/releases/download/v1.4.3/runc.${arch}`],
        ['Asset:/opt/cni/plugins-v1.7.1', `https://github.com/containernetworking/plugins/releases/download/v1.7.1/cni-plugins-linux-${arch}-v1.7.1.tgz`],
      ];
      if (group === CONTROL_PLANE) want.push(['Asset:/opt/etcd/3.6.12', `https://github.com/etcd-io/etcd/releases/download/v3.6.12/etcd-v3.6.12-linux-${arch}.tar.gz`]);
      for (const [id, url] of want) {
        const known = knownAssetSha256(url);
        t.match(known, /^[0-9a-f]{64}$/, `${url} is in the shipped table`);
        t.same(asset(id), { sha256: known, source: url }, `${group} ${arch}: ${id} planned from ${url} with its known hash`);
      }
      if (group === NODES) t.notOk(tasks.some((x) => x.id.includes('etcd')), 'workers get no etcd');
    }
  }
  t.same(offMachine, [], 'no request left this machine');
});
