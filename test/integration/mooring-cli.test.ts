// The mooring CLI end to end on real stores: create -> get -o yaml -> replace -f ->
// update --yes on file:// and on s3:// (s3rver), and bad input that must leave the store untouched.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { mooring, TEST_AGENT_ARGS, TEST_CLOUD_AGENT_ARGS } from '../harness/cli.js';
import { startS3 } from '../harness/s3.js';
import { snapshotStore, tempDir } from '../harness/tmp.js';
import { openStore } from '../../shared/store/index.js';
import { loadKeyset, primaryKeypair } from '../../shared/pki/keyset.js';
import { parseCertificate, verifyIssuedBy } from '../../shared/pki/x509.js';

const CLUSTER = 'dev.example.com';

interface StoreUnderTest {
  url: string;
  dir?: string;
  /** Flags every writing command needs on this store (s3rver ignores conditional writes, so no lock). */
  writeFlags: string[];
}

async function fileStore(t: Test): Promise<StoreUnderTest> {
  const dir = tempDir(t, 'mooring-cli-');
  return { url: `file://${dir}`, dir, writeFlags: [] };
}

async function s3Store(t: Test): Promise<StoreUnderTest> {
  const s3 = await startS3(t);
  Object.assign(process.env, s3.env);
  return { url: `${s3.url}/state`, writeFlags: ['--allow-unserialized-writes'] };
}

