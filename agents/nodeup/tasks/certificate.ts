// Certificate and Kubeconfig: issued from the state-store CA and kept while
// they are valid. Reissued only when close to expiry, when the wanted subject
// or SANs differ, when the CA changed, or when the key no longer matches
// (kOps' nodeup reissues on every run). Private keys are never shown in a plan.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import YAML from 'yaml';
import { needsRenewal } from '../../../shared/pki/renewal.js';
import { issueCertificate, parseCertificate, verifyIssuedBy, type CertificateUsage } from '../../../shared/pki/x509.js';
import type { Keypair } from '../../../shared/pki/keyset.js';
import { planFrom, TaskError, type FieldChange, type Plan, type Task, type TaskContext } from '../engine/task.js';

/** Loads a CA keypair by keyset name (from the state store; cached per run). */
export type CASource = (keyset: string) => Promise<Keypair>;

export interface CertRequest {
  ca: string;
  commonName: string;
  organization?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: CertificateUsage;
  validityDays?: number;
}

const DEFAULT_VALIDITY_DAYS = 365;

/** Why the certificate must be (re)issued, or undefined when it can stay. */
export async function certificateProblem(certPEM: string | undefined, keyPEM: string | undefined, caCertPEM: string, req: CertRequest): Promise<string | undefined> {
  if (certPEM === undefined) return 'no certificate yet';
  if (keyPEM === undefined) return 'no private key';
  const renewal = needsRenewal(certPEM, { wantCN: req.commonName, wantDNS: req.dnsNames ?? [], wantIPs: req.ipAddresses ?? [] });
  if (renewal.renew) return renewal.reason;
  try {
    if (!new X509Certificate(certPEM).checkPrivateKey(createPrivateKey(keyPEM))) return 'private key does not match the certificate';
  } catch (err) {
    return `private key unreadable: ${(err as Error).message}`;
  }
  if (!(await verifyIssuedBy(certPEM, caCertPEM))) return `not issued by the current ${req.ca}`;
  return undefined;
}

function summary(certPEM: string): string {
  const c = parseCertificate(certPEM);
  return `CN=${c.subjectCN} SANs=[${[...c.dnsNames, ...c.ipAddresses].join(',')}] until ${c.notAfter.toISOString()}`;
}

function wanted(req: CertRequest): string {
  return `CN=${req.commonName} SANs=[${[...(req.dnsNames ?? []), ...(req.ipAddresses ?? [])].join(',')}] by ${req.ca}`;
}

async function issue(ca: CASource, req: CertRequest): Promise<{ certPEM: string; keyPEM: string }> {
  return issueCertificate(await ca(req.ca), {
    commonName: req.commonName,
    ...(req.organization ? { organization: req.organization } : {}),
    dnsNames: req.dnsNames ?? [],
    ipAddresses: req.ipAddresses ?? [],
    usage: req.usage,
    validityDays: req.validityDays ?? DEFAULT_VALIDITY_DAYS,
  });
}

export class CertificateTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  readonly secret = true;
  readonly paths: readonly string[];
  constructor(readonly certPath: string, readonly keyPath: string, readonly req: CertRequest, private readonly ca: CASource) {
    this.id = `Certificate:${certPath}`;
    this.paths = [certPath, keyPath];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const cert = (await ctx.fs.readCurrent(this.certPath))?.toString('utf8');
    const key = (await ctx.fs.readCurrent(this.keyPath))?.toString('utf8');
    const caPair = await this.ca(this.req.ca);
    const problem = await certificateProblem(cert, key, caPair.certPEM, this.req);
    if (!problem) return planFrom(true, []);
    const change: FieldChange = { field: 'certificate', ...(cert ? { old: safeSummary(cert) } : {}), new: `issue ${wanted(this.req)} (${problem})` };
    return planFrom(cert !== undefined, [change]);
  }

  async apply(ctx: TaskContext): Promise<void> {
    try {
      const issued = await issue(this.ca, this.req);
      // Key first: a crash in between leaves a mismatched pair, which the next run reissues.
      await ctx.fs.writeFileAtomic(this.keyPath, issued.keyPEM, { mode: 0o600, uid: 0, gid: 0 });
      await ctx.fs.writeFileAtomic(this.certPath, issued.certPEM, { mode: 0o644, uid: 0, gid: 0 });
    } catch (err) {
      throw new TaskError(this.id, (err as Error).message, { cause: err });
    }
  }
}

function safeSummary(certPEM: string): string {
  try {
    return summary(certPEM);
  } catch {
    return '(unparseable certificate)';
  }
}

interface KubeconfigFields {
  server?: string;
  caData?: string;
  certData?: string;
  keyData?: string;
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
function unb64(text: string | undefined): string | undefined {
  return text === undefined ? undefined : Buffer.from(text, 'base64').toString('utf8');
}

export function renderKubeconfig(name: string, server: string, caPEM: string, certPEM: string, keyPEM: string): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': b64(caPEM) } }],
    users: [{ name, user: { 'client-certificate-data': b64(certPEM), 'client-key-data': b64(keyPEM) } }],
    contexts: [{ name: 'service-account-context', context: { cluster: 'local', user: name } }],
    'current-context': 'service-account-context',
  });
}

