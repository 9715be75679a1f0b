// The manager's settings, typed and checked, from the parsed flags.
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { ExitCode, UserError } from '../../shared/errors.js';
import { parseDuration, type FlagName, type ParsedFlags } from './flags.js';

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
  discoveryPollIntervalMs: number;
  reconcileIntervalMs: number;
  unhealthyMemberTimeoutMs: number;
  etcdBinaryDir?: string;
  hostsFile: string;
  insecure: boolean;
  metricsPort: number;
  metricsAddress: string;
  logFormat: 'text' | 'json';
  verbosity: number;
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
  const clusterName = need('cluster-name');
  const backupStore = need('backup-store');
  const { stateStore, etcdName, cluster } = splitBackupStore(backupStore);
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
    backupIntervalMs: parseDuration(str('backup-interval')) ?? 0,
    discoveryPollIntervalMs: parseDuration(str('discovery-poll-interval')) ?? 0,
    reconcileIntervalMs: Math.max(parseDuration(str('reconcile-interval')) ?? 0, 100),
    unhealthyMemberTimeoutMs: parseDuration(str('unhealthy-member-timeout')) ?? 60_000,
    etcdBinaryDir: str('etcd-binary-dir') || undefined,
    hostsFile: str('hosts-file'),
    insecure: /^(true|1)$/i.test(str('insecure')),
    metricsPort: port('metrics-port'),
    metricsAddress: str('metrics-address'),
    logFormat,
    verbosity: Number(str('v')),
  };
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
