// Reading certificates and keys with Node's own X.509 (OpenSSL): what the
// checks a long-running agent repeats need (renewal, issuer, key format).
// Issuing goes through @peculiar/x509 (x509.ts), which holds ~6 MiB resident
// for the rest of the life of any process that loads it (bench/heap-by-module.ts),
// so the checks must not import it: etcd-manager issues in a short-lived child
// (issue-batch.ts) and only reads certificates itself.
import { createPrivateKey, X509Certificate } from 'node:crypto';

/** What the renewal checks read from a certificate. */
export interface CertificateFacts {
  subjectCN: string;
  dnsNames: string[];
  /** IPv6 in its short form (2001:db8::1), as certificates are requested and messages name them. */
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
}

export function inspectCertificate(pem: string): CertificateFacts {
  const cert = new X509Certificate(pem);
  // The legacy object gives each subject attribute by name: a string, or an array when repeated.
  const cn: unknown = (cert.toLegacyObject().subject as unknown as Record<string, unknown>).CN;
  const sans = parseSubjectAltName(cert.subjectAltName ?? '');
  return {
    subjectCN: typeof cn === 'string' ? cn : Array.isArray(cn) && typeof cn[0] === 'string' ? cn[0] : '',
    dnsNames: sans.filter((s) => s.type === 'DNS').map((s) => s.value),
    ipAddresses: sans.filter((s) => s.type === 'IP Address').map((s) => shortIP(s.value)),
    notBefore: certificateTime(cert.validFrom, 'notBefore'),
    notAfter: certificateTime(cert.validTo, 'notAfter'),
  };
}

/** OpenSSL prints IPv6 as eight upper-case groups; the URL parser writes the short form (RFC 5952). */
function shortIP(ip: string): string {
  return ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

/** "Nov 28 17:52:13 2026 GMT", as OpenSSL prints a validity bound. */
function certificateTime(text: string, field: string): Date {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new Error(`certificate ${field} ${JSON.stringify(text)} is not a time`);
  return date;
}

/**
 * Node's subjectAltName: "DNS:a, IP Address:127.0.0.1", entries joined by ", "; a
 * value holding a comma, quote or other special character is a JSON string
 * ("DNS:\"a,b\""), so a name can never be split in two or run into the next.
 */
export function parseSubjectAltName(text: string): Array<{ type: string; value: string }> {
  const entries: Array<{ type: string; value: string }> = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(':', at);
    if (colon < 0) throw new Error(`subjectAltName ${JSON.stringify(text)}: no type at ${at}`);
    const type = text.slice(at, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (end >= text.length) throw new Error(`subjectAltName ${JSON.stringify(text)}: unterminated quoted value`);
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      end += 1;
    } else {
      const comma = text.indexOf(', ', colon + 1);
      end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    entries.push({ type, value });
    if (end < text.length && text.slice(end, end + 2) !== ', ') throw new Error(`subjectAltName ${JSON.stringify(text)}: expected ", " at ${end}`);
    at = end + 2;
  }
  return entries;
}

/** True when caCertPEM's subject and key identifiers match certPEM's issuer and its key signed certPEM. */
export async function verifyIssuedBy(certPEM: string, caCertPEM: string): Promise<boolean> {
  // OpenSSL (through Node) does the name/key-id match and the signature check.
  const cert = new X509Certificate(certPEM);
  const ca = new X509Certificate(caCertPEM);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/** Any PEM private key Node can read (PKCS#1 from kOps, SEC1, PKCS#8) as PKCS#8 PEM. */
export function toPKCS8PEM(keyPEM: string): string {
  return createPrivateKey(keyPEM).export({ type: 'pkcs8', format: 'pem' }).toString();
}
