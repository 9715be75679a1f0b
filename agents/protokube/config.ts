// protokube's settings, typed and checked, from the parsed flags. What can
// only be known on the instance (its address and zone on AWS) is found at
// start (identity.ts); everything else is checked here, before anything runs.
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { ExitCode, UserError } from '../../shared/errors.js';
import { hostNameProblem, parseTaint, storeURLProblem, type Taint } from '../../shared/api/k8s-syntax.js';
import { isDNSName } from '../../shared/api/names.js';
import { parseDuration, settingName, type FlagName, type ParsedFlags } from './flags.js';

export interface ProtokubeConfig {
  cluster: string;
  configBase: string;
  masterInternalName: string;
  namesOnly: boolean;
  cloud: string;
  /** Given by flag; else found at start (identity.ts). */
  address?: string;
  instanceName: string;
  zone?: string;
  seedAddresses: string[];
  hostsFile: string;
  pollIntervalMs: number;
  registrationTTLms: number;
  channels: string[];
  syncIntervalMs: number;
  kubeconfig: string;
  nodeName: string;
  nodeTaints: Taint[];
  statusFile: string;
  statusAddress: string;
  statusPort: number;
  storeTimeoutMs: number;
  logFormat: 'json' | 'text';
  verbosity: number;
}

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

/** A name that becomes part of a store key: no '/', '@' or blanks. */
const REGISTRATION_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export function registrationPartProblem(value: string): string | undefined {
  return REGISTRATION_PART.test(value) ? undefined : 'want letters, digits, ".", "_" or "-" (at most 253, starting with a letter or digit)';
}

/** The default channel of a cluster: kOps' bootstrap channel in its state-store folder. */
export function defaultChannel(configBase: string): string {
  return `${configBase.replace(/\/+$/, '')}/addons/bootstrap-channel.yaml`;
}

/** A channel location protokube can read: a state store URL, an http(s) URL or a path (relative ones only by hand: `channels apply`). */
export function channelLocationProblem(value: string, options: { relative?: boolean } = {}): string | undefined {
  if (value.startsWith('/')) return undefined;
  if (options.relative && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value) && value !== '') return undefined;
  if (/^https?:\/\//.test(value)) {
    try {
      new URL(value);
      return undefined;
    } catch {
      return 'not a valid URL';
    }
  }
  return storeURLProblem(value) === undefined ? undefined : 'want an s3://, file://, memfs://, http(s):// URL or an absolute path';
}

export function resolveConfig(flags: ParsedFlags, options: { requireCluster?: boolean } = {}): ProtokubeConfig {
  const requireCluster = options.requireCluster ?? true;
  const str = (name: FlagName) => (flags.values.get(name) as string | undefined) ?? '';
  const list = (name: FlagName) => (flags.values.get(name) as string[] | undefined) ?? [];
  const where = (name: FlagName) => settingName(name, flags.sources.get(name));
  const ms = (name: FlagName) => parseDuration(str(name)) as number;

  const cluster = str('cluster');
  const configBase = str('config-base').replace(/\/+$/, '');
  if (requireCluster) {
    if (cluster === '') throw usage(`${where('cluster')} is required (the cluster's name)`);
    if (configBase === '') throw usage(`${where('config-base')} is required (the cluster's folder in the state store)`);
  }
  if (cluster !== '' && !isDNSName(cluster)) throw usage(`${where('cluster')}: ${JSON.stringify(cluster)} is not a lowercase DNS name`);
  if (configBase !== '') {
    const problem = storeURLProblem(configBase);
    if (problem) throw usage(`${where('config-base')}: ${JSON.stringify(configBase)}: ${problem}`);
  }
  const masterInternalName = str('master-internal-name') || (cluster === '' ? '' : `api.internal.${cluster}`);
  if (masterInternalName !== '' && !isDNSName(masterInternalName)) {
    throw usage(`${where('master-internal-name')}: ${JSON.stringify(masterInternalName)} is not a lowercase DNS name`);
  }
  const address = str('address');
  if (address !== '' && isIP(address) === 0) throw usage(`${where('address')}: ${JSON.stringify(address)} is not an IP address`);
  const seedAddresses = list('seed-address');
  for (const seed of seedAddresses) if (isIP(seed) === 0) throw usage(`${where('seed-address')}: ${JSON.stringify(seed)} is not an IP address`);
  const instanceName = str('instance-name') || hostname();
  const nameProblem = registrationPartProblem(instanceName);
  if (nameProblem) throw usage(`${where('instance-name')}: ${JSON.stringify(instanceName)}: ${nameProblem}${str('instance-name') === '' ? ' (it is the host name; set --instance-name)' : ''}`);
  const zone = str('zone');
  if (zone !== '' && registrationPartProblem(zone)) throw usage(`${where('zone')}: ${JSON.stringify(zone)}: ${registrationPartProblem(zone)}`);
  const cloud = str('cloud');
  if (!['', 'aws', 'local', 'gce', 'openstack', 'metal'].includes(cloud)) throw usage(`${where('cloud')}: ${JSON.stringify(cloud)} is not a cloud protokube knows (aws, local, or empty)`);

  const pollIntervalMs = ms('poll-interval');
  const registrationTTLms = ms('registration-ttl');
  if (registrationTTLms <= pollIntervalMs) {
    throw usage(`${where('registration-ttl')} (${str('registration-ttl')}) must be longer than ${where('poll-interval')} (${str('poll-interval')}), or live instances would drop out between polls`);
  }

  const channels = list('channel');
  for (const channel of channels) {
    const problem = channelLocationProblem(channel);
    if (problem) throw usage(`${where('channel')}: ${JSON.stringify(channel)}: ${problem}`);
  }
  const nodeName = str('node-name') || hostname();
  const nodeProblem = hostNameProblem(nodeName);
  if (nodeProblem) throw usage(`${where('node-name')}: ${JSON.stringify(nodeName)}: ${nodeProblem}`);
  const nodeTaints = list('node-taint').map((text) => {
    const taint = parseTaint(text);
    if (typeof taint === 'string') throw usage(`${where('node-taint')}: ${JSON.stringify(text)}: ${taint}`);
    return taint;
  });
  const statusAddress = str('status-address');
  if (isIP(statusAddress) === 0) throw usage(`${where('status-address')}: ${JSON.stringify(statusAddress)} is not an IP address`);
  const statusPort = Number(str('status-port'));
  if (statusPort > 65535) throw usage(`${where('status-port')}: ${statusPort} is not a port (0 to 65535)`);
  const logFormat = str('log-format');
  if (logFormat !== 'json' && logFormat !== 'text') throw usage(`${where('log-format')}: ${JSON.stringify(logFormat)}: want json or text`);
  const output = str('output');
  if (output !== 'text' && output !== 'json') throw usage(`${where('output')}: ${JSON.stringify(output)}: want text or json`);

  return {
    cluster,
    configBase,
    masterInternalName,
    namesOnly: /^(true|1)$/i.test(str('names-only')),
    cloud,
    ...(address !== '' ? { address } : {}),
    instanceName,
    ...(zone !== '' ? { zone } : {}),
    seedAddresses,
    hostsFile: str('hosts-file'),
    pollIntervalMs,
    registrationTTLms,
    channels: channels.length > 0 || configBase === '' ? channels : [defaultChannel(configBase)],
    syncIntervalMs: ms('sync-interval'),
    kubeconfig: str('kubeconfig'),
    nodeName,
    nodeTaints,
    statusFile: str('status-file'),
    statusAddress,
    statusPort,
    storeTimeoutMs: ms('store-timeout'),
    logFormat,
    verbosity: Number(str('v')),
  };
}
