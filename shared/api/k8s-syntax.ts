// Kubernetes' own syntax for the values a spec hands to kubelet, the API
// server, etcd-manager and their environment files: label keys and values,
// taints, names, versions, IP addresses, endpoint and state-store URLs. Each
// check returns undefined when the value is fine, else the reason (for a
// SpecError naming the field). A value that passes contains no whitespace, no
// quote, no backslash, no '$' and no control character, so it cannot split into
// a second word or line wherever it is written.
import { isIP } from 'node:net';
import { isDNSName } from './names.js';

/** `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`: a label name, or a non-empty label value. */
const QUALIFIED_NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const NAME_PART_MAX = 63;
/** A DNS-1123 subdomain: lowercase labels joined by '.', at most 253 characters. */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SUBDOMAIN_MAX = 253;

export function isDNS1123Subdomain(value: string): boolean {
  return value.length <= SUBDOMAIN_MAX && DNS1123_SUBDOMAIN.test(value);
}

/** A label (or annotation, taint) key: `[prefix/]name`, prefix a DNS-1123 subdomain, name ≤ 63. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix === '' || !isDNS1123Subdomain(prefix))) {
    return `prefix ${JSON.stringify(prefix)} must be a lowercase DNS subdomain (a-z, 0-9, '-', '.'; at most ${SUBDOMAIN_MAX} characters)`;
  }
  if (name === '') return 'name part is empty';
  if (name.length > NAME_PART_MAX) return `name part is ${name.length} characters (at most ${NAME_PART_MAX})`;
  if (!QUALIFIED_NAME_PART.test(name)) {
    return "name part must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  }
  return undefined;
}

/** A label value: empty, or at most 63 of `[A-Za-z0-9-_.]`, starting and ending with a letter or digit. */
export function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > NAME_PART_MAX) return `${value.length} characters (at most ${NAME_PART_MAX})`;
  if (!QUALIFIED_NAME_PART.test(value)) {
    return "want letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  }
  return undefined;
}

export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;
export type TaintEffect = (typeof TAINT_EFFECTS)[number];
export interface Taint {
  key: string;
  value?: string;
  effect: TaintEffect;
}

/** kOps' taint syntax `key[=value]:Effect`; key and value as for labels. */
export function parseTaint(text: string): Taint | string {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return `no effect (want key[=value]:${TAINT_EFFECTS.join('|')})`;
  const effect = text.slice(colon + 1);
  if (!(TAINT_EFFECTS as readonly string[]).includes(effect)) return `unknown effect ${JSON.stringify(effect)} (want ${TAINT_EFFECTS.join(', ')})`;
  const keyValue = text.slice(0, colon);
  const eq = keyValue.indexOf('=');
  const key = eq < 0 ? keyValue : keyValue.slice(0, eq);
  const value = eq < 0 ? undefined : keyValue.slice(eq + 1);
  const keyProblem = labelKeyProblem(key);
  if (keyProblem) return `key ${JSON.stringify(key)}: ${keyProblem}`;
  const valueProblem = value === undefined ? undefined : labelValueProblem(value);
  if (valueProblem) return `value ${JSON.stringify(value)}: ${valueProblem}`;
  return { key, ...(value !== undefined ? { value } : {}), effect: effect as TaintEffect };
}

/**
 * What kOps accepts as a taint (pkg/apis/kops/util/taints.go): `key`, or
 * `key[=value]:effect` with any effect word. Key and value must still have
 * label syntax (they end up in kubelet's config); kubelet itself takes only
 * parseTaint's form, so `update` warns about the rest and leaves them out.
 */
export function parseKopsTaint(text: string): { key: string; value?: string; effect: string } | string {
  const parts = text.split(':');
  if (parts.length > 2) return `more than one ':' (want key[=value]:${TAINT_EFFECTS.join('|')})`;
  const [keyValue, effect = ''] = parts;
  if (!/^[A-Za-z]*$/.test(effect)) return `effect ${JSON.stringify(effect)}: want a word such as ${TAINT_EFFECTS.join(', ')}`;
  const kv = parts.length === 2 ? keyValue.split('=') : [keyValue];
  if (kv.length > 2) return `more than one '=' (want key[=value]:${TAINT_EFFECTS.join('|')})`;
  const [key, value] = kv;
  const keyProblem = labelKeyProblem(key);
  if (keyProblem) return `key ${JSON.stringify(key)}: ${keyProblem}`;
  const valueProblem = value === undefined ? undefined : labelValueProblem(value);
  if (valueProblem) return `value ${JSON.stringify(value)}: ${valueProblem}`;
  return { key, ...(value !== undefined ? { value } : {}), effect };
}

