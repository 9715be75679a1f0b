// etcd-manager's backups and restores on a ~1 GB database, each against a
// reference measured in the same run, with three managers on 127.x addresses
// (static volumes, TLS from the state store's CAs, the s3rver store, default
// reconcile interval):
//   a. backup: an on-demand request (submitRequest, as `etcd-manager backup`
//      writes it) until its result says succeeded, and the backup's own
//      duration, vs `etcdctl snapshot save` to disk then `gzip` (level 6, the
//      same as ours) of the same member;
//   b. restore: a restore command queued (kOps' _command.json + the doorbell)
//      until three healthy members serve the restored data on their client
//      URLs (a pre-restore backup of the live 1 GB, three downloads, checks,
//      `etcdctl snapshot restore` on each member, quarantine, lift included),
//      vs `etcdctl snapshot restore` of the snapshot file into three data dirs
//      (in parallel) + three etcd started on them until healthy;
//   c. the managers' peak RSS (VmRSS sampled every 100 ms) during a and b.
// Targets: a ≤ 1.0x, b ≤ 1.3x, c ≤ 100 MiB. Every process is stopped by PID and
// the temp directories deleted, on success, failure or Ctrl-C.
// The managers run the built binary from a cold copy (bench/cold-binary.ts), as
// bench/footprint.ts does, so their RSS is what an instance after a reboot has.
// Run: node scripts/build-binaries.mjs && node_modules/.bin/tsx bench/etcd-manager-backup.ts
//   (MOORING_BENCH_DB_MB=1024: database size; MOORING_BENCH_DEADLINE_MS;
//   MOORING_BENCH_LOGS=FILE writes every manager's log lines there, one JSON object
//   each with `who`, for reading a restore's timeline in detail; ETCD_MANAGER_V=4 adds etcd's own output)
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { execa } from 'execa';
import { SYSTEM_ETCD } from '../agents/etcd-manager/etcd/binary.js';
import { SYSTEM_ETCDCTL } from '../agents/etcd-manager/backup/etcdctl.js';
import { queueRestoreCommand } from '../agents/etcd-manager/control/commands.js';
import { readResult, ringDoorbell, submitRequest } from '../agents/etcd-manager/control/requests.js';
import { BackupNamer } from '../agents/etcd-manager/backup/names.js';
import { openEtcdClient } from '../agents/etcd-manager/etcd/client.js';
import { clustersSeen, scenario, type Scenario } from '../test/harness/etcd-scenario.js';
import { describeManagers, managerCommand, startManager, type ManagerProcess } from '../test/harness/manager.js';
import { processAlive, waitFor } from '../test/harness/net.js';
import { benchCleanup } from './cleanup.js';
import { coldBinaryDir } from './cold-binary.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const BINARY = join(repo, 'dist/bin/etcd-manager');
const DB_MB = Number(process.env.MOORING_BENCH_DB_MB ?? 1024);
const DEADLINE_MS = Number(process.env.MOORING_BENCH_DEADLINE_MS ?? 40 * 60_000);
const NAMES = ['a', 'b', 'c'];
const VALUE_BYTES = 1024 * 1024;

const cleanup = benchCleanup(DEADLINE_MS);

const namer = new BackupNamer({ now: Date.now, randomInt: (n) => Math.floor(Math.random() * n) });
const since = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** A process's resident memory: all of it, its anonymous part, its file pages (bytes). */
interface Resident {
  rss: number;
  anon: number;
  file: number;
}

function resident(pid: number): Resident | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return undefined; // gone
  }
}

/** Each PID's memory when `during` starts, and at its highest VmRSS while it runs (sampled every 100 ms). */
async function peakRSS<T>(pids: () => number[], during: () => Promise<T>): Promise<{ result: T; peak: Map<number, Resident>; start: Map<number, Resident> }> {
  const peak = new Map<number, Resident>();
  const start = new Map<number, Resident>();
  const sample = () => {
    for (const pid of pids()) {
      const now = resident(pid);
      if (!now) continue;
      if (!start.has(pid)) start.set(pid, now);
      if (now.rss > (peak.get(pid)?.rss ?? 0)) peak.set(pid, now);
    }
  };
  const timer = setInterval(sample, 100);
  try {
    sample();
    const result = await during();
    sample();
    return { result, peak, start };
  } finally {
    clearInterval(timer);
  }
}

