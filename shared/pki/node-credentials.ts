// Node client credentials kOps historically kept in the state store (pkg/model/pki.go
// before kops-controller bootstrap): keysets `kubelet` and `kube-proxy`, issued by
// kubernetes-ca when `update cluster` runs. Worker and bastion nodes read these
// pre-issued keypairs and never the CA's private key. Created when missing and
// re-issued when within the renewal window (renewal.ts) or not signed by the
// current kubernetes-ca; otherwise reused as they are.
import { StorePaths } from '../api/types.js';
import type { StateStore } from '../store/types.js';
import { loadKeyset, primaryKeypair, writeKeyset, type Keypair, type Keyset } from './keyset.js';
import { needsRenewal } from './renewal.js';
import { issueCertificate, parseCertificate, verifyIssuedBy, type KeyAlgorithm } from './x509.js';

export const NODE_CREDENTIAL_CA = 'kubernetes-ca';

export interface NodeCredential {
  /** Keyset name in the state store. */
  name: string;
  commonName: string;
  organization?: string[];
}

/** kOps' names and subjects (pkg/model/pki.go, pkg/model/kube_proxy.go). */
export const NODE_CREDENTIALS: readonly NodeCredential[] = [
  { name: 'kubelet', commonName: 'kubelet', organization: ['system:nodes'] },
  { name: 'kube-proxy', commonName: 'system:kube-proxy' },
];

export const NODE_CREDENTIAL_NAMES: readonly string[] = NODE_CREDENTIALS.map((c) => c.name);

/** Lifetime of a node client certificate; `update cluster` re-issues it in the last third. */
export const NODE_CREDENTIAL_VALIDITY_DAYS = 365;

export interface NodeCredentialsPlan {
  /** Keysets that do not exist yet. */
  toCreate: string[];
  /** Keysets that exist but must be re-issued, with why. */
  toReissue: Array<{ name: string; reason: string }>;
}

/** Why an existing credential keyset must be re-issued, or undefined when it can stay. */
async function problem(store: StateStore, keyset: Keyset, want: NodeCredential, caCertPEM: string | undefined, now: Date | undefined): Promise<string | undefined> {
  let pair: Keypair;
  try {
    pair = primaryKeypair(keyset);
  } catch (err) {
    return (err as Error).message;
  }
  const renewal = needsRenewal(pair.certPEM, { wantCN: want.commonName, ...(now ? { now } : {}) });
  if (renewal.renew) return renewal.reason ?? 'renewal due';
  const org = parseCertificate(pair.certPEM).subjectOrganization;
  if ((want.organization ?? []).join(',') !== org.join(',')) return `organization is [${org.join(',')}], want [${(want.organization ?? []).join(',')}]`;
  if (caCertPEM === undefined) return `${NODE_CREDENTIAL_CA} is being created`;
  if (!(await verifyIssuedBy(pair.certPEM, caCertPEM))) return `not issued by the current ${NODE_CREDENTIAL_CA} (${store.urlOf(StorePaths.keyset(keyset.name))})`;
  return undefined;
}

/** `now`: the renewal clock (tests); default the current time. */
export async function planNodeCredentials(store: StateStore, options: { now?: Date } = {}): Promise<NodeCredentialsPlan> {
  const caKeyset = await loadKeyset(store, NODE_CREDENTIAL_CA);
  const caCertPEM = caKeyset ? primaryKeypair(caKeyset).certPEM : undefined;
  const plan: NodeCredentialsPlan = { toCreate: [], toReissue: [] };
  for (const want of NODE_CREDENTIALS) {
    const keyset = await loadKeyset(store, want.name);
    if (!keyset) {
      plan.toCreate.push(want.name);
      continue;
    }
    const why = await problem(store, keyset, want, caCertPEM, options.now);
    if (why) plan.toReissue.push({ name: want.name, reason: why });
  }
  return plan;
}

/** Issues missing or due credentials from kubernetes-ca (which must exist) and returns every credential's primary id. */
export async function ensureNodeCredentials(
  store: StateStore,
  options: { keyAlgorithm?: KeyAlgorithm; validityDays?: number; now?: Date } = {},
): Promise<Record<string, string>> {
  const caKeyset = await loadKeyset(store, NODE_CREDENTIAL_CA);
  if (!caKeyset) throw new Error(`${store.urlOf(StorePaths.keyset(NODE_CREDENTIAL_CA))} does not exist; create the CAs first`);
  const ca = primaryKeypair(caKeyset);
  const ids: Record<string, string> = {};
  for (const want of NODE_CREDENTIALS) {
    const existing = await loadKeyset(store, want.name);
    if (existing && !(await problem(store, existing, want, ca.certPEM, options.now))) {
      ids[want.name] = primaryKeypair(existing).id;
      continue;
    }
    const issued = await issueCertificate(ca, {
      commonName: want.commonName,
      ...(want.organization ? { organization: [...want.organization] } : {}),
      usage: 'client',
      validityDays: options.validityDays ?? NODE_CREDENTIAL_VALIDITY_DAYS,
      ...(options.keyAlgorithm ? { keyAlgorithm: options.keyAlgorithm } : {}),
    });
    const id = parseCertificate(issued.certPEM).serialDecimal;
    // The re-issued keypair replaces the old one: nodes follow the id their node config names.
    await writeKeyset(store, {
      name: want.name,
      creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      type: 'Keypair',
      primaryId: id,
      keys: [{ id, publicMaterial: issued.certPEM, privateMaterial: issued.keyPEM }],
    });
    ids[want.name] = id;
  }
  return ids;
}
