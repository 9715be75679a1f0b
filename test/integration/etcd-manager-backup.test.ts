// The backup library against real etcd 3.4.23 with mutual TLS, on the file://
// store and on s3rver: backup → list → verify → restore into a fresh data dir
// → etcd started on it has every key with the same mod_revision, and a key on
// a lease taken before the backup still expires. A flipped byte is refused by
// verify and restore with nothing touched; a wrong key is named; kill -9 in the
// middle of an upload leaves nothing listed; a backup made kOps' way
// (`etcdctl snapshot save` + gzip + kOps' meta) restores, and ours carries every
// field kOps' etcd-manager reads and nothing it would refuse.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { BackupNamer } from '../../agents/etcd-manager/backup/names.js';
import { etcdSnapshotSource } from '../../agents/etcd-manager/backup/snapshot-stream.js';
import { takeBackup } from '../../agents/etcd-manager/backup/take.js';
import { listBackups, loadBackupInfo } from '../../agents/etcd-manager/backup/list.js';
import { verifyBackup, BackupVerifyError, type VerifyCheck } from '../../agents/etcd-manager/backup/verify.js';
import { restoreMemberData } from '../../agents/etcd-manager/backup/restore.js';
import { SYSTEM_ETCDCTL } from '../../agents/etcd-manager/backup/etcdctl.js';
import { parseKeyMaterial, type BackupKey } from '../../agents/etcd-manager/backup/encryption.js';
import { openStore, type StateStore } from '../../shared/store/index.js';
import { kopsStrictDecode, KOPS_BACKUP_INFO } from '../fixtures/kops-etcd-proto.js';
import { freePort, loopbackNet, processAlive, waitFor } from '../harness/net.js';
import { startS3 } from '../harness/s3.js';
import { tempDir } from '../harness/tmp.js';
import { etcdMissing, ETCDCTL_BINARY, makeEtcdPKI, startEtcd, type EtcdPKI, type RunningEtcd } from '../harness/tls-etcd.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const LEASE_TTL_S = 8;

interface KeyState {
  key: string;
  value: string;
  modRevision: string;
  createRevision: string;
  version: string;
  lease: string;
}

async function allKeys(client: Etcd3): Promise<{ revision: string; keys: KeyState[] }> {
  const res = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  return {
    revision: res.header.revision,
    keys: res.kvs.map((kv) => ({
      key: kv.key.toString(), value: kv.value.toString(), modRevision: kv.mod_revision, createRevision: kv.create_revision, version: kv.version, lease: kv.lease,
    })),
  };
}

/** Writes, rewrites and deletes keys so revisions are varied; one key on a lease. Returns the lease id. */
async function fill(client: Etcd3): Promise<string> {
  for (let i = 0; i < 40; i++) await client.put(`/registry/k${String(i).padStart(2, '0')}`).value(`v${i}`);
  for (let i = 0; i < 40; i += 3) await client.put(`/registry/k${String(i).padStart(2, '0')}`).value(`v${i}-again`);
  for (let i = 1; i < 40; i += 7) await client.delete().key(`/registry/k${String(i).padStart(2, '0')}`);
  const grant = await client.leaseClient.leaseGrant({ TTL: LEASE_TTL_S });
  await client.kv.put({ key: Buffer.from('/registry/leased'), value: Buffer.from('goes away'), lease: grant.ID });
  return grant.ID;
}

function flipByte(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] ^= 0x40;
  return copy;
}

async function rejectsWith(t: Test, promise: Promise<unknown>, check: VerifyCheck, message: RegExp, what: string): Promise<void> {
  try {
    await promise;
    t.fail(`${what}: should have been refused`);
  } catch (err) {
    t.ok(err instanceof BackupVerifyError, `${what}: a BackupVerifyError (${(err as Error).message})`);
    t.equal((err as BackupVerifyError).check, check, `${what}: the ${check} check failed`);
    t.match((err as Error).message, message, `${what}: the message names the backup and what failed`);
  }
}

interface Fixture {
  dir: string;
  ip: (host: number) => string;
  pki: EtcdPKI;
  etcd: RunningEtcd;
  client: Etcd3;
}

async function liveEtcd(t: Test): Promise<Fixture> {
  const dir = tempDir(t, 'mooring-backup-');
  const ip = loopbackNet();
  const pki = await makeEtcdPKI(join(dir, 'pki'), [1, 2, 3, 4, 5, 6].map(ip));
  const etcd = await startEtcd(t, { name: 'a', dataDir: join(dir, 'a'), ip: ip(1), pki, token: 'live-token' });
  const client = await openEtcdClient([etcd.endpoint], pki.client);
  t.teardown(() => client.close());
  return { dir, ip, pki, etcd, client };
}