/** A host name: a lowercase DNS name. */
export function hostNameProblem(value: string): string | undefined {
  return isDNSName(value) ? undefined : "want a lowercase DNS name: a-z, 0-9, '-' and '.', labels of at most 63";
}

/** A name a component takes as a flag (e.g. --cluster-name): label characters, at most 253. */
export function flagNameProblem(value: string): string | undefined {
  if (value.length === 0 || value.length > SUBDOMAIN_MAX || !QUALIFIED_NAME_PART.test(value)) {
    return `want letters, digits, '-', '_' or '.', at most ${SUBDOMAIN_MAX} characters`;
  }
  return undefined;
}

/** A release version as components and asset names use it: 1.7.24, 3.5.9-rc.0. */
export function releaseVersionProblem(value: string): string | undefined {
  return /^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/.test(value) ? undefined : 'want a release version such as 1.7.24';
}

export function ipAddressProblem(value: string): string | undefined {
  return isIP(value) === 0 ? 'want an IPv4 or IPv6 address' : undefined;
}

export function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/** An environment variable name as systemd and the shell accept it. */
export function envNameProblem(value: string): string | undefined {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(value) ? undefined : "want letters, digits and '_', not starting with a digit";
}

/** Characters allowed in the URLs we hand on: RFC 3986's unreserved, reserved (less the ones shells and systemd care about) and '%'. */
const URL_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!&'()*+,;=%]*$/;
const SHELL_SENSITIVE = /[\s"'\\`$;,!*()&]/;

/**
 * An endpoint an API server dials: http(s)://host[:port], host a DNS name or an
 * IP address, no user, path, query or list separator.
 */
export function endpointURLProblem(value: string): string | undefined {
  const want = 'want https://host:port (a single URL; no spaces, commas or paths)';
  if (SHELL_SENSITIVE.test(value) || !URL_CHARS.test(value)) return want;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return want;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return want;
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return want;
  if (!/^[a-z]+:\/\/[^/]+\/?$/.test(value)) return want;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0 && !isDNSName(host)) return want;
  return undefined;
}

/**
 * kube-apiserver's --etcd-servers-overrides entry: `group/resource#url;url`
 * (`/events#https://127.0.0.1:4002` for the core group).
 */
export function etcdOverrideProblem(value: string): string | undefined {
  const m = /^([a-z0-9.-]*)\/([a-z0-9.-]+)#(.+)$/.exec(value);
  if (!m) return 'want group/resource#https://host:port[;https://host:port] (e.g. /events#https://127.0.0.1:4002)';
  for (const server of m[3].split(';')) {
    const problem = endpointURLProblem(server);
    if (problem) return `server ${JSON.stringify(server)}: ${problem}`;
  }
  return undefined;
}

export const STORE_SCHEMES = ['s3', 'file', 'memfs'] as const;

/** A state-store (or backup-store) URL: s3://bucket[/prefix], file:///absolute/dir, memfs://name. */
export function storeURLProblem(value: string): string | undefined {
  const want = 'want s3://bucket/prefix or file:///absolute/dir, without spaces or quotes';
  if (/[\s"'\\`$;,!*()&]/.test(value) || !URL_CHARS.test(value)) return want;
  const m = /^([a-z0-9]+):\/\/(.*)$/.exec(value);
  if (!m || !(STORE_SCHEMES as readonly string[]).includes(m[1])) return want;
  if (m[1] === 'file' && !m[2].startsWith('/')) return want;
  if (m[1] !== 'file' && !/^[A-Za-z0-9]/.test(m[2])) return want;
  return undefined;
}

/**
 * An asset mirror (spec.assets.fileRepository): http(s)://host[:port][/path]. Node configs list
 * assets as `sha256@url1,url2`, so a comma or blank would split one URL into several.
 */
export function mirrorURLProblem(value: string): string | undefined {
  const want = 'want http(s)://host[/path], without spaces, commas or quotes';
  if (SHELL_SENSITIVE.test(value) || !URL_CHARS.test(value) || /[?#]/.test(value)) return want;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return want;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password) return want;
  return undefined;
}
