// etcd-manager against etcd started by hand, measured in the same run:
//   a. three managers started (local volume provider) → a healthy three-member
//      cluster, vs three etcd members started directly with a static
//      --initial-cluster on the same addresses, ports, certificates and volumes;
//   b. a replacement instance appearing (one member's instance gone for good, a
//      new manager with an empty volume started) → three healthy members, vs
//      `etcdctl member remove` + `member add` + a fresh etcd started with
//      --initial-cluster-state=existing by hand.
// "Healthy" is etcd's own view for both: every endpoint answers status and a
// linearizable member list naming three voting members with the same IDs, and a
// key written through one member reads back on every member.
// Everything listens on 127.0.x.y. Every process is stopped by PID (other work
// on this machine runs etcd too), volumes are unmounted and detached, and the
// temp directories deleted, on success, failure, timeout or Ctrl-C.
// Run: node_modules/.bin/tsx bench/etcd-manager.ts   (MOORING_BENCH_REPS=3)
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { SYSTEM_ETCD } from '../agents/etcd-manager/etcd/binary.js';
import { findLoopDevice, mountedAt } from '../agents/etcd-manager/volumes/blockdev.js';
import { localPaths } from '../agents/etcd-manager/volumes/local.js';
import { clustersSeen, scenario, type Scenario } from '../test/harness/etcd-scenario.js';
import { loopSkipReason } from '../test/harness/loop.js';
import { describeManagers, type ManagerProcess } from '../test/harness/manager.js';
import { processAlive, waitFor } from '../test/harness/net.js';

const REPS = Number(process.env.MOORING_BENCH_REPS ?? 3);
const DEADLINE_MS = Number(process.env.MOORING_BENCH_DEADLINE_MS ?? 9 * 60_000);
const INTERVAL = '500ms'; // --reconcile-interval and --discovery-poll-interval of the managers
const NAMES = ['a', 'b', 'c'];

/** LIFO cleanup, like tap's teardown; run() drains what is registered so far (concurrent calls share one drain). */
class Cleanup {
  private fns: Array<() => unknown> = [];
  private running?: Promise<void>;
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  run(): Promise<void> {
    return (this.running ??= (async () => {
      while (this.fns.length > 0) {
        const fn = this.fns.pop()!;
        try {
          await fn();
        } catch (err) {
          console.error(`cleanup: ${(err as Error).message}`);
        }
      }
    })().finally(() => (this.running = undefined)));
  }
}

