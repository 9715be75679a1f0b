// The local cloud against bare etcd, measured in the same run:
//   a. cold start: `mooring update cluster --yes` of a new 3-control-plane
//      cluster until `mooring validate cluster` says ready (instances booted from
//      user-data, agent downloaded, nodeup run, etcd main and events formed by
//      etcd-manager with TLS, every member healthy);
//   b. instance replacement: an instance killed (delete instance --force) and its
//      volumes wiped, `update cluster --yes`, until ready again;
// reference: bare etcd 3.4.23 started by hand on 127.0.3.x with a static
//   --initial-cluster (plain HTTP), a. three members to a healthy cluster, b. one
//   member removed, its data wiped, `member add` and a new etcd, to healthy again
//   (--strict-reconfig-check=false, so the add is not refused for etcd's 5 s health window).
// The local cloud's figures include everything an instance does (boot, two
// etcd-managers, one TLS cluster each); the ratio says what all that costs over
// etcd itself. `validate` polls every 2 s plus its own probe time, which bounds
// the resolution. One cloud, one cluster; everything is removed at the end.
// Run (root, after make build and make image): node_modules/.bin/tsx bench/local-cloud.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { instances, localCloudSkipReason, startCloud, stopCloud, type CloudHandle } from '../test/harness/local-cloud.js';

const REF_REPS = Number(process.env.MOORING_BENCH_REPS ?? 3);
const CLUSTER = 'bench.local.example.com';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// --- reference: bare etcd ---------------------------------------------------------

interface Member {
  name: string;
  ip: string;
  dir: string;
  child?: ChildProcess;
}

function startEtcd(m: Member, cluster: string, state: 'new' | 'existing'): void {
  m.child = spawn('/usr/bin/etcd', [
    '--name', m.name, '--data-dir', m.dir,
    '--listen-peer-urls', `http://${m.ip}:2380`, '--initial-advertise-peer-urls', `http://${m.ip}:2380`,
    '--listen-client-urls', `http://${m.ip}:2379`, '--advertise-client-urls', `http://${m.ip}:2379`,
    '--initial-cluster', cluster, '--initial-cluster-state', state, '--initial-cluster-token', 'bench',
    // By hand, an operator adding a member right after removing one is refused as "unhealthy
    // cluster" for a while (the leader's 5 s connectivity window); the reference skips that check.
    '--strict-reconfig-check=false',
  ], { stdio: 'ignore' });
}

