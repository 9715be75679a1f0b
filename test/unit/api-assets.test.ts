// Which release files each group's nodes get, and where their hashes come from:
// the spec (containerd.packages), the shipped table of known releases, and only
// for files in neither, `<download url>.sha256` (injected here: no network).
import t from 'tap';
import { cniVersionFor, knownAssetSha256, nodeAssetFiles, resolveNodeAssets } from '../../shared/api/assets.js';
import { completeCluster, newClusterObjects } from '../../shared/api/complete.js';
import type { Cluster, ClusterSpec, InstanceGroup } from '../../shared/api/types.js';

function completed(spec: Partial<ClusterSpec> = {}, cloud: 'aws' | 'local' = 'aws'): { cluster: Cluster; instanceGroups: InstanceGroup[] } {
  const user = newClusterObjects({ name: 'assets.example.com', zones: ['us-east-1a'], controlPlaneCount: 1, nodeCount: 1, cloud });
  Object.assign(user.cluster.spec, spec);
  return completeCluster(user.cluster, user.instanceGroups, { configBase: 's3://state/assets.example.com' });
}

const urls = (cluster: Cluster, ig: InstanceGroup, arch: 'amd64' | 'arm64') => nodeAssetFiles(cluster, ig, arch).map((f) => f.canonicalURL);

t.test("kOps' files per group and architecture", async (t) => {
  const { cluster, instanceGroups } = completed();
  const [cp, nodes] = instanceGroups;
  const common = (arch: string) => [
    `https://dl.k8s.io/release/v1.34.10/bin/linux/${arch}/kubelet`,
    `https://dl.k8s.io/release/v1.34.10/bin/linux/${arch}/kubectl`,
    `https://github.com/containernetworking/plugins/releases/download/v1.7.1/cni-plugins-linux-${arch}-v1.7.1.tgz`,
    `https://github.com/containerd/containerd/releases/download/v2.3.4/containerd-2.3.4-linux-${arch}.tar.gz`,
    `https://github.com/opencontainers/runc/releases/download/v1.4.3/runc.${arch}`,
  ];
  for (const arch of ['amd64', 'arm64'] as const) {
    t.same(urls(cluster, nodes, arch), common(arch), `workers, ${arch}`);
    t.same(urls(cluster, cp, arch), [...common(arch), `https://github.com/etcd-io/etcd/releases/download/v3.6.12/etcd-v3.6.12-linux-${arch}.tar.gz`], `control plane, ${arch}: also etcd`);
  }
  t.same(['1.32.0', '1.33.13', '1.34.0', '1.35.7', '1.36.3', '1.40.0'].map(cniVersionFor), ['1.6.2', '1.6.2', '1.7.1', '1.8.0', '1.9.1', '1.9.1'], "kOps' CNI plugins release per minor");
  const calico = completed({ networking: { calico: {} } });
  t.notOk(urls(calico.cluster, calico.instanceGroups[1], 'amd64').some((u) => u.includes('containernetworking')), 'Calico brings its own CNI plugins');
  const skip = completed({ containerd: { skipInstall: true } });
  t.same(urls(skip.cluster, skip.instanceGroups[1], 'amd64').length, 3, 'containerd.skipInstall: no containerd, no runc');
  const local = completed({}, 'local');
  t.notOk(urls(local.cluster, local.instanceGroups[0], 'amd64').some((u) => u.includes('etcd')), "the local cloud's etcd is Debian's");
});

t.test('hashes: the spec, then the table, then <url>.sha256, once per file', async (t) => {
  const asked: string[] = [];
  const fetchHash = async (url: string) => {
    asked.push(url);
    return 'f'.repeat(64);
  };
  const defaults = completed();
  const plain = await resolveNodeAssets(defaults.cluster, defaults.instanceGroups, { fetchHash });
  t.same(asked, [], 'a default cluster: every hash is known, no request');
  t.same(plain.lookedUp, []);
  const entry = plain.byGroup.get('nodes-us-east-1a')!.arm64[0];
  const kubelet = 'https://dl.k8s.io/release/v1.34.10/bin/linux/arm64/kubelet';
  t.equal(entry, `${knownAssetSha256(kubelet)}@${kubelet}`);

  const mirrored = completed({ assets: { fileRepository: 'https://mirror.example.com/kops/' } });
  const viaMirror = await resolveNodeAssets(mirrored.cluster, mirrored.instanceGroups, { fetchHash });
  t.same(asked, [], 'a mirror of known releases: the table still says the hash (a mirror cannot change a file)');
  t.equal(viaMirror.byGroup.get('nodes-us-east-1a')!.arm64[0], `${knownAssetSha256(kubelet)}@https://mirror.example.com/kops/release/v1.34.10/bin/linux/arm64/kubelet`, 'the upstream path under the mirror');

  const unknown = completed({ kubernetesVersion: '1.30.5', containerd: { version: '2.3.4', packages: { urlAmd64: 'https://own.example.com/containerd.tgz', hashAmd64: 'A'.repeat(64) } } });
  const resolved = await resolveNodeAssets(unknown.cluster, unknown.instanceGroups, { fetchHash });
  t.same([...asked].sort(), ['amd64', 'arm64'].flatMap((arch) => ['kubectl', 'kubelet'].map((f) => `https://dl.k8s.io/release/v1.30.5/bin/linux/${arch}/${f}`)).sort(),
    'only the unknown files are looked up, each once for all groups');
  t.same(resolved.lookedUp, [...asked].sort());
  t.equal(resolved.byGroup.get('nodes-us-east-1a')!.amd64.find((e) => e.includes('own.example.com')), `${'a'.repeat(64)}@https://own.example.com/containerd.tgz`, "containerd.packages: the spec's own file and hash");

  const failing = completed({ kubernetesVersion: '1.30.5' });
  await t.rejects(resolveNodeAssets(failing.cluster, failing.instanceGroups, { fetchHash: async () => { throw new Error('HTTP 404'); } }),
    /cannot tell the sha256 of https:\/\/dl\.k8s\.io\/release\/v1\.30\.5\/bin\/linux\/(amd|arm)64\/kube(let|ctl): it is not a release in Mooring's table of known hashes, and HTTP 404/,
    'an unknown release without a readable .sha256: one clear error');
});
