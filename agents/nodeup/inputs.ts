// nodeup's inputs: the boot config (a local file), then from the state store
// named in it the node config — refused unless its sha256 is the boot
// config's — the completed cluster spec and the CAs.
import { readFile } from 'node:fs/promises';
import { parseBootConfig, parseNodeConfig, verifyNodeConfigHash, type BootConfig, type NodeConfig } from '../../shared/api/nodeconfig.js';
import { parseObjects } from '../../shared/api/parse.js';
import { StorePaths, type Cluster } from '../../shared/api/types.js';
import { ExitCode, UserError } from '../../shared/errors.js';
import { loadKeyset, primaryKeypair, type Keypair } from '../../shared/pki/keyset.js';
import { openStore } from '../../shared/store/index.js';
import type { StateStore } from '../../shared/store/types.js';
import type { CASource } from './tasks/certificate.js';

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

export async function loadInputs(boot: BootConfig): Promise<NodeInputs> {
  const store = openStore(boot.configBase);
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
