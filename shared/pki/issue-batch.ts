// Issuing leaf certificates, in this process or in a short-lived child of the
// single binary. @peculiar/x509, which issuing needs, stays resident for the
// rest of the life of the process that loads it (inspect.ts); a long-running
// agent that issues a few certificates at its start and once in a long while
// after does it in `mooring-agents __issue-certificates` instead, which
// reads the CA and the requests as JSON on its stdin and answers on its
// stdout: the CA's private key never shows in an argument list or an
// environment. The child runs the same code the in-process issuer does.
import type { CertificateAndKey, IssueRequest } from './x509.js';

export interface IssueItem {
  ca: CertificateAndKey;
  request: IssueRequest;
}

/** Issues every item (in order); the answer's i-th pair is the i-th item's certificate and key. */
export type IssueCertificates = (items: IssueItem[]) => Promise<CertificateAndKey[]>;

/** The dispatcher's name for the child (scripts/multicall-entry.ts). */
export const ISSUE_HELPER = '__issue-certificates';
const ISSUE_TIMEOUT_MS = 120_000;

export const issueInProcess: IssueCertificates = async (items) => {
  const { issueCertificate } = await import('./x509.js');
  const issued: CertificateAndKey[] = [];
  for (const item of items) issued.push(await issueCertificate(item.ca, item.request));
  return issued;
};

/** Issues in `binary __issue-certificates`; `binary` is the single executable. */
export function issueInChild(binary: string): IssueCertificates {
  return async (items) => {
    if (items.length === 0) return [];
    const { execa } = await import('execa');
    // argv0 names the dispatcher, which then picks the helper by its first argument. The child
    // needs nothing of this process's environment (AWS credentials included): PATH only.
    const result = await execa(binary, [ISSUE_HELPER], {
      argv0: 'mooring-agents', input: JSON.stringify({ items }), timeout: ISSUE_TIMEOUT_MS, reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '' },
    });
    if (result.exitCode !== 0 || result.failed) {
      const why = result.timedOut ? `timed out after ${ISSUE_TIMEOUT_MS / 1000} s` : String(result.stderr).trim().split('\n').at(-1) || `exit ${String(result.exitCode ?? result.signal)}`;
      throw new Error(`issuing ${items.length} certificate(s) in a child (${binary} ${ISSUE_HELPER}) failed: ${why.replace(`mooring-agents ${ISSUE_HELPER}: `, '')}`);
    }
    return parseIssued(String(result.stdout), items.length);
  };
}

/** In a child when this process is the single binary, else here (from source, in tests). */
export function defaultIssuer(isSingleBinary: boolean): IssueCertificates {
  return isSingleBinary ? issueInChild(process.execPath) : issueInProcess;
}

function parseIssued(stdout: string, count: number): CertificateAndKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new Error(`${ISSUE_HELPER} answered something that is not JSON (${stdout.length} bytes)`);
  }
  const issued = (doc as { issued?: unknown }).issued;
  if (!Array.isArray(issued) || issued.length !== count || !issued.every(isPair)) throw new Error(`${ISSUE_HELPER} answered without ${count} certificate and key pair(s)`);
  return issued;
}

export function isPair(value: unknown): value is CertificateAndKey {
  const v = value as Partial<CertificateAndKey> | null;
  return typeof v?.certPEM === 'string' && typeof v.keyPEM === 'string';
}
