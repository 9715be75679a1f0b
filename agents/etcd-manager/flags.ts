// etcd-manager's flags: one table drives parsing, `--help` and the environment
// names (the parser is shared/flags.ts). kOps starts etcd-manager with
// `--flag=value` arguments; every flag can also come from the process
// environment or an env file as ETCD_MANAGER_<FLAG> (upper case, '-' → '_').
// Precedence: command line, then process environment, then env file, then default.
import { createFlagParser, type FlagDef, type FlagSource, type ParsedFlags as SharedParsedFlags } from '../../shared/flags.js';

export { parseDuration, parseEnvFile, type FlagDef, type FlagKind } from '../../shared/flags.js';

/** The flags, in help order. Names match kOps' etcd-manager where it has them. */
export const FLAGS = [
  { name: 'cluster-name', kind: 'string', help: 'name of the etcd cluster as kOps passes it (etcd, etcd-events); names the cluster token and the /etc/hosts block' },
  { name: 'backup-store', kind: 'string', help: 'backup store URL, <state-store>/<cluster>/backups/etcd/<main|events> (file://, s3://, memfs://); the CAs are read from the state store above it' },
  { name: 'data-dir', kind: 'string', help: 'static provider: the directory used as this member\'s volume' },
  { name: 'address', kind: 'string', default: '', help: 'this node\'s IP: etcd listens here; it goes into certificates, discovery and /etc/hosts (default: with --volume-provider=aws the instance\'s private IP from instance metadata, as kOps does; else 127.0.0.1)' },
  { name: 'peer-urls', kind: 'string', default: 'https://__name__:2380', help: 'etcd peer URLs; __name__ becomes the member\'s DNS name, __address__ the --address' },
  { name: 'client-urls', kind: 'string', default: 'https://__name__:4001', help: 'etcd client URLs (same substitutions)' },
  { name: 'quarantine-client-urls', kind: 'string', default: 'https://__name__:3994', help: 'client URLs used while etcd is quarantined, so the API server cannot reach it' },
  { name: 'grpc-port', kind: 'int', default: '3996', help: 'port of the managers\' private mutual-TLS API, published in discovery' },
  { name: 'dns-suffix', kind: 'string', default: '', help: 'member DNS names are etcd-<member>.internal.<dns-suffix> (default: the cluster name from --backup-store)' },
  { name: 'volume-provider', kind: 'string', default: 'local', help: 'where the member\'s volume comes from: local, static, aws' },
  { name: 'volume-tag', kind: 'list', help: 'key or key=value a volume must carry to be a candidate (repeatable; comma-separated in the environment)' },
  { name: 'volume-name-tag', kind: 'string', default: 'k8s.io/etcd/main', help: 'tag whose value (<member>/<all members>) names the member a volume belongs to' },
  { name: 'local-volume-dir', kind: 'string', default: '/var/lib/etcd-manager/volumes', help: 'local provider: directory of <id>.img volume images and their <id>.tags.json records' },
  { name: 'mount-root', kind: 'string', default: '/mnt', help: 'local provider: volumes are mounted at <mount-root>/master-<id>' },
  { name: 'instance-id', kind: 'string', default: '', help: 'identity that claims a local volume (default: the host name); a restarted manager keeps its own claim' },
  { name: 'pki-dir', kind: 'string', default: '/etc/kubernetes/pki/etcd-manager', help: 'where issued certificates and keys (0600) are kept' },
  { name: 'backup-interval', kind: 'duration', default: '15m', range: ['1s', '24h'], help: 'interval between periodic backups (accepted and checked; backups are not in this build)' },
  { name: 'reconcile-interval', kind: 'duration', default: '10s', range: ['100ms', '1h'], help: 'interval between reconcile passes (kOps: 10s)' },
  { name: 'unhealthy-member-timeout', kind: 'duration', default: '1m', range: ['1s', '24h'], help: 'the leader removes a member from etcd once it has been unhealthy this long with its manager gone (never below quorum), so a replacement can join (kOps: 1m)' },
  { name: 'discovery-poll-interval', kind: 'duration', default: '60s', range: ['100ms', '1h'], help: 'interval between re-registering this member in <backup-store>/discovery/ and re-reading its peers' },
  { name: 'store-timeout', kind: 'duration', default: '30s', range: ['1s', '10m'], help: 'a state or backup store request that gets no byte for this long fails (and is not retried), so a silent S3 endpoint costs this, not minutes' },
  { name: 'etcd-binary-dir', kind: 'string', default: '', help: 'directory of versioned etcd binaries, <dir>/<version>/etcd (default: /usr/bin/etcd whatever its version)' },
  { name: 'hosts-file', kind: 'string', default: '/etc/hosts', help: 'file holding this cluster\'s guarded block of member names' },
  { name: 'insecure', kind: 'bool', default: 'false', help: 'plain HTTP for etcd and the manager API; for debugging only (logs a warning)' },
  { name: 'metrics-port', kind: 'int', default: '0', help: 'serve /healthz and Prometheus /metrics on this port (0: off)' },
  { name: 'metrics-address', kind: 'string', default: '127.0.0.1', help: 'address the /healthz and /metrics server listens on' },
  { name: 'log-format', kind: 'string', default: 'text', help: 'text (readable) or json; also MOORING_LOG_FORMAT' },
  { name: 'v', kind: 'int', default: '2', help: 'kOps-style verbosity; 4 and above logs debug lines' },
  { name: 'env-file', kind: 'string', default: '', help: 'read ETCD_MANAGER_* settings from this file (KEY=VALUE lines, # comments)' },
] as const satisfies readonly FlagDef[];

