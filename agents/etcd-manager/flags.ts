// etcd-manager's flags: one table drives parsing, `--help` and the environment
// names, so the three can never disagree. kOps starts etcd-manager with
// `--flag=value` arguments; every flag can also come from the process
// environment or an env file as ETCD_MANAGER_<FLAG> (upper case, '-' → '_').
// Precedence: command line, then process environment, then env file, then default.
import { readFileSync } from 'node:fs';
import { ExitCode, UserError } from '../../shared/errors.js';

/** `age`: a length of time that never becomes a timer (retention): days (d) and years (y, 365 d) allowed, as in kOps. */
export type FlagKind = 'string' | 'int' | 'bool' | 'duration' | 'age' | 'list';

export interface FlagDef {
  name: string;
  kind: FlagKind;
  help: string;
  default?: string;
  /**
   * Durations: the smallest and largest value allowed. Every duration becomes a
   * Node timer, and Node runs a timer longer than 2^31-1 ms (24.8 days) after
   * 1 ms instead, so an unbounded value would make a loop spin.
   */
  range?: readonly [string, string];
  /** Left out of --help (test-only flags; the README names them). */
  hidden?: boolean;
  /** A one-letter form (`-o json`). */
  short?: string;
  /**
   * A flag of the operator commands (cli/), not of the manager (`run`): the
   * manager's --help leaves it out and `run` refuses it on the command line.
   * Each operator command lists the flags it takes (cli/types.ts).
   */
  operator?: boolean;
  /**
   * Taken from the command line only, never as ETCD_MANAGER_<NAME>: an
   * operator's choice (--yes, -o) must not come from an environment or env
   * file left behind on a node.
   */
  commandLineOnly?: boolean;
}

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
  { name: 'page-depth', kind: 'int', default: '2', operator: true, commandLineOnly: true, help: 'directories above this depth are listed a level at a time, those at it read whole (0 to 20): raise it when one subtree is too big for one response' },
  { name: 'max-txn-ops', kind: 'int', default: '128', operator: true, commandLineOnly: true, help: 'operations per write transaction: the target\'s --max-txn-ops (2 to 100000); lowered by itself if the target refuses' },
  { name: 'max-request-bytes', kind: 'int', default: '1572864', operator: true, commandLineOnly: true, help: 'bytes per write transaction: the target\'s --max-request-bytes (65536 to 2147483647); lowered by itself if the target refuses' },
  { name: 'concurrency', kind: 'int', default: '8', operator: true, commandLineOnly: true, help: 'write transactions in flight at once (1 to 64)' },
] as const satisfies readonly FlagDef[];

export type FlagName = (typeof FLAGS)[number]['name'];

export interface ParsedFlags {
  values: Map<FlagName, string | string[]>;
  /** Where each value came from, for the startup log. */
  sources: Map<FlagName, 'flag' | 'env' | 'env-file' | 'default'>;
  /** Positional arguments (the subcommand). */
  positional: string[];
  help: boolean;
  version: boolean;
}

const BY_NAME = new Map<string, FlagDef>((FLAGS as readonly FlagDef[]).flatMap((f) => [[f.name, f] as const, ...(f.short ? [[f.short, f] as const] : [])]));

/** The flag definition of a name, for the operator commands' help. */
export function flagDef(name: FlagName): FlagDef {
  return BY_NAME.get(name) as FlagDef;
}

export function envName(flag: string): string {
  return `ETCD_MANAGER_${flag.toUpperCase().replace(/-/g, '_')}`;
}

const ENV_NAMES = new Set<string>((FLAGS as readonly FlagDef[]).filter((f) => !f.commandLineOnly).map((f) => envName(f.name)));
/** Settings kOps' etcd-manager reads from its environment only; this one has no such setting. */
const KOPS_ONLY_ENV = new Set(['ETCD_MANAGER_CERT_DURATION', 'ETCD_MANAGER_CERT_MIN_TIME_LEFT']);

/**
 * Refuses an ETCD_MANAGER_* name that is no flag's, so a typo cannot pass
 * silently. Only that prefix is ours: ETCD_* names belong to etcd itself.
 */
function checkSettingNames(keys: Iterable<string>, where: string): void {
  for (const key of keys) {
    if (!key.startsWith('ETCD_MANAGER_') || ENV_NAMES.has(key)) continue;
    if (KOPS_ONLY_ENV.has(key)) throw usage(`${where}: ${key} is a setting of kOps' etcd-manager that this one does not have (see --help)`);
    throw usage(`${where}: ${key} is not an etcd-manager setting (see --help)`);
  }
}

/** How a message names a setting: the flag, or its environment name and where that came from. */
export function settingName(flag: string, source: 'flag' | 'env' | 'env-file' | 'default' | undefined): string {
  return source === 'flag' || source === undefined || source === 'default' ? `--${flag}` : `${envName(flag)} (${source})`;
}

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

/** KEY=VALUE lines; `export ` prefix, blank lines and # comments allowed; values may be quoted. */
export function parseEnvFile(text: string, source: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw usage(`${source}:${index + 1}: not a KEY=VALUE line`);
    let value = m[2];
    const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
    if (quoted) value = quoted[1];
    out.set(m[1], value);
  });
  return out;
}

