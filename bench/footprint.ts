// Memory of etcd-manager, the long-running agent, beside Node's own floor,
// all measured in this one run:
//   1. steady RSS: three managers (the built binary) form a healthy 3-member
//      cluster with TLS everywhere, at the production intervals (10 s
//      reconcile, 60 s discovery poll), then idle MOORING_FOOTPRINT_IDLE
//      seconds (default 300: without full collections a manager grew for its
//      first ten minutes, and 60 s showed too little of it). The floors idle as long, started at the same
//      time: the binary's runtime, `node -e 'setInterval(()=>{},1e3)'` of that runtime (Node 22), and
//      the system's Node 20 the same way. Printed as "floor + N MiB".
//      Beside them, idling as long: protokube as on a control-plane instance
//      (the built binary): names, an addon channel (CoreDNS) applied and the
//      node labelled, against the test Kubernetes API server
//      (test/harness/kube-apiserver.ts, in this process), default intervals.
//   2. peak RSS while the backup library takes a backup of a ~1 GB etcd
//      database (MOORING_FOOTPRINT_BACKUP_MIB, default 1024; 0 skips it):
//      the process measured is the binary itself running the hidden
//      diagnostic `mooring-agents __backup-footprint` (scripts/backup-footprint.ts),
//      which calls takeBackup as a manager does, under the same V8 flags, into
//      a file:// store. It is not a manager: it holds the etcd client and the
//      store, not the peer API or the controller (bench/etcd-manager-backup.ts
//      measures the managers' own peak during an on-demand backup and a
//      restore). MOORING_FOOTPRINT_COMPARE_V8=1 runs it a second time with
//      V8's default flags.
// Every program runs from a fresh copy (the product binary, its runtime, node20)
// whose pages were dropped from the page cache: the RSS of a program's own
// file pages depends on how the file came into the page cache (the build
// writes the binary in one go, and the kernel then maps it in large folios:
// ~18 MiB more RSS from the same binary than from a copy), so all three start
// alike, as after a reboot.
// Every process is stopped by PID and the temp directories deleted, on
// success, failure, timeout or Ctrl-C.
// MOORING_FOOTPRINT_BINARY=<path of a mooring binary> measures that build
// instead of dist/bin/mooring (an older one has no __backup-footprint: run it
// with MOORING_FOOTPRINT_BACKUP_MIB=0).
// Run: node scripts/build-binaries.mjs && node_modules/.bin/tsx bench/footprint.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { stringify as stringifyYAML } from 'yaml';
import { createHash, randomBytes } from 'node:crypto';
import { openEtcdClient } from '../agents/etcd-manager/etcd/client.js';
import { listBackups } from '../agents/etcd-manager/backup/list.js';
import { openStore } from '../shared/store/index.js';
import { scenario } from '../test/harness/etcd-scenario.js';
import { describeManagers, managerCommand, startManager, type ManagerProcess } from '../test/harness/manager.js';
import { loopbackNet, processAlive, waitFor } from '../test/harness/net.js';
import { etcdMissing, makeEtcdPKI, startEtcd } from '../test/harness/tls-etcd.js';
import { KubeAPIServer } from '../test/harness/kube-apiserver.js';
import { startProtokube, type ProtokubeProcess } from '../test/harness/protokube.js';
import { benchCleanup } from './cleanup.js';
import { coldBinaryDir, coldCopy } from './cold-binary.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const IDLE_S = Number(process.env.MOORING_FOOTPRINT_IDLE ?? 300);
const BACKUP_MIB = Number(process.env.MOORING_FOOTPRINT_BACKUP_MIB ?? 1024);
const COMPARE_V8 = process.env.MOORING_FOOTPRINT_COMPARE_V8 === '1';
const DEADLINE_MS = Number(process.env.MOORING_BENCH_DEADLINE_MS ?? 30 * 60_000);
const STEADY_TARGET_MIB = 10;
const BACKUP_TARGET_MIB = 100;
const RUNTIME = join(repo, `node_modules/node-linux-${process.arch}/bin/node`);
/** The binary's runtime's major version, for the labels. */
const RUNTIME_MAJOR = existsSync(RUNTIME) ? (JSON.parse(readFileSync(join(repo, `node_modules/node-linux-${process.arch}/package.json`), 'utf8')) as { version: string }).version.split('.')[0] : '?';
const NODE20 = process.execPath;
const BINARY = process.env.MOORING_FOOTPRINT_BINARY ?? join(repo, 'dist/bin/mooring');

/** LIFO cleanup, like tap's teardown; run() drains what is registered so far. */
const cleanup = benchCleanup(DEADLINE_MS);

interface Memory {
  rss: number;
  anon: number;
  file: number;
}

