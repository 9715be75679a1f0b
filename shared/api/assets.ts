// The release files nodes download, as kOps' asset builder picks them
// (pkg/nodemodel/fileassets.go and wellknownassets/): kubelet and kubectl from
// dl.k8s.io, the CNI plugins, containerd and runc from GitHub, and, on groups
// that host etcd members, etcd's release tarball. Each file's sha256 comes from
// the shipped table of known releases (known-assets.generated.ts, by upstream
// URL, as kOps' assetdata); a version not in it is looked up at `update` time
// from `<url>.sha256`, and if that fails it is one clear error.
//
// With `spec.assets.fileRepository`, every file is downloaded from the mirror
// instead, which keeps the upstream paths (kOps' RemapFile):
//   <fileRepository>/release/v<k8s>/bin/linux/<arch>/kubelet                       (dl.k8s.io)
//   <fileRepository>/containerd/containerd/releases/download/v<ver>/containerd-<ver>-linux-<arch>.tar.gz
//   <fileRepository>/etcd-io/etcd/releases/download/v<ver>/etcd-v<ver>-linux-<arch>.tar.gz   (github.com)
// nodeup looks assets up by their file names (agents/nodeup/model).
import { ExitCode, UserError } from '../errors.js';
import { cloudOf } from './cloud.js';
import { KNOWN_ASSET_SHA256 } from './known-assets.generated.js';
import type { AssetsLeftOut, NodeAssets } from './nodeconfig.js';
import { parseKubernetesVersion } from './options/context.js';
import { isObject } from './options/merge.js';
import type { Cluster, InstanceGroup } from './types.js';

export const ASSET_ARCHITECTURES = ['amd64', 'arm64'] as const;
export type AssetArch = (typeof ASSET_ARCHITECTURES)[number];

export const KUBELET_ASSET = 'kubelet';
export const KUBECTL_ASSET = 'kubectl';
export function containerdAssetName(version: string, arch: string): string {
  return `containerd-${version}-linux-${arch}.tar.gz`;
}
export function etcdAssetName(version: string, arch: string): string {
  return `etcd-v${version}-linux-${arch}.tar.gz`;
}
export function runcAssetName(arch: string): string {
  return `runc.${arch}`;
}
export function cniAssetName(version: string, arch: string): string {
  return `cni-plugins-linux-${arch}-v${version}.tgz`;
}

/** Default bound on each `.sha256` request. */
export const HASH_FETCH_TIMEOUT_MS = 30_000;

/** kOps' CNI plugins release per Kubernetes minor (wellknownassets/cni.go); older minors get the oldest. */
export function cniVersionFor(kubernetesVersion: string): string {
  const v = parseKubernetesVersion(kubernetesVersion);
  const minor = v.major > 1 ? Infinity : v.minor;
  if (minor >= 36) return '1.9.1';
  if (minor >= 35) return '1.8.0';
  if (minor >= 34) return '1.7.1';
  return '1.6.2';
}

/** kOps installs the CNI plugins unless the network plugin brings its own (InstallCNIAssets). */
function installsCNIPlugins(cluster: Cluster): boolean {
  const networking = isObject(cluster.spec.networking) ? cluster.spec.networking : {};
  if (isObject(networking.cilium)) return networking.cilium.chainingMode === 'portmap';
  return networking.amazonvpc === undefined && networking.calico === undefined;
}

/** One file a node downloads: its upstream URL, and a hash the spec gives for it (containerd.packages). */
export interface WantedAsset {
  canonicalURL: string;
  sha256?: string;
}

function packageOverride(section: unknown, arch: AssetArch): WantedAsset | undefined {
  const packages = isObject(section) && isObject(section.packages) ? section.packages : undefined;
  const url = packages?.[arch === 'amd64' ? 'urlAmd64' : 'urlArm64'];
  const hash = packages?.[arch === 'amd64' ? 'hashAmd64' : 'hashArm64'];
  return typeof url === 'string' && typeof hash === 'string' ? { canonicalURL: url, sha256: hash.toLowerCase() } : undefined;
}

