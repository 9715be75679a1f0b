// etcd2 → etcd3 migration throughput, `etcd-manager migrate-v2` against two
// references measured in the same run on the same data:
//   - `etcdctl migrate` (etcd 3.4.23's own, offline: the v2 data directory is
//     converted in place, no network, no raft; its TTL keys come out with no
//     lease, which the run checks and prints);
//   - a naive copy as kOps' etcd-manager does it: one recursive v2 read, then one
//     v3 Put per key, in order, TTLs dropped (its rate is steady, so it copies only
//     the first MOORING_BENCH_NAIVE_KEYS, default 5,000, to keep the run short).
// The data: MOORING_BENCH_KEYS (default 100,000) v2 leaves under
// /registry/<resource>/<namespace>/…, 10% with TTLs of 30 min to 2 h (none
// expire during the run), values of 100–1000 bytes. Ours runs three times per repetition: from the
// live v2 source (as the manager's migration path does) and from a frozen copy of the
// source's data directory (a v2 backup: the same input etcdctl migrate gets), read in
// the command itself (the default) and, for comparison, served by a throwaway etcd
// (--backup-reader=etcd, how it was read before). Each writes into a fresh etcd 3.4.23 with
// mutual TLS, and the methods take turns within each repetition.
// Besides keys/s, the CPU seconds each method spends (every process it needs:
// the command, the target etcd, the source etcd; GNU time for the commands,
// /proc for the etcd processes), since on a busy machine wall time mostly says
// how much CPU a method was given.
// Every etcd listens on its own 127.0.x.y and is stopped by PID; the temp
// directory is deleted on success, failure, timeout or Ctrl-C.
// Run: node_modules/.bin/tsx bench/migrate-v2.ts   (MOORING_BENCH_KEYS=100000 MOORING_BENCH_REPS=3)
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Etcd3 } from 'etcd3';
import { openEtcdClient } from '../agents/etcd-manager/etcd/client.js';
import type { MigrationSummary } from '../agents/etcd-manager/migrate/migrate.js';
import { managerCommand } from '../test/harness/manager.js';
import { loopbackNet } from '../test/harness/net.js';
import { ETCDCTL, etcdSkipReason, inParallel, makeTestPKI, SETPRIV, startTestEtcd, V2Client, type TestPKI } from '../test/harness/v2-etcd.js';
import { benchCleanup } from './cleanup.js';

const KEYS = Number(process.env.MOORING_BENCH_KEYS ?? 100_000);
const REPS = Number(process.env.MOORING_BENCH_REPS ?? 3);
const NAIVE_KEYS = Number(process.env.MOORING_BENCH_NAIVE_KEYS ?? 5_000);
const DEADLINE_MS = Number(process.env.MOORING_BENCH_DEADLINE_MS ?? 30 * 60_000);

/** LIFO cleanup, like tap's teardown. */
const cleanup = benchCleanup(DEADLINE_MS);

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
const TIME = '/usr/bin/time';
const CLK_TCK = 100;

/** CPU seconds (user + system) a running process has used so far. */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** The command line run under GNU time, which writes its CPU seconds (children it reaped included) to `file`. */
function timed(file: string, command: string[]): string[] {
  return existsSync(TIME) ? [TIME, '-f', '%U %S', '-o', file, SETPRIV, '--pdeathsig', 'KILL', '--', ...command] : command;
}