/** Manager args on host i: the scenario's, with a static volume, default reconcile interval. */
function managerArgs(s: Scenario, i: number): string[] {
  const dropped = ['--volume-provider=', '--local-volume-dir=', '--mount-root=', '--instance-id=', '--reconcile-interval=', '--discovery-poll-interval='];
  return [...s.args(i).filter((a) => !dropped.some((d) => a.startsWith(d))), '--volume-provider=static', `--data-dir=${join(s.area.root, `static-${i}`)}`, `--instance-id=${NAMES[i]}`, '--backup-interval=24h'];
}

function clientTLS(s: Scenario) {
  const dir = join(s.area.root, 'pki-0');
  return ['--cacert', join(dir, 'etcd-clients-ca.crt'), '--cert', join(dir, 'etcdClient.crt'), '--key', join(dir, 'etcdClient.key')];
}

async function healthy(s: Scenario, key: string, managers: ManagerProcess[] = []): Promise<void> {
  const views = await waitFor('three healthy members', () => s.view([0, 1, 2], 3, managers), 600_000, 100).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${describeManagers(managers)}`);
  });
  if (clustersSeen(views).length !== 1) throw new Error(`the endpoints disagree: ${clustersSeen(views).join(' | ')}`);
  if ((await s.get(1, key)) === null) throw new Error(`${key} missing on host 1`);
}

function startReferenceEtcd(s: Scenario, peerPort: number, i: number, dataDir: string, initialCluster: string): ChildProcess {
  const dir = join(s.area.root, `pki-${i}`);
  const ip = s.ips[i];
  const log = openSync(join(s.area.root, `reference-etcd-${i}.log`), 'a');
  const child = spawn(SYSTEM_ETCD, [
    `--name=${NAMES[i]}`, `--data-dir=${dataDir}`,
    `--listen-peer-urls=https://${ip}:${peerPort}`, `--initial-advertise-peer-urls=https://${ip}:${peerPort}`,
    `--listen-client-urls=https://${ip}:${s.client}`, `--advertise-client-urls=https://${ip}:${s.client}`,
    `--initial-cluster=${initialCluster}`, '--initial-cluster-state=new', '--initial-cluster-token=bench-reference',
    `--cert-file=${join(dir, 'server.crt')}`, `--key-file=${join(dir, 'server.key')}`, `--trusted-ca-file=${join(dir, 'etcd-clients-ca.crt')}`, '--client-cert-auth',
    `--peer-cert-file=${join(dir, 'peer.crt')}`, `--peer-key-file=${join(dir, 'peer.key')}`, `--peer-trusted-ca-file=${join(dir, 'etcd-peers-ca-main.crt')}`, '--peer-client-cert-auth',
    '--enable-v2=false',
  ], { stdio: ['ignore', 'ignore', log] });
  closeSync(log);
  const pid = child.pid;
  cleanup.teardown(async () => {
    if (pid !== undefined && processAlive(pid)) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(pid, 'SIGKILL');
      await exited;
    }
  });
  return child;
}

