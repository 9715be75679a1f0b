// Taking and reading backups with a synthetic snapshot stream (no etcd): what
// a failed, cut-off or aborted backup leaves behind (nothing listed), that a
// stream without etcd's trailing hash is refused, encryption round trips, and
// the trash on a member's volume.
import t from 'tap';
import { gunzipSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { takeBackup, BackupError } from '../../agents/etcd-manager/backup/take.js';
import { listBackups } from '../../agents/etcd-manager/backup/list.js';
import { readBackup, BackupVerifyError } from '../../agents/etcd-manager/backup/verify.js';
import { parseKeyMaterial } from '../../agents/etcd-manager/backup/encryption.js';
import { emptyTrash, moveToTrash, trashedAt } from '../../agents/etcd-manager/backup/trash.js';
import type { SnapshotOrigin, SnapshotSource } from '../../agents/etcd-manager/backup/snapshot-stream.js';
import { openStore } from '../../shared/store/index.js';
import { tempDir } from '../harness/tmp.js';

const origin: SnapshotOrigin = { clusterId: '1', memberId: '2', endpoint: 'https://127.0.0.1:4001', revision: '7', version: '3.4.23' };
const spec = { memberCount: 1, etcdVersion: '3.4.23' };

/** A db of whole pages followed by its sha256, as etcd streams it. */
function snapshotBytes(pages: number): Buffer {
  const db = randomBytes(pages * 4096);
  return Buffer.concat([db, createHash('sha256').update(db).digest()]);
}

/** Serves `bytes` in 1000-byte chunks; `failAt` makes the stream fail after that many bytes. */
function source(bytes: Buffer, failAt?: number): SnapshotSource {
  return {
    async open() {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += 1000) chunks.push(bytes.subarray(i, i + 1000));
      let sent = 0;
      const data = new Readable({
        read() {
          if (failAt !== undefined && sent >= failAt) return this.destroy(new Error('etcd went away'));
          const next = chunks.shift();
          sent += next?.length ?? 0;
          this.push(next ?? null);
        },
      });
      return { origin, data };
    },
  };
}

t.test('a backup round trip without etcd, plain and encrypted', async (t) => {
  const store = openStore(`memfs://stream-${process.pid}/b`);
  const snap = snapshotBytes(5);
  const key = parseKeyMaterial(randomBytes(32), 'k');
  let clock = Date.parse('2026-11-30T08:00:00Z');
  for (const [name, k] of [['2026-11-30T08:00:00Z-000001', undefined], ['2026-11-30T08:00:00Z-000002', key]] as const) {
    const taken = await takeBackup({ store, name, snapshot: source(snap), clusterSpec: spec, key: k, now: () => (clock += 250) });
    t.equal(taken.durationMs, 250, 'duration from the injected clock');
    t.same(taken.sidecar.snapshot, { bytes: snap.length, sha256: createHash('sha256').update(snap).digest('hex') });
    const read = await readBackup({ store, name, key: k });
    t.equal(read.snapshotSha256, taken.sidecar.snapshot.sha256);
    t.equal(read.storedSha256, taken.sidecar.stored.sha256);
  }
  const stored = await store.read('2026-11-30T08:00:00Z-000002/etcd.backup.gz');
  // Not its first byte alone: the object starts with random bytes, 0x1f one time in 256 (CI run 8).
  t.throws(() => gunzipSync(stored), 'the encrypted object is not a gzip stream in the clear');
  t.equal((await store.read('2026-11-30T08:00:00Z-000001/etcd.backup.gz'))[0], 0x1f, 'the plain one is');
});