function cpuFrom(file: string): number {
  if (!existsSync(file)) return NaN;
  const [user, system] = readFileSync(file, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return user + system;
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const number = new Intl.NumberFormat('en-US');

async function countKeys(client: Etcd3): Promise<{ keys: number; onLease: number }> {
  let keys = 0;
  let onLease = 0;
  let start = Buffer.from('/');
  const end = Buffer.from('0'); // every key starting with '/' ('0' follows '/'); etcd-manager's own /mooring/ records are skipped
  for (;;) {
    const res = await client.kv.range({ key: start, range_end: end, limit: 10_000, keys_only: true });
    for (const kv of res.kvs) {
      if (kv.key.toString().startsWith('/mooring/')) continue;
      keys++;
      if (kv.lease !== '0') onLease++;
    }
    if (!res.more) return { keys, onLease };
    start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
  }
}

interface Row {
  name: string;
  rates: number[];
  note: string;
}

async function main(): Promise<void> {
  if (etcdSkipReason) {
    console.log(`bench/migrate-v2: skipped: ${etcdSkipReason}`);
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'bench-migrate-v2-'));
  cleanup.teardown(() => rmSync(root, { recursive: true, force: true }));
  const ip = loopbackNet();
  let host = 1;
  const pki: TestPKI = await makeTestPKI(join(root, 'pki'), Array.from({ length: 20 }, (_, i) => ip(i + 1)));
  const target = async (name: string) => {
    const etcd = await startTestEtcd(cleanup, { name, ip: ip(host++), dataDir: join(root, name), pki });
    const client = await openEtcdClient([etcd.endpoint], pki.client, 60_000);
    cleanup.teardown(() => client.close());
    return { etcd, client };
  };

  // The v2 source.
  // etcd 2's data layout: a snapshot every 10,000 entries (etcd 2's default; 3.x's is 100,000), so a
  // data directory holds a v2 snapshot and a short WAL, as an etcd2 backup does.
  const v2Layout = ['--snapshot-count=10000'];
  const source = await startTestEtcd(cleanup, { name: 'source', ip: ip(host++), dataDir: join(root, 'source'), pki, enableV2: true, extraArgs: v2Layout });
  const v2 = new V2Client(source.endpoint, pki.client, 64);
  const seeds = Array.from({ length: KEYS }, (_, i) => ({
    key: `/registry/r${i % 20}/ns${Math.floor(i / 20) % 50}/${i % 9 === 0 ? 'sub/' : ''}obj-${i}`,
    value: JSON.stringify({ kind: 'Thing', name: `obj-${i}`, pad: 'x'.repeat(60 + ((i * 37) % 900)) }),
    ttl: i % 10 === 3 ? 1800 + (i % 5400) : undefined,
  }));
  const seeding = process.hrtime.bigint();
  await inParallel(seeds, 64, (s) => v2.put(s.key, s.value, s.ttl));
  v2.close();
  const withTTL = seeds.filter((s) => s.ttl !== undefined).length;
  console.log(`seeded ${number.format(KEYS)} v2 keys (${number.format(withTTL)} with a TTL) in ${seconds(seeding).toFixed(1)} s`);

  const tls = (side: 'from' | 'to') => [`--${side}-cacert=${pki.client.caFile}`, `--${side}-cert=${pki.client.certFile}`, `--${side}-key=${pki.client.keyFile}`];
  const ours = async (from: string[], label: string, sourcePid?: number): Promise<{ rate: number; wallRate: number; summary: MigrationSummary; servingMs?: number; cpu: { command: number; target: number; source: number } }> => {
    const { etcd, client } = await target(`target-${label}-${host}`);
    const cpuFile = join(root, `cpu-${label}-${host}`);
    const [targetCpu0, sourceCpu0] = [cpuOf(etcd.pid), sourcePid ? cpuOf(sourcePid) : 0];
    const started = process.hrtime.bigint();
    const startedAt = Date.now();
    const command = timed(cpuFile, [...managerCommand(), 'migrate-v2', ...from, '--to', etcd.endpoint, ...tls('to'), '-o', 'json', '--v=3']);
    const child = spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', ...command], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MOORING_LOG_FORMAT: 'json' } });
    cleanup.teardown(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    const wall = seconds(started);
    if (code !== 0) throw new Error(`migrate-v2 (${label}) exit ${code}: ${err.split('\n').slice(-4).join(' | ')}`);
    const summary = JSON.parse(out) as MigrationSummary;
    if (!summary.verify.equal) throw new Error(`migrate-v2 (${label}): verification failed`);
    const cpu = { command: cpuFrom(cpuFile), target: cpuOf(etcd.pid) - targetCpu0, source: sourcePid ? cpuOf(sourcePid) - sourceCpu0 : 0 };
    const counted = await countKeys(client);
    if (counted.keys !== KEYS || counted.onLease !== withTTL) throw new Error(`migrate-v2 (${label}): ${counted.keys} keys, ${counted.onLease} on leases; want ${KEYS}, ${withTTL}`);
    await etcd.stop();
    // When the data directory had been read, or its throwaway etcd answered (JSON log line), for the data-directory runs.
    const served = err.split('\n').map((l) => {
      try {
        return JSON.parse(l) as { event?: string; time?: string };
      } catch {
        return {};
      }
    }).find((e) => e.event === 'migrate-v2.backup-read' || e.event === 'migrate-v2.backup-served');
    return { rate: summary.keys.source / (summary.durationMs / 1000), wallRate: KEYS / wall, summary, servingMs: served?.time ? Date.parse(served.time) - startedAt : undefined, cpu };
  };

  // The same v2 data twice: the live source, and a frozen copy of its data directory (the source
  // stopped for the copy and started again on the same directory; v2 expiries are absolute times).
  await source.stop();
  const frozen = join(root, 'frozen');
  cpSync(source.dataDir, frozen, { recursive: true });
  const live = await startTestEtcd(cleanup, { name: 'source', ip: ip(host++), dataDir: source.dataDir, pki, enableV2: true, extraArgs: v2Layout });

  // The naive copy (kOps): one recursive read, then one Put per key, in order. Once: its rate is steady.
  let naive: Row;
  {
    const { etcd, client } = await target(`target-naive-${host}`);
    const reader = new V2Client(live.endpoint, pki.client, 1);
    const started = process.hrtime.bigint();
    const leaves = [...(await reader.leaves())].slice(0, NAIVE_KEYS);
    for (const [key, leaf] of leaves) await client.put(key).value(leaf.value);
    const rate = leaves.length / seconds(started);
    reader.close();
    const counted = await countKeys(client);
    if (counted.keys !== leaves.length) throw new Error(`naive copy: ${counted.keys} keys, want ${leaves.length}`);
    await etcd.stop();
    console.log(`  naive copy (one Put per key), ${number.format(leaves.length)} keys: ${number.format(Math.round(rate))} keys/s`);
    naive = { name: 'naive copy, one v3 Put per key (kOps)', rates: [rate], note: `TTLs dropped: ${counted.onLease} keys on leases; ${number.format(leaves.length)} keys copied` };
  }

  // Interleaved, so a machine whose load changes over the run weighs on every method alike.
  const cpuSeconds = { live: [] as number[], offline: [] as number[], frozen: [] as number[], frozenEtcd: [] as number[] };
  const ourFrozenEtcd: number[] = [];
  const ourLive: number[] = [];
  const ourLiveWall: number[] = [];
  const offline: number[] = [];
  const ourFrozen: number[] = [];
  let leases = 0;
  let ttlNote = '';
  for (let r = 0; r < REPS; r++) {
    const run = await ours(['--from', live.endpoint, ...tls('from')], 'live', live.pid);
    ourLive.push(run.rate);
    cpuSeconds.live.push(run.cpu.command + run.cpu.target + run.cpu.source);
    ourLiveWall.push(run.wallRate);
    leases = run.summary.leases.used;
    console.log(`  run ${r + 1}: migrate-v2 from the live source: ${number.format(Math.round(run.rate))} keys/s (${number.format(Math.round(run.wallRate))} keys/s counting process start), ${run.summary.transactions.count} transactions, ${leases} leases; CPU ${run.cpu.command.toFixed(1)} s command + ${run.cpu.target.toFixed(1)} s target etcd + ${run.cpu.source.toFixed(1)} s source etcd`);

    const copy = join(root, `offline-${r}`);
    cpSync(frozen, copy, { recursive: true });
    const ctlCpu = join(root, `cpu-etcdctl-${r}`);
    const started = process.hrtime.bigint();
    const [bin, ...rest] = timed(ctlCpu, [ETCDCTL, 'migrate', `--data-dir=${copy}`]);
    await execa(bin, rest, { env: { ETCDCTL_API: '3' }, timeout: 20 * 60_000 });
    const rate = KEYS / seconds(started);
    offline.push(rate);
    cpuSeconds.offline.push(cpuFrom(ctlCpu));
    // Not timed: serve the result and check it holds every key.
    const check = await startTestEtcd(cleanup, { name: 'source', ip: ip(host++), dataDir: copy, pki });
    const client = await openEtcdClient([check.endpoint], pki.client, 60_000);
    const counted = await countKeys(client);
    client.close();
    await check.stop();
    rmSync(copy, { recursive: true, force: true });
    if (counted.keys !== KEYS) throw new Error(`etcdctl migrate: ${counted.keys} keys, want ${KEYS}`);
    ttlNote = `TTLs dropped: ${counted.onLease} of ${number.format(withTTL)} TTL keys on a lease`;
    console.log(`  run ${r + 1}: etcdctl migrate (offline): ${number.format(Math.round(rate))} keys/s, CPU ${cpuFrom(ctlCpu).toFixed(1)} s; ${ttlNote}`);

    const fromData = await ours(['--from', frozen], 'data-dir');
    ourFrozen.push(fromData.rate);
    cpuSeconds.frozen.push(fromData.cpu.command + fromData.cpu.target);
    console.log(`  run ${r + 1}: migrate-v2 from the data directory: ${number.format(Math.round(fromData.rate))} keys/s (reading its snapshot and WAL included: ${((fromData.servingMs ?? NaN) / 1000).toFixed(1)} s of ${(fromData.summary.durationMs / 1000).toFixed(1)} s); CPU ${fromData.cpu.command.toFixed(1)} s command + ${fromData.cpu.target.toFixed(1)} s target etcd`);

    const viaEtcd = await ours(['--from', frozen, '--backup-reader=etcd'], 'data-dir-etcd');
    ourFrozenEtcd.push(viaEtcd.rate);
    cpuSeconds.frozenEtcd.push(viaEtcd.cpu.command + viaEtcd.cpu.target);
    console.log(`  run ${r + 1}: migrate-v2 from the data directory, --backup-reader=etcd: ${number.format(Math.round(viaEtcd.rate))} keys/s (copy and throwaway etcd start included: ${((viaEtcd.servingMs ?? NaN) / 1000).toFixed(1)} s of ${(viaEtcd.summary.durationMs / 1000).toFixed(1)} s); CPU ${viaEtcd.cpu.command.toFixed(1)} s command and its etcd + ${viaEtcd.cpu.target.toFixed(1)} s target etcd`);
  }
  const rows: Row[] = [
    { name: 'etcd-manager migrate-v2, live v2 source', rates: ourLive, note: `TTLs kept: ${number.format(withTTL)} keys on ${leases} leases; verified` },
    { name: 'etcd-manager migrate-v2, v2 data directory', rates: ourFrozen, note: 'read in the command (snapshot + WAL); TTLs kept; verified' },
    { name: '  the same, --backup-reader=etcd', rates: ourFrozenEtcd, note: 'a throwaway etcd serves a copy; TTLs kept; verified' },
    { name: 'etcdctl migrate, offline (etcd 3.4.23)', rates: offline, note: ttlNote },
    naive,
  ];

  const ref = median(offline);
  const naiveRate = naive.rates[0];
  console.log(`\nv2 → v3 migration of ${number.format(KEYS)} keys (${number.format(withTTL)} with TTLs), median of ${REPS} interleaved runs (naive copy: 1 run)`);
  for (const row of rows) {
    const m = median(row.rates);
    console.log(`  ${row.name.padEnd(44)} ${number.format(Math.round(m)).padStart(7)} keys/s  ${(m / ref).toFixed(2).padStart(5)}× etcdctl migrate  ${(m / naiveRate).toFixed(1).padStart(5)}× naive   ${row.note}`);
  }
  const perRun = (ours: number[]) => median(ours.map((v, i) => v / offline[i])).toFixed(2);
  console.log(`  ratio to etcdctl migrate within each run, median: live ${perRun(ourLive)}×, data directory ${perRun(ourFrozen)}× (each run: ${ourFrozen.map((v, i) => (v / offline[i]).toFixed(2)).join(', ')}), data directory via etcd ${perRun(ourFrozenEtcd)}×`);
  console.log(`  (process start of etcd-manager counted in: ${number.format(Math.round(median(ourLiveWall)))} keys/s from the live source)`);
  console.log(`  CPU seconds for the ${number.format(KEYS)} keys, every process of the method counted (median): live ${median(cpuSeconds.live).toFixed(1)} s, data directory ${median(cpuSeconds.frozen).toFixed(1)} s (via etcd ${median(cpuSeconds.frozenEtcd).toFixed(1)} s), etcdctl migrate ${median(cpuSeconds.offline).toFixed(1)} s`);
}

main()
  .then(() => cleanup.run())
  .catch(async (err: unknown) => {
    console.error(`bench/migrate-v2: ${(err as Error).stack ?? String(err)}`);
    await cleanup.run();
    process.exit(1);
  });
