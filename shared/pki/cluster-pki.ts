// The cluster's certificate authorities, as kOps keeps them in the state store
// (pkg/model/pki.go, pkg/model/bootstrapscript.go). Find → diff → create: a CA
// that exists is reused as is, because every certificate and service-account
// token in a running cluster hangs off it; only missing ones are made.
import { StorePaths } from '../api/types.js';
import { UserError } from '../errors.js';
import type { StateStore } from '../store/types.js';
import { loadKeyset, primaryKeypair, requireKeysetName, writeKeyset, type Keyset } from './keyset.js';
import { createCA, parseCertificate, type KeyAlgorithm } from './x509.js';

/** kOps' CA lifetime (pkg/pki/csr.go: 10 × 365 days). */
export const CA_VALIDITY_DAYS = 10 * 365;

export interface EnsureClusterPKIOptions {
  /** Default CA_VALIDITY_DAYS. */
  validityDays?: number;
  /** Default RSA-2048 (kOps'); tests use ECDSA-P256 for speed. */
  keyAlgorithm?: KeyAlgorithm;
}

export interface ClusterPKIPlan {
  toCreate: string[];
  existing: string[];
}

/** Every CA keyset a cluster with these etcd clusters needs, sorted. */
export function clusterKeysetNames(etcdClusterNames: string[]): string[] {
  const names = new Set(['kubernetes-ca', 'service-account', 'etcd-clients-ca']);
  for (const etcd of etcdClusterNames) {
    names.add(`etcd-peers-ca-${etcd}`);
    names.add(`etcd-manager-ca-${etcd}`);
  }
  const sorted = [...names].sort();
  sorted.forEach(requireKeysetName);
  return sorted;
}

export async function planClusterPKI(store: StateStore, names: string[]): Promise<ClusterPKIPlan> {
  const found = await findPrimaryIds(store, names);
  const unique = [...new Set(names)].sort();
  return {
    toCreate: unique.filter((name) => !found.has(name)),
    existing: unique.filter((name) => found.has(name)),
  };
}

/** Creates the missing CAs and returns every keyset's primary id (node configs carry them). */
export async function ensureClusterPKI(
  store: StateStore,
  names: string[],
  options: EnsureClusterPKIOptions = {},
): Promise<Record<string, string>> {
  const primaryIds = await findPrimaryIds(store, names);
  const unique = [...new Set(names)].sort();
  // Independent CAs: key generation runs in parallel on libuv's pool.
  await Promise.all(
    unique.filter((name) => !primaryIds.has(name)).map(async (name) => {
      const keyset = await newCAKeyset(name, options);
      await writeKeyset(store, keyset);
      primaryIds.set(name, keyset.primaryId);
    }),
  );
  return Object.fromEntries(unique.map((name) => [name, primaryIds.get(name) ?? '']));
}

/** Existing keysets' primary ids; a keyset that cannot sign is an error naming its path. */
async function findPrimaryIds(store: StateStore, names: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const name of new Set(names)) {
    const keyset = await loadKeyset(store, name); // parse errors already name the URL
    if (!keyset) continue;
    try {
      found.set(name, primaryKeypair(keyset).id);
    } catch (err) {
      throw new UserError(`${store.urlOf(StorePaths.keyset(name))}: ${(err as Error).message}; refusing to replace it`, undefined, {
        cause: err,
      });
    }
  }
  return found;
}

async function newCAKeyset(name: string, options: EnsureClusterPKIOptions): Promise<Keyset> {
  // kOps names each CA's subject after its keyset (cn=kubernetes-ca, cn=service-account, …).
  const ca = await createCA(name, options.validityDays ?? CA_VALIDITY_DAYS, { keyAlgorithm: options.keyAlgorithm });
  const id = parseCertificate(ca.certPEM).serialDecimal;
  return {
    name,
    creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    type: 'Keypair',
    primaryId: id,
    keys: [{ id, publicMaterial: ca.certPEM, privateMaterial: ca.keyPEM }],
  };
}