const cleanup = new Cleanup();
let lastRoot: string | undefined;
const referenceRetries: string[] = [];
/** On failure: the end of each reference etcd's log, before cleanup deletes it. */
function referenceLogTails(): void {
  if (!lastRoot || !existsSync(lastRoot)) return;
  for (const f of readdirSync(lastRoot).filter((n) => n.startsWith('reference-etcd-'))) {
    console.error(`--- ${f} (last lines)\n${readFileSync(join(lastRoot, f), 'utf8').split('\n').slice(-8).join('\n')}`);
  }
}
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`${signal}: cleaning up`);
    void cleanup.run().finally(() => process.exit(130));
  });
}
const deadline = setTimeout(() => {
  console.error(`bench: over ${DEADLINE_MS} ms, giving up`);
  void cleanup.run().finally(() => process.exit(1));
}, DEADLINE_MS);
deadline.unref();

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/** The managers' cluster is healthy and a key written on the first host reads back on all. */
async function healthyWithKey(s: Scenario, hosts: number[], key: string, managers: ManagerProcess[] = []): Promise<void> {
  const views = await waitFor('three healthy members', () => s.view(hosts, 3, managers), 120_000, 100).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${describeManagers(managers, hosts.map((h) => `on host ${h}`))}`);
  });
  const clusters = clustersSeen(views);
  if (clusters.length !== 1) throw new Error(`the endpoints disagree: ${clusters.join(' | ')}`);
  await s.put(hosts[0], key, 'v');
  for (const h of hosts) if ((await s.get(h, key)) !== 'v') throw new Error(`${key} not read back on host ${h}`);
}

function pki(s: Scenario, i: number) {
  const dir = join(s.area.root, `pki-${i}`);
  return {
    cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), ca: join(dir, 'etcd-clients-ca.crt'),
    peerCert: join(dir, 'peer.crt'), peerKey: join(dir, 'peer.key'), peerCA: join(dir, 'etcd-peers-ca-main.crt'),
  };
}

/** etcd started by hand, the way an operator would, on host i with its manager's certificates. */
function startEtcd(s: Scenario, peerPort: number, i: number, name: string, dataDir: string, initialCluster: string, state: 'new' | 'existing'): ChildProcess {
  const p = pki(s, i);
  const ip = s.ips[i];
  const log = openSync(join(s.area.root, `reference-etcd-${i}.log`), 'a');
  const child = spawn(SYSTEM_ETCD, [
    `--name=${name}`, `--data-dir=${dataDir}`,
    `--listen-peer-urls=https://${ip}:${peerPort}`, `--initial-advertise-peer-urls=https://${ip}:${peerPort}`,
    `--listen-client-urls=https://${ip}:${s.client}`, `--advertise-client-urls=https://${ip}:${s.client}`,
    `--initial-cluster=${initialCluster}`, `--initial-cluster-state=${state}`, '--initial-cluster-token=bench-reference',
    `--cert-file=${p.cert}`, `--key-file=${p.key}`, `--trusted-ca-file=${p.ca}`, '--client-cert-auth',
    `--peer-cert-file=${p.peerCert}`, `--peer-key-file=${p.peerKey}`, `--peer-trusted-ca-file=${p.peerCA}`, '--peer-client-cert-auth',
    '--strict-reconfig-check', '--enable-v2=false',
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

async function killEtcd(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
}

/** Instance gone for good: manager and etcd killed, its volume unmounted, detached and deleted. */
async function loseInstance(s: Scenario, m: ManagerProcess): Promise<string> {
  const identity = m.logs.find((l) => l.msg === 'member identity')!;
  await m.kill();
  const id = String(identity.volume);
  const mp = join(s.area.mountRoot, `master-${id}`);
  if (await mountedAt(mp)) await execa('umount', [mp]);
  const dev = await findLoopDevice(localPaths(s.area.volumeDir, id).image);
  if (dev) await execa('losetup', ['--detach', dev]);
  for (const f of Object.values(localPaths(s.area.volumeDir, id))) rmSync(f, { recursive: true, force: true });
  return String(identity.member);
}

interface Rep { managersForm: number; referenceForm: number; managersReplace: number; referenceReplace: number }

async function oneRep(rep: number, kind: 'image' | 'directory'): Promise<Rep> {
  const s = await scenario(cleanup, { hosts: 4, memberCount: 3, volumeKind: kind, reconcileInterval: INTERVAL, discoveryInterval: INTERVAL });
  for (const m of NAMES) await s.volume(`vol-${m}`, m);
  lastRoot = s.area.root;
  const peerPort = Number(/:(\d+)$/.exec(s.args(0).find((a) => a.startsWith('--peer-urls='))!)![1]);

  // a. managers: from spawning three managers to a healthy three-member cluster.
  let t0 = process.hrtime.bigint();
  const managers = [0, 1, 2].map((i) => s.start(i));
  await healthyWithKey(s, [0, 1, 2], `/bench/${rep}/form`, managers);
  const managersForm = ms(t0);

  // b. managers: host 2's instance is gone for good; a new one (host 3) with an empty volume for that member.
  const lost = await loseInstance(s, managers[2]);
  await s.volume('vol-new', lost);
  t0 = process.hrtime.bigint();
  const replacement = s.start(3);
  await healthyWithKey(s, [3, 0, 1], `/bench/${rep}/replace`, [managers[0], managers[1], replacement]);
  const managersReplace = ms(t0);

  // The managers' volumes hold the reference's data too (same filesystem kind); then the managers stop.
  const mountOf = (m: ManagerProcess) => String(m.logs.find((l) => l.msg === 'member identity')!.mountPoint);
  const dataRoots = [mountOf(managers[0]), mountOf(managers[1]), mountOf(replacement)];
  await Promise.all([managers[0], managers[1], replacement].map((m) => m.kill()));

  // a. reference: three etcd members with a static --initial-cluster, same addresses, ports and certificates.
  const dirs = [0, 1, 2, 3].map((i) => {
    const d = join(dataRoots[Math.min(i, 2)], `reference-${i}`);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true, mode: 0o700 });
    return d;
  });
  const initial = (hosts: number[]) => hosts.map((i, n) => `${NAMES[n]}=https://${s.ips[i]}:${peerPort}`).join(',');
  t0 = process.hrtime.bigint();
  const etcds = [0, 1, 2].map((i) => startEtcd(s, peerPort, i, NAMES[i], dirs[i], initial([0, 1, 2]), 'new'));
  await healthyWithKey(s, [0, 1, 2], `/bench/${rep}/reference-form`);
  const referenceForm = ms(t0);

  // b. reference: member c's machine is gone (etcd killed, data deleted); replaced by hand on host 3.
  // Untimed wait first: with --strict-reconfig-check etcd refuses `member add` until the peers have
  // been connected for 5 s, which a cluster an operator repairs always has been.
  await new Promise((resolve) => setTimeout(resolve, 6_000));
  await killEtcd(etcds[2]);
  rmSync(dirs[2], { recursive: true, force: true });
  const p = pki(s, 0);
  const etcdctl = (...args: string[]) => execa('etcdctl', [`--endpoints=${s.endpoint(0)},${s.endpoint(1)}`, `--cacert=${p.ca}`,
    `--cert=${join(s.area.root, 'pki-0/etcdClient.crt')}`, `--key=${join(s.area.root, 'pki-0/etcdClient.key')}`, '--command-timeout=10s', ...args],
  { env: { ETCDCTL_API: '3' }, extendEnv: false });
  // As an operator would: retried (and re-checked) when etcd answers `request timed out`, which
  // happens here under load right after the old member's death; the retries count in the time.
  const members = async () => String((await etcdctl('member', 'list')).stdout).split('\n').map((l) => l.split(',').map((f) => f.trim())).filter((f) => f.length > 3);
  const step = async (what: string, done: () => Promise<boolean>, act: () => Promise<unknown>) => {
    for (let attempt = 1; !(await done()); attempt++) {
      try {
        await act();
      } catch (err) {
        if (attempt >= 4) throw err;
        referenceRetries.push(`${what}: ${String((err as Error).message).split('\n').at(-1)}`);
      }
    }
  };
  t0 = process.hrtime.bigint();
  const oldC = (await members()).find((f) => f[2] === 'c' && f[3].includes(s.ips[2]));
  await step('member remove', async () => !(await members()).some((f) => f[3].includes(s.ips[2])), () => etcdctl('member', 'remove', oldC![0]));
  await step('member add', async () => (await members()).some((f) => f[3].includes(s.ips[3])), () => etcdctl('member', 'add', 'c', `--peer-urls=https://${s.ips[3]}:${peerPort}`));
  startEtcd(s, peerPort, 3, 'c', dirs[3], initial([0, 1, 3]), 'existing');
  await healthyWithKey(s, [3, 0, 1], `/bench/${rep}/reference-replace`);
  const referenceReplace = ms(t0);

  await cleanup.run(); // this rep's processes, mounts, loop devices, directories
  return { managersForm, referenceForm, managersReplace, referenceReplace };
}