async function main(): Promise<void> {
  if (!existsSync(SYSTEM_ETCD) || !existsSync(SYSTEM_ETCDCTL.binary)) throw new Error('etcd and etcdctl 3.4 are not installed (make setup)');
  console.log(`etcd-manager backup/restore bench: ~${DB_MB} MiB database (1 MiB values, half random, half repeated), three managers, s3rver store, TLS; load average at start ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  // The built binary only (a manager run from source is another program), from a cold copy (bench/cold-binary.ts).
  if (managerCommand()[0] !== BINARY) throw new Error('dist/bin/etcd-manager is missing or older than the sources: run make build');
  const bin = await coldBinaryDir(cleanup, join(repo, 'dist/bin/mooring'), ['etcd-manager']);
  const s = await scenario(cleanup, { hosts: 3, memberCount: 3, volumeKind: 'directory', store: 's3' });
  const peerPort = Number(/:(\d+)$/.exec(s.args(0).find((a) => a.startsWith('--peer-urls='))!)![1]);
  const managers = [0, 1, 2].map((i) => startManager(cleanup, managerArgs(s, i), s.env, [join(bin, 'etcd-manager')]));
  await waitFor('three healthy members', () => s.view([0, 1, 2], 3, managers), 300_000, 200);
  const leader = await waitFor('the leader', async () => managers.find((m) => m.logs.some((l) => l.event === 'leader.elected')), 60_000, 100);
  await waitFor('the first scheduled backup', async () => leader.logs.some((l) => l.event === 'backup.retention'), 120_000, 100);

  // ---- load ----
  const t0load = process.hrtime.bigint();
  const client = await openEtcdClient([s.endpoint(0)], { certFile: join(s.area.root, 'pki-0/etcdClient.crt'), keyFile: join(s.area.root, 'pki-0/etcdClient.key'), caFile: join(s.area.root, 'pki-0/etcd-clients-ca.crt') }, 60_000);
  cleanup.teardown(() => client.close());
  const half = Buffer.alloc(VALUE_BYTES / 2, 'kubernetes object, repeated; ');
  for (let i = 0; i < DB_MB; i++) await client.put(`/registry/bench/${String(i).padStart(6, '0')}`).value(Buffer.concat([randomBytes(VALUE_BYTES / 2), half]));
  await client.put('/registry/bench/marker').value('before');
  const status = await client.maintenance.status();
  console.log(`  loaded ${DB_MB} values in ${(since(t0load) / 1000).toFixed(0)} s; etcd db size ${mib(Number(status.dbSize))}`);
  const pidOf = (m: ManagerProcess) => m.child.pid!;
  const managerPids = () => managers.map(pidOf);

  // ---- a. backup ----
  const t0b = process.hrtime.bigint();
  const { result: backup, peak: backupPeak, start: backupStart } = await peakRSS(() => [pidOf(leader)], async () => {
    const id = await submitRequest(s.backups, { kind: 'backup', reason: 'bench' }, { id: namer.next(), nowMs: Date.now() });
    return waitFor('the backup request', async () => {
      const r = await readResult(s.backups, id);
      if (r?.state === 'failed') throw new Error(`backup failed: ${r.error}`);
      return r?.state === 'succeeded' ? r : undefined;
    }, 1_800_000, 100);
  });
  const oursBackup = since(t0b);

  const refDir = join(s.area.root, 'reference');
  mkdirSync(refDir, { recursive: true });
  const snapFile = join(refDir, 'snapshot.db');
  const t0r = process.hrtime.bigint();
  await execa(SYSTEM_ETCDCTL.binary, ['snapshot', 'save', snapFile, `--endpoints=${s.endpoint(0)}`, ...clientTLS(s)], { env: { ETCDCTL_API: '3' }, extendEnv: false });
  await execa('gzip', ['-6', '-k', snapFile]);
  const refBackup = since(t0r);
  rmSync(`${snapFile}.gz`, { force: true });

  // ---- b. restore ----
  await client.put('/registry/bench/marker').value('after the backup');
  const commandId = namer.next();
  const t0restore = process.hrtime.bigint();
  const queuedAt = Date.now();
  const { peak: restorePeak, start: restoreStart } = await peakRSS(managerPids, async () => {
    await queueRestoreCommand(s.backups, commandId, Date.now(), { backup: backup.backup!.name, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
    await ringDoorbell(s.backups, commandId, Date.now());
    await waitFor('restore.completed', async () => {
      const bad = managers.flatMap((m) => m.logs.filter((l) => l.event === 'restore.refused' || l.event === 'restore.failed'));
      if (bad.length) throw new Error(`restore ended badly: ${JSON.stringify(bad[0])}`);
      return managers.some((m) => m.logs.some((l) => l.event === 'restore.completed'));
    }, 1_800_000, 100);
    await healthy(s, '/registry/bench/marker', managers);
  });
  const oursRestore = since(t0restore);
  if ((await s.get(2, '/registry/bench/marker')) !== 'before') throw new Error('the restored data is not the backup\'s');
  // The leader's phases and each member's steps (`member.*` events carry the member's name).
  const TIMELINE_EVENTS = ['restore.noticed', 'restore.started', 'restore.pre-backup', 'restore.phase', 'restore.completed', 'member.restore-prepared', 'member.restore-stopped', 'member.restore-started', 'member.restore-lift-stopped', 'member.restore-lifted'];
  const phases = managers.flatMap((m, i) => m.logs.map((l): Record<string, unknown> => ({ ...l, who: NAMES[i] }))).filter((l) => TIMELINE_EVENTS.includes(String(l.event)))
    .sort((x, y) => String(x.time).localeCompare(String(y.time)));
  if (process.env.MOORING_BENCH_LOGS) writeFileSync(process.env.MOORING_BENCH_LOGS, managers.flatMap((m, i) => m.logs.map((l) => JSON.stringify({ who: NAMES[i], ...l }))).join('\n'));
  const timeline = 'queued +0.0s, ' + phases.map((l) => `${String(l.event).replace('restore.', '').replace('member.restore-', `${l.who}:`)}${l.phase ? `→${String(l.phase)}` : ''} +${((Date.parse(String(l.time)) - queuedAt) / 1000).toFixed(1)}s`).join(', ') + `, healthy on the client URLs +${(oursRestore / 1000).toFixed(1)}s`;

  // Reference: managers (and their etcd) gone; etcdctl snapshot restore ×3 in parallel, three etcd started.
  client.close();
  await Promise.all(managers.map((m) => m.kill()));
  const initial = NAMES.map((n, i) => `${n}=https://${s.ips[i]}:${peerPort}`).join(',');
  const t0rr = process.hrtime.bigint();
  await Promise.all(NAMES.map((n, i) => execa(SYSTEM_ETCDCTL.binary, [
    'snapshot', 'restore', snapFile, `--data-dir=${join(refDir, `member-${n}`)}`, `--name=${n}`, `--initial-cluster=${initial}`,
    '--initial-cluster-token=bench-reference', `--initial-advertise-peer-urls=https://${s.ips[i]}:${peerPort}`,
  ], { env: { ETCDCTL_API: '3' }, extendEnv: false })));
  NAMES.forEach((n, i) => startReferenceEtcd(s, peerPort, i, join(refDir, `member-${n}`), initial));
  await healthy(s, '/registry/bench/marker');
  const refRestore = since(t0rr);

  const row = (label: string, ours: number, ref: number, refLabel: string, target: string) =>
    console.log(`  ${label.padEnd(48)} ${(ours / 1000).toFixed(1).padStart(7)} s   ${refLabel.padEnd(58)} ${(ref / 1000).toFixed(1).padStart(7)} s   ratio ${(ours / ref).toFixed(2)}x   target ${target}`);
  console.log(`  backup ${backup.backup!.name}: ${mib(backup.backup!.snapshotBytes ?? 0)} snapshot, ${mib(backup.backup!.storedBytes)} stored; its own duration ${(backup.backup!.durationMs / 1000).toFixed(1)} s`);
  row('a. on-demand backup into s3rver (request → result)', oursBackup, refBackup, 'reference: etcdctl snapshot save + gzip -6', '≤ 1.0x');
  row('a. the backup itself (snapshot → gzip → upload)', backup.backup!.durationMs, refBackup, 'reference: etcdctl snapshot save + gzip -6', '≤ 1.0x');
  row('b. restore into 3 healthy members (queued → healthy)', oursRestore, refRestore, 'reference: 3× etcdctl snapshot restore + 3 etcd → healthy', '≤ 1.3x');
  console.log(`     restore timeline: ${timeline}`);
  const memory = (start: Resident | undefined, peak: Resident | undefined) =>
    peak ? `${mib(peak.rss)} (anon ${mib(peak.anon)}, file ${mib(peak.file)}; ${mib(start?.rss ?? 0)} at the start)` : 'not sampled';
  console.log(`  c. peak RSS of the leading manager during the backup: ${memory(backupStart.get(pidOf(leader)), backupPeak.get(pidOf(leader)))}   target ≤ 100 MiB`);
  console.log(`     during the restore: ${managers.map((m, i) => `${NAMES[i]} ${memory(restoreStart.get(pidOf(m)), restorePeak.get(pidOf(m)))}`).join('; ')}`);
  console.log(`  load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

main().then(
  async () => {
    await cleanup.run();
    process.exit(0);
  },
  async (err: unknown) => {
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
    await cleanup.run();
    process.exit(1);
  },
);
