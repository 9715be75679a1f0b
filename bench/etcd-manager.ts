// etcd-manager against etcd started by hand, measured in the same run, at the
// DEFAULT reconcile interval (10 s; discovery poll 60 s) and at 500 ms. Three
// managers on 127.x addresses, static volumes (--volume-provider=static
// --data-dir), TLS from the state store's CAs:
//   a. three managers started → a healthy three-member cluster, vs three etcd
//      members started directly with a static --initial-cluster on the same
//      addresses, ports and certificates;
//   b. a replacement instance (one member's instance gone for good, a new
//      manager with an empty data dir started) → three healthy members, vs
//      `etcdctl member remove` + `member add` + a fresh etcd started with
//      --initial-cluster-state=existing by hand;
//   c. failover: the LEADING manager killed (kill -9, its etcd dies with it)
//      and its instance replaced (a new manager with an empty data dir) → the
//      next membership change by the new leader, and → three healthy members.
//      No bare-etcd reference: the target is absolute (≤ 10 s; kOps ~70 s).
// "Healthy" is etcd's own view for both: every endpoint answers status and a
// linearizable member list naming three voting members with the same IDs, and a
// key written through one member reads back on every member.
// Every process is stopped by PID (other work on this machine runs etcd too),
// and the temp directories deleted, on success, failure, timeout or Ctrl-C.
// Run: node_modules/.bin/tsx bench/etcd-manager.ts   (MOORING_BENCH_REPS=3,
// MOORING_BENCH_INTERVALS=default,500ms)
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { SYSTEM_ETCD } from '../agents/etcd-manager/etcd/binary.js';
import { clustersSeen, scenario, type Scenario } from '../test/harness/etcd-scenario.js';
import { describeManagers, startManager, type ManagerProcess } from '../test/harness/manager.js';
import { processAlive, waitFor } from '../test/harness/net.js';
import { benchCleanup } from './cleanup.js';

const REPS = Number(process.env.MOORING_BENCH_REPS ?? 3);
const DEADLINE_MS = Number(process.env.MOORING_BENCH_DEADLINE_MS ?? 9 * 60_000);
/** 'default' runs the managers with no interval flags (10 s reconcile, 60 s discovery poll): what users run. */
const INTERVALS = (process.env.MOORING_BENCH_INTERVALS ?? 'default,500ms').split(',');
const NAMES = ['a', 'b', 'c'];

let interrupted = false;
const cleanup = benchCleanup(DEADLINE_MS, () => (interrupted = true));
let lastRoot: string | undefined;
const referenceRetries: string[] = [];
/** On failure: the end of each reference etcd's log, before cleanup deletes it. */
function referenceLogTails(): void {
  if (!lastRoot || !existsSync(lastRoot)) return;
  for (const f of readdirSync(lastRoot).filter((n) => n.startsWith('reference-etcd-'))) {
    console.error(`--- ${f} (last lines)\n${readFileSync(join(lastRoot, f), 'utf8').split('\n').slice(-8).join('\n')}`);
  }
}

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

/** Manager args on host i: the scenario's, with a static volume (its own data dir) for `member`, and the interval asked for. */
function managerArgs(s: Scenario, i: number, member: string, interval: string): string[] {
  const dropped = ['--volume-provider=', '--local-volume-dir=', '--mount-root=', '--instance-id=', '--reconcile-interval=', '--discovery-poll-interval='];
  const args = s.args(i).filter((a) => !dropped.some((d) => a.startsWith(d)));
  const dataDir = join(s.area.root, `static-${i}`);
  const timing = interval === 'default' ? [] : [`--reconcile-interval=${interval}`, `--discovery-poll-interval=${interval}`];
  return [...args, '--volume-provider=static', `--data-dir=${dataDir}`, `--instance-id=${member}`, ...timing];
}

/** An instance gone for good: manager and etcd killed (kill -9), its data dir deleted. */
async function loseInstance(s: Scenario, m: ManagerProcess, host: number): Promise<void> {
  await m.kill();
  rmSync(join(s.area.root, `static-${host}`), { recursive: true, force: true });
}

/** The manager that leads now, by its own log: the last leader.elected not followed by its leader.lost. */
function currentLeader(managers: ManagerProcess[]): ManagerProcess | undefined {
  const wins = managers.flatMap((m) => m.logs.filter((l) => l.event === 'leader.elected').map((l) => ({ m, time: String(l.time), term: Number(l.term) })));
  const last = wins.sort((x, y) => x.time.localeCompare(y.time)).at(-1);
  if (!last) return undefined;
  return last.m.logs.some((l) => (l.event === 'leader.lost' || l.event === 'leader.stepped-down') && Number(l.term) === last.term) ? undefined : last.m;
}

interface Rep {
  managersForm: number; referenceForm: number; managersReplace: number; referenceReplace: number;
  failoverLeader: number; failoverChange: number; failoverHealthy: number;
}

