// protokube's flags (the shared table-driven parser, shared/flags.ts). Every
// flag can also come from the environment as PROTOKUBE_<FLAG>: that is how
// the unit nodeup writes passes them (EnvironmentFile=/etc/sysconfig/protokube).
// A PROTOKUBE_* name that is no flag's is refused, so a typo cannot pass.
import { createFlagParser, type FlagDef, type FlagSource, type ParsedFlags as SharedParsedFlags } from '../../shared/flags.js';

export { parseDuration } from '../../shared/flags.js';

/** The flags, in help order. */
export const FLAGS = [
  { name: 'cluster', kind: 'string', help: 'the cluster\'s name (required to run)' },
  { name: 'config-base', kind: 'string', help: 'the cluster\'s folder in the state store, <store>/<cluster> (file://, s3://, memfs://; required to run)' },
  { name: 'master-internal-name', kind: 'string', default: '', help: 'the API server\'s internal name kept in the hosts file (default api.internal.<cluster>)' },
  { name: 'names-only', kind: 'bool', default: 'false', help: 'worker mode: only follow the control plane\'s published addresses into the hosts file (no registration, no API server, no channels)' },
  { name: 'cloud', kind: 'string', default: '', help: 'aws: this instance\'s address and zone come from the instance metadata service unless given' },
  { name: 'address', kind: 'string', default: '', help: 'this control-plane instance\'s address, registered for the others (default: with --cloud=aws the instance\'s private IP; else the first non-loopback IPv4 address)' },
  { name: 'instance-name', kind: 'string', default: '', help: 'this control-plane instance\'s name in its registration (default: the host name)' },
  { name: 'zone', kind: 'string', default: '', help: 'this control-plane instance\'s zone in its registration (default: with --cloud=aws the instance\'s zone)' },
  { name: 'seed-address', kind: 'list', help: 'addresses written for the internal name at start when the hosts file has no block of ours yet (nodeup passes the boot config\'s API server IPs; repeatable, comma-separated in the environment)' },
  { name: 'hosts-file', kind: 'string', default: '/etc/hosts', help: 'the file holding protokube\'s guarded block' },
  { name: 'poll-interval', kind: 'duration', default: '10s', range: ['100ms', '1h'], help: 'interval between reads of the state store for control-plane addresses (a control plane that comes or goes shows within one)' },
  { name: 'registration-ttl', kind: 'duration', default: '90s', range: ['1s', '24h'], help: 'a control-plane registration not renewed for this long drops out of every block; renewed every third of it' },
  { name: 'channel', kind: 'list', help: 'addon channel to apply, a URL (s3://, file://, https://) or a path (default <config-base>/addons/bootstrap-channel.yaml; repeatable)' },
  { name: 'sync-interval', kind: 'duration', default: '1m', range: ['1s', '24h'], help: 'interval between passes over the channels and this node\'s labels and taints' },
  { name: 'kubeconfig', kind: 'string', default: '/var/lib/protokube/kubeconfig', help: 'kubeconfig of the API server (nodeup writes it with protokube\'s admin credentials)' },
  { name: 'node-name', kind: 'string', default: '', help: 'this node\'s Node object (default: the host name, as kubelet registers it)' },
  { name: 'node-taint', kind: 'list', help: 'a taint this control-plane node must carry, key[=value]:Effect (repeatable, comma-separated in the environment)' },
  { name: 'status-file', kind: 'string', default: '/var/lib/protokube/status.json', help: 'where the daemon keeps its status for `protokube status`' },
  { name: 'status-address', kind: 'string', default: '127.0.0.1', help: 'address of the /healthz, /readyz and /metrics server' },
  { name: 'status-port', kind: 'int', default: '3988', help: 'port of the /healthz, /readyz and /metrics server (0: off)' },
  { name: 'store-timeout', kind: 'duration', default: '30s', range: ['1s', '10m'], help: 'a state store request that gets no byte for this long fails' },
  { name: 'dry-run', kind: 'bool', default: 'false', help: '`channels apply`: list what would change and change nothing' },
  { name: 'output', kind: 'string', default: 'text', help: '`status`: text or json' },
  { name: 'log-format', kind: 'string', default: 'json', help: 'json (one object a line, with an `event` field) or text' },
  { name: 'v', kind: 'int', default: '2', help: 'verbosity; 4 and above logs debug lines' },
] as const satisfies readonly FlagDef[];

export type FlagName = (typeof FLAGS)[number]['name'];
export type ParsedFlags = SharedParsedFlags<FlagName>;

const parser = createFlagParser<FlagName>({ prefix: 'PROTOKUBE_', flags: FLAGS, settingNoun: 'a protokube setting' });

export function envName(flag: string): string {
  return parser.envName(flag);
}

export function settingName(flag: string, source: FlagSource | undefined): string {
  return parser.settingName(flag, source);
}

export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedFlags {
  return parser.parse(argv, env);
}

export function helpText(program: string): string {
  return `Usage: ${program} [run] [flags]
       ${program} status [--status-file=F] [--output=json]
       ${program} channels apply FILE|URL [--dry-run] [--kubeconfig=F]
       ${program} --help | --version

Keeps the API server's internal name (api.internal.<cluster>) in a guarded
block of the hosts file, pointing at every live control-plane instance. On the
control plane it registers this instance in the state store
(<config-base>/protokube/control-plane/), drops registrations silent past
--registration-ttl, and publishes the live addresses as one small object
(<config-base>/protokube/names.json) that workers (--names-only) poll with a
conditional GET. No gossip: the state store is the only source of truth.

On the control plane it also waits for the API server (capped, jittered
backoff) and then, every --sync-interval, applies the addon channels (kOps'
format: kind Addons) with server-side apply as field manager "protokube",
prunes objects of the listed kinds that left a manifest, records what it
applied in the annotation addons.k8s.io/<addon> of the addon's namespace, and
gives this node its control-plane labels and --node-taint taints again if they
were removed. Failures are logged once per change, served on /readyz (503 with
the failing check and why) and /metrics, and kept in --status-file.

Commands:
  run                 the daemon (the default)
  status              print the daemon's last status (exit 0 healthy, 1 something failing, 4 no status yet)
  channels apply      one pass over one channel, now; --dry-run lists what would change and changes nothing

Flags (also settable as PROTOKUBE_<NAME>, e.g. --config-base as
PROTOKUBE_CONFIG_BASE; the command line wins over the environment):
${parser.helpLines().join('\n')}

Durations take Go's form (500ms, 90s, 15m, 1h30m) within each flag's range.

Exit codes: 0 ok (the daemon: stopped cleanly by SIGTERM/SIGINT), 1 failure,
2 bad usage, 3 invalid channel, 4 not found, 5 state store unreachable or
access denied.
`;
}
