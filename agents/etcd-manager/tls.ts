// The member's certificates, issued from the CAs in the state store (kOps'
// keysets) and kept under --pki-dir. A certificate on disk is reused while it
// is valid, names what it should and was issued by the current CA; it is
// renewed once a third of its lifetime is left (needsRenewal), well before
// expiry: kOps' etcd-manager never renewed, and expired certs caused outages
// (kops#8959). Files are replaced atomically and etcd reads them per
// handshake, so renewal needs no restart.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.js';
import { loadKeyset, primaryKeypair } from '../../shared/pki/keyset.js';
import { needsRenewal } from '../../shared/pki/renewal.js';
import { inspectCertificate, verifyIssuedBy } from '../../shared/pki/inspect.js';
import { issueInProcess, type IssueCertificates, type IssueItem } from '../../shared/pki/issue-batch.js';
import type { CertificateUsage, KeyAlgorithm } from '../../shared/pki/x509.js';
import type { StateStore } from '../../shared/store/types.js';
import type { EtcdTLSFiles } from './etcd/process.js';

/** kOps' etcd certificate lifetime: 2 years. */
export const CERT_VALIDITY_DAYS = 730;

export interface MemberIdentity {
  memberName: string;
  dnsNames: string[];
  ipAddresses: string[];
}

export interface ManagerTLS {
  /** etcd's peer listener (etcd-peers-ca-<etcd>). */
  peer: EtcdTLSFiles;
  /** etcd's client listener (etcd-clients-ca). */
  server: EtcdTLSFiles;
  /** The manager's client certificate towards etcd (etcd-clients-ca). */
  etcdClient: EtcdTLSFiles;
  /** The managers' private API, both ways (etcd-manager-ca-<etcd>). */
  manager: EtcdTLSFiles;
}

export interface EnsureTLSOptions {
  store: StateStore;
  etcdName: string;
  identity: MemberIdentity;
  pkiDir: string;
  log: Logger;
  validityDays?: number;
  /** Renew once less than this is left (default: a third of the lifetime). */
  renewBeforeMs?: number;
  keyAlgorithm?: KeyAlgorithm;
  now?: Date;
  /** Where certificates are issued (default: in this process); the manager issues in a child (issue-batch.ts). */
  issue?: IssueCertificates;
}

interface Want {
  kind: keyof ManagerTLS;
  ca: string;
  usage: CertificateUsage;
  commonName: string;
  withSANs: boolean;
}

async function atomicWrite(path: string, data: string, mode: number): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, data, { mode });
  await chmod(temp, mode); // the umask must not widen or narrow it
  await rename(temp, path);
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Makes every certificate the member needs present and current; returns their paths and which were (re)issued. */
export async function ensureManagerTLS(options: EnsureTLSOptions): Promise<{ files: ManagerTLS; issued: string[] }> {
  const { store, etcdName, identity, pkiDir, log } = options;
  await mkdir(pkiDir, { recursive: true, mode: 0o700 });
  await chmod(pkiDir, 0o700);
  const wants: Want[] = [
    { kind: 'peer', ca: `etcd-peers-ca-${etcdName}`, usage: 'peer', commonName: identity.memberName, withSANs: true },
    { kind: 'server', ca: 'etcd-clients-ca', usage: 'server', commonName: identity.memberName, withSANs: true },
    { kind: 'etcdClient', ca: 'etcd-clients-ca', usage: 'client', commonName: `etcd-manager-${identity.memberName}`, withSANs: false },
    { kind: 'manager', ca: `etcd-manager-ca-${etcdName}`, usage: 'peer', commonName: identity.memberName, withSANs: true },
  ];
  const caCache = new Map<string, { certPEM: string; keyPEM: string }>();
  const files = {} as ManagerTLS;
  // Decide first, then issue every certificate that needs it in one call (one child process).
  const toIssue: Array<{ want: Want; item: IssueItem; certFile: string; keyFile: string; reason: string }> = [];
  for (const want of wants) {
    let ca = caCache.get(want.ca);
    if (!ca) {
      const keyset = await loadKeyset(store, want.ca);
      if (!keyset) throw new Error(`CA ${want.ca} is missing from ${store.urlOf(`pki/private/${want.ca}/keyset.yaml`)}; run \`mooring update cluster --yes\``);
      ca = primaryKeypair(keyset);
      caCache.set(want.ca, ca);
    }
    const caFile = join(pkiDir, `${want.ca}.crt`);
    const certFile = join(pkiDir, `${want.kind}.crt`);
    const keyFile = join(pkiDir, `${want.kind}.key`);
    if ((await readIfExists(caFile)) !== ca.certPEM) await atomicWrite(caFile, ca.certPEM, 0o644);

    const dnsNames = want.withSANs ? [...new Set([...identity.dnsNames, 'localhost'])] : [];
    const ipAddresses = want.withSANs ? [...new Set([...identity.ipAddresses, '127.0.0.1'])] : [];
    const current = await readIfExists(certFile);
    const haveKey = (await readIfExists(keyFile)) !== undefined;
    let reason: string | undefined = current === undefined || !haveKey ? 'missing' : undefined;
    if (current !== undefined && !reason) {
      const decision = needsRenewal(current, {
        now: options.now,
        wantCN: want.commonName,
        wantDNS: dnsNames,
        wantIPs: ipAddresses,
        ...(options.renewBeforeMs !== undefined ? { renewBeforeFraction: 0 } : {}),
      });
      if (decision.renew) reason = decision.reason;
      else if (options.renewBeforeMs !== undefined && inspectCertificate(current).notAfter.getTime() - (options.now ?? new Date()).getTime() < options.renewBeforeMs) {
        reason = `less than ${Math.round(options.renewBeforeMs / 1000)} s left`;
      }
      else if (!(await verifyIssuedBy(current, ca.certPEM))) reason = `not issued by the current ${want.ca}`;
    }
    if (reason) {
      const request = { commonName: want.commonName, dnsNames, ipAddresses, usage: want.usage, validityDays: options.validityDays ?? CERT_VALIDITY_DAYS, ...(options.keyAlgorithm ? { keyAlgorithm: options.keyAlgorithm } : {}) };
      toIssue.push({ want, item: { ca, request }, certFile, keyFile, reason });
    }
    files[want.kind] = { certFile, keyFile, caFile };
  }
  const leaves = toIssue.length > 0 ? await (options.issue ?? issueInProcess)(toIssue.map((t) => t.item)) : [];
  const issued: string[] = [];
  for (const [i, { want, certFile, keyFile, reason }] of toIssue.entries()) {
    // Key first: the window where the pair mismatches costs one handshake at most.
    await atomicWrite(keyFile, leaves[i].keyPEM, 0o600);
    await atomicWrite(certFile, leaves[i].certPEM, 0o644);
    issued.push(want.kind);
    log.info('certificate issued', { event: 'tls.issued', cert: certFile, ca: want.ca, cn: want.commonName, reason });
  }
  return { files, issued };
}
