// etcd-manager's flags: one table drives parsing, `--help` and the environment
// names, so the three can never disagree. kOps starts etcd-manager with
// `--flag=value` arguments; every flag can also come from the process
// environment or an env file as ETCD_MANAGER_<FLAG> (upper case, '-' → '_').
// Precedence: command line, then process environment, then env file, then default.
import { readFileSync } from 'node:fs';
import { ExitCode, UserError } from '../../shared/errors.js';

export type FlagKind = 'string' | 'int' | 'bool' | 'duration' | 'list';

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
}

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
  { name: 'etcd-binary-dir', kind: 'string', default: '', help: 'directory of versioned etcd binaries: <dir>/<version>/etcd, with etcdctl and etcdutl beside it where the version has them (without it, or without that version there: /usr/bin/etcd, only if it says it is that version)' },
  { name: 'hosts-file', kind: 'string', default: '/etc/hosts', help: 'file holding this cluster\'s guarded block of member names' },
  { name: 'insecure', kind: 'bool', default: 'false', help: 'plain HTTP for etcd and the manager API; for debugging only (logs a warning)' },
  { name: 'metrics-port', kind: 'int', default: '0', help: 'serve /healthz and Prometheus /metrics on this port (0: off)' },
  { name: 'metrics-address', kind: 'string', default: '127.0.0.1', help: 'address the /healthz and /metrics server listens on' },
  { name: 'log-format', kind: 'string', default: 'text', help: 'text (readable) or json; also MOORING_LOG_FORMAT' },
  { name: 'v', kind: 'int', default: '2', help: 'kOps-style verbosity; 4 and above logs debug lines' },
  { name: 'env-file', kind: 'string', default: '', help: 'read ETCD_MANAGER_* settings from this file (KEY=VALUE lines, # comments)' },
] as const satisfies readonly FlagDef[];

export type FlagName = (typeof FLAGS)[number]['name'];

export interface ParsedFlags<N extends string = FlagName> {
  values: Map<N, string | string[]>;
  /** Where each value came from, for the startup log. */
  sources: Map<N, 'flag' | 'env' | 'env-file' | 'default'>;
  /** Positional arguments (the subcommand). */
  positional: string[];
  help: boolean;
  version: boolean;
}

export function envName(flag: string): string {
  return `ETCD_MANAGER_${flag.toUpperCase().replace(/-/g, '_')}`;
}

const ENV_NAMES = new Set<string>(FLAGS.map((f) => envName(f.name)));
/** Settings kOps' etcd-manager reads from its environment only; this one has no such setting. */
const KOPS_ONLY_ENV = new Set(['ETCD_MANAGER_HOURLY_BACKUPS_RETENTION', 'ETCD_MANAGER_DAILY_BACKUPS_RETENTION', 'ETCD_MANAGER_CERT_DURATION', 'ETCD_MANAGER_CERT_MIN_TIME_LEFT']);

/**
 * Refuses an ETCD_MANAGER_* name that is no flag's, so a typo cannot pass
 * silently. Only that prefix is ours: ETCD_* names belong to etcd itself.
 */
function checkSettingNames(keys: Iterable<string>, where: string, envNames: Set<string> = ENV_NAMES): void {
  for (const key of keys) {
    if (!key.startsWith('ETCD_MANAGER_') || envNames.has(key)) continue;
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
  return parseFlagTable(FLAGS, argv, env);
}

/** The same parser over another table: a subcommand's own flags (e.g. migrate-v2). */
export function parseFlagTable<N extends string>(table: readonly (FlagDef & { name: N })[], argv: string[], env: NodeJS.ProcessEnv): ParsedFlags<N> {
  const byName = new Map<string, FlagDef>(table.map((f) => [f.name, f]));
  const envNames = new Set<string>(table.map((f) => envName(f.name)));
  const fromArgs = new Map<N, string | string[]>();
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
    const def = byName.get(name);
    if (!def) throw usage(`unknown flag --${name} (see --help)`);
    let value: string;
    if (eq !== -1) value = body.slice(eq + 1);
    else if (def.kind === 'bool') value = 'true';
    else if (i + 1 < argv.length) value = argv[++i];
    else throw usage(`flag --${name} needs a value`);
    const key = def.name as N;
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
  checkSettingNames(Object.keys(env).filter((key) => env[key] !== undefined), 'environment', envNames);

  const envFilePath = byName.has('env-file') ? ((fromArgs.get('env-file' as N) as string | undefined) ?? env[envName('env-file')]) : undefined;
  let fileEnv = new Map<string, string>();
  if (envFilePath) {
    let text: string;
    try {
      text = readFileSync(envFilePath, 'utf8');
    } catch (err) {
      throw usage(`--env-file ${envFilePath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    fileEnv = parseEnvFile(text, envFilePath);
    checkSettingNames(fileEnv.keys(), envFilePath, envNames);
  }

  const values = new Map<N, string | string[]>();
  const sources: ParsedFlags<N>['sources'] = new Map();
  for (const def of table) {
    const name = def.name;
    const key = envName(def.name);
    let raw: string | string[] | undefined;
    let source: 'flag' | 'env' | 'env-file' | 'default';
    if (fromArgs.has(name)) { raw = fromArgs.get(name); source = 'flag'; }
    else if (env[key] !== undefined) { raw = env[key]; source = 'env'; }
    else if (fileEnv.has(key)) { raw = fileEnv.get(key); source = 'env-file'; }
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
  if (def.kind === 'duration') {
    const ms = parseDuration(raw);
    if (ms === undefined) throw usage(`${where}: ${JSON.stringify(raw)} is not a duration like 90s, 15m or 1h30m`);
    if (def.range) {
      const [min, max] = def.range.map((d) => parseDuration(d) as number);
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

export function helpText(program: string): string {
  const width = Math.max(...FLAGS.map((f) => f.name.length + (f.kind === 'bool' ? 0 : 8)));
  const lines = (FLAGS as readonly FlagDef[]).map((f) => {
    const left = `--${f.name}${f.kind === 'bool' ? '' : '=<' + (f.kind === 'list' ? 'value' : f.kind) + '>'}`;
    const notes = [
      ...(f.default !== undefined && f.default !== '' ? [`default ${f.default}`] : []),
      ...(f.range ? [`${f.range[0]} to ${f.range[1]}`] : []),
    ];
    const dflt = notes.length > 0 ? ` (${notes.join('; ')})` : '';
    return `  ${left.padEnd(width + 4)} ${f.help}${dflt}`;
  });
  return `Usage: ${program} [run] [flags]
       ${program} migrate-v2 --from URL|BACKUP --to URL [flags]   (etcd2 → etcd3; see ${program} migrate-v2 --help)
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
