// `etcd-manager migrate-v2 --from URL|BACKUP --to URL`: the etcd2 → etcd3
// migration as an operator command. Its flags go through etcd-manager's one
// flag parser (flags.ts) with a table of their own; they are flags only (no
// ETCD_MANAGER_* environment forms: those belong to the manager's own run).
import { ExitCode, UserError } from '../../../shared/errors.js';
import { configureLogging, logger } from '../../../shared/log.js';
import type { EtcdTLSFiles } from '../etcd/process.js';
import { parseDuration, parseFlagTable, type FlagDef } from '../flags.js';
import { migrateV2, type MigrationSummary } from './migrate.js';
import { formatDuration, ProgressPrinter } from './progress.js';
import { DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS } from './target.js';
import { describeBackup, isLiveSource, locateBackup, openLocatedBackup, type BackupSource } from './v2-backup.js';

const PROGRAM_LOG = 'etcd-manager';

export const MIGRATE_FLAGS = [
  { name: 'from', kind: 'string', help: 'the v2 data: a live etcd serving the v2 API (http(s)://host:port), or a v2 backup: a kOps backup folder (<backup-store>/<name> on file:// or s3://, holding etcd.backup.gz), that etcd.backup.gz, a local path to either, or an etcd v2 data directory' },
  { name: 'to', kind: 'string', help: 'the etcd v3 cluster to write into, http(s)://host:port (several comma-separated); it must be empty, or hold this same migration unfinished' },
  { name: 'from-cacert', kind: 'string', default: '', help: 'CA certificate to verify the live v2 source with' },
  { name: 'from-cert', kind: 'string', default: '', help: 'client certificate for the live v2 source' },
  { name: 'from-key', kind: 'string', default: '', help: 'client key for the live v2 source' },
  { name: 'to-cacert', kind: 'string', default: '', help: 'CA certificate to verify the v3 target with' },
  { name: 'to-cert', kind: 'string', default: '', help: 'client certificate for the v3 target' },
  { name: 'to-key', kind: 'string', default: '', help: 'client key for the v3 target' },
  { name: 'etcd-binary-dir', kind: 'string', default: '', help: 'reading a backup: directory of versioned etcd binaries, <dir>/<version>/etcd; the newest that serves the v2 API (2.x, 3.0 to 3.5) reads it (default: /usr/bin/etcd when it is one)' },
  { name: 'page-depth', kind: 'int', default: '2', help: 'directories above this depth are listed a level at a time, those at it read whole (0 to 20): raise it when one subtree is too big for one response' },
  { name: 'max-txn-ops', kind: 'int', default: String(DEFAULT_MAX_TXN_OPS), help: 'operations per write transaction: the target\'s --max-txn-ops (2 to 100000); lowered by itself if the target refuses' },
  { name: 'max-request-bytes', kind: 'int', default: String(DEFAULT_MAX_REQUEST_BYTES), help: 'bytes per write transaction: the target\'s --max-request-bytes (65536 to 2147483647); lowered by itself if the target refuses' },
  { name: 'concurrency', kind: 'int', default: '8', help: 'write transactions in flight at once (1 to 64)' },
  { name: 'store-timeout', kind: 'duration', default: '30s', range: ['1s', '10m'], help: 'a backup store request that gets no byte for this long fails' },
  { name: 'output', kind: 'string', default: 'text', help: 'the summary on stdout: text, or json for scripts (-o json)' },
  { name: 'v', kind: 'int', default: '2', help: 'verbosity: 3 logs each stage, 4 and above debug lines' },
] as const satisfies readonly FlagDef[];

type MigrateFlag = (typeof MIGRATE_FLAGS)[number]['name'];