/** Restores `name` for a one-member cluster on ip(host) and starts etcd on it. */
async function restoreAndStart(t: Test, f: Fixture, store: StateStore, name: string, key: BackupKey | undefined, host: number, memberName: string) {
  const volume = join(f.dir, `volume-${memberName}`);
  const peerPort = await freePort(f.ip(host));
  const peerURL = `https://${f.ip(host)}:${peerPort}`;
  const restored = await restoreMemberData({
    store, name, key, tool: SYSTEM_ETCDCTL,
    workDir: join(volume, 'restore-work'), dataRoot: join(volume, 'data'),
    member: { name: memberName, peerURLs: [peerURL] }, initialCluster: { [memberName]: [peerURL] },
    clusterToken: `restored-${memberName}`,
  });
  t.equal(restored.dataDir, join(volume, 'data', `restored-${memberName}`));
  t.same(await readdir(join(volume, 'restore-work')), [], 'the downloaded snapshot is removed after the restore');
  t.same((await readdir(join(volume, 'data'))).sort(), [`restored-${memberName}`], 'only the new data dir, no staging leftovers');
  const etcd = await startEtcd(t, { name: memberName, dataDir: restored.dataDir, ip: f.ip(host), pki: f.pki, token: `restored-${memberName}`, peerPort });
  const client = await openEtcdClient([etcd.endpoint], f.pki.client);
  t.teardown(() => client.close());
  return { restored, etcd, client, volume };
}

