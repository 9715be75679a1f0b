// nodeup's inputs: the boot config (a local file), then from the state store
// named in it the node config — refused unless its sha256 is the boot
// config's — the completed cluster spec, the CA certificates (pki/issued) and
// this node's keypairs. Only the control plane reads CA private keys.
import { readFile } from 'node:fs/promises';
import { parseBootConfig, parseNodeConfig, verifyNodeConfigHash, type BootConfig, type NodeConfig } from '../../shared/api/nodeconfig.js';
import { parseObjects } from '../../shared/api/parse.js';
import { StorePaths, type Cluster } from '../../shared/api/types.js';
import { ExitCode, UserError } from '../../shared/errors.js';
import { loadIssuedCertificate, loadKeyset, primaryKeypair, toKeypair, type Keypair } from '../../shared/pki/keyset.js';
import { openStore } from '../../shared/store/index.js';
import type { StateStore } from '../../shared/store/types.js';
import type { CASource, KeypairSource } from './tasks/certificate.js';

export interface NodeInputs {
  boot: BootConfig;
  nodeConfig: NodeConfig;
  cluster: Cluster;
  store: StateStore;
}

export async function readBootConfig(path: string): Promise<BootConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UserError(`read boot config ${path}: ${(err as Error).message}`, ExitCode.Usage, { cause: err });
  }
  return parseBootConfig(text, path);
}

/** Opens the state store a boot config names; tests wrap it to watch what is read. */
export type StoreOpener = (url: string) => StateStore;

export async function loadInputs(boot: BootConfig, open: StoreOpener = openStore): Promise<NodeInputs> {
  const store = open(boot.configBase);
  const ncPath = StorePaths.nodeupConfig(boot.instanceGroupRole, boot.instanceGroupName);
  const bytes = await store.read(ncPath);
  // Checked before parsing: bytes the boot config did not name are never interpreted.
  verifyNodeConfigHash(boot, bytes, `load node config ${store.urlOf(ncPath)}`);
  const nodeConfig = parseNodeConfig(bytes.toString('utf8'), store.urlOf(ncPath));
  const specText = (await store.read(StorePaths.completedSpec)).toString('utf8');
  const cluster = parseObjects(specText, store.urlOf(StorePaths.completedSpec)).find((o) => o.object.kind === 'Cluster')?.object as Cluster | undefined;
  if (!cluster) throw new UserError(`${store.urlOf(StorePaths.completedSpec)}: no Cluster object`, ExitCode.InvalidSpec);
  if (cluster.metadata.name !== nodeConfig.clusterName) {
    throw new UserError(`${store.urlOf(StorePaths.completedSpec)} is cluster ${cluster.metadata.name}, but the node config is for ${nodeConfig.clusterName}`, ExitCode.InvalidSpec);
  }
  return { boot, nodeConfig, cluster, store };
}

/** CA keypairs from the store, each read once per run. */
export function storeCASource(store: StateStore): CASource {
  const cache = new Map<string, Promise<Keypair>>();
  return (name) => {
    let pending = cache.get(name);
    if (!pending) {
      pending = (async () => {
        const keyset = await loadKeyset(store, name);
        if (!keyset) throw new UserError(`CA ${name} not found in ${store.urlOf(StorePaths.keyset(name))}`, ExitCode.NotFound);
        return primaryKeypair(keyset);
      })();
      cache.set(name, pending);
    }
    return pending;
  };
}

/** For nodes that must not hold a CA's key: every read is refused, naming the role. */
export function refusingCASource(role: string): CASource {
  return async (name) => {
    throw new UserError(`a ${role} node never reads CA private keys (asked for ${name}); its client keypairs come from the state store's keysets`);
  };
}

/** Public CA certificates (pki/issued/<name>/keyset.yaml only), by keyset name. */
export async function loadCACertificates(store: StateStore, names: string[]): Promise<Record<string, string>> {
  const certs: Record<string, string> = {};
  for (const name of names) {
    const issued = await loadIssuedCertificate(store, name);
    if (!issued) throw new UserError(`CA certificate ${name} not found in ${store.urlOf(StorePaths.issued(name))}`, ExitCode.NotFound);
    certs[name] = issued.certPEM;
  }
  return certs;
}

/**
 * Pre-issued client keypairs (pki/private/<name>/keyset.yaml), pinned to the id
 * the node config's keypairIDs names; each read once per run.
 */
export function storeKeypairSource(store: StateStore, keypairIDs: Record<string, string>): KeypairSource {
  const cache = new Map<string, Promise<Keypair>>();
  return (name) => {
    let pending = cache.get(name);
    if (!pending) {
      pending = (async () => {
        const want = keypairIDs[name];
        if (want === undefined) throw new UserError(`the node config's keypairIDs name no keyset ${name}; run mooring update cluster`, ExitCode.NotFound);
        const keyset = await loadKeyset(store, name);
        if (!keyset) throw new UserError(`keypair ${name} not found in ${store.urlOf(StorePaths.keyset(name))}; run mooring update cluster`, ExitCode.NotFound);
        const item = keyset.keys.find((k) => k.id === want && !k.distrustTimestamp);
        if (!item) throw new UserError(`${store.urlOf(StorePaths.keyset(name))} has no trusted keypair ${want} (the node config's id); run mooring update cluster`, ExitCode.NotFound);
        return toKeypair(name, item);
      })();
      cache.set(name, pending);
    }
    return pending;
  };
}
