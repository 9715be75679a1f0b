// What every model builder gets: the node config (this group), the completed
// cluster spec, the host, the CA certificates, and (control plane only) the CAs' keys.
import type { BootConfig, NodeConfig } from '../../../shared/api/nodeconfig.js';
import type { Cluster } from '../../../shared/api/types.js';
import type { Keypair } from '../../../shared/pki/keyset.js';
import { parseAssetSpec, type AssetRef } from '../host/assets.js';
import type { HostInfo } from '../host/os-release.js';
import type { CASource, KeypairSource } from '../tasks/certificate.js';

export interface ModelInput {
  boot: BootConfig;
  nodeConfig: NodeConfig;
  cluster: Cluster;
  host: HostInfo;
  /** CA keypairs; on nodes other than the control plane a source that refuses every read. */
  ca: CASource;
  /** Pre-issued client keypairs (keysets kubelet, kube-proxy) by keyset name. */
  keypairs: KeypairSource;
  /** Public CA certificates by keyset name (written to disk for clients). */
  caCerts: Record<string, string>;
  /** The service-account signing key pair (control plane only). */
  serviceAccount?: Keypair;
}

export function isControlPlaneRole(nc: NodeConfig): boolean {
  return nc.instanceGroupRole === 'ControlPlane' || nc.instanceGroupRole === 'Master';
}

/** The node config's assets for this architecture, by file name. */
export function assetsByName(input: ModelInput): Map<string, AssetRef> {
  const found = new Map<string, AssetRef>();
  for (const spec of input.nodeConfig.assets[input.host.arch] ?? []) {
    const ref = parseAssetSpec(spec);
    found.set(ref.name, ref);
  }
  return found;
}

/** Directory the Mooring agents (multi-call binary and its links) live in; installed by user-data. */
export const MOORING_BIN = '/opt/mooring/bin';
