// Renders the user-data script (bootstrap/userdata.sh.tmpl) and encodes it for
// the cloud. Every value is validated, then shell-quoted, so no input can
// change what the script does; texts (boot config, unit) go into quoted
// heredocs, where nothing is expanded.
import { gzipSync } from 'node:zlib';
import { ExitCode, UserError } from '../shared/errors.js';
import { readEmbeddedText } from './embedded-text.js';

export interface ProxySettings {
  http?: string;
  https?: string;
  noProxy?: string;
}

export interface UserDataInput {
  /** The boot config YAML, written byte for byte to /opt/mooring/conf/boot.yaml. */
  bootConfigYAML: string;
  /** Mirrors of the agent binary, tried in order each round. */
  agentURLs: string[];
  agentSHA256: string;
  /** Unit text; defaults to systemd/mooring-nodeup.service. */
  nodeupUnit?: string;
  /** Rounds over all mirrors before the script gives up. */
  maxAttempts?: number;
  /** Backoff between rounds: base doubles each round up to the cap, then jittered. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  proxy?: ProxySettings;
}

export const USER_DATA_DEFAULTS = {
  maxAttempts: 15,
  backoffBaseMs: 2_000,
  backoffCapMs: 60_000,
} as const;

const TEMPLATE_PATH = 'bootstrap/userdata.sh.tmpl';
const NODEUP_UNIT_PATH = 'systemd/mooring-nodeup.service';

export function renderUserData(input: UserDataInput): string {
  const maxAttempts = input.maxAttempts ?? USER_DATA_DEFAULTS.maxAttempts;
  const backoffBaseMs = input.backoffBaseMs ?? USER_DATA_DEFAULTS.backoffBaseMs;
  const backoffCapMs = input.backoffCapMs ?? Math.max(backoffBaseMs, USER_DATA_DEFAULTS.backoffCapMs);
  checkInteger('maxAttempts', maxAttempts, 1, 1000);
  checkInteger('backoffBaseMs', backoffBaseMs, 0, 3_600_000);
  checkInteger('backoffCapMs', backoffCapMs, backoffBaseMs, 3_600_000);
  const sha256 = checkSHA256(input.agentSHA256);
  const urls = checkAgentURLs(input.agentURLs);
  const proxy = checkProxy(input.proxy ?? {});
  checkNoSecrets(input.bootConfigYAML);
  const bootConfig = heredocBody('boot config', input.bootConfigYAML, 'MOORING_BOOT_CONFIG_EOF');
  const unit = heredocBody('nodeup unit', input.nodeupUnit ?? readEmbeddedText(NODEUP_UNIT_PATH), 'MOORING_NODEUP_UNIT_EOF');

  return fillTemplate(readEmbeddedText(TEMPLATE_PATH), {
    AGENT_URLS: urls.map(shellQuote).join(' '),
    AGENT_SHA256: shellQuote(sha256),
    MAX_ATTEMPTS: String(maxAttempts),
    BACKOFF_BASE_MS: String(backoffBaseMs),
    BACKOFF_CAP_MS: String(backoffCapMs),
    HTTP_PROXY: shellQuote(proxy.http ?? ''),
    HTTPS_PROXY: shellQuote(proxy.https ?? ''),
    NO_PROXY: shellQuote(proxy.noProxy ?? ''),
    BOOT_CONFIG_STRIP_FINAL_NEWLINE: bootConfig.addedNewline ? 'yes' : 'no',
    BOOT_CONFIG_YAML: bootConfig.body,
    BOOT_CONFIG_EOF: bootConfig.delimiter,
    NODEUP_UNIT: unit.body,
    NODEUP_UNIT_EOF: unit.delimiter,
  });
}

/** AWS counts user-data before its own base64 step; we keep what we hand over within it too. */
export const USER_DATA_LIMIT_BYTES = 16_384;

export interface EncodedUserData {
  body: string;
  encoding: 'plain' | 'gzip+base64';
}

/**
 * Plain when the script fits; otherwise gzip (cloud-init unpacks gzip
 * user-data itself) as base64, for callers such as EC2 RunInstances that take
 * base64. Both forms must fit in USER_DATA_LIMIT_BYTES.
 */
export function encodeUserData(script: string): EncodedUserData {
  const raw = Buffer.from(script, 'utf8');
  if (raw.length <= USER_DATA_LIMIT_BYTES) return { body: script, encoding: 'plain' };
  const body = gzipSync(raw, { level: 9 }).toString('base64');
  if (body.length > USER_DATA_LIMIT_BYTES) {
    throw new UserError(
      `user-data is too large: ${raw.length} bytes, ${body.length} bytes after gzip+base64, ` +
        `limit ${USER_DATA_LIMIT_BYTES}; move data out of the boot config into the state store`,
      ExitCode.InvalidSpec,
    );
  }
  return { body, encoding: 'gzip+base64' };
}

/** POSIX single-quoting: the only character to handle inside '...' is ' itself. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function fillTemplate(template: string, values: Record<string, string>): string {
  const unused = new Set(Object.keys(values));
  // One pass, so a value that happens to contain @@X@@ is never substituted again.
  const out = template.replace(/@@([A-Z0-9_]+)@@/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`${TEMPLATE_PATH}: unknown placeholder @@${name}@@`);
    unused.delete(name);
    return value;
  });
  if (unused.size > 0) throw new Error(`${TEMPLATE_PATH}: placeholders missing: ${[...unused].join(', ')}`);
  return out;
}

interface HeredocBody {
  body: string;
  delimiter: string;
  addedNewline: boolean;
}

/**
 * A quoted heredoc outputs its lines each followed by a newline. Drop the
 * text's own final newline (or record that the script must remove the one
 * bash adds), and pick a delimiter that no line of the text equals.
 */
function heredocBody(what: string, text: string, baseDelimiter: string): HeredocBody {
  if (text.includes('\0')) invalid(`${what} contains a NUL byte, which a shell script cannot carry`);
  const lines = new Set(text.split('\n'));
  let delimiter = baseDelimiter;
  for (let n = 1; lines.has(delimiter); n++) delimiter = `${baseDelimiter}_${n}`;
  const addedNewline = !text.endsWith('\n');
  return { body: addedNewline ? text : text.slice(0, -1), delimiter, addedNewline };
}

function checkSHA256(value: string): string {
  const sha = value.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha)) invalid(`agent sha256 "${value}" is not 64 hex digits`);
  return sha;
}