/** VmRSS, RssAnon and RssFile of a live process, in MiB. */
function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024;
  return { rss: mib('VmRSS'), anon: mib('RssAnon'), file: mib('RssFile') };
}

/**
 * Where a process's resident memory lies, from /proc/<pid>/smaps: the binary's own
 * file pages, other files (libc, libstdc++), glibc's main malloc arena ([heap]:
 * OpenSSL, libuv, ICU and other C++ allocations), and anonymous mappings, split by
 * reservation size: V8 reserves its heap and code space in large regions (its
 * pages are 256 KiB chunks inside them), glibc's thread arenas are 64 MiB
 * reservations. An estimate by mapping, not by allocator: a category names the
 * mappings, not who filled them.
 */
function whereItIs(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let category = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const sizeMiB = (Number.parseInt(header[2], 16) - Number.parseInt(header[1], 16)) / 1048576;
      const path = header[3];
      category = path.endsWith('/mooring') ? 'the binary (file pages)'
        : path.startsWith('/') ? 'other files (libc, ...)'
        : path === '[heap]' ? 'malloc main arena ([heap])'
        : path.startsWith('[stack') ? 'stacks'
        : path.startsWith('[') ? path
        : sizeMiB >= 64 ? 'anon, reservations >= 64 MiB (V8 heap cage/code range, malloc thread arenas)'
        : 'anon, smaller mappings (V8 heap chunks, thread stacks, buffers)';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && category) out[category] = (out[category] ?? 0) + Number(rss[1]) / 1024;
  }
  return out;
}

function printWhereItIs(label: string, pid: number): void {
  const parts = Object.entries(whereItIs(pid)).filter(([, mib]) => mib >= 0.05).sort((a, b) => b[1] - a[1]);
  console.log(`    ${label}: ${parts.map(([k, mib]) => `${k} ${fmt(mib)}`).join('; ')}`);
}

const fmt = (m: number) => m.toFixed(1);
const show = (m: Memory) => `${fmt(m.rss).padStart(6)} MiB (anon ${fmt(m.anon)}, file ${fmt(m.file)})`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `node -e 'setInterval(()=>{},1e3)'`: a Node process that does nothing, killed by PID at cleanup. */
function startFloor(node: string): ChildProcess {
  const child = spawn(node, ['-e', 'setInterval(()=>{},1e3)'], { stdio: 'ignore', env: {} });
  cleanup.teardown(() => {
    if (child.pid !== undefined && processAlive(child.pid)) child.kill('SIGKILL');
  });
  return child;
}

/**
 * protokube as a control-plane instance runs it, on the cold binary: a file:// state store, a
 * hosts file of its own, an addon channel (the CoreDNS fixture) and a node to label, against the
 * test API server; production intervals. Resolves once the addon is applied and the node labelled.
 */
async function startControlPlaneProtokube(bin: string): Promise<ProtokubeProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'mooring-footprint-protokube-'));
  cleanup.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = await KubeAPIServer.start(cleanup);
  server.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } }, { manager: 'kube-apiserver' });
  server.seed({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'cp-node', labels: { 'kubernetes.io/hostname': 'cp-node' } } }, { manager: 'kubelet' });
  const kubeconfig = server.writeKubeconfig(join(dir, 'kubeconfig'));
  const manifest = readFileSync(join(repo, 'test/fixtures/kube/coredns-addon.yaml'), 'utf8');
  mkdirSync(join(dir, 'channel/coredns.addons.k8s.io'), { recursive: true });
  writeFileSync(join(dir, 'channel/coredns.addons.k8s.io/k8s-1.12.yaml'), manifest);
  const channel = join(dir, 'channel/bootstrap-channel.yaml');
  writeFileSync(channel, stringifyYAML({ kind: 'Addons', metadata: { name: 'bootstrap' }, spec: { addons: [{
    id: 'k8s-1.12', manifest: 'coredns.addons.k8s.io/k8s-1.12.yaml', manifestHash: createHash('sha256').update(manifest).digest('hex'),
    name: 'coredns.addons.k8s.io', selector: { 'k8s-addon': 'coredns.addons.k8s.io' },
  }] } }));
  writeFileSync(join(dir, 'hosts'), '127.0.0.1\tlocalhost\n');
  const cluster = 'footprint.example.com';
  const protokube = startProtokube(cleanup, [
    `--cluster=${cluster}`, `--config-base=file://${dir}/store/${cluster}`, '--address=127.0.0.1', '--instance-name=cp-a',
    `--hosts-file=${join(dir, 'hosts')}`, `--kubeconfig=${kubeconfig}`, `--channel=${channel}`, '--node-name=cp-node',
    `--status-file=${join(dir, 'status.json')}`, '--status-port=0',
  ], {}, [join(bin, 'protokube')]);
  await protokube.waitForEvent('addon-applied', { timeoutMs: 120_000 });
  await protokube.waitForEvent('node-labels-applied', { timeoutMs: 120_000 });
  return protokube;
}