async function roundTrip(t: Test, store: StateStore, key: BackupKey | undefined, killEnv: Record<string, string>): Promise<void> {
  const f = await liveEtcd(t);
  const leaseId = await fill(f.client);
  const before = await allKeys(f.client);
  t.ok(before.keys.some((k) => k.key === '/registry/leased' && k.lease === leaseId), 'a key on a lease');

  // ---- backup ----
  const namer = new BackupNamer({ now: Date.now, randomInt: (n) => Math.floor(Math.random() * n) });
  const name = namer.next();
  const progress: number[] = [];
  const taken = await takeBackup({
    store, name, snapshot: etcdSnapshotSource(f.client, f.etcd.endpoint), clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' }, key,
    reason: 'test', onProgress: (p) => progress.push(p.snapshotBytes),
  });
  t.equal(taken.name, name);
  t.ok(progress.length > 0 && progress.at(-1)! >= taken.sidecar.snapshot.bytes - 32 * 1024, 'progress reported as bytes went by');
  t.equal(taken.sidecar.etcd.revision, before.revision, 'the sidecar holds the revision at snapshot time');
  t.equal(taken.sidecar.etcd.version, '3.4.23');
  t.equal(taken.sidecar.encryption?.keyId, key?.id);

  // ---- list, meta ----
  const listing = await listBackups(store);
  t.same(listing.backups.map((b) => [b.name, b.hasData, b.hasSidecar]), [[name, true, true]]);
  t.same(listing.incomplete, []);
  const metaText = (await store.read(`${name}/_etcd_backup.meta`)).toString();
  const decoded = kopsStrictDecode(metaText, KOPS_BACKUP_INFO);
  t.same(Object.keys(decoded).sort(), ['cluster_spec', 'etcd_version', 'timestamp'], "every BackupInfo field kOps reads is set, and kOps' strict reader accepts the meta");
  t.same(decoded.cluster_spec, { member_count: 3, etcd_version: '3.4.23' });
  t.equal(decoded.etcd_version, '3.4.23');
  t.ok(Math.abs(Number(decoded.timestamp) - Date.now() / 1000) < 600, 'timestamp is unix seconds of now');
  if (store.baseURL.startsWith('file:')) {
    const mode = (await stat(join(fileURLToPath(store.baseURL), name, 'etcd.backup.gz'))).mode & 0o777;
    t.equal(mode.toString(8), '600', 'the snapshot (every secret in the cluster) is readable by its owner only');
  }
  const info = await loadBackupInfo(store, name);
  t.same(info.sidecar, taken.sidecar);

  // ---- verify (with etcdctl snapshot status) ----
  const verified = await verifyBackup({ store, name, key, statusCheck: { tool: SYSTEM_ETCDCTL, workDir: join(f.dir, 'verify') } });
  t.same(verified.passed, [
    'meta', ...(key ? ['key'] : []), 'stored-sha256', ...(key ? ['decrypt'] : []), 'gzip', 'snapshot-sha256', 'snapshot-integrity', 'snapshot-status',
  ]);
  t.equal(String(verified.status?.revision), before.revision, 'etcdctl snapshot status: the same revision');
  t.same(await readdir(join(f.dir, 'verify')), [], 'verify leaves no temp file');

  // ---- restore, start etcd on it ----
  const { client: restoredClient } = await restoreAndStart(t, f, store, name, key, 2, 'b');
  const after = await allKeys(restoredClient);
  t.same(after.keys, before.keys, 'every key back with its value, mod_revision, create_revision, version and lease');
  t.ok(BigInt(after.revision) >= BigInt(before.revision), 'the store revision does not go back');
  const ttl = await restoredClient.leaseClient.leaseTimeToLive({ ID: leaseId, keys: true });
  t.ok(Number(ttl.TTL) > 0 && ttl.keys.map((k) => k.toString()).includes('/registry/leased'), 'the lease survived the restore with its key');
  await waitFor('the leased key to expire after the restore', async () => (await restoredClient.get('/registry/leased').string()) === null, (LEASE_TTL_S + 15) * 1000, 250);
  t.equal(await restoredClient.get('/registry/k00').string(), 'v0-again', 'unleased keys stay');

  // ---- a wrong key, a flipped byte ----
  if (key) {
    const wrong = parseKeyMaterial(randomBytes(32), 'wrong-key-file');
    await rejectsWith(t, verifyBackup({ store, name, key: wrong }), 'key', new RegExp(`backup ${name}: is encrypted with key id ${key.id}, but the key from wrong-key-file has id ${wrong.id} \\(wrong key\\)`), 'wrong key');
    await rejectsWith(t, verifyBackup({ store, name }), 'key', /is encrypted .*pass its key/, 'no key');
  }
  const original = await store.read(`${name}/etcd.backup.gz`);
  await store.write(`${name}/etcd.backup.gz`, flipByte(original, Math.floor(original.length / 2)));
  await rejectsWith(t, verifyBackup({ store, name, key }), 'stored-sha256', new RegExp(`backup ${name}: .*etcd.backup.gz is \\d+ bytes with sha256 [0-9a-f]{64}, the sidecar says`), 'flipped byte (verify)');
  // The same damage with a sidecar rewritten to match it: the data's own checks still refuse it.
  const flipped = await store.read(`${name}/etcd.backup.gz`);
  const sidecarText = (await store.read(`${name}/_mooring_backup.json`)).toString();
  await store.write(`${name}/_mooring_backup.json`, sidecarText.replace(taken.sidecar.stored.sha256, createHash('sha256').update(flipped).digest('hex')));
  await rejectsWith(t, verifyBackup({ store, name, key }), key ? 'decrypt' : 'gzip', key ? /decryption failed: the data does not authenticate/ : /is not a whole gzip stream/, 'flipped byte, sidecar forged to match');
  await store.write(`${name}/_mooring_backup.json`, sidecarText);
  const volume = join(f.dir, 'volume-c');
  await rejectsWith(t, restoreMemberData({
    store, name, key, tool: SYSTEM_ETCDCTL, workDir: join(volume, 'work'), dataRoot: join(volume, 'data'),
    member: { name: 'c', peerURLs: ['https://127.0.0.1:1'] }, initialCluster: { c: ['https://127.0.0.1:1'] }, clusterToken: 'restored-c',
  }), 'stored-sha256', new RegExp(`backup ${name}:`), 'flipped byte (restore)');
  t.same(await readdir(join(volume, 'data')), [], 'the refused restore created no data dir');
  t.same(await readdir(join(volume, 'work')), [], 'and left no snapshot file');
  const unleased = (keys: KeyState[]) => keys.filter((k) => k.lease === '0');
  t.same(unleased((await allKeys(f.client)).keys), unleased(before.keys), 'the live etcd keeps its data');
  await store.write(`${name}/etcd.backup.gz`, original);

  // ---- kill -9 in the middle of an upload ----
  await killDuringUpload(t, store, f, killEnv);
}

