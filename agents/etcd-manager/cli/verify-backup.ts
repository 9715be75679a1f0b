// `etcd-manager verify-backup NAME`: downloads one backup and runs every check
// the restore runs (backup/verify.ts): meta, key, stored sha256, decryption,
// gzip, snapshot sha256, etcd's own integrity hash, and `etcdctl snapshot
// status` on the database when etcdctl is there; for an etcd 2 backup, gzip,
// tar and reading the data directory back (backup/verify-v2.ts). Nothing in
// the store changes.
// backup/verify.ts runs etcdctl through execa: loaded when a verification runs, not for --help.
import type { VerifyCheck, VerifyReport } from '../backup/verify.js';
import type { V2VerifyReport } from '../backup/verify-v2.js';
import { openStores, outputFormat } from './context.js';
import { formatBytes, json } from './output.js';
import { ProgressLine } from './progress.js';
import { EXIT_INTERRUPTED, type CommandContext, type SubcommandModule } from './types.js';
import { backupNameArg, downloadProgress, keyFor, loadBackupOrExplain, snapshotTool, withWorkDir } from './verify-common.js';

/** `-o json` of a verification; these names are stable. */
export interface VerifyRow {
  name: string;
  verified: boolean;
  /** The checks that passed, in order. */
  checks: VerifyCheck[];
  /** Checks that did not run, each with why. */
  skipped: string[];
  failedCheck?: VerifyCheck;
  error?: string;
  etcdVersion?: string;
  storedBytes?: number;
  storedSha256?: string;
  snapshotBytes?: number;
  snapshotSha256?: string;
  /** From `snapshot status`, when it ran; for an etcd 2 backup, its leaf keys. */
  revision?: number;
  totalKeys?: number;
  /** An etcd 2 backup: keys with a TTL, the unpacked data directory's size, its snapshot's raft index and the WAL entries after it. */
  v2?: { withTTL: number; unpackedBytes: number; snapshotIndex: string; entriesApplied: number };
  encrypted?: boolean;
  keyId?: string;
}

export function verifiedRow(report: VerifyReport | V2VerifyReport, skipped: string[]): VerifyRow {
  if ('v2' in report) {
    const { keys, ...v2 } = report.v2;
    return {
      name: report.info.name, verified: true, checks: report.passed, skipped,
      ...(report.info.meta.etcdVersion ? { etcdVersion: report.info.meta.etcdVersion } : {}),
      storedBytes: report.storedBytes, storedSha256: report.storedSha256, totalKeys: keys, encrypted: false, v2,
    };
  }
  const encryption = report.info.sidecar?.encryption;
  return {
    name: report.info.name,
    verified: true,
    checks: report.passed,
    skipped,
    ...(report.info.meta.etcdVersion ? { etcdVersion: report.info.meta.etcdVersion } : {}),
    storedBytes: report.storedBytes,
    storedSha256: report.storedSha256,
    snapshotBytes: report.snapshotBytes,
    snapshotSha256: report.snapshotSha256,
    ...(report.status ? { revision: report.status.revision, totalKeys: report.status.totalKey } : {}),
    encrypted: encryption !== undefined,
    ...(encryption ? { keyId: encryption.keyId } : {}),
  };
}

/** People's form of a passed verification. */
export function verifiedText(row: VerifyRow): string {
  return [
    `backup ${row.name}: verified`,
    `  checks    ${row.checks.join(', ')}`,
    ...row.skipped.map((s) => `  skipped   ${s}`),
    `  stored    ${formatBytes(row.storedBytes ?? 0)}, sha256 ${row.storedSha256}${row.encrypted ? ` (AES-256-GCM, key id ${row.keyId})` : ''}`,
    ...(row.v2
      ? [
          `  data      etcd 2 data directory, ${formatBytes(row.v2.unpackedBytes)} unpacked: snapshot at raft index ${row.v2.snapshotIndex}, ${row.v2.entriesApplied} WAL entries after it`,
          `  etcd      ${row.etcdVersion ?? '?'}, ${row.totalKeys} keys (${row.v2.withTTL} with a TTL)`,
        ]
      : [
          `  snapshot  ${formatBytes(row.snapshotBytes ?? 0)}, sha256 ${row.snapshotSha256}`,
          `  etcd      ${row.etcdVersion ?? '?'}${row.revision !== undefined ? `, revision ${row.revision}, ${row.totalKeys} keys` : ''}`,
        ]),
  ].join('\n') + '\n';
}