function checkAgentURLs(urls: string[]): string[] {
  if (urls.length === 0) invalid('no agent binary URL given');
  return urls.map((url) => checkURL('agent URL', url, ['http:', 'https:', 'file:']));
}

function checkURL(what: string, value: string, protocols: string[]): string {
  // Control characters would end a log line or a systemd setting early.
  if (value === '' || /[\s\x00-\x1f\x7f"\\]/.test(value)) invalid(`${what} "${value}" is empty or has whitespace, quotes or control characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return invalid(`${what} "${value}" is not a URL`);
  }
  if (!protocols.includes(url.protocol)) invalid(`${what} "${value}" must use ${protocols.join(' or ')}`);
  // User-data is readable by anything on the instance that can reach the metadata service.
  if (url.username !== '' || url.password !== '') invalid(`${what} "${url.host}" carries credentials; user-data must hold no secret`);
  return value;
}

function checkProxy(proxy: ProxySettings): ProxySettings {
  const checked: ProxySettings = {};
  if (proxy.http) checked.http = checkURL('http proxy', proxy.http, ['http:', 'https:']);
  if (proxy.https) checked.https = checkURL('https proxy', proxy.https, ['http:', 'https:']);
  if (proxy.noProxy) {
    // Host names, domains, IPs and CIDRs, comma-separated.
    if (!/^[A-Za-z0-9.\-_:/*[\],]+$/.test(proxy.noProxy)) invalid(`noProxy "${proxy.noProxy}" is not a comma-separated list of hosts`);
    checked.noProxy = proxy.noProxy;
  }
  return checked;
}

const SECRET_PATTERNS: { pattern: RegExp; what: string }[] = [
  { pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/, what: 'a private key' },
  { pattern: /^[ \t-]*["']?[\w.-]*(password|secret|token)[\w.-]*["']?[ \t]*:/im, what: 'a password, secret or token field' },
];

function checkNoSecrets(bootConfigYAML: string): void {
  for (const { pattern, what } of SECRET_PATTERNS) {
    if (pattern.test(bootConfigYAML)) invalid(`boot config holds ${what}; user-data must hold no secret (keep it in the state store)`);
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) invalid(`${name} must be an integer in [${min}, ${max}], got ${value}`);
}

function invalid(message: string): never {
  throw new UserError(`user-data: ${message}`, ExitCode.InvalidSpec);
}
