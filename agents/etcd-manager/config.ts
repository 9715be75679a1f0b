// The manager's settings, typed and checked, from the parsed flags.
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { ExitCode, UserError } from '../../shared/errors.js';
import { openStore } from '../../shared/store/index.js';
import { StoreError } from '../../shared/store/types.js';
import type { TestHooks } from './controller/types.js';
import { BackupKeyError, parseKeyMaterial } from './backup/encryption.js';
import type { RetentionPolicy } from './backup/retention.js';
import { parseAge, parseDuration, settingName, type FlagName, type ParsedFlags } from './flags.js';
import { parseTestHooks } from './test-hooks.js';

export type VolumeProviderName = 'local' | 'static' | 'aws';

export interface ManagerConfig {
  clusterName: string;
  backupStore: string;
  /** The cluster's state store (backup store minus /backups/etcd/<etcd>): CAs live there. */
  stateStore: string;
  /** main or events: the last segment of the backup store; names the CAs. */
  etcdName: string;
  dataDir?: string;
  address: string;
  peerURLs: string;
  clientURLs: string;
  quarantineClientURLs: string;
  grpcPort: number;
  dnsSuffix: string;
  volumeProvider: VolumeProviderName;
  volumeTags: string[];
  volumeNameTag: string;
  localVolumeDir: string;
  mountRoot: string;
  instanceId: string;
  /** local provider: the address comes from the instance metadata service. */
  instanceMetadata: boolean;
  pkiDir: string;
  backupIntervalMs: number;
  /** Encrypt backups with the key in this file (checked at start); else the state store secret, if any. */
  backupEncryptionKeyFile?: string;
  /** Which backups the retention pass keeps (kOps' rules by default). */
  retention: RetentionPolicy;
  /** Data replaced by a restore stays in the volume's trash this long. */
  trashRetentionMs: number;
  discoveryPollIntervalMs: number;
  reconcileIntervalMs: number;
  unhealthyMemberTimeoutMs: number;
  /** A store request that gets no byte for this long fails (see connectS3). */
  storeTimeoutMs: number;
  etcdBinaryDir?: string;
  hostsFile: string;
  insecure: boolean;
  metricsPort: number;
  metricsAddress: string;
  logFormat: 'text' | 'json';
  verbosity: number;
  /** Test-only behaviour (the hidden --test-hook flag); empty in production. */
  testHooks: TestHooks;
}

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

/** kOps' layout: <store>/<cluster>/backups/etcd/<etcd>. */
export function splitBackupStore(url: string): { stateStore: string; etcdName: string; cluster: string } {
  const trimmed = url.replace(/\/+$/, '');
  const m = /^(.*)\/([^/]+)\/backups\/etcd\/([A-Za-z0-9][A-Za-z0-9-]*)$/.exec(trimmed);
  if (!m) throw usage(`--backup-store ${url}: want <state-store>/<cluster>/backups/etcd/<main|events>`);
  return { stateStore: `${m[1]}/${m[2]}`, cluster: m[2], etcdName: m[3] };
}

/**
 * kOps names clusters etcd, etcd-events, etcd-<name>; the name becomes part of
 * the cluster token (a directory on the volume) and of the hosts-file markers,
 * so it may not hold a '/', a newline or be '.' or '..'.
 */
const CLUSTER_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/** The example port each URL flag's messages show. */
const URL_FLAGS = { 'peer-urls': 2380, 'client-urls': 4001, 'quarantine-client-urls': 3994 } as const;

/**
 * Why a URL template cannot be an etcd URL (scheme://host:port, nothing else), or
 * undefined when it can. Checked with __name__ and __address__ filled in, as used.
 */