function readKubeconfig(text: string | undefined): KubeconfigFields | undefined {
  if (text === undefined) return undefined;
  try {
    const doc = YAML.parse(text) as {
      clusters?: Array<{ cluster?: Record<string, string> }>;
      users?: Array<{ user?: Record<string, string> }>;
    };
    const cluster = doc.clusters?.[0]?.cluster ?? {};
    const user = doc.users?.[0]?.user ?? {};
    return {
      server: cluster.server,
      caData: unb64(cluster['certificate-authority-data']),
      certData: unb64(user['client-certificate-data']),
      keyData: unb64(user['client-key-data']),
    };
  } catch {
    return {};
  }
}

export interface KubeconfigSpec {
  path: string;
  server: string;
  /** kubeconfig user name, e.g. kubelet. */
  user: string;
}

/** Where a kubeconfig's client certificate and key come from. */
export interface ClientCredentials {
  /** The CA keyset the kubeconfig trusts (certificate-authority-data). */
  caName: string;
  caCertPEM(): Promise<string>;
  /** Why the pair on disk must be replaced, or undefined when it can stay. */
  problem(certPEM: string | undefined, keyPEM: string | undefined): Promise<string | undefined>;
  /** What replaces it, for the plan. */
  wanted(): Promise<string>;
  obtain(): Promise<{ certPEM: string; keyPEM: string }>;
}

/** Issues the client certificate on the node from the CA's private key (control plane only). */
export function issuedClientCredentials(ca: CASource, req: CertRequest): ClientCredentials {
  const caCertPEM = async (): Promise<string> => (await ca(req.ca)).certPEM;
  return {
    caName: req.ca,
    caCertPEM,
    problem: async (cert, key) => certificateProblem(cert, key, await caCertPEM(), req),
    wanted: async () => `issue ${wanted(req)}`,
    obtain: () => issue(ca, req),
  };
}

/** Loads a pre-issued client keypair by keyset name (its private keyset only). */
export type KeypairSource = (keyset: string) => Promise<Keypair>;

/**
 * Uses a keypair `mooring update cluster` issued into the state store (keysets
 * kubelet, kube-proxy): the node needs the CA's certificate, never its key.
 */
export function keypairClientCredentials(keyset: string, keypairs: KeypairSource, caName: string, caCertPEM: string): ClientCredentials {
  return {
    caName,
    caCertPEM: async () => caCertPEM,
    async problem(cert, key) {
      if (cert === undefined) return 'no certificate yet';
      if (key === undefined) return 'no private key';
      const pair = await keypairs(keyset);
      if (cert !== pair.certPEM || key !== pair.keyPEM) return `not keypair ${pair.id} of keyset ${keyset}`;
      return undefined;
    },
    async wanted() {
      const pair = await keypairs(keyset);
      return `keyset ${keyset} keypair ${pair.id} (${safeSummary(pair.certPEM)})`;
    },
    async obtain() {
      const pair = await keypairs(keyset);
      return { certPEM: pair.certPEM, keyPEM: pair.keyPEM };
    },
  };
}

export class KubeconfigTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  readonly secret = true;
  readonly paths: readonly string[];
  constructor(readonly spec: KubeconfigSpec, private readonly credentials: ClientCredentials) {
    this.id = `Kubeconfig:${spec.path}`;
    this.paths = [spec.path];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const current = readKubeconfig((await ctx.fs.readCurrent(this.spec.path))?.toString('utf8'));
    const caCertPEM = await this.credentials.caCertPEM();
    const changes: FieldChange[] = [];
    if (current?.server !== this.spec.server) changes.push({ field: 'server', ...(current?.server ? { old: current.server } : {}), new: this.spec.server });
    if (current?.caData !== caCertPEM) changes.push({ field: 'certificate-authority', ...(current?.caData ? { old: '(other CA)' } : {}), new: this.credentials.caName });
    const problem = await this.credentials.problem(current?.certData, current?.keyData);
    if (problem) changes.push({ field: 'client-certificate', ...(current?.certData ? { old: safeSummary(current.certData) } : {}), new: `${await this.credentials.wanted()} (${problem})` });
    return planFrom(current !== undefined, changes);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    try {
      const current = readKubeconfig((await ctx.fs.readCurrent(this.spec.path))?.toString('utf8'));
      const caCertPEM = await this.credentials.caCertPEM();
      const replace = plan.changes.some((c) => c.field === 'client-certificate') || !current?.certData || !current.keyData;
      const pair = replace ? await this.credentials.obtain() : { certPEM: current.certData as string, keyPEM: current.keyData as string };
      const text = renderKubeconfig(this.spec.user, this.spec.server, caCertPEM, pair.certPEM, pair.keyPEM);
      await ctx.fs.writeFileAtomic(this.spec.path, text, { mode: 0o600, uid: 0, gid: 0 });
    } catch (err) {
      throw new TaskError(this.id, (err as Error).message, { cause: err });
    }
  }
}