export function migrateHelpText(program: string): string {
  const width = Math.max(...MIGRATE_FLAGS.map((f) => f.name.length + 8));
  const lines = (MIGRATE_FLAGS as readonly FlagDef[]).map((f) => {
    const left = `--${f.name}=<${f.kind}>`;
    const notes = [...(f.default ? [`default ${f.default}`] : []), ...(f.range ? [`${f.range[0]} to ${f.range[1]}`] : [])];
    return `  ${left.padEnd(width + 4)} ${f.help}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
  });
  return `Usage: ${program} migrate-v2 --from URL|BACKUP --to URL [flags]

Copies an etcd2 (v2 API) keyspace into an etcd3 cluster: every leaf key under
the same path with the same bytes, directories dropped, keys with a TTL
attached to leases carrying their remaining TTL (keys expiring close together
share one: never earlier than in v2, at most 1% or 1 s later, and never more
than 1,941 leases), written in transactions of many puts, then verified by
reading the target back (key count and a content hash on both sides).

Stop whatever writes the source first (the API server): keys changed during
the copy show up as a failed verification. A run that is stopped (Ctrl-C,
kill -9, a lost connection) is resumed by running the same command again: the
target remembers which ranges it holds. A finished migration is never written
again. Progress (keys done, keys/s, ETA) goes to stderr, the summary to stdout.

A backup is served by a throwaway etcd (127.0.0.1, its own ports and TLS, a
private temporary directory), stopped and deleted when done.

Flags:
${lines.join('\n')}
  -o <format>              same as --output
  --help                   print this help and exit

Exit codes: 0 migrated and verified (or migrated before), 1 failure (a source
or target that does not answer, a write refused, verification failed), 2 bad
usage, 4 the backup or an etcd to read it with not found, 5 the backup store
unreachable or access denied, 6 the target holds other data or another
migration.
`;
}

export interface MigrateIO {
  out: (s: string) => void;
  err: (s: string) => void;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
}

const defaultIO = (): MigrateIO => ({
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  isTTY: Boolean(process.stderr.isTTY),
  env: process.env,
});

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

function intIn(values: Map<MigrateFlag, string | string[]>, name: MigrateFlag, min: number, max: number): number {
  const n = Number(values.get(name));
  if (!Number.isSafeInteger(n) || n < min || n > max) throw usage(`--${name}: ${JSON.stringify(values.get(name))} is out of range: want ${min} to ${max}`);
  return n;
}

/** http(s)://host:port with nothing after it: what etcd's client URLs look like. */
export function checkEndpoint(flag: string, url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usage(`--${flag}: ${JSON.stringify(url)} is not a URL like https://10.0.0.1:2379`);
  }
  // A password in the URL is never echoed back (etcd takes client certificates: --${flag}-cert/--${flag}-key).
  if (u.username || u.password) throw usage(`--${flag}: a URL with user:password@ is refused (not echoed here); want scheme://host:port, and --${flag}-cert/--${flag}-key for credentials`);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw usage(`--${flag}: ${JSON.stringify(url)}: want http:// or https://`);
  if (u.pathname !== '/' || u.search || u.hash) throw usage(`--${flag}: ${JSON.stringify(url)}: want scheme://host:port and nothing else`);
  if (!u.port) throw usage(`--${flag}: ${JSON.stringify(url)}: the port is missing`);
  return `${u.protocol}//${u.host}`;
}

function tlsFiles(values: Map<MigrateFlag, string | string[]>, side: 'from' | 'to'): Partial<EtcdTLSFiles> | undefined {
  const ca = values.get(`${side}-cacert`) as string;
  const cert = values.get(`${side}-cert`) as string;
  const key = values.get(`${side}-key`) as string;
  if (Boolean(cert) !== Boolean(key)) throw usage(`--${side}-cert and --${side}-key go together`);
  if (!ca && !cert) return undefined;
  return { caFile: ca || undefined, certFile: cert || undefined, keyFile: key || undefined };
}

export function textSummary(s: MigrationSummary): string {
  const n = new Intl.NumberFormat('en-US');
  if (s.alreadyDone) {
    return `already migrated: ${n.format(s.keys.source)} keys from ${s.source} (migration ${s.migrationId}); nothing was written\n`;
  }
  const lines = [
    `migrated ${n.format(s.keys.source)} keys from ${s.source} to ${s.target.join(',')} in ${formatDuration(s.durationMs)} (${n.format(s.keysPerSecond)} keys/s)${s.resumed ? `, resumed (run ${s.runs})` : ''}`,
    `  with a TTL: ${n.format(s.keys.withTTL)} keys on ${n.format(s.leases.used)} leases (at most ${n.format(s.leases.bound)} for these TTLs, ${n.format(s.leases.absoluteBound)} for any)`,
    `  written:    ${n.format(s.keys.written)} by this run${s.transactions ? ` in ${n.format(s.transactions.count)} transactions of up to ${n.format(s.transactions.largest)} puts` : ''}, ${n.format(s.keys.skippedDone)} by earlier runs; ${n.format(s.keys.expiredBeforeCopy)} had expired before the copy`,
    s.verify.equal
      ? `  verified:   ${n.format(s.verify.sourceKeys)} keys, content hash ${s.verify.sourceHash.slice(0, 16)}…, equal on both sides${s.verify.expiringNotCompared.source + s.verify.expiringNotCompared.target > 0 ? ` (keys expiring within seconds left out: ${s.verify.expiringNotCompared.source} source, ${s.verify.expiringNotCompared.target} target)` : ''}`
      : `  verify:     FAILED: source ${n.format(s.verify.sourceKeys)} keys ${s.verify.sourceHash.slice(0, 16)}…, target ${n.format(s.verify.targetKeys)} keys ${s.verify.targetHash.slice(0, 16)}…`,
  ];
  return lines.join('\n') + '\n';
}

export async function migrateV2Main(argv: string[], program: string, io: MigrateIO = defaultIO()): Promise<number> {
  const name = `${program} migrate-v2`;
  let backup: BackupSource | undefined;
  let printer: ProgressPrinter | undefined;
  let interrupted: string | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    // Nothing is half-written: every transaction is whole, and a rerun resumes. Stop the backup's etcd and go.
    printer?.finish();
    io.err(`${name}: ${signal}: stopped; run the same command again to resume\n`);
    void (backup?.close() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  try {
    // -o json / -o=json, as kubectl and etcdctl spell it.
    const args = argv.map((a) => (a === '-o' ? '--output' : a.startsWith('-o=') ? `--output=${a.slice(3)}` : /^-o(json|text)$/.test(a) ? `--output=${a.slice(2)}` : a));
    const flags = parseFlagTable(MIGRATE_FLAGS, args, {});
    if (flags.help) {
      io.out(migrateHelpText(program));
      return ExitCode.OK;
    }
    if (flags.version) throw usage('--version belongs to etcd-manager itself, not to migrate-v2');
    if (flags.positional.length > 0) throw usage(`unexpected argument ${JSON.stringify(flags.positional[0])} (see ${name} --help)`);
    const values = flags.values;
    const from = values.get('from') as string | undefined;
    const to = values.get('to') as string | undefined;
    if (!from) throw usage('--from is required: the v2 source (http(s)://host:port) or a v2 backup');
    if (!to) throw usage('--to is required: the v3 target, http(s)://host:port');
    const output = values.get('output') as string;
    if (output !== 'text' && output !== 'json') throw usage(`--output: ${JSON.stringify(output)}: want text or json`);
    const targets = to.split(',').map((u) => checkEndpoint('to', u.trim()));
    const pageDepth = intIn(values, 'page-depth', 0, 20);
    const maxTxnOps = intIn(values, 'max-txn-ops', 2, 100_000);
    const maxRequestBytes = intIn(values, 'max-request-bytes', 65_536, 2_147_483_647);
    const concurrency = intIn(values, 'concurrency', 1, 64);
    const verbosity = intIn(values, 'v', 0, 10);
    const fromTLS = tlsFiles(values, 'from');
    const toTLS = tlsFiles(values, 'to');
    const live = isLiveSource(from);
    if (live) checkEndpoint('from', from);
    else if (fromTLS) throw usage('--from-cacert/--from-cert/--from-key are for a live source; a backup is read through its own throwaway etcd');

    configureLogging({ level: verbosity >= 4 ? 'debug' : verbosity >= 3 ? 'info' : 'warn', format: io.env.MOORING_LOG_FORMAT === 'json' ? 'json' : 'text' });
    const log = logger(PROGRAM_LOG);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    const storeTimeoutMs = parseDuration(values.get('store-timeout') as string);
    const backupOptions = { log, binaryDir: (values.get('etcd-binary-dir') as string) || undefined, storeTimeoutMs, env: io.env };
    const source = live
      ? { description: checkEndpoint('from', from), open: async () => ({ url: checkEndpoint('from', from), tls: fromTLS }) }
      : await (async () => {
          // A backup that is not there is said so before the target is asked anything.
          const located = await locateBackup(from, backupOptions);
          return {
            description: await describeBackup(from),
            open: async () => {
              backup = await openLocatedBackup(located, backupOptions);
              return { url: backup.url, tls: backup.tls };
            },
          };
        })();
    printer = new ProgressPrinter(io.err, io.isTTY);
    const progress = printer;
    const summary = await migrateV2({ source, target: { endpoints: targets, tls: toTLS }, pageDepth, maxTxnOps, maxRequestBytes, concurrency, log, onProgress: (p) => progress.update(p) });
    printer.finish();
    io.out(output === 'json' ? JSON.stringify(summary, null, 2) + '\n' : textSummary(summary));
    if (!summary.verify.equal) {
      io.err(`${name}: verification failed: ${summary.verify.differences.join('; ')}\n`);
      return ExitCode.Failure;
    }
    return ExitCode.OK;
  } catch (err) {
    printer?.finish();
    if (interrupted) return 130;
    const message = err instanceof UserError ? err.message : `${(err as Error).message}`;
    io.err(`${name}: ${message}\n`);
    return err instanceof UserError ? err.exitCode : ExitCode.Failure;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await backup?.close();
  }
}
