// Name and version rules shared by validation and completion.

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A lowercase DNS label: a-z, 0-9 and inner '-', at most 63 characters. */
export function isDNSLabel(name: string): boolean {
  return name.length <= 63 && DNS_LABEL.test(name);
}

/** A lowercase DNS name (RFC 1123 subdomain): labels joined by '.', at most 253 characters. */
export function isDNSName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every(isDNSLabel);
}

export const DNS_NAME_RULE = "a lowercase DNS name: a-z, 0-9, '-' and '.'";

/** The letter(s) after the digit of an AWS-style zone (`us-east-1a` → `a`), as kOps names etcd members. */
export function zoneLetter(zone: string): string | undefined {
  return /\d([a-z]+)$/.exec(zone)?.[1];
}

/** Semantic version as kOps accepts it, `v` optional: 1.30.5, v1.31.0-rc.1. */
export const KUBERNETES_VERSION = /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;
