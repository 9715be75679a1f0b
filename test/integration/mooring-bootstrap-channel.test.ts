// The contract between mooring and protokube: `mooring update cluster` writes
// addons/bootstrap-channel.yaml and the CoreDNS manifest with its sha256,
// configured from the spec (cluster domain, DNS service IP); protokube's own
// parser reads the channel, the hash holds, and `protokube channels apply`
// puts CoreDNS into a (test) API server. A changed spec gives a new manifest,
// a new hash, and CoreDNS applied again; an unchanged one, the same bytes.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYAML } from 'yaml';
import { parseChannel } from '../../agents/protokube/channels/channel.js';
import { parseManifest } from '../../agents/protokube/channels/manifest.js';
import { mooring, TEST_AGENT_ARGS } from '../harness/cli.js';
import { KubeAPIServer } from '../harness/kube-apiserver.js';
import type { JsonObject } from '../harness/kube/json.js';
import { runProtokube } from '../harness/protokube.js';
import { tempDir } from '../harness/tmp.js';

const CLUSTER = 'addons.example.com';

t.test('update cluster writes the bootstrap channel; protokube reads it and applies CoreDNS', async (t) => {
  const dir = tempDir(t, 'mooring-addons-');
  const state = ['--state', `file://${dir}/store`];
  const ok = async (args: string[]) => {
    const r = await mooring([...state, ...args]);
    if (r.code !== 0) throw new Error(`mooring ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  await ok(['create', 'cluster', CLUSTER, '--cloud', 'local', '--control-plane-count', '1', '--node-count', '1']);
  const plan = await ok(['update', 'cluster', CLUSTER, ...TEST_AGENT_ARGS]);
  t.match(plan.stdout, /addons\/bootstrap-channel\.yaml/, 'the plan names the channel');
  t.match(plan.stdout, /addons\/coredns\.addons\.k8s\.io\/k8s-1\.12\.yaml/, 'and the manifest');
  await ok(['update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);

  const folder = join(dir, 'store', CLUSTER);
  const channelPath = join(folder, 'addons/bootstrap-channel.yaml');
  const channel = parseChannel(readFileSync(channelPath, 'utf8'), channelPath);
  t.same(channel.addons.map((a) => [a.name, a.id]), [['coredns.addons.k8s.io', 'k8s-1.12']]);
  const addon = channel.addons[0];
  const manifest = readFileSync(join(folder, 'addons', addon.manifest));
  t.equal(createHash('sha256').update(manifest).digest('hex'), addon.manifestHash, 'the channel carries the manifest\'s sha256');
  const completed = parseYAML(readFileSync(join(folder, 'cluster-completed.spec'), 'utf8')) as { spec: { kubeDNS: { serverIP: string; domain: string } } };
  const objects = parseManifest(manifest.toString(), addon.manifest);
  const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'kube-dns') as JsonObject | undefined;
  t.equal((service?.spec as JsonObject).clusterIP, completed.spec.kubeDNS.serverIP, 'kube-dns on the spec\'s DNS service IP');
  const corefile = ((objects.find((o) => o.kind === 'ConfigMap') as JsonObject).data as JsonObject).Corefile as string;
  t.match(corefile, new RegExp(`kubernetes ${completed.spec.kubeDNS.domain.replace(/\./g, '\\.')} in-addr\\.arpa ip6\\.arpa`), 'CoreDNS serves the spec\'s cluster domain');
  t.same(addon.prune?.kinds.map((k) => k.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount'], 'every kind it ships can be pruned');

  const again = await ok(['update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.match(again.stdout, /No changes needed/, 'the same spec gives the same bytes');

  const server = await KubeAPIServer.start(t);
  server.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } });
  const kubeconfig = server.writeKubeconfig(join(dir, 'kubeconfig'));
  const applied = await runProtokube(['channels', 'apply', `file://${channelPath}`, `--kubeconfig=${kubeconfig}`]);
  t.equal(applied.code, 0, applied.code === 0 ? 'exit 0' : applied.stderr);
  t.match(applied.stdout, /coredns\.addons\.k8s\.io: applied \(not installed\)/);
  t.equal((server.object('v1', 'Service', 'kube-system', 'kube-dns')?.spec as JsonObject).clusterIP, completed.spec.kubeDNS.serverIP);
  t.ok(server.object('apps/v1', 'Deployment', 'kube-system', 'coredns'));

  // Another cluster domain: a new manifest and hash, and protokube applies CoreDNS again.
  const spec = JSON.parse((await ok(['get', 'cluster', CLUSTER, '-o', 'json'])).stdout) as { spec: Record<string, unknown> };
  spec.spec.clusterDNSDomain = 'corp.internal';
  writeFileSync(join(dir, 'edited.json'), JSON.stringify(spec));
  await ok(['replace', '-f', join(dir, 'edited.json')]);
  await ok(['update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  const changed = parseChannel(readFileSync(channelPath, 'utf8'), channelPath).addons[0];
  t.not(changed.manifestHash, addon.manifestHash, 'a new hash');
  const reapplied = await runProtokube(['channels', 'apply', `file://${channelPath}`, `--kubeconfig=${kubeconfig}`]);
  t.equal(reapplied.code, 0, reapplied.code === 0 ? 'exit 0' : reapplied.stderr);
  t.match(reapplied.stdout, /coredns\.addons\.k8s\.io: applied \(manifest sha256:/);
  t.match((server.object('v1', 'ConfigMap', 'kube-system', 'coredns')?.data as JsonObject).Corefile, /kubernetes corp\.internal in-addr\.arpa/);
});
