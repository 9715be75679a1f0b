// etcd-manager's flags: one table drives parsing, `--help` and the environment
// names, so the three can never disagree (the parser is shared/flags.ts). kOps
// starts etcd-manager with `--flag=value` arguments; every flag but the
// operator commands' command-line-only ones can also come from the process
// environment or an env file as ETCD_MANAGER_<FLAG> (upper case, '-' → '_').
// Precedence: command line, then process environment, then env file, then default.
import { createFlagParser, type FlagDef, type FlagSource, type ParsedFlags as SharedParsedFlags } from '../../shared/flags.js';

export { flagLines, HELP_FLAG, parseAge, parseDuration, parseEnvFile, type FlagDef, type FlagKind } from '../../shared/flags.js';

/** The flags, in help order. Names match kOps' etcd-manager where it has them. */
export const FLAGS = [
  { name: 'cluster-name', kind: 'string', help: 'name of the etcd cluster as kOps passes it (etcd, etcd-events); names the cluster token and the /etc/hosts block' },
  { name: 'backup-store', kind: 'string', help: 'backup store URL, <state-store>/<cluster>/backups/etcd/<main|events> (file://, s3://, memfs://); the manager reads its CAs from the state store above it (the operator commands take any store URL, and look there for the backup key secret)' },
  { name: 'data-dir', kind: 'string', help: 'static provider: the directory used as this member\'s volume' },
  { name: 'address', kind: 'string', default: '', help: 'this node\'s IP: etcd listens here; it goes into certificates, discovery and /etc/hosts (default: with --volume-provider=aws, or local with --instance-metadata, the instance\'s private IP from instance metadata, as kOps does; else 127.0.0.1)' },
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
  { name: 'instance-metadata', kind: 'bool', default: 'false', help: 'local provider: take this instance\'s --address default (local-ipv4) from the instance metadata service (IMDSv2 shape, at AWS_EC2_METADATA_SERVICE_ENDPOINT), as the local cloud\'s instances have one' },
  { name: 'instance-id', kind: 'string', default: '', help: 'identity that claims a local volume (default: the host name); a restarted manager keeps its own claim' },
  { name: 'pki-dir', kind: 'string', default: '/etc/kubernetes/pki/etcd-manager', help: 'where issued certificates and keys (0600) are kept' },
  { name: 'backup-interval', kind: 'duration', default: '15m', range: ['1s', '24h'], help: 'interval between the leader\'s periodic backups, counted from the newest backup in the store (so a new leader keeps the pace); a backup is also taken before every membership change and restore, and on demand (etcd-manager backup)' },
  { name: 'backup-encryption-key-file', kind: 'string', default: '', help: 'AES-256 key (mode 0600; 32 raw bytes, 64 hex digits or base64 of 32 bytes): the manager encrypts backups (AES-256-GCM) with it and decrypts them to restore; the operator commands decrypt with it; without it, the state store\'s secrets/etcd-backup-encryption-key is used when present' },
  { name: 'all-backups-retention', kind: 'age', default: '1h', range: ['0s', '100y'], help: 'retention: every backup younger than this is kept' },
  { name: 'hourly-backups-retention', kind: 'age', default: '7d', range: ['0s', '100y'], help: 'retention: up to this age, the oldest backup of each UTC hour is kept (kOps\' ETCD_MANAGER_HOURLY_BACKUPS_RETENTION)' },
  { name: 'daily-backups-retention', kind: 'age', default: '90d', range: ['0s', '100y'], help: 'retention: up to this age, the oldest backup of each UTC day is kept; older backups are deleted (kOps\' ETCD_MANAGER_DAILY_BACKUPS_RETENTION)' },
  { name: 'trash-retention', kind: 'age', default: '3d', range: ['0s', '100y'], help: 'data a restore replaced is moved to <volume>/data-trashcan and deleted once it has been there this long' },
  { name: 'reconcile-interval', kind: 'duration', default: '10s', range: ['100ms', '1h'], help: 'longest wait between reconcile passes (kOps: 10s); a pass also runs at once after one that changed something or when a peer announces a change, and every 500ms while waiting on etcd; the leader lease is three intervals, 1s to 4s, renewed on its own timer' },
  { name: 'unhealthy-member-timeout', kind: 'duration', default: '1m', range: ['1s', '24h'], help: 'the leader removes a member from etcd once it has been unhealthy this long with its manager gone (never below quorum), so a replacement can join (kOps: 1m)' },
  { name: 'discovery-poll-interval', kind: 'duration', default: '60s', range: ['100ms', '1h'], help: 'interval between re-registering this member in <backup-store>/discovery/ and re-reading its peers' },
  { name: 'store-timeout', kind: 'duration', default: '30s', range: ['1s', '10m'], help: 'a state or backup store request that gets no byte for this long fails (and is not retried), so a silent S3 endpoint costs this, not minutes' },
  { name: 'etcd-binary-dir', kind: 'string', default: '', help: 'directory of versioned etcd binaries: <dir>/<version>/etcd, with etcdctl and etcdutl beside it where the version has them (without it, or without that version there: /usr/bin/etcd, only if it says it is that version)' },
  { name: 'hosts-file', kind: 'string', default: '/etc/hosts', help: 'file holding this cluster\'s guarded block of member names' },
  { name: 'insecure', kind: 'bool', default: 'false', help: 'plain HTTP for etcd and the manager API; for debugging only (logs a warning)' },
  { name: 'metrics-port', kind: 'int', default: '0', help: 'serve /healthz and Prometheus /metrics on this port (0: off)' },
  { name: 'metrics-address', kind: 'string', default: '127.0.0.1', help: 'address the /healthz and /metrics server listens on' },
  { name: 'log-format', kind: 'string', default: 'text', help: 'text (readable) or json; also MOORING_LOG_FORMAT' },
  { name: 'v', kind: 'int', default: '2', help: 'kOps-style verbosity; 4 and above logs debug lines' },
  { name: 'env-file', kind: 'string', default: '', help: 'read ETCD_MANAGER_* settings from this file (KEY=VALUE lines, # comments)' },
  { name: 'test-hook', kind: 'list', hidden: true, help: 'TEST ONLY: stop-before-fence, hang-while-leading, cert-lifetime=<duration> (see test-hooks.ts)' },
  // The operator commands' own flags (cli/); each command's --help shows the ones it takes.
  { name: 'output', short: 'o', kind: 'string', default: 'table', operator: true, commandLineOnly: true, help: 'table (for people) or json (for scripts: one JSON document on stdout, stable field names)' },
  { name: 'timeout', kind: 'duration', default: '1h', range: ['1s', '24h'], operator: true, commandLineOnly: true, help: 'how long to wait for the leader to finish; on expiry the request or command stays where it is (exit 1)' },
  { name: 'include-incomplete', kind: 'bool', default: 'false', operator: true, commandLineOnly: true, help: 'also list incomplete backups (no _etcd_backup.meta: cut off, or being written), marked INCOMPLETE' },
  { name: 'details', kind: 'bool', default: 'false', operator: true, commandLineOnly: true, help: 'read each backup\'s meta and sidecar (two small reads each) for its etcd version, sizes, revision and encryption' },
  { name: 'etcdctl', kind: 'string', default: '/usr/bin/etcdctl', operator: true, commandLineOnly: true, help: 'etcdctl 3.4 (or etcdutl 3.5+) used to open the snapshot\'s database (`snapshot status`); that check is skipped, and said so, when the default is not installed' },
  { name: 'work-dir', kind: 'string', default: '', operator: true, commandLineOnly: true, help: 'where the downloaded snapshot is kept while etcdctl checks it, removed afterwards; needs room for the snapshot (default: the system temp dir)' },
  { name: 'skip-verify', kind: 'bool', default: 'false', operator: true, commandLineOnly: true, help: 'queue the restore without downloading and verifying the backup first (the restore itself checks it again as it downloads it)' },
  { name: 'wait', kind: 'bool', default: 'false', operator: true, commandLineOnly: true, help: 'follow the queued restore until the leader has carried it out (bounded by --timeout)' },
  { name: 'member-count', kind: 'int', operator: true, commandLineOnly: true, help: 'members the etcd cluster should have, 1 to 7' },
  { name: 'etcd-version', kind: 'string', operator: true, commandLineOnly: true, help: 'etcd version the cluster should run, like 3.4.23 (3.x only)' },
  { name: 'yes', kind: 'bool', default: 'false', operator: true, commandLineOnly: true, help: 'write the change; without it the change is only shown' },
  // migrate-v2's (etcd2 → etcd3): where from, where to, and how hard to write.
  { name: 'from', kind: 'string', operator: true, commandLineOnly: true, help: 'the v2 data: a live etcd serving the v2 API (http(s)://host:port), or a v2 backup: a kOps backup folder (<backup-store>/<name> on file:// or s3://, holding etcd.backup.gz), that etcd.backup.gz, a local path to either, or an etcd v2 data directory' },
  { name: 'to', kind: 'string', operator: true, commandLineOnly: true, help: 'the etcd v3 cluster to write into, http(s)://host:port (several comma-separated); it must be empty, or hold this same migration unfinished' },
  { name: 'from-cacert', kind: 'string', default: '', operator: true, commandLineOnly: true, help: 'CA certificate to verify the live v2 source with' },
  { name: 'from-cert', kind: 'string', default: '', operator: true, commandLineOnly: true, help: 'client certificate for the live v2 source' },
  { name: 'from-key', kind: 'string', default: '', operator: true, commandLineOnly: true, help: 'client key for the live v2 source' },
  { name: 'to-cacert', kind: 'string', default: '', operator: true, commandLineOnly: true, help: 'CA certificate to verify the v3 target with' },
  { name: 'to-cert', kind: 'string', default: '', operator: true, commandLineOnly: true, help: 'client certificate for the v3 target' },
  { name: 'to-key', kind: 'string', default: '', operator: true, commandLineOnly: true, help: 'client key for the v3 target' },
  { name: 'backup-reader', kind: 'string', default: 'auto', operator: true, commandLineOnly: true, help: 'how a v2 backup or data directory is read: auto (in this process, from its snapshot and WAL; served by a throwaway etcd when that cannot be done exactly) or etcd (always the throwaway etcd)' },
  { name: 'page-depth', kind: 'int', default: '2', operator: true, commandLineOnly: true, help: 'directories above this depth are listed a level at a time, those at it read whole (0 to 20): raise it when one subtree is too big for one response' },
  { name: 'max-txn-ops', kind: 'int', default: '128', operator: true, commandLineOnly: true, help: 'operations per write transaction: the target\'s --max-txn-ops (2 to 100000); lowered by itself if the target refuses' },
  { name: 'max-request-bytes', kind: 'int', default: '1572864', operator: true, commandLineOnly: true, help: 'bytes per write transaction: the target\'s --max-request-bytes (65536 to 2147483647); lowered by itself if the target refuses' },
  { name: 'concurrency', kind: 'int', default: '8', operator: true, commandLineOnly: true, help: 'write transactions in flight at once (1 to 64)' },
] as const satisfies readonly FlagDef[];