async function oneRep(rep: number, interval: string): Promise<Rep> {
  const s = await scenario(cleanup, { hosts: 5, memberCount: 3, volumeKind: 'directory' });
  lastRoot = s.area.root;
  const peerPort = Number(/:(\d+)$/.exec(s.args(0).find((a) => a.startsWith('--peer-urls='))!)![1]);
  const start = (host: number, member: string) => startManager(cleanup, managerArgs(s, host, member, interval), s.env);

  // a. managers: from spawning three managers to a healthy three-member cluster.
  let t0 = process.hrtime.bigint();
  const managers = [0, 1, 2].map((i) => start(i, NAMES[i]));
  await healthyWithKey(s, [0, 1, 2], `/bench/${rep}/form`, managers);
  const managersForm = ms(t0);

  // b. managers: host 2's instance is gone for good; a new one (host 3) with an empty data dir for member c.
  await loseInstance(s, managers[2], 2);
  t0 = process.hrtime.bigint();
  const replacement = start(3, 'c');
  const live = [managers[0], managers[1], replacement];
  await healthyWithKey(s, [0, 1, 3], `/bench/${rep}/replace`, live);
  const managersReplace = ms(t0);

  // c. failover: the leading manager killed with its etcd; its instance replaced on host 4 (empty data dir).
  const leader = await waitFor('a current leader', async () => currentLeader(live), 30_000, 50);
  const leaderHost = [0, 1, 3][live.indexOf(leader)];
  const leaderMember = leaderHost === 3 ? 'c' : NAMES[leaderHost];
  const seen = live.map((m) => m.logs.length);
  const killedAt = Date.now();
  t0 = process.hrtime.bigint();
  await loseInstance(s, leader, leaderHost);
  const successor = start(4, leaderMember);
  const after = [...live.filter((m) => m !== leader), successor];
  const since = (event: string) => [...live.flatMap((m, i) => m.logs.slice(seen[i])), ...successor.logs].filter((l) => l.event === event);
  const firstAt = async (event: string) => {
    const line = await waitFor(`${event} after the kill`, async () => since(event).sort((x, y) => String(x.time).localeCompare(String(y.time)))[0], 120_000, 20).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${describeManagers(after)}`);
    });
    return Date.parse(String(line.time)) - killedAt;
  };
  const failoverChange = await firstAt('membership.step');
  const failoverLeader = await firstAt('leader.elected');
  const otherHosts = [0, 1, 3].filter((h) => h !== leaderHost);
  await healthyWithKey(s, [...otherHosts, 4], `/bench/${rep}/failover`, after);
  const failoverHealthy = ms(t0);
  await Promise.all(after.map((m) => m.kill()));

  // a. reference: three etcd members with a static --initial-cluster, same addresses, ports and certificates.
  const dirs = [0, 1, 2, 3].map((i) => {
    const d = join(s.area.root, `reference-${i}`);
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

  await cleanup.run(); // this rep's processes and directories
  return { managersForm, referenceForm, managersReplace, referenceReplace, failoverLeader, failoverChange, failoverHealthy };
}

async function main(): Promise<void> {
  if (!existsSync(SYSTEM_ETCD)) throw new Error(`${SYSTEM_ETCD} is not installed (make setup)`);
  console.log(`etcd-manager bench: ${REPS} repetitions per interval, median; static volumes (directories); TLS everywhere; 127.x addresses`);
  const row = (label: string, ours: number, ref: number | undefined, refLabel: string, target: string) =>
    console.log(`  ${label.padEnd(54)} ${ours.toFixed(0).padStart(6)} ms   ${refLabel.padEnd(56)} ${ref === undefined ? '     -   ' : `${ref.toFixed(0).padStart(6)} ms`}   ${ref === undefined ? '          ' : `ratio ${(ours / ref).toFixed(2)}x`}   target ${target}`);
  for (const interval of INTERVALS) {
    const reps: Rep[] = [];
    const flags = interval === 'default' ? 'no interval flags (--reconcile-interval=10s, --discovery-poll-interval=60s)' : `--reconcile-interval=${interval} --discovery-poll-interval=${interval}`;
    console.log(`\nmanagers with ${flags}`);
    for (let rep = 0; rep < REPS && !interrupted; rep++) {
      const r = await oneRep(rep, interval);
      reps.push(r);
      console.log(`  rep ${rep + 1}: form ${r.managersForm.toFixed(0)} ms (reference ${r.referenceForm.toFixed(0)} ms), replace ${r.managersReplace.toFixed(0)} ms (reference ${r.referenceReplace.toFixed(0)} ms), failover: leader ${r.failoverLeader} ms, membership change ${r.failoverChange} ms, healthy ${r.failoverHealthy.toFixed(0)} ms`);
    }
    const med = (f: (r: Rep) => number) => median(reps.map(f));
    row('a. 3 managers started → healthy 3-member cluster', med((r) => r.managersForm), med((r) => r.referenceForm), 'reference: 3 etcd, static --initial-cluster → healthy', '≤ 1.5x');
    row('b. replacement manager (empty volume) → 3 healthy', med((r) => r.managersReplace), med((r) => r.referenceReplace), 'reference: etcdctl member remove + add + etcd (existing)', '≤ 10000 ms');
    row('c. leading manager kill -9 → new leader', med((r) => r.failoverLeader), undefined, '', '-');
    row('c. leading manager kill -9 → next membership change', med((r) => r.failoverChange), undefined, '', '≤ 10000 ms (kOps ~70 s)');
    row('c. leading manager kill -9 + replacement → 3 healthy', med((r) => r.failoverHealthy), undefined, '', '-');
  }
  if (referenceRetries.length > 0) console.log(`  (reference b: etcdctl retried ${referenceRetries.length} time(s): ${[...new Set(referenceRetries)].join('; ')})`);
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