export type FlagName = (typeof FLAGS)[number]['name'];

export type ParsedFlags = SharedParsedFlags<FlagName>;

/** Settings kOps' etcd-manager reads from its environment only; this one has no such setting. */
const KOPS_ONLY_ENV = new Map(
  ['ETCD_MANAGER_HOURLY_BACKUPS_RETENTION', 'ETCD_MANAGER_DAILY_BACKUPS_RETENTION', 'ETCD_MANAGER_CERT_DURATION', 'ETCD_MANAGER_CERT_MIN_TIME_LEFT']
    .map((name) => [name, 'is a setting of kOps\' etcd-manager that this one does not have (see --help)']),
);

// Only the ETCD_MANAGER_ prefix is ours: ETCD_* names belong to etcd itself.
const parser = createFlagParser<FlagName>({
  prefix: 'ETCD_MANAGER_',
  flags: FLAGS as readonly FlagDef[],
  envFileFlag: 'env-file',
  foreignEnv: KOPS_ONLY_ENV,
  settingNoun: 'an etcd-manager setting',
});

export function envName(flag: string): string {
  return parser.envName(flag);
}

/** How a message names a setting: the flag, or its environment name and where that came from. */
export function settingName(flag: string, source: FlagSource | undefined): string {
  return parser.settingName(flag, source);
}

export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedFlags {
  return parser.parse(argv, env);
}

export function helpText(program: string): string {
  const lines = parser.helpLines();
  return `Usage: ${program} [run] [flags]
       ${program} --help | --version

Runs the manager of one etcd cluster (main or events) on a control-plane
instance: claims and mounts its volume, issues its TLS certificates from the
state store's CAs, keeps its /etc/hosts block, supervises the etcd process and
serves /healthz and /metrics. With several members the managers elect a
leader, which forms the cluster and changes its membership as
control/etcd-cluster-spec says (grow, shrink, replace, remove members unhealthy
past --unhealthy-member-timeout), every change fenced in etcd itself.
\`${program} run\` and plain \`${program}\` with flags do the same, as kOps starts it.

Flags (also settable as ETCD_MANAGER_<NAME>, e.g. --cluster-name as
ETCD_MANAGER_CLUSTER_NAME, from the environment or --env-file; the command
line wins, then the environment, then the env file):
${lines.join('\n')}
  --help                   print this help and exit
  --version                print the version and exit

Names of the form ETCD_MANAGER_* that are no flag's are refused, in the
environment as in the env file (etcd's own ETCD_* names are left alone).
Durations take Go's form (500ms, 90s, 15m, 1h30m) within each flag's range.

Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 failure, 2 bad usage.
`;
}