/** The full operator flow; returns the store's objects with store-specific values masked. */
async function fullFlow(t: Test, store: StoreUnderTest): Promise<Map<string, string>> {
  const state = ['--state', store.url];
  const create = await mooring([...state, 'create', 'cluster', CLUSTER, '--zones', 'us-east-1a,us-east-1b,us-east-1c', '--control-plane-count', '3', '--node-count', '3', '--cloud', 'aws', ...store.writeFlags]);
  t.equal(create.code, 0, `create: ${create.stderr}`);

  const list = await mooring([...state, 'get', 'clusters']);
  t.match(list.stdout, CLUSTER);

  const all = await mooring([...state, 'get', 'all', CLUSTER, '-o', 'yaml']);
  t.equal(all.code, 0, all.stderr);
  const docs = YAML.parseAllDocuments(all.stdout).map((d) => d.toJS() as { kind: string; spec: Record<string, unknown>; metadata: { name: string } });
  t.equal(docs.filter((d) => d.kind === 'Cluster').length, 1);
  t.equal(docs.filter((d) => d.kind === 'InstanceGroup').length, 6, '3 control-plane + 3 node groups');

  // Edit the spec as an operator would, and replace it.
  const clusterDoc = docs.find((d) => d.kind === 'Cluster')!;
  clusterDoc.spec.kubernetesVersion = '1.34.9';
  (clusterDoc.spec as Record<string, unknown>).someFutureField = { kept: true };
  // Instances on aws read their configuration from S3, wherever the operator keeps the spec.
  clusterDoc.spec.configBase = `s3://example-state/${CLUSTER}`;
  const edited = join(tempDir(t, 'mooring-edit-'), 'all.yaml');
  writeFileSync(edited, docs.map((d) => YAML.stringify(d)).join('---\n'));
  const replace = await mooring([...state, 'replace', '-f', edited, ...store.writeFlags]);
  t.equal(replace.code, 0, `replace: ${replace.stderr}`);
  const got = await mooring([...state, 'get', 'cluster', CLUSTER, '-o', 'json']);
  const gotCluster = JSON.parse(got.stdout) as { spec: { kubernetesVersion: string; someFutureField: unknown } };
  t.equal(gotCluster.spec.kubernetesVersion, '1.34.9');
  t.same(gotCluster.spec.someFutureField, { kept: true }, 'unknown fields survive');

  // Dry run writes nothing.
  const before = await snapshotStore(openStore(store.url));
  const dry = await mooring([...state, 'update', 'cluster', CLUSTER, ...TEST_CLOUD_AGENT_ARGS]);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /Will create/);
  t.match(dry.stdout, /Must specify --yes/);
  for (const name of ['kubelet', 'kube-proxy']) {
    t.match(dry.stdout, `pki/private/${name}/keyset.yaml  (secret: contents not shown)`, `the plan shows the ${name} keyset like the CAs`);
  }
  // No file repository: kOps' upstream URLs, hashes from the shipped table (the harness refuses any request off this machine).
  t.notMatch(dry.stderr, /fileRepository|sha256/, 'no asset warning and no hash look-up');
  t.same(await snapshotStore(openStore(store.url)), before, 'dry run leaves the store untouched');

  const apply = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_CLOUD_AGENT_ARGS, ...store.writeFlags]);
  t.equal(apply.code, 0, apply.stderr);
  t.notMatch(apply.stdout, /PRIVATE KEY/, 'no key material printed');

  const again = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_CLOUD_AGENT_ARGS, ...store.writeFlags]);
  t.match(again.stdout, /No changes needed/, 'a second update changes nothing');

  const ud = await mooring([...state, 'get', 'userdata', CLUSTER, '--instance-group', 'control-plane-us-east-1a']);
  t.equal(ud.code, 0, ud.stderr);
  t.match(ud.stdout, /^#!\/bin\/bash|^#!\/usr\/bin\/env bash/);
  execFileSync('bash', ['-n'], { input: ud.stdout });

  const cs = openStore(store.url).sub(CLUSTER);
  const paths = await cs.list('');
  for (const want of [
    'config',
    'cluster-completed.spec',
    'instancegroup/control-plane-us-east-1a',
    'instancegroup/nodes-us-east-1c',
    'pki/private/kubernetes-ca/keyset.yaml',
    'pki/private/etcd-clients-ca/keyset.yaml',
    'pki/private/etcd-peers-ca-main/keyset.yaml',
    'pki/private/etcd-manager-ca-events/keyset.yaml',
    'pki/private/service-account/keyset.yaml',
    'pki/private/kubelet/keyset.yaml',
    'pki/issued/kubelet/keyset.yaml',
    'pki/private/kube-proxy/keyset.yaml',
    'pki/issued/kube-proxy/keyset.yaml',
    'igconfig/control-plane/control-plane-us-east-1b/nodeupconfig.yaml',
    'igconfig/node/nodes-us-east-1a/nodeupconfig.yaml',
    'backups/etcd/main/control/etcd-cluster-spec',
    'backups/etcd/events/control/etcd-cluster-spec',
    'userdata/nodes-us-east-1b.sh',
  ]) {
    t.ok(paths.includes(want), `store has ${want}`);
  }
  t.same(JSON.parse((await cs.read('backups/etcd/main/control/etcd-cluster-spec')).toString()), { memberCount: 3, etcdVersion: '3.6.12' });
  if (store.dir) {
    const mode = statSync(join(store.dir, CLUSTER, 'pki/private/kubernetes-ca/keyset.yaml')).mode & 0o777;
    t.equal(mode, 0o600, 'private keyset is 0600');
    for (const name of ['kubelet', 'kube-proxy']) {
      t.equal(statSync(join(store.dir, CLUSTER, `pki/private/${name}/keyset.yaml`)).mode & 0o777, 0o600, `${name} private keyset is 0600`);
    }
  }
  const worker = (await cs.read('igconfig/node/nodes-us-east-1a/nodeupconfig.yaml')).toString();
  t.notMatch(worker, /etcd/i, 'worker node config carries no etcd material');
  const workerIDs = (YAML.parse(worker) as { keypairIDs: Record<string, string> }).keypairIDs;
  t.same(Object.keys(workerIDs).sort(), ['kube-proxy', 'kubelet', 'kubernetes-ca'], 'a worker knows the CA certificate and its own client keypairs only');
  const caKeyset = await loadKeyset(cs, 'kubernetes-ca');
  for (const [name, cn, org] of [['kubelet', 'kubelet', ['system:nodes']], ['kube-proxy', 'system:kube-proxy', []]] as const) {
    const keyset = await loadKeyset(cs, name);
    const pair = primaryKeypair(keyset!);
    t.equal(workerIDs[name], pair.id, `the node config names ${name}'s keypair`);
    const cert = parseCertificate(pair.certPEM);
    t.equal(cert.subjectCN, cn, `${name}: CN`);
    t.same(cert.subjectOrganization, org, `${name}: O`);
    t.notOk(cert.isCA, `${name}: not a CA`);
    t.ok(await verifyIssuedBy(pair.certPEM, primaryKeypair(caKeyset!).certPEM), `${name} is issued by kubernetes-ca`);
    t.ok(new X509Certificate(pair.certPEM).checkPrivateKey(createPrivateKey(pair.keyPEM)), `${name}: key matches`);
    t.notMatch((await cs.read(`pki/issued/${name}/keyset.yaml`)).toString(), /privateMaterial/, `pki/issued/${name} holds no key`);
  }

  // Normalise what legitimately differs between stores: the base URL and random key ids.
  const ids = new Map<string, string>();
  const normalised = new Map<string, string>();
  for (const path of paths) {
    if (path.startsWith('pki/')) {
      normalised.set(path, '<secret or key material>');
      continue;
    }
    let text = (await cs.read(path)).toString('utf8').split(store.url).join('<store>');
    text = text.replace(/\b\d{15,}\b/g, (id) => {
      if (!ids.has(id)) ids.set(id, `<id${ids.size}>`);
      return ids.get(id)!;
    });
    text = text.replace(/sha256:[0-9a-f]{64}/g, 'sha256:<hash>');
    normalised.set(path, text);
  }
  return normalised;
}