async function main(): Promise<void> {
  if (!existsSync(SYSTEM_ETCD)) throw new Error(`${SYSTEM_ETCD} is not installed (make setup)`);
  const loopSkip = await loopSkipReason();
  const kind = loopSkip ? 'directory' : 'image';
  console.log(`etcd-manager bench: ${REPS} repetitions, median; volumes: ${kind === 'image' ? 'loop-device ext4 images' : `directories (${loopSkip})`}; managers with --reconcile-interval=${INTERVAL} --discovery-poll-interval=${INTERVAL}; TLS everywhere`);
  const reps: Rep[] = [];
  for (let rep = 0; rep < REPS && !interrupted; rep++) {
    const r = await oneRep(rep, kind);
    reps.push(r);
    console.log(`  rep ${rep + 1}: form ${r.managersForm.toFixed(0)} ms (reference ${r.referenceForm.toFixed(0)} ms), replace ${r.managersReplace.toFixed(0)} ms (reference ${r.referenceReplace.toFixed(0)} ms)`);
  }
  const row = (label: string, ours: number, ref: number, refLabel: string) =>
    console.log(`${label.padEnd(52)} ${ours.toFixed(0).padStart(6)} ms   ${refLabel.padEnd(58)} ${ref.toFixed(0).padStart(6)} ms   ratio ${(ours / ref).toFixed(2)}x`);
  row('a. 3 managers started → healthy 3-member cluster', median(reps.map((r) => r.managersForm)), median(reps.map((r) => r.referenceForm)), 'reference: 3 etcd, static --initial-cluster → healthy');
  if (referenceRetries.length > 0) console.log(`  (reference b: etcdctl retried ${referenceRetries.length} time(s): ${[...new Set(referenceRetries)].join('; ')})`);
  row('b. replacement manager (empty volume) → 3 healthy', median(reps.map((r) => r.managersReplace)), median(reps.map((r) => r.referenceReplace)), 'reference: etcdctl member remove + add + etcd (existing)');
}

main().then(
  async () => {
    await cleanup.run();
    process.exit(0);
  },
  async (err: unknown) => {
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
    referenceLogTails();
    await cleanup.run();
    process.exit(1);
  },
);