async function stopEtcd(m: Member): Promise<void> {
  const child = m.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

const etcdctl = (endpoints: string, ...args: string[]) => execa('/usr/bin/etcdctl', ['--endpoints', endpoints, '--command-timeout=5s', ...args], { reject: false, env: { ETCDCTL_API: '3' } });

async function healthy(members: Member[]): Promise<void> {
  const endpoints = members.map((m) => `http://${m.ip}:2379`).join(',');
  for (let i = 0; i < 600; i++) {
    if ((await etcdctl(endpoints, 'endpoint', 'health')).exitCode === 0) return;
    const dead = members.find((m) => m.child && m.child.exitCode !== null);
    if (dead) throw new Error(`bare etcd ${dead.name} exited (${dead.child?.exitCode})`);
    await sleep(50);
  }
  throw new Error('bare etcd did not become healthy');
}

async function referenceRep(rep: number): Promise<{ cold: number; replace: number }> {
  const root = mkdtempSync(join(tmpdir(), 'mooring-bench-etcd-'));
  const members: Member[] = [1, 2, 3].map((n) => ({ name: `m${n}`, ip: `127.0.3.${10 * rep + n}`, dir: join(root, `m${n}`) }));
  const initial = members.map((m) => `${m.name}=http://${m.ip}:2380`).join(',');
  try {
    let t0 = performance.now();
    for (const m of members) startEtcd(m, initial, 'new');
    await healthy(members);
    const cold = performance.now() - t0;

    const lost = members[2];
    t0 = performance.now();
    await stopEtcd(lost);
    rmSync(lost.dir, { recursive: true, force: true });
    const endpoints = members.slice(0, 2).map((m) => `http://${m.ip}:2379`).join(',');
    const list = (await etcdctl(endpoints, 'member', 'list')).stdout;
    const id = list.split('\n').find((l) => l.includes(`, ${lost.name}, `))?.split(',')[0];
    if (!id) throw new Error(`member ${lost.name} not in ${list}`);
    await etcdctl(endpoints, 'member', 'remove', id);
    // Right after a remove etcd refuses an add for a moment ("unhealthy cluster"): as an operator would, try again.
    for (let i = 0; ; i++) {
      const added = await etcdctl(endpoints, 'member', 'add', lost.name, `--peer-urls=http://${lost.ip}:2380`);
      // An add that timed out on the client may still have gone through.
      if (added.exitCode === 0 || /Peer URLs already exists/.test(added.stderr)) break;
      if (i >= 200) throw new Error(`member add: ${added.stderr}`);
      await sleep(50);
    }
    startEtcd(lost, initial, 'existing');
    await healthy(members);
    return { cold, replace: performance.now() - t0 };
  } finally {
    for (const m of members) await stopEtcd(m);
    rmSync(root, { recursive: true, force: true });
  }
}

// --- the local cloud ------------------------------------------------------------

async function until(cloud: CloudHandle, what: string): Promise<void> {
  const r = await cloud.mooring('validate', 'cluster', CLUSTER, '--wait', '15m');
  if (r.exitCode !== 0) throw new Error(`${what}: the cluster did not become ready:\n${r.stdout}\n${r.stderr}`);
}

async function localCloud(cloud: CloudHandle): Promise<{ cold: number; replace: number }> {
  const must = async (...args: string[]) => {
    const r = await cloud.mooring(...args);
    if (r.exitCode !== 0) throw new Error(`mooring ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  await must('create', 'cluster', CLUSTER, '--cloud', 'local', '--zones', 'local-a,local-b,local-c', '--control-plane-count', '3', '--node-count', '0');
  let t0 = performance.now();
  await must('update', 'cluster', CLUSTER, '--yes');
  await until(cloud, 'cold start');
  const cold = performance.now() - t0;

  const lost = (await instances(cloud, CLUSTER)).find((i) => i.zone === 'local-a');
  if (!lost) throw new Error('no instance in local-a');
  const held = (JSON.parse(String((await must('get', 'volumes', CLUSTER, '-o', 'json')).stdout)) as { items: Array<{ id: string; holder?: string }> }).items.filter((v) => v.holder === lost.id);
  t0 = performance.now();
  await must('delete', 'instance', CLUSTER, lost.id, '--yes', '--force');
  for (const v of held) {
    const image = join(cloud.layout.volumeDir(CLUSTER), `${v.id}.img`);
    truncateSync(image, 0);
    truncateSync(image, 1024 * 1024 * 1024);
  }
  await must('update', 'cluster', CLUSTER, '--yes');
  await until(cloud, 'replacement');
  return { cold, replace: performance.now() - t0 };
}

async function main(): Promise<void> {
  const skip = await localCloudSkipReason();
  if (skip) {
    console.log(`local-cloud bench skipped: ${skip}`);
    return;
  }
  const refs: Array<{ cold: number; replace: number }> = [];
  for (let rep = 1; rep <= REF_REPS; rep++) refs.push(await referenceRep(rep));
  const dir = mkdtempSync(join(tmpdir(), 'mooring-bench-lc-'));
  const cloud = await startCloud(dir);
  let local: { cold: number; replace: number };
  try {
    local = await localCloud(cloud);
  } finally {
    const failed = await stopCloud(dir, cloud.reaper);
    if (failed) console.error(failed);
  }
  const refCold = median(refs.map((r) => r.cold));
  const refReplace = median(refs.map((r) => r.replace));
  const load = (await execa('cat', ['/proc/loadavg'])).stdout.split(' ').slice(0, 3).join(' ');
  console.log(`local cloud vs bare etcd (same run; load average ${load}; reference median of ${REF_REPS})`);
  console.log(`| what | local cloud | bare etcd | ratio |`);
  console.log(`|---|---|---|---|`);
  console.log(`| cold start: update cluster --yes → main and events healthy, 3 members each | ${secs(local.cold)} | ${secs(refCold)} (3 members, static cluster) | ${(local.cold / refCold).toFixed(0)}× |`);
  console.log(`| instance replacement (killed, volumes wiped) → healthy again | ${secs(local.replace)} | ${secs(refReplace)} (member remove + add + new etcd) | ${(local.replace / refReplace).toFixed(0)}× |`);
}

await main();