t.test('create, get, replace, update on file:// and s3:// end in the same store', async (t) => {
  const onFile = await fullFlow(t, await fileStore(t));
  const onS3 = await fullFlow(t, await s3Store(t));
  t.same([...onS3.keys()].sort(), [...onFile.keys()].sort(), 'same set of paths');
  for (const [path, text] of onFile) t.equal(onS3.get(path), text, `same contents: ${path}`);
});

const BAD_INPUTS: Array<{ name: string; yaml?: string; args?: (file: string) => string[]; want: RegExp; code: number }> = [
  { name: 'malformed YAML', yaml: 'apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: {name: x\n', want: /bad\.yaml:\d+/, code: 3 },
  { name: 'unknown role', yaml: ig('nodes-x', 'Worker'), want: /spec\.role: unknown role "Worker"/, code: 3 },
  { name: 'duplicate group names', yaml: ig('extra', 'Node') + '---\n' + ig('extra', 'Node'), want: /duplicate instance group "extra"/, code: 3 },
  { name: 'etcd member with no group', yaml: 'CLUSTER:etcd', want: /etcdMembers\[\d+\]\.instanceGroup: no instance group "control-plane-x"/, code: 3 },
  { name: 'overlapping CIDRs', yaml: 'CLUSTER:cidr', want: /serviceClusterIPRange.*overlap|overlap.*serviceClusterIPRange/i, code: 3 },
];

function ig(name: string, role: string): string {
  return YAML.stringify({
    apiVersion: 'kops.k8s.io/v1alpha2',
    kind: 'InstanceGroup',
    metadata: { name, labels: { 'kops.k8s.io/cluster': CLUSTER } },
    spec: { role, minSize: 1, maxSize: 1, subnets: ['us-east-1a'] },
  });
}

