// What every option builder knows: the cluster's name and cloud, the Kubernetes
// version (compared as kOps does, pre-release and build ignored), the etcd
// ports, and how images are named and remapped.
import { cloudOf } from '../cloud.js';
import type { EtcdPorts } from '../defaults.js';
import type { Cluster } from '../types.js';
import { isObject, stringField } from './merge.js';

export interface KubernetesVersion {
  major: number;
  minor: number;
  patch: number;
  /** As written, without a leading v. */
  text: string;
}

export function parseKubernetesVersion(text: string): KubernetesVersion {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text);
  if (!m) throw new Error(`invalid Kubernetes version ${JSON.stringify(text)}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: text.replace(/^v/, '') };
}

function compare(a: KubernetesVersion, b: KubernetesVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export interface OptionsContext {
  clusterName: string;
  cloud: string;
  version: KubernetesVersion;
  /** kOps' IsLT: strictly older than `version` ("1.34" means 1.34.0), pre-release ignored. */
  isLT(version: string): boolean;
  /** Client and other ports of each etcd cluster (kOps' well-known ones, or Mooring's). */
  etcdPorts: ReadonlyMap<string, EtcdPorts>;
  /** registry.k8s.io/<component>:v<version>, remapped like every image. */
  componentImage(component: string): string;
  /** spec.assets.containerProxy / containerRegistry applied, as kOps' RemapImage does. */
  remapImage(image: string): string;
}

export function newOptionsContext(cluster: Cluster, etcdPorts: ReadonlyMap<string, EtcdPorts>): OptionsContext {
  const version = parseKubernetesVersion(String(cluster.spec.kubernetesVersion));
  const assets = isObject(cluster.spec.assets) ? cluster.spec.assets : undefined;
  const remapImage = (image: string): string => remap(image, stringField(assets, 'containerProxy'), stringField(assets, 'containerRegistry'));
  return {
    clusterName: cluster.metadata.name,
    cloud: cloudOf(cluster),
    version,
    isLT: (v) => compare(version, parseKubernetesVersion(/^\d+\.\d+$/.test(v) ? `${v}.0` : v)) < 0,
    etcdPorts,
    componentImage: (component) => remapImage(`registry.k8s.io/${component}:v${version.text}`),
    remapImage,
  };
}

/** kOps' NormalizeImage: a proxy replaces the registry host; a registry mirror flattens the path under itself. */
function remap(image: string, proxy: string | undefined, registry: string | undefined): string {
  let out = image;
  if (proxy) {
    const base = proxy.replace(/\/+$/, '');
    const first = out.split('/')[0];
    out = (out.match(/\//g) ?? []).length <= 1 && !/[.:]/.test(first) ? `${base}/${out}` : out.replace(/^[^/]+/, base);
  }
  if (registry) {
    const stripped = out.replace(/^registry\.k8s\.io\//, '');
    out = stripped.startsWith(`${registry}/`) ? stripped : `${registry}/${stripped.replace(/\//g, '-')}`;
  }
  return out;
}