async function steadyState(bin: string, runtime: string, node20: string): Promise<{ floorRuntime: Memory; floor20: Memory }> {
  const s = await scenario(cleanup, { hosts: 3, memberCount: 3, volumeKind: 'directory' });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m);
  // The production intervals: the scenario's fast test intervals dropped.
  const args = (i: number) => ['run', ...s.args(i).filter((a) => !a.startsWith('--reconcile-interval=') && !a.startsWith('--discovery-poll-interval='))];
  const floors = { runtime: startFloor(runtime), node20: startFloor(node20) };
  const started = Date.now();
  const managers: ManagerProcess[] = [0, 1, 2].map((i) => startManager(cleanup, args(i), s.env, [join(bin, 'etcd-manager')]));
  const protokube = await startControlPlaneProtokube(bin);
  await waitFor('a healthy 3-member cluster', () => s.view([0, 1, 2], 3, managers), 180_000, 500).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${describeManagers(managers)}`);
  });
  console.log(`  healthy 3-member cluster after ${((Date.now() - started) / 1000).toFixed(1)} s; idling ${IDLE_S} s`);
  console.log('  where each manager\'s RSS lies (MiB), at start (just healthy):');
  for (const m of managers) printWhereItIs(`pid ${m.child.pid}`, m.child.pid!);
  const idleEnd = Date.now() + IDLE_S * 1000;
  while (Date.now() < idleEnd) {
    await sleep(Math.min(15_000, idleEnd - Date.now()));
    for (const m of managers) if (m.child.exitCode !== null) throw new Error(`a manager exited: ${describeManagers([m])}`);
    if (protokube.child.exitCode !== null) throw new Error(`protokube exited: ${protokube.logs.slice(-5).map((l) => JSON.stringify(l)).join(' | ')}`);
    if (Date.now() < idleEnd) console.log(`  ${Math.round((idleEnd - Date.now()) / 1000)} s to go: managers ${managers.map((m) => fmt(memoryOf(m.child.pid!).rss)).join(', ')} MiB, protokube ${fmt(memoryOf(protokube.child.pid!).rss)} MiB`);
  }
  const floorRuntime = memoryOf(floors.runtime.pid!);
  const floor20 = memoryOf(floors.node20.pid!);
  const leaderNow = (m: ManagerProcess) => {
    const wins = m.logs.filter((l) => l.event === 'leader.elected').length;
    const losses = m.logs.filter((l) => l.event === 'leader.lost' || l.event === 'leader.stepped-down').length;
    return wins > losses;
  };
  const rows = managers.map((m) => ({ m, memory: memoryOf(m.child.pid!), member: String(m.logs.find((l) => l.event === 'member.identity')?.member ?? '?') }));
  console.log(`\nsteady RSS after ${IDLE_S} s idle (3 managers, TLS, default intervals), node floors idle as long:`);
  console.log(`  ${`node${RUNTIME_MAJOR} -e 'setInterval(()=>{},1e3)' (the binary's runtime: the floor)`.padEnd(72)}${show(floorRuntime)}`);
  console.log(`  node20 -e 'setInterval(()=>{},1e3)' (the system's Node 20)             ${show(floor20)}`);
  for (const { m, memory, member } of rows) {
    const label = `etcd-manager, member ${member}${leaderNow(m) ? ' (leader)' : ''}`;
    console.log(`  ${label.padEnd(71)} ${show(memory)} = runtime floor + ${fmt(memory.rss - floorRuntime.rss)} MiB (node20 floor + ${fmt(memory.rss - floor20.rss)} MiB)`);
  }
  const protokubeMemory = memoryOf(protokube.child.pid!);
  console.log(`  ${'protokube (control plane: names, an addon channel, node labels)'.padEnd(71)} ${show(protokubeMemory)} = runtime floor + ${fmt(protokubeMemory.rss - floorRuntime.rss)} MiB (node20 floor + ${fmt(protokubeMemory.rss - floor20.rss)} MiB)`);
  console.log(`  where it lies (MiB) after ${IDLE_S} s idle:`);
  for (const { m, member } of rows) printWhereItIs(`member ${member}`, m.child.pid!);
  printWhereItIs('protokube', protokube.child.pid!);
  printWhereItIs('runtime floor', floors.runtime.pid!);
  const highest = Math.max(...rows.map((r) => r.memory.rss));
  console.log(`  highest manager: runtime floor + ${fmt(highest - floorRuntime.rss)} MiB   (target: floor + ${STEADY_TARGET_MIB} MiB or less)`);
  console.log(`  protokube: runtime floor + ${fmt(protokubeMemory.rss - floorRuntime.rss)} MiB   (target: floor + ${STEADY_TARGET_MIB} MiB or less)`);
  await Promise.all([...managers.map((m) => m.stop()), protokube.stop()]);
  return { floorRuntime, floor20 };
}

