// `etcd-manager migrate-v2` against real etcd 3.4.23 processes, every one with
// mutual TLS on its own 127.0.x.y address, ports and temp dir, killed by PID:
//  - 50,000 v2 leaves in nested directories (10% with TTLs from 30 s to 1 h) from
//    a live v2 source: the command's own verification passes, and the test's own
//    comparison of both sides (every key, every value, a lease exactly on the TTL
//    keys) agrees; the leases stay within the bound and are the migration's own;
//    the TTL keys carry their remaining TTL; transactions are as large as the
//    target allows; progress lines show keys done, keys/s and ETA;
//  - the same migration killed with SIGKILL half way, then run again: it resumes,
//    and its verification catches two keys written into the target meanwhile
//    (exit 1); without them a third run ends equal to the source and to the
//    migration never stopped, with no stray lease;
//  - the short TTL keys of the first migration are gone once their TTL has run
//    out, the others stay;
//  - a v2 backup in kOps' layout (a tar.gz of `etcdctl backup` in a file://
//    backup store) as the source, into a target with a lower --max-txn-ops:
//    killed with SIGKILL as it starts writing (its etcd dies with it), then run
//    again: resumes, verifies, and removes the killed run's working directory;
//    run again, it is already done (text summary) and starts no etcd; a target
//    holding another migration is refused (exit 6) with nothing written.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import type { Etcd3 } from 'etcd3';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { leaseBound, leaseIdFor } from '../../agents/etcd-manager/migrate/leases.js';
import type { MigrationSummary } from '../../agents/etcd-manager/migrate/migrate.js';
import { managerCommand } from '../harness/manager.js';
import { loopbackNet, processAlive, waitFor } from '../harness/net.js';
import { tempDir, type Teardown } from '../harness/tmp.js';
import { etcdSkipReason, ETCDCTL, inParallel, makeTestPKI, SETPRIV, startTestEtcd, V2Client, type TestEtcd, type TestPKI } from '../harness/v2-etcd.js';

const N = 50_000;
const HOUR = 3600;
const RESERVED = '/mooring/etcd-manager/';

interface Seed {
  key: string;
  value: string;
  ttl?: number;
}

/** 50,000 leaves: /registry/<12 resources>/<40 namespaces>/[sub<k>/]obj-<i>, a few top-level and odd names; 10% with TTLs 30 s … 1 h. */
function makeSeeds(): Seed[] {
  const seeds: Seed[] = [];
  const odd = ['/registry/odd/key with space', '/registry/odd/percent%25sign', '/registry/odd/ümlaut-€', '/registry/odd/a&b=c+d', '/top-level-leaf', '/registry/odd/empty'];
  for (const [i, key] of odd.entries()) seeds.push({ key, value: key.endsWith('empty') ? '' : `odd value ${i} ünïcødé 😀 & = + %` });
  const ttlEvery = 10;
  const ttlCount = Math.floor((N - odd.length) / ttlEvery);
  let ttlIndex = 0;
  for (let i = 0; seeds.length < N; i++) {
    const res = `r${i % 12}`;
    const ns = `ns${Math.floor(i / 12) % 40}`;
    const deeper = i % 7 === 0 ? `/sub${i % 3}/deep${i % 5}` : '';
    const key = `/registry/${res}/${ns}${deeper}/obj-${i}`;
    const value = JSON.stringify({ kind: 'Thing', name: `obj-${i}`, pad: 'x'.repeat((i * 37) % 900) });
    const seed: Seed = { key, value };
    if (i % ttlEvery === 3 && ttlIndex < ttlCount) {
      seed.ttl = 30 + Math.floor((ttlIndex * (HOUR - 30)) / (ttlCount - 1));
      ttlIndex++;
    }
    seeds.push(seed);
  }
  return seeds;
}

interface TargetKey {
  value: string;
  lease: string;
}