t.test('bad input: one-line error, non-zero exit, store left exactly as it was', async (t) => {
  const store = await fileStore(t);
  const state = ['--state', store.url];
  t.equal((await mooring([...state, 'create', 'cluster', CLUSTER, '--zones', 'us-east-1a', '--cloud', 'local'])).code, 0);
  t.equal((await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS])).code, 0);
  const current = YAML.parse((await mooring([...state, 'get', 'cluster', CLUSTER, '-o', 'yaml'])).stdout) as {
    spec: { etcdClusters: Array<{ etcdMembers: Array<{ instanceGroup: string }> }>; serviceClusterIPRange?: string; podCIDR?: string };
  };
  const work = tempDir(t, 'mooring-bad-');

  for (const bad of BAD_INPUTS) {
    let yaml = bad.yaml ?? '';
    let verb = 'create';
    if (yaml === 'CLUSTER:etcd') {
      const c = structuredClone(current);
      c.spec.etcdClusters[0]!.etcdMembers[0]!.instanceGroup = 'control-plane-x';
      yaml = YAML.stringify(c);
      verb = 'replace';
    } else if (yaml === 'CLUSTER:cidr') {
      const c = structuredClone(current);
      c.spec.podCIDR = '100.96.0.0/11';
      c.spec.serviceClusterIPRange = '100.96.0.0/13';
      yaml = YAML.stringify(c);
      verb = 'replace';
    }
    const file = join(work, 'bad.yaml');
    writeFileSync(file, yaml);
    const before = await snapshotStore(openStore(store.url));
    const r = await mooring([...state, verb, '-f', file]);
    t.equal(r.code, bad.code, `${bad.name}: exit code`);
    t.match(r.stderr, bad.want, `${bad.name}: message`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${bad.name}: one line: ${r.stderr.trim()}`);
    t.same(await snapshotStore(openStore(store.url)), before, `${bad.name}: store untouched`);
  }

  const missing = await mooring([...state, 'get', 'cluster', 'nope.example.com']);
  t.equal(missing.code, 4);
  t.match(missing.stderr, /cluster "nope\.example\.com" not found/);
  const missingUpdate = await mooring([...state, 'update', 'cluster', 'nope.example.com', '--yes', ...TEST_AGENT_ARGS]);
  t.equal(missingUpdate.code, 4);
});

t.test('unreachable S3 endpoint: clear error, exit 5', async (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' });
  const r = await mooring(['--state', 's3://state-bucket/prefix', 'create', 'cluster', CLUSTER, '--zones', 'us-east-1a']);
  t.equal(r.code, 5, r.stderr);
  t.match(r.stderr, /s3:\/\/state-bucket\/prefix.*(reach|unreachable)/i);
  t.equal(r.stderr.trim().split('\n').length, 1);
});

t.test('delete cluster removes only the layout paths and keeps backups', async (t) => {
  const store = await fileStore(t);
  const state = ['--state', store.url];
  t.equal((await mooring([...state, 'create', 'cluster', CLUSTER, '--zones', 'us-east-1a', '--cloud', 'local'])).code, 0);
  t.equal((await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS])).code, 0);
  const cs = openStore(store.url).sub(CLUSTER);
  await cs.write('operator-notes.txt', 'mine');
  await cs.write('backups/etcd/main/2026-11-21T00:00:00Z-000001/etcd.backup.gz', 'backup');

  const dry = await mooring([...state, 'delete', 'cluster', CLUSTER]);
  t.equal(dry.code, 0);
  t.match(dry.stdout, /Must specify --yes/);
  t.ok(await cs.exists('config'), 'without --yes nothing is deleted');

  const del = await mooring([...state, 'delete', 'cluster', CLUSTER, '--yes']);
  t.equal(del.code, 0, del.stderr);
  const left = await cs.list('');
  t.same(left.filter((p) => !p.startsWith('backups/')), ['operator-notes.txt'], 'only unknown files remain besides backups');
  t.ok(left.includes('backups/etcd/main/2026-11-21T00:00:00Z-000001/etcd.backup.gz'), 'backups kept');
  t.match(del.stderr, /--include-backups/);
  t.equal((await mooring([...state, 'get', 'cluster', CLUSTER])).code, 4);
});

t.test('--help is there for every command', async (t) => {
  const top = await mooring(['--help']);
  t.equal(top.code, 0);
  for (const c of ['create', 'replace', 'get', 'update', 'delete']) t.match(top.stdout, new RegExp(`\\b${c}\\b`));
  for (const args of [['create', 'cluster'], ['replace'], ['get', 'clusters'], ['get', 'cluster'], ['get', 'instancegroups'], ['get', 'userdata'], ['update', 'cluster'], ['delete', 'cluster']]) {
    const r = await mooring([...args, '--help']);
    t.equal(r.code, 0, `${args.join(' ')} --help`);
    t.match(r.stdout, /Usage: mooring/);
  }
  const createHelp = await mooring(['create', 'cluster', '--help']);
  for (const flag of ['--zones', '--control-plane-count', '--node-count', '--cloud']) t.match(createHelp.stdout, flag);
  const bad = await mooring(['frobnicate']);
  t.equal(bad.code, 2);
});

t.test('create -f loads what `kops get all -o yaml` writes, and update completes it', async (t) => {
  const store = await fileStore(t);
  const state = ['--state', store.url];
  // The fixture's Kubernetes 1.29.3 is not in the known-hash table (its hashes would be read
  // from dl.k8s.io at update); the same spec on a release the table knows.
  const fixture = join(tempDir(t, 'mooring-kops-'), 'kops-aws-cluster.yaml');
  writeFileSync(fixture, readFileSync(new URL('../fixtures/kops-aws-cluster.yaml', import.meta.url), 'utf8').replace('kubernetesVersion: 1.29.3', 'kubernetesVersion: 1.32.13'));
  const create = await mooring([...state, 'create', '-f', fixture]);
  t.equal(create.code, 0, create.stderr);
  const name = (YAML.parseAllDocuments(readFileSync(fixture, 'utf8'))[0]!.toJS() as { metadata: { name: string } }).metadata.name;
  const update = await mooring([...state, 'update', 'cluster', name, '--yes', ...TEST_CLOUD_AGENT_ARGS]);
  t.equal(update.code, 0, update.stderr);
  const twice = await mooring([...state, 'create', '-f', fixture]);
  t.equal(twice.code, 6, 'creating the same objects again is a conflict');

  const work = tempDir(t, 'mooring-ig-');
  const newGroup = join(work, 'ig.yaml');
  writeFileSync(newGroup, ig('nodes-new', 'Node').replace(CLUSTER, name).replace('us-east-1a', 'nonexistent-subnet'));
  const badSubnet = await mooring([...state, 'create', '-f', newGroup]);
  t.not(badSubnet.code, 0, 'a group naming an unknown subnet is refused');
  const replaceMissing = await mooring([...state, 'replace', '-f', newGroup]);
  t.equal(replaceMissing.code, 4, 'replace of a group that does not exist is not found');
});
