// `etcd-manager migrate-v2 --from URL|BACKUP --to URL`: the etcd2 → etcd3
// migration as an operator command. Its flags are rows of the one table in
// ../flags.ts (operator, command line only); it also takes the manager's
// --etcd-binary-dir, --store-timeout and --v, which a node's --env-file can give.
import { ExitCode, UserError } from '../../../shared/errors.js';
import type { EtcdTLSFiles } from '../etcd/process.js';
import type { MigrationSummary } from '../migrate/migrate.js';
import type { BackupSource } from '../migrate/v2-backup.js';
import { flagDuration, flagString, usage } from './context.js';
import { json, parseOutputFormat } from './output.js';
import type { FlagName } from '../flags.js';
import { formatDuration, ProgressPrinter } from '../migrate/progress.js';
import { EXIT_INTERRUPTED, type CommandContext, type SubcommandModule } from './types.js';

/** A whole number flag within bounds (the table checks the form; the bounds are the command's). */
function intIn(ctx: CommandContext, name: FlagName, min: number, max: number): number {
  const raw = flagString(ctx, name);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw usage(`--${name}: ${JSON.stringify(raw)} is out of range: want ${min} to ${max}`);
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

function tlsFiles(ctx: CommandContext, side: 'from' | 'to'): Partial<EtcdTLSFiles> | undefined {
  const ca = flagString(ctx, `${side}-cacert`);
  const cert = flagString(ctx, `${side}-cert`);
  const key = flagString(ctx, `${side}-key`);
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

async function run(ctx: CommandContext): Promise<number> {
  const { io, env, interrupted } = ctx.deps;
  const name = `${ctx.program} ${ctx.name}`;
  // Everything the flags can get wrong is said before anything is opened.
  const format = parseOutputFormat(ctx.flags.values.get('output'));
  const from = flagString(ctx, 'from');
  const to = flagString(ctx, 'to');
  if (!from) throw usage(`${ctx.name}: --from is required: the v2 source (http(s)://host:port) or a v2 backup`);
  if (!to) throw usage(`${ctx.name}: --to is required: the v3 target, http(s)://host:port`);
  const targets = to.split(',').map((u) => checkEndpoint('to', u.trim()));
  const pageDepth = intIn(ctx, 'page-depth', 0, 20);
  const maxTxnOps = intIn(ctx, 'max-txn-ops', 2, 100_000);
  const maxRequestBytes = intIn(ctx, 'max-request-bytes', 65_536, 2_147_483_647);
  const concurrency = intIn(ctx, 'concurrency', 1, 64);
  const verbosity = intIn(ctx, 'v', 0, 10);
  const fromTLS = tlsFiles(ctx, 'from');
  const toTLS = tlsFiles(ctx, 'to');
  const backupReader = flagString(ctx, 'backup-reader');
  if (backupReader !== 'auto' && backupReader !== 'etcd') throw usage(`--backup-reader: ${JSON.stringify(backupReader)}: want auto or etcd`);
  const reader: 'auto' | 'etcd' = backupReader;
  const storeTimeoutMs = flagDuration(ctx, 'store-timeout');
  const binaryDir = flagString(ctx, 'etcd-binary-dir') || undefined;

  // The migration's code (etcd client, tar, gRPC) loads only now: --help and usage errors stay light.
  const [{ configureLogging, logger }, { migrateV2 }, backups, { V2Source }] = await Promise.all([
    import('../../../shared/log.js'),
    import('../migrate/migrate.js'),
    import('../migrate/v2-backup.js'),
    import('../migrate/v2-source.js'),
  ]);
  const live = backups.isLiveSource(from);
  if (live) checkEndpoint('from', from);
  else if (fromTLS) throw usage('--from-cacert/--from-cert/--from-key are for a live source; a backup is read from its files');

  configureLogging({ level: verbosity >= 4 ? 'debug' : verbosity >= 3 ? 'info' : 'warn', format: env.MOORING_LOG_FORMAT === 'json' ? 'json' : 'text' });
  const log = logger(ctx.program);
  let backup: BackupSource | undefined;
  const printer = new ProgressPrinter(io.err, io.errIsTTY);
  // Ctrl-C: nothing is half-written (every transaction is whole, and a rerun
  // resumes), so stop the backup's throwaway etcd and leave at once; the
  // copy in flight has no way to be cancelled, hence the exit here.
  const onInterrupt = () => {
    printer.finish();
    io.err(`${name}: interrupted: stopped; run the same command again to resume\n`);
    void (backup?.close() ?? Promise.resolve()).finally(() => process.exit(EXIT_INTERRUPTED));
  };
  if (interrupted.aborted) return EXIT_INTERRUPTED;
  interrupted.addEventListener('abort', onInterrupt, { once: true });
  try {
    const backupOptions = { log, binaryDir, storeTimeoutMs, env, reader };
    const source = live
      ? { description: checkEndpoint('from', from), open: () => V2Source.open(checkEndpoint('from', from), fromTLS) }
      : await (async () => {
          // A backup that is not there is said so before the target is asked anything.
          const located = await backups.locateBackup(from, backupOptions);
          return {
            description: await backups.describeBackup(from),
            open: async () => {
              backup = await backups.openLocatedBackup(located, backupOptions);
              return backup.reader;
            },
          };
        })();
    const summary = await migrateV2({ source, target: { endpoints: targets, tls: toTLS }, pageDepth, maxTxnOps, maxRequestBytes, concurrency, log, onProgress: (p) => printer.update(p) });
    printer.finish();
    io.out(format === 'json' ? json(summary) : textSummary(summary));
    if (!summary.verify.equal) throw new UserError(`${ctx.name}: verification failed: ${summary.verify.differences.join('; ')}`, ExitCode.Failure);
    return ExitCode.OK;
  } finally {
    interrupted.removeEventListener('abort', onInterrupt);
    printer.finish();
    await backup?.close();
  }
}

export const command: SubcommandModule = {
  args: [],
  flags: ['from', 'to', 'from-cacert', 'from-cert', 'from-key', 'to-cacert', 'to-cert', 'to-key', 'etcd-binary-dir', 'backup-reader', 'page-depth', 'max-txn-ops', 'max-request-bytes', 'concurrency', 'store-timeout', 'env-file', 'output', 'v'],
  handlesInterrupt: true,
  description: `
Copies an etcd2 (v2 API) keyspace into an etcd3 cluster: every leaf key under
the same path with the same bytes, directories dropped, keys with a TTL
attached to leases carrying their remaining TTL (keys expiring close together
share one: never earlier than in v2, at most 1% or 1 s later, and never more
than 1,941 leases), written in transactions of many puts, then verified by
reading the target back (key count and a content hash on both sides).
--from and --to are required.

Stop whatever writes the source first (the API server): keys changed during
the copy show up as a failed verification. A run that is stopped (Ctrl-C,
kill -9, a lost connection) is resumed by running the same command again: the
target remembers which ranges it holds. A finished migration is never written
again. Progress (keys done, keys/s, ETA) goes to stderr, the summary to
stdout (-o json: the summary as one JSON document).

A backup (unpacked into a private temporary directory) or a data directory is
read in this process: its newest snapshot and the WAL's committed entries after
it, checksums checked, never written. What cannot be read that way exactly (an
entry it does not model, a snapshot too big for memory), or any backup with
--backup-reader=etcd, is served by a throwaway etcd instead (127.0.0.1, its own
ports and TLS, on a copy; the newest 2.x to 3.5 in --etcd-binary-dir, else
/usr/bin/etcd), stopped and deleted when done. --v=3 logs each stage on stderr.

Exit codes of this command: 0 migrated and verified (or migrated before), 1
failure (a source or target that does not answer, a write refused,
verification failed), 2 bad usage, 4 the backup or an etcd to read it with not
found, 5 the backup store unreachable or access denied, 6 the target holds
other data or another migration, 130 interrupted (rerun to resume).`,
  run,
};