async function killDuringUpload(t: Test, store: StateStore, f: Fixture, env: Record<string, string>): Promise<void> {
  // ~12 MiB that gzip cannot shrink, so an S3 upload goes multipart (PART_SIZE, 5 MiB) and is cut after its first part.
  for (let i = 0; i < 12; i++) await f.client.put(`/big/${i}`).value(randomBytes(1024 * 1024));
  const name = new BackupNamer({ now: Date.now, randomInt: () => 1 }).next();
  const stallAfter = 9 * 1024 * 1024;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(repo, 'test/fixtures/backup-upload-child.ts'), store.baseURL, f.etcd.endpoint, f.pki.client.caFile, f.pki.client.certFile, f.pki.client.keyFile, name, String(stallAfter)],
    { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const pid = child.pid!;
  t.teardown(() => {
    if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stalled = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the upload child never stalled: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('stalled') || line === 'finished') {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`the upload child exited (${code}) before stalling: ${stderr}`)));
  });
  t.match(stalled, new RegExp(`^stalled ${name} `), 'the child is in the middle of its upload');
  await waitFor('the upload to have reached the store', async () => uploadStarted(store, name), 30_000, 100);
  process.kill(pid, 'SIGKILL');
  await exited;
  const listing = await listBackups(store);
  t.notOk(listing.backups.some((b) => b.name === name), 'the killed backup is not listed');
  t.notOk(await store.exists(`${name}/_etcd_backup.meta`), 'it has no meta');
  t.notOk(await store.exists(`${name}/etcd.backup.gz`), 'nor a data object (a half upload is never an object)');
}

/** file://: the writer's temp file is there; s3://: a multipart part has been sent. */
async function uploadStarted(store: StateStore, name: string): Promise<boolean> {
  if (store.baseURL.startsWith('file:')) {
    const dir = join(fileURLToPath(store.baseURL), name);
    return (await readdir(dir).catch(() => [] as string[])).some((e) => e.startsWith('.etcd.backup.gz.tmp-'));
  }
  return uploadedParts.length > 0;
}
let uploadedParts: string[] = [];

/** A backup made the way kOps' etcd-manager makes one (its meta bytes, etcdctl's snapshot, gzip), and our handling of it. */
async function kopsInterop(t: Test, store: StateStore): Promise<void> {
  const f = await liveEtcd(t);
  await fill(f.client);
  const before = await allKeys(f.client);
  const file = join(f.dir, 'snapshot.db');
  const { execa } = await import('execa');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
  await execa(ETCDCTL_BINARY, [`--endpoints=${f.etcd.endpoint}`, `--cacert=${f.pki.client.caFile}`, `--cert=${f.pki.client.certFile}`, `--key=${f.pki.client.keyFile}`, 'snapshot', 'save', file], { env: { ...env, ETCDCTL_API: '3' }, extendEnv: false });
  const snapshot = await readFile(file);
  const name = '2026-11-30T08:15:00Z-000001';
  await store.write(`${name}/etcd.backup.gz`, gzipSync(snapshot));
  // golang/protobuf jsonpb, Indent "  ", of BackupInfo{EtcdVersion, Timestamp, ClusterSpec}: kOps' AddBackup.
  await store.write(`${name}/_etcd_backup.meta`, '{\n  "etcdVersion": "3.4.23",\n  "timestamp": "1796026500",\n  "clusterSpec": {\n    "memberCount": 1,\n    "etcdVersion": "3.4.23"\n  }\n}');
  t.same((await listBackups(store)).backups.map((b) => [b.name, b.hasSidecar]), [[name, false]], "kOps' backup is listed (no sidecar)");
  const verified = await verifyBackup({ store, name, statusCheck: { tool: SYSTEM_ETCDCTL, workDir: join(f.dir, 'verify') } });
  t.same(verified.passed, ['meta', 'gzip', 'snapshot-integrity', 'snapshot-status'], 'checks without a sidecar: gzip, etcd\'s own hash, snapshot status');
  t.equal(String(verified.status?.revision), before.revision);
  const { client } = await restoreAndStart(t, f, store, name, undefined, 3, 'k');
  t.same((await allKeys(client)).keys, before.keys, "kOps' backup restores with every key and revision");

  // Damage: a flipped byte in the gzip stream, and one inside the database (re-gzipped, so only etcd's hash can tell).
  const gz = await store.read(`${name}/etcd.backup.gz`);
  await store.write(`${name}/etcd.backup.gz`, flipByte(gz, Math.floor(gz.length / 2)));
  await rejectsWith(t, verifyBackup({ store, name }), 'gzip', new RegExp(`backup ${name}: .*etcd.backup.gz: is not a whole gzip stream`), 'kOps backup, flipped gzip byte');
  await store.write(`${name}/etcd.backup.gz`, gzipSync(flipByte(gunzipSync(gz), 8192 + 100)));
  await rejectsWith(t, verifyBackup({ store, name }), 'snapshot-integrity', new RegExp(`backup ${name}: the snapshot in .* is not intact: etcd's trailing sha256 does not match the database`), 'kOps backup, flipped database byte');
  const volume = join(f.dir, 'volume-z');
  await rejectsWith(t, restoreMemberData({
    store, name, tool: SYSTEM_ETCDCTL, workDir: join(volume, 'work'), dataRoot: join(volume, 'data'),
    member: { name: 'z', peerURLs: ['https://127.0.0.1:1'] }, initialCluster: { z: ['https://127.0.0.1:1'] }, clusterToken: 'restored-z',
  }), 'snapshot-integrity', /not intact/, 'kOps backup, flipped database byte (restore)');
  t.same(await readdir(join(volume, 'data')), [], 'nothing restored');
}