export type FlagName = (typeof FLAGS)[number]['name'];

export type ParsedFlags = SharedParsedFlags<FlagName>;

/** Settings kOps' etcd-manager reads from its environment only; this one has no such setting. */
const KOPS_ONLY_ENV = new Map(
  ['ETCD_MANAGER_CERT_DURATION', 'ETCD_MANAGER_CERT_MIN_TIME_LEFT'].map((name) => [name, 'is a setting of kOps\' etcd-manager that this one does not have (see --help)']),
);

// Only the ETCD_MANAGER_ prefix is ours: ETCD_* names belong to etcd itself.
const parser = createFlagParser<FlagName>({
  prefix: 'ETCD_MANAGER_',
  flags: FLAGS as readonly FlagDef[],
  envFileFlag: 'env-file',
  foreignEnv: KOPS_ONLY_ENV,
  settingNoun: 'an etcd-manager setting',
});

/** The flag definition of a name, for the operator commands' help. */
export function flagDef(name: FlagName): FlagDef {
  return parser.flagDef(name) as FlagDef;
}

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

/** The operator commands, for the manager's --help (the dispatch table passes them in). */
export interface CommandSummary {
  name: string;
  summary: string;
}

export function helpText(program: string, commands: readonly CommandSummary[] = []): string {
  const lines = parser.helpLines();
  const width = Math.max(0, ...commands.map((c) => c.name.length));
  const commandLines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  const commandSection = commands.length === 0 ? '' : `
Commands (the manager is \`run\`; the others are for operators, from any
machine with the backup store URL and its credentials, or on a node with
--env-file; see \`${program} <command> --help\`):
${commandLines.join('\n')}
`;
  return `Usage: ${program} [run] [flags]
       ${program} <command> [args] [flags]    (${program} <command> --help)
       ${program} --help | --version

Runs the manager of one etcd cluster (main or events) on a control-plane
instance: claims and mounts its volume, issues its TLS certificates from the
state store's CAs, keeps its /etc/hosts block, supervises the etcd process and
serves /healthz and /metrics. With several members the managers elect a
leader, which forms the cluster and changes its membership as
control/etcd-cluster-spec says (grow, shrink, replace, remove members unhealthy
past --unhealthy-member-timeout), every change fenced in etcd itself. The
leader (or a one-member cluster's manager) backs etcd up into the backup store
every --backup-interval, before every membership change and on demand, keeps
the backups the retention flags say, restores a backup queued as kOps'
control/<id>/_command.json on every member with no restart, and writes
control/status.json for operators. The loop
is event-driven: a pass that changed something, a peer's announcement or a
lost leader lease runs the next pass at once; --reconcile-interval is the
longest wait.
\`${program} run\` and plain \`${program}\` with flags do the same, as kOps starts it.
${commandSection}
Flags of the manager (also settable as ETCD_MANAGER_<NAME>, e.g. --cluster-name as
ETCD_MANAGER_CLUSTER_NAME, from the environment or --env-file; the command
line wins, then the environment, then the env file):
${lines.join('\n')}

Names of the form ETCD_MANAGER_* that are no flag's are refused, in the
environment as in the env file (etcd's own ETCD_* names are left alone).
Durations take Go's form (500ms, 90s, 15m, 1h30m) within each flag's range;
retention ages also take d (24h) and y (365d), as kOps does (7d, 1y).

Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 failure, 2 bad usage
(the operator commands' are in their --help).
`;
}