/**
 * One verification with a progress line. Returns the report, or undefined
 * after Ctrl-C (its temp file removed); throws BackupVerifyError for a bad backup.
 */
export async function verifyWithProgress(ctx: CommandContext, name: string): Promise<{ row: VerifyRow } | undefined> {
  const stores = await openStores(ctx);
  const info = await loadBackupOrExplain(stores.backups, name);
  const key = await keyFor(ctx, stores, info);
  const choice = snapshotTool(ctx);
  const progress = new ProgressLine({ io: ctx.deps.io, now: ctx.deps.now });
  const { verifyAnyBackup } = await import('../backup/verify.js');
  try {
    const report = await withWorkDir(ctx, (workDir) => verifyAnyBackup({
      store: stores.backups,
      name,
      key,
      onProgress: downloadProgress(progress, 'verifying', name),
      signal: ctx.deps.interrupted,
      workDir,
      ...(choice.tool ? { statusCheck: { tool: choice.tool, workDir } } : {}),
    }));
    return { row: verifiedRow(report, choice.skipped ? [choice.skipped] : []) };
  } catch (err) {
    if (ctx.deps.interrupted.aborted) return undefined;
    throw err;
  } finally {
    progress.done();
  }
}

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const name = backupNameArg(ctx, ctx.args[0]);
  const { io } = ctx.deps;
  let result: { row: VerifyRow } | undefined;
  const { BackupVerifyError } = await import('../backup/verify.js');
  try {
    result = await verifyWithProgress(ctx, name);
  } catch (err) {
    if (!(err instanceof BackupVerifyError)) throw err;
    if (format === 'json') io.out(json({ name, verified: false, checks: [], skipped: [], failedCheck: err.check, error: err.message } satisfies VerifyRow));
    io.err(`etcd-manager: ${err.message} (check ${err.check} failed)\n`);
    return 1;
  }
  if (!result) {
    io.err(`etcd-manager: interrupted: verification of ${name} stopped; nothing was changed and its temporary snapshot was removed\n`);
    return EXIT_INTERRUPTED;
  }
  io.out(format === 'json' ? json(result.row) : verifiedText(result.row));
  return 0;
}

export const command: SubcommandModule = {
  args: ['NAME'],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output', 'backup-encryption-key-file', 'etcdctl', 'work-dir'],
  handlesInterrupt: true,
  description: `
Downloads backup NAME (list-backups shows the names) and runs every check a
restore runs, in this order, naming the first that fails: meta (parses, names
an etcd version), key (an encrypted backup's key id matches the key given),
stored-sha256 (the object is the size and sha256 its sidecar says), decrypt
(AES-256-GCM tag), gzip (whole stream, CRC), snapshot-sha256 (the sidecar's),
snapshot-integrity (etcd's own trailing sha256 of the database: kOps' backups
too), snapshot-status (\`etcdctl snapshot status\` opens the database; skipped,
and said so, when --etcdctl is not installed). A kOps backup has no sidecar:
its gzip CRC and etcd's hash are checked. The snapshot goes to disk in
--work-dir (or the system temp dir) and is removed afterwards; nothing in the
store changes.

An etcd 2 backup (kOps' layout: a tar of the data directory, meta etcdVersion
2.x) is unpacked into --work-dir and read back as migrate-v2 reads it: gzip,
tar (a data directory, no path leading out), v2-data (the snapshot's and the
WAL records' CRC-32C, the committed entries applied, every key walked); it
reports its keys. Such a backup is not restored as a snapshot: etcd 2 data
moves to etcd 3 through migrate-v2 or configure-cluster --etcd-version.

An encrypted backup needs its key: --backup-encryption-key-file, else the
state store secret secrets/etcd-backup-encryption-key when --backup-store has
kOps' layout (<state-store>/<cluster>/backups/etcd/<name>). Key material is
never printed, only its key id.

A damaged backup exits 1 with one line naming the check that failed; an
unknown or incomplete backup exits 4. -o json prints {"name", "verified",
"checks", "skipped", "failedCheck", "error", "etcdVersion", "storedBytes",
"storedSha256", "snapshotBytes", "snapshotSha256", "revision", "totalKeys",
"encrypted", "keyId", "v2"} (fields that do not apply are left out).`,
  run,
};