t.test('file:// store, plain gzip (kOps-readable)', { skip: etcdMissing }, async (t) => {
  const dir = tempDir(t, 'mooring-backup-store-');
  const store = openStore(`file://${dir}/state/cluster/backups/etcd/main`);
  await writeFile(join(dir, 'marker'), '');
  await roundTrip(t, store, undefined, {});
});

t.test('s3rver store, AES-256-GCM', { skip: etcdMissing }, async (t) => {
  const s3 = await startS3(t);
  const store = openStore(`${s3.url}/state/cluster/backups/etcd/main`, { env: s3.env });
  uploadedParts = [];
  const watch = setInterval(() => {
    void s3.requests().then((reqs) => (uploadedParts = reqs.filter((r) => r.method === 'PUT' && /partNumber=/.test(r.url)).map((r) => r.url)));
  }, 100);
  t.teardown(() => clearInterval(watch));
  await roundTrip(t, store, parseKeyMaterial(randomBytes(32), 'test key'), s3.env);
  t.ok(uploadedParts.length > 0, 'the killed upload was multipart');
});

t.test("kOps' layout, made with etcdctl snapshot save + gzip + kOps' meta: verified and restored (file:// and s3rver)", { skip: etcdMissing }, async (t) => {
  const dir = tempDir(t, 'mooring-backup-kops-');
  await kopsInterop(t, openStore(`file://${dir}/backups/etcd/main`));
  const s3 = await startS3(t);
  await kopsInterop(t, openStore(`${s3.url}/backups/etcd/main`, { env: s3.env }));
});

t.test('one backup restored into three members (full initial cluster, a new token) forms one healthy cluster with the data', { skip: etcdMissing }, async (t) => {
  const f = await liveEtcd(t);
  await fill(f.client);
  const before = await allKeys(f.client);
  const store = openStore(`file://${tempDir(t, 'mooring-backup-three-')}/backups/etcd/main`);
  const name = new BackupNamer({ now: Date.now, randomInt: () => 0 }).next();
  await takeBackup({ store, name, snapshot: etcdSnapshotSource(f.client, f.etcd.endpoint), clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  const members = ['m1', 'm2', 'm3'];
  const hosts = [4, 5, 6];
  const peerURLs = Object.fromEntries(await Promise.all(members.map(async (m, i) => [m, `https://${f.ip(hosts[i])}:${await freePort(f.ip(hosts[i]))}`] as const)));
  const initialCluster = Object.fromEntries(members.map((m) => [m, [peerURLs[m]]]));
  const dataDirs: string[] = [];
  for (const m of members) {
    const volume = join(f.dir, `volume-${m}`);
    const restored = await restoreMemberData({
      store, name, tool: SYSTEM_ETCDCTL, workDir: join(volume, 'work'), dataRoot: join(volume, 'data'),
      member: { name: m, peerURLs: [peerURLs[m]] }, initialCluster, clusterToken: 'restored-three',
    });
    dataDirs.push(restored.dataDir);
  }
  const initial = members.map((m) => `${m}=${peerURLs[m]}`).join(',');
  const running = await Promise.all(members.map((m, i) => startEtcd(t, {
    name: m, dataDir: dataDirs[i], ip: f.ip(hosts[i]), pki: f.pki, token: 'restored-three', initialCluster: initial, peerPort: Number(new URL(peerURLs[m]).port),
  })));
  const client = await openEtcdClient(running.map((r) => r.endpoint), f.pki.client);
  t.teardown(() => client.close());
  const list = await client.cluster.memberList({ linearizable: true });
  t.same(list.members.map((m) => m.name).sort(), members, 'three members, named as restored');
  t.same(list.members.map((m) => m.peerURLs[0]).sort(), Object.values(peerURLs).sort(), 'with the peer URLs given to the restore');
  t.same((await allKeys(client)).keys, before.keys, 'every key and revision, read through the new cluster');
  await client.put('/after-restore').value('writable');
  t.equal(await client.get('/after-restore').string(), 'writable', 'the restored cluster takes writes');
});
