// Whether a leaf certificate on disk must be reissued. kOps' nodeup reissues on
// every run and etcd-manager never renews (certificates expiring after a year
// caused outages, kops#8959); here a certificate is kept until it nears expiry
// or no longer names what it should.
import { isIPv4, isIPv6 } from 'node:net';
import { inspectCertificate, type CertificateFacts } from './inspect.js';

export interface RenewalCheck {
  now?: Date;
  /** Renew once less than this fraction of the lifetime is left. Default 1/3. */
  renewBeforeFraction?: number;
  wantCN?: string;
  /** Compared as sets, case-insensitively. */
  wantDNS?: string[];
  /** Compared as sets of addresses (2001:db8::1 equals 2001:0db8:0:0:0:0:0:1). */
  wantIPs?: string[];
}

export interface RenewalDecision {
  renew: boolean;
  reason?: string;
}

const DEFAULT_RENEW_BEFORE_FRACTION = 1 / 3;

export function needsRenewal(certPEM: string, check: RenewalCheck = {}): RenewalDecision {
  let cert: CertificateFacts;
  try {
    cert = inspectCertificate(certPEM);
  } catch (err) {
    return { renew: true, reason: `certificate cannot be parsed: ${(err as Error).message}` };
  }
  const now = check.now ?? new Date();
  const fraction = check.renewBeforeFraction ?? DEFAULT_RENEW_BEFORE_FRACTION;
  const reasons: string[] = [];

  const lifetimeMs = cert.notAfter.getTime() - cert.notBefore.getTime();
  const remainingMs = cert.notAfter.getTime() - now.getTime();
  if (remainingMs <= 0) {
    reasons.push(`expired at ${cert.notAfter.toISOString()}`);
  } else if (now < cert.notBefore) {
    reasons.push(`not valid until ${cert.notBefore.toISOString()}`);
  } else if (remainingMs < lifetimeMs * fraction) {
    reasons.push(`expires at ${cert.notAfter.toISOString()}, less than ${formatFraction(fraction)} of its lifetime left`);
  }

  if (check.wantCN !== undefined && cert.subjectCN !== check.wantCN) {
    reasons.push(`common name is ${JSON.stringify(cert.subjectCN)}, want ${JSON.stringify(check.wantCN)}`);
  }
  if (check.wantDNS !== undefined) {
    const diff = setDifference(cert.dnsNames, check.wantDNS, (name) => name.toLowerCase().replace(/\.$/, ''));
    if (diff) reasons.push(`DNS names differ (${diff})`);
  }
  if (check.wantIPs !== undefined) {
    const diff = setDifference(cert.ipAddresses, check.wantIPs, canonicalIP);
    if (diff) reasons.push(`IP addresses differ (${diff})`);
  }

  return reasons.length > 0 ? { renew: true, reason: reasons.join('; ') } : { renew: false };
}

/** "missing a, b; unexpected c", or undefined when both sides hold the same set. */
function setDifference(have: string[], want: string[], canonical: (value: string) => string): string | undefined {
  const haveSet = new Set(have.map(canonical));
  const wantSet = new Set(want.map(canonical));
  const missing = want.filter((v) => !haveSet.has(canonical(v)));
  const extra = have.filter((v) => !wantSet.has(canonical(v)));
  const parts: string[] = [];
  if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`);
  if (extra.length > 0) parts.push(`unexpected ${extra.join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** One spelling per address: IPv4 as is, IPv6 as eight zero-padded lower-case groups. */
function canonicalIP(ip: string): string {
  if (isIPv4(ip) || !isIPv6(ip)) return ip;
  let text = ip.toLowerCase();
  // A trailing dotted quad (::ffff:10.0.0.1) is two groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    text = text.slice(0, dotted.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => group.padStart(4, '0')).join(':');
}

function formatFraction(fraction: number): string {
  const inverse = 1 / fraction;
  return Number.isInteger(inverse) ? `1/${inverse}` : `${Math.round(fraction * 100)}%`;
}