interface BackupFootprint {
  name: string;
  v8: string;
  snapshotBytes: number;
  storedBytes: number;
  durationMs: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
  hwmMiB: number;
  rssAfterMiB: number;
}

async function backupPeak(bin: string, floorRuntime: Memory): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'mooring-footprint-backup-'));
  cleanup.teardown(() => rmSync(root, { recursive: true, force: true }));
  const ip = loopbackNet()(1);
  const pki = await makeEtcdPKI(join(root, 'pki'), [ip]);
  const etcd = await startEtcd(cleanup, { name: 'backup', dataDir: join(root, 'etcd'), ip, pki, token: 'footprint' });
  const client = await openEtcdClient([etcd.endpoint], pki.client, 60_000);
  try {
    // 1 MiB values etcd keeps as they are (random bytes: gzip cannot shrink them), four writes at a time.
    const started = Date.now();
    for (let i = 0; i < BACKUP_MIB; i += 4) {
      await Promise.all(Array.from({ length: Math.min(4, BACKUP_MIB - i) }, (_, j) => client.put(`/footprint/${String(i + j).padStart(6, '0')}`).value(randomBytes(1024 * 1024))));
      if ((i + 4) % 256 === 0) console.log(`  wrote ${i + 4} MiB`);
    }
    console.log(`  ${BACKUP_MIB} MiB written to etcd in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    client.close();
  }
  const storeDir = join(root, 'backups');
  mkdirSync(storeDir);
  const storeURL = `file://${storeDir}`;
  const run = async (extra: string[]): Promise<BackupFootprint> => {
    const { stdout } = await execa(join(bin, 'mooring-agents'), ['__backup-footprint', ...extra, storeURL, etcd.endpoint, pki.client.caFile, pki.client.certFile, pki.client.keyFile], { env: {}, extendEnv: false, timeout: 20 * 60_000 });
    const result = JSON.parse(String(stdout)) as BackupFootprint;
    // Only a backup that completed counts.
    const listed = (await listBackups(openStore(storeURL))).backups.some((b) => b.name === result.name);
    if (!listed) throw new Error(`backup ${result.name} is not listed in ${storeURL}`);
    return result;
  };
  const results = [await run([]), ...(COMPARE_V8 ? [await run(['--default-v8'])] : [])];
  await etcd.stop();
  console.log(`\npeak RSS while the backup library takes a backup of a ${BACKUP_MIB} MiB database (process: mooring-agents __backup-footprint, the binary running takeBackup into a file:// store):`);
  for (const r of results) {
    console.log(`  V8 flags ${r.v8.padEnd(12)} snapshot ${(r.snapshotBytes / 1048576).toFixed(0)} MiB, stored ${(r.storedBytes / 1048576).toFixed(0)} MiB in ${(r.durationMs / 1000).toFixed(1)} s`);
    console.log(`    RSS before ${fmt(r.rssBeforeMiB)} MiB, peak ${fmt(r.peakRssMiB)} MiB (VmHWM ${fmt(r.hwmMiB)}) = runtime floor + ${fmt(r.peakRssMiB - floorRuntime.rss)} MiB; the backup added ${fmt(r.peakRssMiB - r.rssBeforeMiB)} MiB   (target: peak ${BACKUP_TARGET_MIB} MiB or less)`);
  }
}

async function main(): Promise<void> {
  const missing = etcdMissing;
  if (missing) throw new Error(`${missing} (make setup)`);
  // The built binary, and only if it is newer than every source (managerCommand's rule).
  if (process.env.MOORING_FOOTPRINT_BINARY === undefined && managerCommand()[0] !== join(repo, 'dist/bin/etcd-manager')) {
    throw new Error('dist/bin/etcd-manager is missing or older than the sources: run make build');
  }
  if (!existsSync(RUNTIME)) throw new Error(`${RUNTIME} is missing: run make setup`);
  const bin = await coldBinaryDir(cleanup, BINARY, ['etcd-manager', 'mooring-agents', 'protokube']);
  await coldCopy(RUNTIME, join(bin, 'runtime'));
  await coldCopy(NODE20, join(bin, 'node20'));
  console.log(`footprint bench: fresh copies of ${BINARY}, ${RUNTIME} and ${NODE20}, out of the page cache`);
  const { floorRuntime } = await steadyState(bin, join(bin, 'runtime'), join(bin, 'node20'));
  if (BACKUP_MIB > 0) await backupPeak(bin, floorRuntime);
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