export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedFlags {
  const fromArgs = new Map<FlagName, string | string[]>();
  const positional: string[] = [];
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    if (arg === '--version') { version = true; continue; }
    if (arg === '--') { positional.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('-')) { positional.push(arg); continue; }
    // kOps writes --flag=value; Go's flag package also takes -flag and --flag value.
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const def = BY_NAME.get(name);
    if (!def) throw usage(`unknown flag --${name} (see --help)`);
    let value: string;
    if (eq !== -1) value = body.slice(eq + 1);
    else if (def.kind === 'bool') value = 'true';
    else if (i + 1 < argv.length) value = argv[++i];
    else throw usage(`flag --${name} needs a value`);
    const key = def.name as FlagName;
    if (def.kind === 'list') {
      const list = (fromArgs.get(key) as string[] | undefined) ?? [];
      list.push(value);
      fromArgs.set(key, list);
    } else {
      fromArgs.set(key, value);
    }
  }

  // --help and --version answer whatever the environment holds.
  if (help || version) return { values: new Map(), sources: new Map(), positional, help, version };
  checkSettingNames(Object.keys(env).filter((key) => env[key] !== undefined), 'environment');

  const envFilePath = (fromArgs.get('env-file') as string | undefined) ?? env[envName('env-file')];
  let fileEnv = new Map<string, string>();
  if (envFilePath) {
    let text: string;
    try {
      text = readFileSync(envFilePath, 'utf8');
    } catch (err) {
      throw usage(`--env-file ${envFilePath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    fileEnv = parseEnvFile(text, envFilePath);
    checkSettingNames(fileEnv.keys(), envFilePath);
  }

  const values = new Map<FlagName, string | string[]>();
  const sources: ParsedFlags['sources'] = new Map();
  for (const def of FLAGS as readonly FlagDef[]) {
    const name = def.name as FlagName;
    const key = envName(def.name);
    let raw: string | string[] | undefined;
    let source: 'flag' | 'env' | 'env-file' | 'default';
    if (fromArgs.has(name)) { raw = fromArgs.get(name); source = 'flag'; }
    else if (!def.commandLineOnly && env[key] !== undefined) { raw = env[key]; source = 'env'; }
    else if (!def.commandLineOnly && fileEnv.has(key)) { raw = fileEnv.get(key); source = 'env-file'; }
    else { raw = def.default; source = 'default'; }
    if (raw === undefined) continue;
    if (def.kind === 'list' && typeof raw === 'string') raw = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (typeof raw === 'string') validate(def, raw, source);
    values.set(name, raw);
    sources.set(name, source);
  }
  return { values, sources, positional, help, version };
}

function validate(def: FlagDef, raw: string, source: 'flag' | 'env' | 'env-file' | 'default'): void {
  const where = settingName(def.name, source);
  if (def.kind === 'int' && !/^\d+$/.test(raw)) throw usage(`${where}: ${JSON.stringify(raw)} is not a whole number`);
  if (def.kind === 'bool' && !/^(true|false|1|0)$/i.test(raw)) throw usage(`${where}: ${JSON.stringify(raw)} is not true or false`);
  if (def.kind === 'duration' || def.kind === 'age') {
    const ms = def.kind === 'age' ? parseAge(raw) : parseDuration(raw);
    if (ms === undefined) throw usage(`${where}: ${JSON.stringify(raw)} is not a duration like ${def.kind === 'age' ? '12h, 7d or 1y' : '90s, 15m or 1h30m'}`);
    if (def.range) {
      const [min, max] = def.range.map((d) => parseAge(d) as number);
      if (ms < min || ms > max) throw usage(`${where}: ${JSON.stringify(raw)} is out of range: want ${def.range[0]} to ${def.range[1]}`);
    }
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations (`1h30m`, `15m`, `500ms`) in milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]];
  return total;
}

const DAY_MS = 24 * UNIT_MS.h;
const AGE_UNIT_MS: Record<string, number> = { ...UNIT_MS, d: DAY_MS, y: 365 * DAY_MS };

/** Ages (retention): Go durations plus `d` (24 h) and `y` (365 d), kOps' ParseHumanDuration units (`7d`, `1y`, `2d12h`). */
export function parseAge(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|y))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|y)/g)) total += Number(m[1]) * AGE_UNIT_MS[m[2]];
  return total;
}

/** Aligned `--flag=<kind>  help (default …)` lines. */
export function flagLines(defs: readonly FlagDef[]): string[] {
  const left = (f: FlagDef) => `${f.short ? `-${f.short}, ` : ''}--${f.name}${f.kind === 'bool' ? '' : '=<' + (f.kind === 'list' ? 'value' : f.kind === 'age' ? 'duration' : f.kind) + '>'}`;
  const width = Math.max(22, ...defs.map((f) => left(f).length));
  return defs.map((f) => {
    const notes = [
      ...(f.default !== undefined && f.default !== '' && !(f.kind === 'bool' && f.default === 'false') ? [`default ${f.default}`] : []),
      ...(f.range ? [`${f.range[0]} to ${f.range[1]}`] : []),
    ];
    const dflt = notes.length > 0 ? ` (${notes.join('; ')})` : '';
    return `  ${left(f).padEnd(width + 1)} ${f.help}${dflt}`;
  });
}

export const HELP_FLAG: FlagDef = { name: 'help', short: 'h', kind: 'bool', help: 'print this help and exit' };
const VERSION_FLAG: FlagDef = { name: 'version', kind: 'bool', help: 'print the version and exit' };

/** The operator commands, for the manager's --help (the dispatch table passes them in). */
export interface CommandSummary {
  name: string;
  summary: string;
}

export function helpText(program: string, commands: readonly CommandSummary[] = []): string {
  const shown = (FLAGS as readonly FlagDef[]).filter((f) => !f.hidden && !f.operator);
  const lines = flagLines([...shown, HELP_FLAG, VERSION_FLAG]);
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