/** The upstream files a group's nodes need, per architecture, in kOps' order. */
export function nodeAssetFiles(cluster: Cluster, ig: InstanceGroup, arch: AssetArch): WantedAsset[] {
  const spec = cluster.spec;
  const k8s = String(spec.kubernetesVersion ?? '');
  const files: WantedAsset[] = [KUBELET_ASSET, KUBECTL_ASSET].map((name) => ({ canonicalURL: `https://dl.k8s.io/release/v${k8s}/bin/linux/${arch}/${name}` }));
  if (installsCNIPlugins(cluster)) {
    const cni = cniVersionFor(k8s);
    files.push({ canonicalURL: `https://github.com/containernetworking/plugins/releases/download/v${cni}/${cniAssetName(cni, arch)}` });
  }
  const containerd = isObject(spec.containerd) ? spec.containerd : {};
  if (containerd.skipInstall !== true) {
    const version = typeof containerd.version === 'string' ? containerd.version : undefined;
    const own = packageOverride(containerd, arch);
    if (own) files.push(own);
    else if (version) files.push({ canonicalURL: `https://github.com/containerd/containerd/releases/download/v${version}/${containerdAssetName(version, arch)}` });
    const runc = isObject(containerd.runc) ? containerd.runc : undefined;
    const runcOwn = packageOverride(runc, arch);
    if (runcOwn) files.push(runcOwn);
    else if (typeof runc?.version === 'string') {
      files.push({ canonicalURL: `https://github.com/opencontainers/runc/releases/download/v${runc.version}/${runcAssetName(arch)}` });
    }
  }
  // The local cloud installs Debian's etcd offline; it fetches etcd only from a file repository.
  const etcdFromRelease = cloudOf(cluster) !== 'local' || fileRepositoryURL(cluster) !== undefined;
  const etcdVersions = new Set(
    (spec.etcdClusters ?? []).filter((e) => e.version && e.etcdMembers.some((m) => m.instanceGroup === ig.metadata.name)).map((e) => e.version as string),
  );
  if (etcdFromRelease) {
    for (const v of [...etcdVersions].sort()) files.push({ canonicalURL: `https://github.com/etcd-io/etcd/releases/download/v${v}/${etcdAssetName(v, arch)}` });
  }
  return files;
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

/** kOps' RemapFile: the upstream path under the file repository. */
export function remapAssetURL(canonicalURL: string, fileRepository: string | undefined): string {
  if (fileRepository === undefined) return canonicalURL;
  return `${fileRepository}${new URL(canonicalURL).pathname}`;
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

/** The shipped table's sha256 of an upstream file, if it is a known release. */
export function knownAssetSha256(canonicalURL: string): string | undefined {
  return Object.hasOwn(KNOWN_ASSET_SHA256, canonicalURL) ? KNOWN_ASSET_SHA256[canonicalURL] : undefined;
}

export interface ResolveOptions {
  /** Reads `<url>.sha256` (default fetchSha256): for files neither the spec nor the table knows. */
  fetchHash?: (url: string) => Promise<string>;
  /**
   * A mirror that answers for the files it serves itself (the local cloud's, whose files are
   * built here, not upstream's): their hash, or why it leaves a file out. The spec's and the
   * table's hashes are not used for its files. Undefined: not one of this mirror's URLs.
   */
  mirrorHash?: (url: string) => Promise<HashAnswer | undefined>;
}

export interface ResolvedAssets {
  byGroup: Map<string, NodeAssets>;
  /** Files whose hash was not in the table and was read from `<url>.sha256`. */
  lookedUp: string[];
}

type WantedEntry = { download: string; canonical: string; sha256?: string; leftOut?: string };

/**
 * Each group's `sha256@url` entries. Hashes come from a self-built mirror (mirrorHash), else the
 * spec, then the shipped table, and only for files in none of these from `<download url>.sha256`
 * (one request per distinct file, in parallel): a default cluster needs no request at all.
 */
export async function resolveNodeAssets(cluster: Cluster, instanceGroups: InstanceGroup[], options: ResolveOptions = {}): Promise<ResolvedAssets> {
  const base = fileRepositoryURL(cluster);
  const fetchHash = options.fetchHash ?? ((url: string) => fetchSha256(url));
  const wanted = new Map<string, Record<AssetArch, WantedEntry[]>>();
  for (const ig of instanceGroups) {
    const perArch: Record<AssetArch, WantedEntry[]> = { amd64: [], arm64: [] };
    for (const arch of ASSET_ARCHITECTURES) {
      for (const file of nodeAssetFiles(cluster, ig, arch)) {
        perArch[arch].push({ download: remapAssetURL(file.canonicalURL, base), canonical: file.canonicalURL, sha256: file.sha256 ?? knownAssetSha256(file.canonicalURL) });
      }
    }
    wanted.set(ig.metadata.name, perArch);
  }
  const entries = [...wanted.values()].flatMap((perArch) => [...perArch.amd64, ...perArch.arm64]);
  if (options.mirrorHash) {
    const answers = new Map<string, HashAnswer | undefined>();
    const mirrorHash = options.mirrorHash;
    await Promise.all([...new Set(entries.map((e) => e.download))].map(async (url) => void answers.set(url, await mirrorHash(url))));
    for (const e of entries) {
      const answer = answers.get(e.download);
      if (typeof answer === 'string') e.sha256 = answer;
      else if (answer !== undefined) e.leftOut = answer.leftOut;
    }
  }
  const toLookUp = new Map<string, string>();
  for (const e of entries) if (e.sha256 === undefined && e.leftOut === undefined) toLookUp.set(e.download, e.canonical);
  const fetched = new Map<string, string>();
  await Promise.all(
    [...toLookUp].map(async ([download, canonical]) => {
      try {
        fetched.set(download, await fetchHash(download));
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new UserError(`cannot tell the sha256 of ${canonical}: it is not a release in Mooring's table of known hashes, and ${why}`, undefined, { cause: err });
      }
    }),
  );
  const byGroup = new Map<string, NodeAssets>();
  for (const [name, perArch] of wanted) {
    const assets: NodeAssets = { amd64: [], arm64: [] };
    const leftOut: AssetsLeftOut = {};
    for (const arch of ASSET_ARCHITECTURES) {
      for (const e of perArch[arch]) {
        if (e.leftOut !== undefined) (leftOut[arch] ??= {})[fileNameOf(e.download)] = e.leftOut;
        else assets[arch].push(`${e.sha256 ?? fetched.get(e.download)}@${e.download}`);
      }
    }
    if (Object.keys(leftOut).length > 0) assets.leftOut = leftOut;
    byGroup.set(name, assets);
  }
  return { byGroup, lookedUp: [...toLookUp.keys()].sort() };
}