async function readTarget(client: Etcd3): Promise<Map<string, TargetKey>> {
  const out = new Map<string, TargetKey>();
  let start = Buffer.from([0]);
  for (;;) {
    const res = await client.kv.range({ key: start, range_end: Buffer.from([0]), limit: 5000 });
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      if (!key.startsWith(RESERVED)) out.set(key, { value: kv.value.toString('utf8'), lease: kv.lease });
    }
    if (!res.more) return out;
    start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
  }
}

/**
 * The test's own comparison: every source leaf that will not expire within
 * `margin` is in the target with the same value, on a lease exactly when it has
 * a TTL; every target key is such a leaf, or one whose TTL (as seeded) is about
 * to run out or has.
 */
function compareSides(source: Map<string, { value: string; expiresAt?: number }>, target: Map<string, TargetKey>, seededExpiry: Map<string, number>, now: number, margin = 5_000) {
  const problems: string[] = [];
  let compared = 0;
  for (const [key, s] of source) {
    if (s.expiresAt !== undefined && s.expiresAt < now + margin) continue;
    const got = target.get(key);
    compared++;
    if (!got) problems.push(`missing ${key}`);
    else if (got.value !== s.value) problems.push(`value of ${key} differs`);
    else if ((s.expiresAt !== undefined) !== (got.lease !== '0')) problems.push(`${key}: ${s.expiresAt !== undefined ? 'TTL key without a lease' : 'key without TTL on a lease'}`);
  }
  for (const [key, got] of target) {
    if (source.has(key)) continue;
    const expiry = seededExpiry.get(key);
    if (expiry !== undefined && expiry < now + margin && got.lease !== '0') continue; // expired in the source meanwhile
    problems.push(`extra ${key}`);
  }
  return { problems: problems.slice(0, 10), problemCount: problems.length, compared };
}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  events: string[];
  pid: number;
}

function runMigrate(t: Teardown, args: string[], onStart?: (pid: number) => void, onEvent?: (entry: Record<string, unknown>) => void): Promise<CliRun> {
  const command = [...managerCommand(), 'migrate-v2', ...args];
  const child = spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', ...command], { env: { ...process.env, MOORING_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  onStart?.(child.pid!);
  let stdout = '';
  let stderr = '';
  const events: string[] = [];
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr += line + '\n';
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (typeof entry.event === 'string') {
        events.push(entry.event);
        onEvent?.(entry);
      }
    } catch {
      // progress lines
    }
  });
  return new Promise((resolve) => child.once('exit', (code, signal) => setImmediate(() => resolve({ code, signal, stdout, stderr, events, pid: child.pid! }))));
}

type Summary = MigrationSummary;

function summaryOf(run: CliRun): Summary {
  try {
    return JSON.parse(run.stdout) as Summary;
  } catch {
    throw new Error(`no JSON summary (exit ${run.code ?? run.signal}): ${run.stdout.slice(0, 300)} | ${run.stderr.split('\n').slice(-5).join(' | ')}`);
  }
}

const tlsArgs = (pki: TestPKI, side: 'from' | 'to') => [`--${side}-cacert=${pki.client.caFile}`, `--${side}-cert=${pki.client.certFile}`, `--${side}-key=${pki.client.keyFile}`];

async function leasesOf(client: Etcd3): Promise<string[]> {
  const res = await client.leaseClient.leaseLeases({});
  return res.leases.map((l) => String(l.ID));
}