function urlTemplateProblem(template: string, flag: keyof typeof URL_FLAGS): string | undefined {
  const example = `like https://__name__:${URL_FLAGS[flag]}`;
  const url = template.replace(/__name__/g, 'etcd-a.internal.example.com').replace(/__address__/g, '127.0.0.1');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `is not a URL ${example}`;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `must be http:// or https:// (${example})`;
  if (parsed.hostname === '') return `names no host (${example})`;
  // URL drops a scheme's default port (https://h:443 has port ''), so look at what was written.
  if (!/^https?:\/\/[^/?#@]+:\d+\/?$/i.test(url)) {
    return /^https?:\/\/[^/?#@]+:\d+./i.test(url) || parsed.username !== '' ? `must have no path, query or user: etcd takes scheme://host:port (${example})` : `needs a port (${example})`;
  }
  return undefined;
}

export function resolveConfig(flags: ParsedFlags): ManagerConfig {
  const str = (name: FlagName): string => {
    const v = flags.values.get(name);
    return typeof v === 'string' ? v : '';
  };
  const need = (name: FlagName): string => {
    const v = str(name);
    if (v === '') throw usage(`--${name} is required (or ETCD_MANAGER_${name.toUpperCase().replace(/-/g, '_')})`);
    return v;
  };
  const where = (name: FlagName): string => settingName(name, flags.sources.get(name));
  const duration = (name: FlagName): number => {
    const ms = parseDuration(str(name));
    if (ms === undefined) throw usage(`${where(name)}: not a duration`); // parseFlags checked it; kept for the type
    return ms;
  };
  const clusterName = need('cluster-name');
  if (!CLUSTER_NAME.test(clusterName)) {
    throw usage(`${where('cluster-name')}: ${JSON.stringify(clusterName)} is not a name: want up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (kOps: etcd, etcd-events)`);
  }
  const backupStore = need('backup-store');
  const { stateStore, etcdName, cluster } = splitBackupStore(backupStore);
  // Opening a store only parses its URL (no I/O): a URL no backend takes is refused now, not at first use.
  for (const url of [backupStore, stateStore]) {
    try {
      openStore(url);
    } catch (err) {
      if (err instanceof StoreError) throw usage(`${where('backup-store')}: ${err.message}`);
      throw err;
    }
  }
  for (const flag of Object.keys(URL_FLAGS) as Array<keyof typeof URL_FLAGS>) {
    const templates = str(flag).split(',').map((u) => u.trim()).filter((u) => u !== '');
    if (templates.length === 0) throw usage(`${where(flag)}: no URL given`);
    for (const template of templates) {
      const problem = urlTemplateProblem(template, flag);
      if (problem) throw usage(`${where(flag)}: ${JSON.stringify(template)} ${problem}`);
    }
  }
  const address = str('address');
  if (address !== '' && isIP(address) === 0) throw usage(`--address ${JSON.stringify(address)} is not an IP address`);
  const provider = str('volume-provider');
  if (provider !== 'local' && provider !== 'static' && provider !== 'aws') {
    throw usage(`--volume-provider ${JSON.stringify(provider)}: want local, static or aws`);
  }
  const dataDir = str('data-dir') || undefined;
  if (provider === 'static' && !dataDir) throw usage('--volume-provider=static needs --data-dir');
  const logFormat = str('log-format');
  if (logFormat !== 'text' && logFormat !== 'json') throw usage(`--log-format ${JSON.stringify(logFormat)}: want text or json`);
  const age = (name: FlagName): number => {
    const ms = parseAge(str(name));
    if (ms === undefined) throw usage(`${where(name)}: not a duration`); // parseFlags checked it; kept for the type
    return ms;
  };
  const retention: RetentionPolicy = { keepAllForMs: age('all-backups-retention'), hourlyForMs: age('hourly-backups-retention'), dailyForMs: age('daily-backups-retention') };
  if (retention.hourlyForMs < retention.keepAllForMs) throw usage(`${where('hourly-backups-retention')} (${str('hourly-backups-retention')}) is shorter than ${where('all-backups-retention')} (${str('all-backups-retention')}): the hourly band must not end before the keep-all band`);
  if (retention.dailyForMs < retention.hourlyForMs) throw usage(`${where('daily-backups-retention')} (${str('daily-backups-retention')}) is shorter than ${where('hourly-backups-retention')} (${str('hourly-backups-retention')}): the daily band must not end before the hourly band`);
  const keyFile = str('backup-encryption-key-file') || undefined;
  if (keyFile) checkKeyFile(keyFile, where('backup-encryption-key-file'));
  const port = (name: FlagName): number => {
    const n = Number(str(name));
    if (n > 65535) throw usage(`--${name} ${n} is not a port`);
    return n;
  };
  return {
    clusterName,
    backupStore,
    stateStore,
    etcdName,
    dataDir,
    address,
    peerURLs: str('peer-urls'),
    clientURLs: str('client-urls'),
    quarantineClientURLs: str('quarantine-client-urls'),
    grpcPort: port('grpc-port'),
    dnsSuffix: str('dns-suffix') || cluster,
    volumeProvider: provider,
    volumeTags: (flags.values.get('volume-tag') as string[] | undefined) ?? [],
    volumeNameTag: str('volume-name-tag'),
    localVolumeDir: str('local-volume-dir'),
    mountRoot: str('mount-root'),
    instanceId: str('instance-id') || hostname(),
    instanceMetadata: /^(true|1)$/i.test(str('instance-metadata')),
    pkiDir: str('pki-dir'),
    // Each within its flag's range (flags.ts), so every one is a valid Node timer.
    backupIntervalMs: duration('backup-interval'),
    ...(keyFile ? { backupEncryptionKeyFile: keyFile } : {}),
    retention,
    trashRetentionMs: age('trash-retention'),
    discoveryPollIntervalMs: duration('discovery-poll-interval'),
    reconcileIntervalMs: duration('reconcile-interval'),
    unhealthyMemberTimeoutMs: duration('unhealthy-member-timeout'),
    storeTimeoutMs: duration('store-timeout'),
    etcdBinaryDir: str('etcd-binary-dir') || undefined,
    hostsFile: str('hosts-file'),
    insecure: /^(true|1)$/i.test(str('insecure')),
    metricsPort: port('metrics-port'),
    metricsAddress: str('metrics-address'),
    logFormat,
    verbosity: Number(str('v')),
    testHooks: parseTestHooks((flags.values.get('test-hook') as string[] | undefined) ?? []),
  };
}

/**
 * The key file is checked at start (readable, 0600 or stricter, an AES-256 key)
 * so a bad one stops the manager before anything runs; it is read again at
 * every backup and restore, so replacing the file needs no restart.
 */
function checkKeyFile(path: string, flag: string): void {
  try {
    const info = statSync(path);
    if ((info.mode & 0o077) !== 0) throw new BackupKeyError(`${path}: the backup encryption key file is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
    parseKeyMaterial(readFileSync(path), path);
  } catch (err) {
    if (err instanceof BackupKeyError) throw usage(`${flag}: ${err.message}`);
    throw usage(`${flag}: ${path}: cannot read the backup encryption key file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A member's DNS name, as kOps writes it into /etc/hosts. */
export function memberDNSName(member: string, dnsSuffix: string): string {
  return `etcd-${member}.internal.${dnsSuffix}`;
}

/** Expands __name__ and __address__ in a comma-separated URL list. */
export function expandURLs(template: string, dnsName: string, address: string): string[] {
  return template
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
    .map((u) => u.replace(/__name__/g, dnsName).replace(/__address__/g, address));
}
