// The release files nodes download, as kOps' asset builder names them
// (pkg/assets/builder.go), and their resolution against `spec.assets.fileRepository`.
//
// Layout: kOps' RemapFile keeps the upstream path under the file repository, so a
// mirror is a copy of the upstream trees:
//   <fileRepository>/release/v<k8s>/bin/linux/<arch>/kubelet                                  (dl.k8s.io)
//   <fileRepository>/containerd/containerd/releases/download/v<ver>/containerd-<ver>-linux-<arch>.tar.gz (github.com)
//   <fileRepository>/etcd-io/etcd/releases/download/v<ver>/etcd-v<ver>-linux-<arch>.tar.gz     (github.com; etcd hosts only)
// Each file's hash is read from `<url>.sha256` (as kOps does for a remapped file).
// nodeup looks assets up by these file names (agents/nodeup/model).
import { ExitCode, UserError } from '../errors.js';
import type { NodeAssets } from './nodeconfig.js';
import type { Cluster, InstanceGroup } from './types.js';

export const ASSET_ARCHITECTURES = ['amd64', 'arm64'] as const;
export type AssetArch = (typeof ASSET_ARCHITECTURES)[number];

export const KUBELET_ASSET = 'kubelet';
export function containerdAssetName(version: string, arch: string): string {
  return `containerd-${version}-linux-${arch}.tar.gz`;
}
export function etcdAssetName(version: string, arch: string): string {
  return `etcd-v${version}-linux-${arch}.tar.gz`;
}

/** Default bound on each `.sha256` request. */
export const HASH_FETCH_TIMEOUT_MS = 30_000;

/** Paths under the file repository a group's nodes need, per architecture. */
export function nodeAssetPaths(cluster: Cluster, ig: InstanceGroup, arch: AssetArch): string[] {
  const spec = cluster.spec;
  const paths = [`release/v${spec.kubernetesVersion ?? ''}/bin/linux/${arch}/${KUBELET_ASSET}`];
  const containerd = spec.containerd?.version;
  if (containerd) paths.push(`containerd/containerd/releases/download/v${containerd}/${containerdAssetName(containerd, arch)}`);
  const etcdVersions = new Set(
    (spec.etcdClusters ?? []).filter((e) => e.version && e.etcdMembers.some((m) => m.instanceGroup === ig.metadata.name)).map((e) => e.version as string),
  );
  for (const v of [...etcdVersions].sort()) paths.push(`etcd-io/etcd/releases/download/v${v}/${etcdAssetName(v, arch)}`);
  return paths;
}

/** The file repository as a base URL without trailing slash; only http(s). */
export function fileRepositoryURL(cluster: Cluster): string | undefined {
  const raw = cluster.spec.assets?.fileRepository;
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UserError(`spec.assets.fileRepository ${JSON.stringify(raw)} is not a URL`, ExitCode.InvalidSpec);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UserError(`spec.assets.fileRepository ${JSON.stringify(raw)}: only http:// and https:// mirrors are supported`, ExitCode.InvalidSpec);
  }
  return raw.replace(/\/+$/, '');
}

/** The file name nodeup looks an asset up by: the URL's last path segment. */
export function fileNameOf(url: string): string {
  return new URL(url).pathname.split('/').pop() ?? '';
}

/** Reads `<url>.sha256` (a hex digest, optionally followed by a file name) within timeoutMs. */
export async function fetchSha256(url: string, timeoutMs: number = HASH_FETCH_TIMEOUT_MS): Promise<string> {
  const hashURL = `${url}.sha256`;
  let text: string;
  try {
    const res = await fetch(hashURL, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      await res.body?.cancel();
      throw new UserError(`asset hash ${hashURL}: HTTP ${res.status} ${res.statusText}`.trimEnd());
    }
    text = await res.text();
  } catch (err) {
    if (err instanceof UserError) throw err;
    const e = err as Error;
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause as Error | undefined)?.message ?? e.message;
    throw new UserError(`asset hash ${hashURL}: ${why}`, undefined, { cause: err });
  }
  const hash = text.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new UserError(`asset hash ${hashURL}: not a sha256 hex digest`);
  return hash;
}

/** A file's sha256, or why a mirror deliberately does not carry it (the local cloud's leaves Kubernetes' binaries out). */
export type HashAnswer = string | { leftOut: string };

export interface ResolveOptions {
  fetchHash?: (url: string) => Promise<HashAnswer>;
}

/**
 * Each group's `sha256@url` entries when spec.assets.fileRepository is set
 * (one request per distinct file, in parallel), else undefined: no network at all.
 */
export async function resolveNodeAssets(cluster: Cluster, instanceGroups: InstanceGroup[], options: ResolveOptions = {}): Promise<Map<string, NodeAssets> | undefined> {
  const base = fileRepositoryURL(cluster);
  if (base === undefined) return undefined;
  const fetchHash = options.fetchHash ?? ((url: string) => fetchSha256(url));
  const wanted = new Map<string, Record<AssetArch, string[]>>();
  const urls = new Set<string>();
  for (const ig of instanceGroups) {
    const perArch = { amd64: [] as string[], arm64: [] as string[] };
    for (const arch of ASSET_ARCHITECTURES) {
      for (const path of nodeAssetPaths(cluster, ig, arch)) {
        const url = `${base}/${path}`;
        perArch[arch].push(url);
        urls.add(url);
      }
    }
    wanted.set(ig.metadata.name, perArch);
  }
  const hashes = new Map<string, HashAnswer>();
  await Promise.all([...urls].map(async (url) => void hashes.set(url, await fetchHash(url))));
  const out = new Map<string, NodeAssets>();
  for (const [name, perArch] of wanted) {
    const assets: NodeAssets = { amd64: [], arm64: [] };
    const leftOut: NonNullable<NodeAssets['leftOut']> = {};
    for (const arch of ASSET_ARCHITECTURES) {
      for (const url of perArch[arch]) {
        const answer = hashes.get(url) as HashAnswer;
        if (typeof answer === 'string') assets[arch].push(`${answer}@${url}`);
        else (leftOut[arch] ??= {})[fileNameOf(url)] = answer.leftOut;
      }
    }
    if (Object.keys(leftOut).length > 0) assets.leftOut = leftOut;
    out.set(name, assets);
  }
  return out;
}

export const NO_FILE_REPOSITORY_WARNING =
  'warning: spec.assets.fileRepository is not set: node configs list no assets, so nodes will fail their kubelet asset task until spec.assets.fileRepository names a mirror (or hashes are known)';