t.test('migrate-v2 with real etcd 3.4.23', { skip: etcdSkipReason, timeout: 540_000 }, async (t) => {
  const dir = tempDir(t, 'migrate-v2-');
  const ip = loopbackNet();
  const ips = [1, 2, 3, 4, 5].map(ip);
  const pki = await makeTestPKI(join(dir, 'pki'), ips);
  const clients: Etcd3[] = [];
  t.teardown(() => clients.forEach((c) => c.close()));
  const target = async (name: string, host: number, extraArgs: string[] = []): Promise<{ etcd: TestEtcd; client: Etcd3 }> => {
    const etcd = await startTestEtcd(t, { name, ip: ip(host), dataDir: join(dir, name), pki, extraArgs });
    const client = await openEtcdClient([etcd.endpoint], pki.client, 30_000);
    clients.push(client);
    return { etcd, client };
  };

  // The v2 source: 50,000 leaves, the TTL keys last and the shortest of them last of all,
  // so they have most of their TTL left when the migration reads them.
  const source = await startTestEtcd(t, { name: 'source', ip: ip(1), dataDir: join(dir, 'source'), pki, enableV2: true });
  const v2 = new V2Client(source.endpoint, pki.client);
  t.teardown(() => v2.close());
  const seeds = makeSeeds();
  const plain = seeds.filter((s) => s.ttl === undefined);
  const withTTL = seeds.filter((s) => s.ttl !== undefined).sort((a, b) => b.ttl! - a.ttl!);
  t.equal(seeds.length, N);
  t.equal(withTTL.length, Math.floor((N - 6) / 10), '10% carry a TTL');
  t.same([Math.min(...withTTL.map((s) => s.ttl!)), Math.max(...withTTL.map((s) => s.ttl!))], [30, HOUR], 'TTLs from 30 s to 1 h');
  await v2.mkdir('/registry/empty-dir/nested-empty');
  await inParallel(plain, 64, (s) => v2.put(s.key, s.value));
  const seededExpiry = new Map<string, number>();
  await inParallel(withTTL, 64, async (s) => {
    const before = Date.now();
    await v2.put(s.key, s.value, s.ttl);
    seededExpiry.set(s.key, before + s.ttl! * 1000 + 1000);
  });
  const short = withTTL.filter((s) => s.ttl! <= 60).map((s) => s.key);
  t.ok(short.length >= 20, `${short.length} keys with a TTL of at most a minute`);
  const bound = leaseBound(HOUR * 1000);

  let migratedA: { client: Etcd3; endpoint: string; sourceNow: Map<string, { value: string; expiresAt?: number }>; shortPresent: string[] } | undefined;
  await t.test('50,000 keys from a live v2 source: equal on both sides, TTLs kept on a bounded number of leases', async (t) => {
    const { etcd, client } = await target('target-a', 2);
    const run = await runMigrate(t, ['--from', source.endpoint, ...tlsArgs(pki, 'from'), '--to', etcd.endpoint, ...tlsArgs(pki, 'to'), '-o', 'json', '--v=3']);
    t.equal(run.code, 0, `exit 0: ${run.stderr.split('\n').filter((l) => l.includes('error')).slice(-3).join(' | ')}`);
    const s = summaryOf(run);
    t.ok(s.verify.equal, 'the command\'s own verification passes');
    t.equal(s.verify.sourceHash, s.verify.targetHash, 'content hash equal on both sides');
    t.equal(s.verify.sourceKeys, s.verify.targetKeys, 'key count equal on both sides');
    t.ok(s.verify.sourceKeys >= N - withTTL.length / 100, `${s.verify.sourceKeys} keys compared by the command`);
    t.equal(s.keys.source + s.keys.expiredBeforeCopy, N, 'every leaf accounted for, directories dropped');
    t.equal(s.keys.written, s.keys.source);
    t.ok(s.keys.withTTL >= withTTL.length - 5 && s.keys.withTTL <= withTTL.length, `${s.keys.withTTL} TTL keys`);
    t.same(run.events.filter((e) => e.startsWith('migrate-v2.')), ['migrate-v2.start', 'migrate-v2.copied', 'migrate-v2.done']);
    t.comment(`migrated ${s.keys.written} keys in ${s.durationMs} ms (${s.keysPerSecond} keys/s) in ${s.transactions.count} transactions`);
    // Large batches: transactions of many puts, up to the target's --max-txn-ops (128; one op is the progress record).
    t.equal(s.transactions.largest, 127, 'transactions as large as the target allows');
    t.ok(s.transactions.count <= Math.ceil(s.keys.written / 100), `${s.transactions.count} transactions for ${s.keys.written} keys`);
    // Progress on stderr (not a terminal here: a plain line every 5 s): keys done, keys/s, ETA.
    t.match(run.stderr, /copying: [\d,]+ (of [\d,]+ keys \(\d+%\)|keys), [\d,]+ keys\/s, ETA /, 'progress lines with keys done, keys/s and ETA');

    // The test's own view of both sides.
    const sourceNow = await v2.leaves();
    const readAt = Date.now();
    const targetNow = await readTarget(client);
    const cmp = compareSides(sourceNow, targetNow, seededExpiry, readAt);
    t.same(cmp.problems, [], `${cmp.compared} keys equal on both sides (${cmp.problemCount} problems)`);
    t.ok(cmp.compared >= N - 100, `${cmp.compared} compared`);
    t.notOk(targetNow.has('/registry/empty-dir') || targetNow.has('/registry/empty-dir/nested-empty'), 'directories dropped');
    t.equal(targetNow.get('/registry/odd/key with space')?.value, seeds.find((x) => x.key === '/registry/odd/key with space')!.value, 'odd names and values: same bytes');
    t.equal(targetNow.get('/registry/odd/empty')?.value, '', 'an empty value stays empty');

    // Leases: bounded, shared, ours, and carrying the remaining TTL. Listed before the keys are read
    // again, so a listed lease that no key names has expired in between (its keys with it).
    const leases = await leasesOf(client);
    const keysAgain = await readTarget(client);
    const named = new Set([...keysAgain.values()].map((k) => k.lease).filter((l) => l !== '0'));
    const ttlKeysInTarget = [...keysAgain.values()].filter((k) => k.lease !== '0').length;
    t.ok(leases.length <= bound, `${leases.length} leases for ${ttlKeysInTarget} TTL keys (bound ${bound})`);
    t.ok(leases.length < ttlKeysInTarget / 5, 'keys expiring close together share leases');
    t.ok(leases.length <= s.leases.used && s.leases.used <= bound, `the summary counts ${s.leases.used} leases used; ${leases.length} are left`);
    const ours = new Set(Array.from({ length: 1941 }, (_, i) => leaseIdFor(s.migrationId, i + 1)));
    t.same(leases.filter((id) => !ours.has(id)), [], 'every lease is one of the migration\'s own IDs');
    t.same([...named].filter((id) => !leases.includes(id)), [], 'every TTL key is on a lease that exists');
    const unnamed = leases.filter((id) => !named.has(id));
    const unnamedAlive: string[] = [];
    for (const id of unnamed) if (Number((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL) > 0) unnamedAlive.push(id);
    t.same(unnamedAlive, [], `no live lease without keys (${unnamed.length} expired while the test read)`);
    // The remaining TTL: the lease ends no earlier than the v2 key, and at most max(1 s, 1% of the
    // key's TTL as of the migration's start T0) later, plus 1 s for etcd's whole-second TTLs.
    const state = JSON.parse((await client.get(`${RESERVED}migrate-v2/state`).string()) ?? '{}') as { t0?: number };
    t.type(state.t0, 'number', 'the target keeps the migration\'s T0');
    const t0 = state.t0 ?? 0;
    const sample = [...short, ...withTTL.filter((_, i) => i % 250 === 0).map((x) => x.key)];
    const ttlErrors: string[] = [];
    let checked = 0;
    for (const key of sample) {
      const src = sourceNow.get(key);
      const dst = targetNow.get(key);
      if (!src?.expiresAt || !dst) continue;
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: dst.lease });
      const remaining = (src.expiresAt - Date.now()) / 1000;
      const got = Number(ttl.TTL);
      if (got <= 0 && remaining < 1.5) continue; // ran out while the test looked
      checked++;
      const late = Math.max(1, ((src.expiresAt - t0) / 1000) * 0.01);
      if (got < remaining - 1.5 || got > remaining + late + 1.5) ttlErrors.push(`${key}: v2 ${remaining.toFixed(1)} s left, lease ${got} s (up to ${late.toFixed(1)} s late allowed)`);
    }
    t.same(ttlErrors, [], `${checked} leases carry their key's remaining TTL`);
    t.ok(checked >= 30, `${checked} TTLs checked`);
    // Before their TTL runs out, the short keys are there.
    const shortPresent = short.filter((k) => (sourceNow.get(k)?.expiresAt ?? 0) > Date.now() + 2_000);
    t.ok(shortPresent.length >= 10, `${shortPresent.length} short TTL keys still have time left`);
    const presentNow = await readTarget(client);
    t.same(shortPresent.filter((k) => !presentNow.has(k)), [], 'short TTL keys are there before their TTL runs out');
    migratedA = { client, endpoint: etcd.endpoint, sourceNow, shortPresent };
  });

  await t.test('killed with SIGKILL half way, then run again: resumes and ends equal, no stray lease', async (t) => {
    const { etcd, client } = await target('target-b', 3);
    const args = ['--from', source.endpoint, ...tlsArgs(pki, 'from'), '--to', etcd.endpoint, ...tlsArgs(pki, 'to'), '-o', 'json', '--concurrency=2'];
    let pid = 0;
    const first = runMigrate(t, args, (p) => (pid = p));
    const countNow = async () => Number((await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true })).count);
    await waitFor('the first run to have written half the keys', async () => (await countNow()) >= N / 2, 180_000, 20);
    process.kill(pid, 'SIGKILL');
    const killed = await first;
    t.equal(killed.signal, 'SIGKILL', 'the first run was killed');
    const written = await countNow();
    t.ok(written < N, `killed half way: ${written} keys (records included) in the target`);
    const state = JSON.parse((await client.get(`${RESERVED}migrate-v2/state`).string()) ?? '{}') as { state?: string; runs?: number };
    t.match(state, { state: 'copying', runs: 1 }, 'the target says the migration is under way');

    // Meanwhile someone writes into the target: one key before every subtree, one inside one. The rerun
    // finishes the copy and its verification must catch both (exit 1), wherever its parallel scans cut.
    const strays = ['/aaa-stray', '/registry/r5/ns4/zzz-stray'];
    for (const key of strays) await client.put(key).value('not from the source');
    const second = await runMigrate(t, args);
    t.equal(second.code, 1, 'the rerun finds what does not belong: exit 1');
    t.match(second.stderr, /verification failed: keys without a TTL: source \d+, target \d+/);
    const failed = summaryOf(second);
    t.match(failed, { resumed: true, runs: 2, alreadyDone: false, verify: { equal: false } });
    t.equal(failed.verify.targetKeys - failed.verify.sourceKeys, 2, 'exactly the two stray keys are extra');
    t.ok(failed.keys.skippedDone >= N / 2 - 1000, `${failed.keys.skippedDone} keys were already there and not written again`);
    t.ok(failed.keys.written > 0 && failed.keys.written < N, `${failed.keys.written} written by the rerun`);

    // The strays removed, a third run has nothing left to write and verifies.
    for (const key of strays) await client.delete().key(key);
    const third = await runMigrate(t, args);
    t.equal(third.code, 0, `the third run exits 0: ${third.stderr.split('\n').slice(-3).join(' | ')}`);
    const s = summaryOf(third);
    t.match(s, { resumed: true, runs: 3, alreadyDone: false });
    t.equal(s.keys.written, 0, 'nothing left to write');
    t.ok(s.verify.equal, 'it verifies');
    t.equal(s.verify.sourceHash, s.verify.targetHash);

    const sourceNow = await v2.leaves();
    const readAt = Date.now();
    const targetNow = await readTarget(client);
    const cmp = compareSides(sourceNow, targetNow, seededExpiry, readAt);
    t.same(cmp.problems, [], `${cmp.compared} keys equal on both sides after the kill and the rerun`);
    // The same result as the migration that was never stopped (target A): the same keys and values, on a lease
    // exactly where A has one (keys whose TTL runs out about now are left out: either side may hold them).
    if (migratedA) {
      const [aNow, bNow] = [await readTarget(migratedA.client), await readTarget(client)];
      const settledAt = Date.now() + 5_000;
      const differ: string[] = [];
      for (const key of new Set([...aNow.keys(), ...bNow.keys()])) {
        if ((seededExpiry.get(key) ?? Infinity) < settledAt) continue;
        const [x, y] = [aNow.get(key), bNow.get(key)];
        if (!x || !y || x.value !== y.value || (x.lease === '0') !== (y.lease === '0')) differ.push(key);
      }
      t.same(differ.slice(0, 10), [], `killed and rerun ends like the migration never stopped (${differ.length} keys differ)`);
    } else {
      t.fail('the first migration did not run');
    }
    const leases = await leasesOf(client);
    const ours = new Set(Array.from({ length: 1941 }, (_, i) => leaseIdFor(s.migrationId, i + 1)));
    t.ok(leases.length <= bound, `${leases.length} leases (bound ${bound})`);
    t.same(leases.filter((id) => !ours.has(id)), [], 'no stray lease: the rerun reused the first run\'s lease IDs');
    t.equal((await client.getAll().prefix(`${RESERVED}migrate-v2/done/`).keys()).length, 0, 'the progress records are gone once done');
  });

  await t.test('the short TTL keys are gone once their TTL has run out, the long ones stay', async (t) => {
    const a = migratedA;
    if (!a) {
      t.fail('the first migration did not run');
      return;
    }
    const lastShort = Math.max(...a.shortPresent.map((k) => a.sourceNow.get(k)!.expiresAt!));
    // etcd checks lease expiry every 500 ms; a lease ends at most 1 s after its bucket (≤ 1 s after the key, for TTLs under 100 s).
    const wait = lastShort + 3_000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const now = Date.now();
    const target = await readTarget(a.client);
    t.same(a.shortPresent.filter((k) => target.has(k)), [], `${a.shortPresent.length} short TTL keys are gone ~30–60 s after they were written, as in v2`);
    const longTTL = [...a.sourceNow].filter(([, v]) => v.expiresAt !== undefined && v.expiresAt > now + 60_000).map(([k]) => k);
    t.same(longTTL.filter((k) => !target.has(k)), [], `${longTTL.length} keys with time left are still there`);
    t.ok(longTTL.length > 4000);
  });

  await t.test('a v2 backup in kOps\' layout as the source; run again it is done; another target is refused', async (t) => {
    // A second v2 cluster, stopped, backed up with `etcdctl backup` and packed as kOps' etcd-manager does.
    const small = await startTestEtcd(t, { name: 'small', ip: ip(4), dataDir: join(dir, 'small'), pki, enableV2: true });
    const v2small = new V2Client(small.endpoint, pki.client, 16);
    const smallSeeds: Seed[] = Array.from({ length: 3000 }, (_, i) => ({ key: `/registry/pods/ns${i % 9}/pod-${i}`, value: `pod ${i} ${'y'.repeat(i % 300)}`, ...(i % 10 === 0 ? { ttl: i < 200 ? 45 : 600 + i } : {}) }));
    const smallExpiry = new Map<string, number>();
    await inParallel(smallSeeds, 32, async (s) => {
      const before = Date.now();
      await v2small.put(s.key, s.value, s.ttl);
      if (s.ttl) smallExpiry.set(s.key, before + s.ttl * 1000 + 1000);
    });
    const expected = await v2small.leaves();
    v2small.close();
    await small.stop();
    const backupDir = join(dir, 'small-backup');
    await execa(ETCDCTL, ['backup', '--data-dir', small.dataDir, '--backup-dir', backupDir], { env: { ...process.env, ETCDCTL_API: '2' } });
    const files = readdirSync(backupDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(backupDir.length + 1));
    const folder = join(dir, 'store', 'backups', 'etcd', 'main', '2024-06-01T00:00:00Z-000001');
    mkdirSync(folder, { recursive: true });
    await execa('tar', ['-czf', join(folder, 'etcd.backup.gz'), '-C', backupDir, '--no-recursion', ...files]);
    writeFileSync(join(folder, '_etcd_backup.meta'), JSON.stringify({ etcdVersion: '2.2.1', timestamp: '1717200000', clusterSpec: { memberCount: 1, etcdVersion: '2.2.1' } }));
    const ours = () => readdirSync(tmpdir()).filter((n) => n.startsWith('etcd-manager-migrate-v2-'));
    const tempBefore = new Set(ours());

    // verify-backup reads an etcd 2 backup back (unpacked, read as migrate-v2 reads it); a cut-off copy fails
    // its gzip check; restore-backup refuses it (it is not a v3 snapshot) before anything is written.
    const backupStore = `file://${join(dir, 'store', 'backups', 'etcd', 'main')}`;
    const cutOff = join(dir, 'store', 'backups', 'etcd', 'main', '2024-06-01T00:00:00Z-000002');
    mkdirSync(cutOff);
    const gz = readFileSync(join(folder, 'etcd.backup.gz'));
    writeFileSync(join(cutOff, 'etcd.backup.gz'), gz.subarray(0, Math.floor(gz.length / 2)));
    writeFileSync(join(cutOff, '_etcd_backup.meta'), readFileSync(join(folder, '_etcd_backup.meta')));
    const em = (args: string[]) => {
      const [command, ...rest] = managerCommand();
      return execa(command, [...rest, ...args], { reject: false, timeout: 120_000 });
    };
    const verified = await em(['verify-backup', '2024-06-01T00:00:00Z-000001', '--backup-store', backupStore, '-o', 'json']);
    t.equal(verified.exitCode, 0, `verify-backup of the v2 backup: exit 0 (${verified.stderr.split('\n').slice(-2).join(' | ')})`);
    const row = JSON.parse(verified.stdout || '{}') as { checks?: string[]; totalKeys?: number; v2?: { withTTL: number } };
    t.same(row.checks, ['meta', 'gzip', 'tar', 'v2-data'], 'its checks');
    t.equal(row.totalKeys, expected.size, `every key of the backup read back (${expected.size})`);
    t.equal(row.v2?.withTTL, [...expected.values()].filter((l) => l.expiresAt !== undefined).length, 'its TTL keys');
    const damaged = await em(['verify-backup', '2024-06-01T00:00:00Z-000002', '--backup-store', backupStore, '-o', 'json']);
    t.equal(damaged.exitCode, 1, 'a cut-off v2 backup: exit 1');
    t.match(JSON.parse(damaged.stdout || '{}'), { verified: false, failedCheck: 'gzip' }, 'naming the gzip check');
    const restore = await em(['restore-backup', '2024-06-01T00:00:00Z-000001', '--backup-store', backupStore]);
    t.equal(restore.exitCode, 2, 'restore-backup of a v2 backup: exit 2');
    t.match(restore.stderr, /an etcd 2 data directory, not a v3 snapshot/);
    t.notOk(readdirSync(join(dir, 'store', 'backups', 'etcd', 'main')).includes('control'), 'no restore command queued');
    rmSync(cutOff, { recursive: true });

    // This target takes at most 50 operations per transaction: the command (asking 128) lowers its batches to fit.
    const { etcd, client } = await target('target-c', 5, ['--max-txn-ops=50']);
    const args = ['--from', `file://${folder}`, '--to', etcd.endpoint, ...tlsArgs(pki, 'to'), '-o', 'json', '--v=3'];

    // First, served by a throwaway etcd (--backup-reader=etcd), killed with SIGKILL as soon as it
    // starts writing: the backup's etcd dies with it, its working directory (a copy of the data) is
    // left behind, and the rerun (reading the backup in process, the default) resumes and removes it.
    let servedPid = 0;
    let firstPid = 0;
    let killed = false;
    const first = await runMigrate(t, [...args, '--concurrency=1', '--backup-reader=etcd'], (pid) => (firstPid = pid), (entry) => {
      if (entry.event === 'migrate-v2.backup-served') servedPid = Number(entry.pid);
      if (entry.event === 'migrate-v2.start' && !killed) {
        killed = true;
        process.kill(firstPid, 'SIGKILL');
      }
    });
    t.equal(first.signal, 'SIGKILL', 'the first run was killed');
    t.ok(servedPid > 0, 'it had started an etcd to serve the backup');
    await waitFor('the backup\'s etcd to die with it', async () => !processAlive(servedPid), 10_000, 50);
    const leftover = ours().filter((n) => !tempBefore.has(n));
    t.equal(leftover.length, 1, 'a killed run leaves its working directory');
    const run = await runMigrate(t, args);
    t.equal(run.code, 0, `exit 0: ${run.stderr.split('\n').slice(-3).join(' | ')}`);
    const s = summaryOf(run);
    t.ok(s.verify.equal, 'verified');
    t.match(s, { resumed: true, runs: 2 }, 'the rerun resumed the killed one');
    t.equal(s.keys.source + s.keys.expiredBeforeCopy, 3000);
    t.ok(s.keys.withTTL >= 290, `${s.keys.withTTL} TTL keys`);
    t.same(run.events.filter((e) => e.startsWith('migrate-v2.') && e !== 'migrate-v2.limit'), ['migrate-v2.stale-removed', 'migrate-v2.backup-unpacked', 'migrate-v2.backup-read', 'migrate-v2.resume', 'migrate-v2.copied', 'migrate-v2.done'], 'the rerun read the backup in process (no etcd) and resumed');
    t.ok(run.events.includes('migrate-v2.limit'), 'the target\'s lower --max-txn-ops was noticed');
    t.ok(s.transactions.largest <= 49 && s.transactions.largest >= 16, `transactions of up to ${s.transactions.largest} puts (+1 record) fit the target's 50`);
    const cmp = compareSides(expected, await readTarget(client), smallExpiry, Date.now());
    t.same(cmp.problems, [], `${cmp.compared} keys of the backup equal in the target`);
    t.ok(cmp.compared >= 2790);
    t.same(ours().filter((n) => !tempBefore.has(n)), [], 'the killed run\'s directory and this run\'s are gone');

    // Again, with the summary as text: already done, nothing written.
    const again = await runMigrate(t, args.filter((a) => a !== '-o' && a !== 'json'));
    t.equal(again.code, 0);
    const escaped = folder.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&');
    t.match(again.stdout, new RegExp(`^already migrated: [\\d,]+ keys from ${escaped} \\(migration ${s.migrationId}\\); nothing was written\n$`));
    t.notOk(again.events.some((e) => e === 'migrate-v2.backup-served' || e === 'migrate-v2.backup-unpacked' || e === 'migrate-v2.backup-read'), 'a finished migration neither unpacks nor reads the backup');

    // The same backup into target A, which holds another finished migration: refused, nothing written.
    const a = migratedA;
    if (a) {
      // Keys expire meanwhile (a count would drop), but nothing may be put: no key modified after this revision.
      const before = (await a.client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true })).header.revision;
      const refused = await runMigrate(t, ['--from', `file://${folder}`, '--to', a.endpoint, ...tlsArgs(pki, 'to')]);
      t.equal(refused.code, 6, 'exit 6');
      t.match(refused.stderr, /already holds a finished migration from .* not from /);
      // (etcd filters by revision after counting, so the keys themselves are asked for, not a count.)
      const modified = await a.client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), min_mod_revision: String(Number(before) + 1), keys_only: true });
      t.same(modified.kvs.map((kv) => kv.key.toString()), [], 'nothing written');
    }
  });
});