t.test('failures leave nothing that counts', async (t) => {
  const store = openStore(`memfs://stream-fail-${process.pid}/b`);
  const snap = snapshotBytes(4);
  await t.rejects(
    takeBackup({ store, name: '2026-11-30T08:00:00Z-000001', snapshot: source(snap, 5000), clusterSpec: spec }),
    { name: 'Error', message: /^backup 2026-11-30T08:00:00Z-000001 \(memfs:.*\): streaming the snapshot to 2026-11-30T08:00:00Z-000001\/etcd.backup.gz failed: etcd went away$/ },
  );
  const noHash = snap.subarray(0, snap.length - 32);
  const err = await takeBackup({ store, name: '2026-11-30T08:00:00Z-000002', snapshot: source(noHash), clusterSpec: spec }).catch((e: unknown) => e);
  t.ok(err instanceof BackupError);
  t.match((err as Error).message, /the snapshot etcd sent is not intact: size 16384 is not a database plus etcd's 32-byte sha256/);
  const tampered = Buffer.from(snap);
  tampered[100] ^= 1;
  await t.rejects(takeBackup({ store, name: '2026-11-30T08:00:00Z-000003', snapshot: source(tampered), clusterSpec: spec }), /trailing sha256 does not match/);
  const abort = new AbortController();
  abort.abort();
  await t.rejects(takeBackup({ store, name: '2026-11-30T08:00:00Z-000004', snapshot: source(snap), clusterSpec: spec, signal: abort.signal }), /backup aborted/);
  const silent: SnapshotSource = { async open() { let sent = false; return { origin, data: new Readable({ read() { if (!sent) this.push(snap.subarray(0, 4096)); sent = true; } }) }; } };
  await t.rejects(takeBackup({ store, name: '2026-11-30T08:00:00Z-000005', snapshot: silent, clusterSpec: spec, stallTimeoutMs: 300 }), /no snapshot data moved for 0 s/, 'etcd alive but silent: the backup fails instead of hanging');
  t.same(await store.list(), [], 'no object is left by any failed run');
  t.same(await listBackups(store), { backups: [], incomplete: [] });
  await t.rejects(takeBackup({ store, name: 'control', snapshot: source(snap), clusterSpec: spec }), /"control" is not a backup name/);
  await takeBackup({ store, name: '2026-11-30T08:00:00Z-000009', snapshot: source(snap), clusterSpec: spec });
  const before = await store.read('2026-11-30T08:00:00Z-000009/etcd.backup.gz');
  await t.rejects(takeBackup({ store, name: '2026-11-30T08:00:00Z-000009', snapshot: source(snapshotBytes(2)), clusterSpec: spec }), /already exists; refusing to overwrite it/);
  t.same(await store.read('2026-11-30T08:00:00Z-000009/etcd.backup.gz'), before, 'a name that collides never touches the other backup');
});

t.test('a backup whose meta names no etcd version, or which has no data, is refused by name', async (t) => {
  const store = openStore(`memfs://stream-meta-${process.pid}/b`);
  await store.write('x/_etcd_backup.meta', '{}');
  const err = await readBackup({ store, name: 'x' }).catch((e: unknown) => e);
  t.ok(err instanceof BackupVerifyError && err.check === 'meta');
  t.match((err as Error).message, /^backup x: memfs:.*x\/_etcd_backup.meta names no etcdVersion$/);
  await store.write('x/_etcd_backup.meta', '{"etcdVersion":"3.4.23"}');
  await t.rejects(readBackup({ store, name: 'x' }), { check: 'read', message: /^backup x: cannot read memfs:.*x\/etcd.backup.gz/ });
  await t.rejects(readBackup({ store, name: 'missing' }), { check: 'meta', message: /backup missing not found/ });
});

t.test('trash: moved aside with the time in its name, emptied past the policy, foreign entries kept', async (t) => {
  const volume = tempDir(t, 'mooring-trash-');
  const trash = join(volume, 'data-trashcan');
  const data = join(volume, 'data', 'token-1');
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'db'), 'x');
  const t0 = Date.parse('2026-11-30T08:00:00Z');
  const moved = await moveToTrash(data, trash, t0);
  t.equal(moved, join(trash, '20261130T080000Z-token-1'));
  t.same(trashedAt('20261130T080000Z-token-1')?.toISOString(), '2026-11-30T08:00:00.000Z');
  t.equal(await moveToTrash(data, trash, t0), undefined, 'nothing to move the second time');
  await mkdir(data, { recursive: true });
  t.equal(await moveToTrash(data, trash, t0), join(trash, '20261130T080000Z-token-1.2'), 'same name in the same second: both kept');
  await mkdir(join(trash, 'put-here-by-hand'));
  const week = 7 * 24 * 3_600_000;
  t.same(await emptyTrash(trash, t0 + week - 1000, { keepForMs: week }), [], 'younger than the policy: kept');
  const removed = await emptyTrash(trash, t0 + week + 1000, { keepForMs: week });
  t.same(removed.map((r) => r.path), [join(trash, '20261130T080000Z-token-1'), join(trash, '20261130T080000Z-token-1.2')]);
  t.same(await readdir(trash), ['put-here-by-hand'], 'entries we did not name are left alone');
  t.same(await emptyTrash(join(volume, 'nope'), t0, { keepForMs: week }), [], 'a missing trash is empty');
});

t.test('the snapshot check gives one answer however the stream is cut (chunks of 1 to 5000 bytes, around the 32-byte hash)', async (t) => {
  const { SnapshotCheck } = await import('../../agents/etcd-manager/backup/snapshot-stream.js');
  const check = async (bytes: Buffer, sizes: number[]) => {
    const chunks: Buffer[] = [];
    for (let i = 0, k = 0; i < bytes.length; k++) {
      const n = sizes[k % sizes.length];
      chunks.push(bytes.subarray(i, i + n));
      i += n;
    }
    const c = new SnapshotCheck();
    for await (const _ of Readable.from(chunks).pipe(c)) void _;
    return c.facts();
  };
  const good = snapshotBytes(3);
  const bad = Buffer.from(good);
  bad[5000] ^= 1;
  const whole = createHash('sha256').update(good).digest('hex');
  for (const sizes of [[good.length], [1], [7, 31, 32, 33], [4096, 31, 1, 5000], [32], [12290, 5]]) {
    const f = await check(good, sizes);
    t.same([f.integrityHashOK, f.bytes, f.sha256], [true, good.length, whole], `intact, cut by ${sizes.join(',')}`);
    t.equal((await check(bad, sizes)).integrityHashOK, false, `a flipped byte is caught, cut by ${sizes.join(',')}`);
  }
});
