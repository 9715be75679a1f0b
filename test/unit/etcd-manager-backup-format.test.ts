// The backup store's formats, byte for byte where kOps' etcd-manager reads them:
// backup names, `_etcd_backup.meta` (jsonpb), our sidecar, encryption keys, and
// the control files (cluster spec, created marker, `_command.json`, requests).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackupNamer, formatBackupName, parseBackupName } from '../../agents/etcd-manager/backup/names.js';
import { formatBackupMeta, parseBackupMeta } from '../../agents/etcd-manager/backup/meta.js';
import { formatSidecar, parseSidecar, SIDECAR_FORMAT, type BackupSidecar } from '../../agents/etcd-manager/backup/sidecar.js';
import { formatKeySecret, keyIdOf, loadKeyFile, loadKeySecret, parseKeyMaterial, KEY_SECRET_PATH } from '../../agents/etcd-manager/backup/encryption.js';
import { newestBackup, sortListing } from '../../agents/etcd-manager/backup/list.js';
import { formatClusterSpec, parseClusterSpec, readClusterSpecFile, writeClusterSpecFile } from '../../agents/etcd-manager/control/cluster-spec.js';
import { formatClusterCreated, isClusterCreated, markClusterCreated } from '../../agents/etcd-manager/control/cluster-created.js';
import { deleteCommand, formatCommand, listCommands, queueRestoreCommand } from '../../agents/etcd-manager/control/commands.js';
import { openStore } from '../../shared/store/index.js';
import { kopsStrictDecode, KOPS_BACKUP_INFO } from '../fixtures/kops-etcd-proto.js';

t.test('backup names: kOps form, parsed back, strictly ordered per namer, distinct across namers', async (t) => {
  t.equal(formatBackupName(Date.parse('2026-11-30T08:15:00.123Z'), 123456), '2026-11-30T08:15:00Z-123456');
  t.same(parseBackupName('2026-11-30T08:15:00Z-000001')?.time.toISOString(), '2026-11-30T08:15:00.000Z');
  t.equal(parseBackupName('2018-01-30T01:02:03Z-anything')?.suffix, 'anything', "kOps allows any suffix");
  for (const bad of ['2026-11-30T08:15:00Z', '2026-13-01T00:00:00Z-000001', '2026-02-30T00:00:00Z-000001', '2026-11-30T08:15:00.5Z-000001', '2026-11-30T08:15:00+01:00-000001', 'control']) {
    t.equal(parseBackupName(bad), undefined, `${bad} is not a backup name`);
  }
  let clock = Date.parse('2026-11-30T08:15:00.500Z');
  let draws = 0;
  const namer = new BackupNamer({ now: () => clock, randomInt: () => draws++ % 1000 });
  const names: string[] = [];
  for (let i = 0; i < 5; i++) names.push(namer.next()); // same millisecond
  clock -= 5_000; // the clock steps back
  names.push(namer.next());
  clock += 60_000;
  names.push(namer.next());
  t.same(names.slice(0, 2), ['2026-11-30T08:15:00Z-500000', '2026-11-30T08:15:00Z-500001']);
  t.same([...names].sort(), names, 'names sort in the order handed out');
  t.equal(new Set(names).size, names.length, 'never the same name twice');
  t.equal(names[5], '2026-11-30T08:15:00Z-500005', 'after a step back the namer stays after its last name');
  // Two leaders in the same millisecond collide only on the same 1-in-1000 draw.
  const a = new BackupNamer({ now: () => Date.parse('2026-11-30T08:15:00.250Z'), randomInt: () => 17 });
  const b = new BackupNamer({ now: () => Date.parse('2026-11-30T08:15:00.250Z'), randomInt: () => 18 });
  t.not(a.next(), b.next());
  const rollover = new BackupNamer({ now: () => Date.parse('2026-11-30T08:15:00.999Z'), randomInt: () => 999 });
  t.same([rollover.next(), rollover.next()], ['2026-11-30T08:15:00Z-999999', '2026-11-30T08:15:01Z-000000']);
});

t.test("_etcd_backup.meta: exactly jsonpb's bytes, every field kOps reads, nothing it would refuse", async (t) => {
  const meta = formatBackupMeta({ etcdVersion: '3.4.23', timestamp: 1764490500, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  // What golang/protobuf v1.4 jsonpb.Marshaler{Indent: "  "} writes for this BackupInfo (kOps pkg/apis/etcd/json.go).
  t.equal(meta, '{\n  "etcdVersion": "3.4.23",\n  "timestamp": "1764490500",\n  "clusterSpec": {\n    "memberCount": 3,\n    "etcdVersion": "3.4.23"\n  }\n}');
  const decoded = kopsStrictDecode(meta, KOPS_BACKUP_INFO);
  t.same(decoded, { etcd_version: '3.4.23', timestamp: 1764490500n, cluster_spec: { member_count: 3, etcd_version: '3.4.23' } }, 'every field of BackupInfo and ClusterSpec is set');
  t.throws(() => kopsStrictDecode(meta.replace('"timestamp"', '"sha256": "x",\n  "timestamp"'), KOPS_BACKUP_INFO), /unknown field "sha256"/, 'the strict decoder refuses what kOps refuses');
  t.equal(formatBackupMeta({ etcdVersion: '3.4.23' }), '{\n  "etcdVersion": "3.4.23"\n}', 'zero values are left out, as jsonpb does');
  t.equal(formatBackupMeta({ etcdVersion: 'a<b>&"\u2028' }), '{\n  "etcdVersion": "a\\u003cb\\u003e\\u0026\\"\\u2028"\n}', "strings escaped as Go's encoding/json does");

  // Lenient read: kOps' own file, numbers or strings, snake_case, unknown fields.
  t.same(parseBackupMeta(meta, 'm'), { etcdVersion: '3.4.23', timestamp: 1764490500, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  t.same(parseBackupMeta('{"etcd_version":"3.3.10","timestamp":1550000000,"cluster_spec":{"member_count":"1"},"extra":true}', 'm'), {
    etcdVersion: '3.3.10', timestamp: 1550000000, clusterSpec: { memberCount: 1 },
  });
  t.throws(() => parseBackupMeta('{"timestamp":"soon"}', 's3://b/x/_etcd_backup.meta'), /s3:\/\/b\/x\/_etcd_backup.meta: timestamp: want an integer/);
  t.throws(() => parseBackupMeta('[1]', 'm'), /m: want a JSON object/);
});

t.test('sidecar: round trip, malformed ones named', async (t) => {
  const sidecar: BackupSidecar = {
    format: SIDECAR_FORMAT, name: '2026-11-30T08:15:00Z-000001', startedAt: '2026-11-30T08:15:00.000Z', durationMs: 1234, reason: 'on-demand',
    stored: { bytes: 10, sha256: 'a'.repeat(64) }, snapshot: { bytes: 20512, sha256: 'b'.repeat(64) }, compression: 'gzip',
    encryption: { algorithm: 'AES-256-GCM', keyId: '0123456789abcdef', iv: Buffer.alloc(12, 1).toString('base64'), authTag: Buffer.alloc(16, 2).toString('base64') },
    etcd: { clusterId: '1', memberId: '2', endpoint: 'https://127.0.0.1:4001', revision: '42', version: '3.4.23' },
  };
  t.same(parseSidecar(formatSidecar(sidecar), 'x'), sidecar);
  t.throws(() => parseSidecar(formatSidecar({ ...sidecar, stored: { bytes: 10, sha256: 'zz' } }), 's3://b/n/_mooring_backup.json'), /s3:\/\/b\/n\/_mooring_backup.json: stored \{bytes, sha256\} is missing or malformed/);
  t.throws(() => parseSidecar(JSON.stringify({ ...sidecar, encryption: { ...sidecar.encryption, iv: 'AA==' } }), 'x'), /encryption/);
});

t.test('listing: complete backups need the meta; control/ and discovery/ are not backups', async (t) => {
  const listing = sortListing([
    '2026-11-30T08:00:00Z-000001/_etcd_backup.meta', '2026-11-30T08:00:00Z-000001/etcd.backup.gz', '2026-11-30T08:00:00Z-000001/_mooring_backup.json',
    '2026-11-30T08:15:00Z-000001/etcd.backup.gz', // cut off before its meta
    'legacy-name/_etcd_backup.meta', 'legacy-name/etcd.backup.gz', // kOps lists any folder with a meta
    'control/etcd-cluster-spec', 'control/2026-11-30T08:00:00Z-000000/_command.json', 'control/x/_etcd_backup.meta',
    'discovery/a.json', 'stray-top-level-object',
  ]);
  t.same(listing.backups.map((b) => [b.name, b.hasSidecar, b.hasData, b.time?.toISOString()]), [
    ['2026-11-30T08:00:00Z-000001', true, true, '2026-11-30T08:00:00.000Z'],
    ['legacy-name', false, true, undefined],
  ]);
  t.same(listing.incomplete.map((i) => i.name), ['2026-11-30T08:15:00Z-000001']);
  t.equal(newestBackup(listing)?.name, '2026-11-30T08:00:00Z-000001', 'the newest by time: an incomplete or timeless folder never counts');
});

t.test('encryption keys: three forms, a key id, wrong forms and loose files refused', async (t) => {
  const key = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
  const id = keyIdOf(key);
  t.match(id, /^[0-9a-f]{16}$/);
  t.equal(parseKeyMaterial(key, 'raw').id, id, '32 raw bytes');
  t.equal(parseKeyMaterial(Buffer.from(key.toString('hex') + '\n'), 'hex').id, id, '64 hex digits (newline ignored)');
  t.equal(parseKeyMaterial(Buffer.from(` ${key.toString('base64')}\n`), 'b64').id, id, 'base64 of 32 bytes');
  t.not(keyIdOf(Buffer.alloc(32, 1)), id);
  t.not(id, key.toString('hex').slice(0, 16), 'the id is not the key');
  t.throws(() => parseKeyMaterial(Buffer.from('too short'), '/etc/k'), /\/etc\/k: not an AES-256 key \(9 bytes; want exactly 32 raw bytes, 64 hex digits, or the base64 of 32 bytes\)/);
  t.throws(() => parseKeyMaterial(Buffer.from(Buffer.alloc(31).toString('base64')), 'k'), /not an AES-256 key/);

  const dir = mkdtempSync(join(tmpdir(), 'mooring-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'key');
  writeFileSync(file, key.toString('hex'), { mode: 0o600 });
  chmodSync(file, 0o600);
  t.equal((await loadKeyFile(file)).id, id);
  chmodSync(file, 0o644);
  await t.rejects(loadKeyFile(file), /readable by group or others \(mode 644\); chmod 600 it/);
  await t.rejects(loadKeyFile(join(dir, 'missing')), /missing: cannot read the backup encryption key file/);

  const state = openStore(`memfs://keys-${process.pid}/cluster`);
  t.equal(await loadKeySecret(state), undefined, 'no secret, no key');
  await state.write(KEY_SECRET_PATH, formatKeySecret(key));
  t.equal((await loadKeySecret(state))?.id, id, "kOps' secret form {\"Data\": base64}");
  await state.write(KEY_SECRET_PATH, '{"data":"x"}');
  await t.rejects(loadKeySecret(state), /secrets\/etcd-backup-encryption-key: not a kOps secret/);
});

t.test('control/etcd-cluster-spec: ours and kOps\' forms read; written as jsonpb', async (t) => {
  t.same(parseClusterSpec('{"memberCount":3,"etcdVersion":"3.4.23"}', 'x'), { memberCount: 3, etcdVersion: '3.4.23' });
  t.same(parseClusterSpec('{\n  "member_count": "1",\n  "etcd_version": "3.5.9"\n}', 'x'), { memberCount: 1, etcdVersion: '3.5.9' });
  t.throws(() => parseClusterSpec('{"etcdVersion":"3.4.23"}', 's3://b/c/control/etcd-cluster-spec'), /s3:\/\/b\/c\/control\/etcd-cluster-spec: memberCount must be 1 or more \(got none\)/);
  t.throws(() => parseClusterSpec('{"memberCount":3,"etcdVersion":"latest"}', 'x'), /etcdVersion must be like 3.4.23/);
  t.equal(formatClusterSpec({ memberCount: 3, etcdVersion: '3.4.23' }), '{\n  "memberCount": 3,\n  "etcdVersion": "3.4.23"\n}');
  const store = openStore(`memfs://spec-${process.pid}/b`);
  t.equal(await readClusterSpecFile(store), undefined);
  await writeClusterSpecFile(store, { memberCount: 5, etcdVersion: '3.4.23' });
  t.same(await readClusterSpecFile(store), { memberCount: 5, etcdVersion: '3.4.23' });
  await t.rejects(writeClusterSpecFile(store, { memberCount: 0, etcdVersion: '3.4.23' }), /memberCount must be 1 or more/);
});

t.test('control/etcd-cluster-created: kOps\' nanosecond timestamp, empty is an error', async (t) => {
  t.equal(formatClusterCreated({ atMs: 1764490500123 }), '{"timestamp":1764490500123000000}');
  t.equal(formatClusterCreated({ atMs: 1764490500123, extra: { leader: 'a', members: ['a', 'b'] } }), '{"timestamp":1764490500123000000,"leader":"a","members":["a","b"]}');
  const store = openStore(`memfs://created-${process.pid}/b`);
  t.equal(await isClusterCreated(store), false);
  await markClusterCreated(store, { atMs: Date.now() });
  t.equal(await isClusterCreated(store), true);
  await store.write('control/etcd-cluster-created', '{"createdAt":"2026-11-22T00:00:00Z","member":"a"}\n');
  t.equal(await isClusterCreated(store), true, 'our older marker counts too');
  await store.write('control/etcd-cluster-created', '');
  await t.rejects(isClusterCreated(store), /etcd-cluster-created is empty/);
});

t.test("_command.json: kOps' exact restore command, listed oldest first, invalid ones reported, deleted by id", async (t) => {
  t.equal(
    formatCommand(1764490500123456789n, { backup: '2026-11-30T08:15:00Z-000001', clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } }),
    '{\n  "timestamp": "1764490500123456789",\n  "restoreBackup": {\n    "clusterSpec": {\n      "memberCount": 3,\n      "etcdVersion": "3.4.23"\n    },\n    "backup": "2026-11-30T08:15:00Z-000001"\n  }\n}',
  );
  const store = openStore(`memfs://commands-${process.pid}/b`);
  // One written by kOps' etcd-manager-ctl (same bytes), one of ours, one broken, and a request object that is not a command.
  await store.write('control/2026-11-30T09:00:00Z-000000/_command.json', '{\n  "timestamp": "1796029200000000000",\n  "restoreBackup": {\n    "clusterSpec": {\n      "memberCount": 1,\n      "etcdVersion": "3.4.23"\n    },\n    "backup": "b-2"\n  }\n}');
  await queueRestoreCommand(store, '2026-11-30T08:00:00Z-123456', Date.parse('2026-11-30T08:00:00.123Z'), { backup: 'b-1', clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  await store.write('control/broken/_command.json', '{"timestamp": "x"}');
  await store.write('control/requests/r.request.json', '{}');
  await store.write('control/etcd-cluster-spec', '{"memberCount":3,"etcdVersion":"3.4.23"}');
  const listed = await listCommands(store);
  t.same(listed.commands.map((c) => [c.id, c.restoreBackup?.backup, String(c.timestampNanos)]), [
    ['2026-11-30T08:00:00Z-123456', 'b-1', '1796025600123000000'],
    ['2026-11-30T09:00:00Z-000000', 'b-2', '1796029200000000000'],
  ]);
  t.same(listed.commands[0].restoreBackup?.clusterSpec, { memberCount: 3, etcdVersion: '3.4.23' });
  t.equal(listed.invalid.length, 1);
  t.match(listed.invalid[0], { id: 'broken', error: /control\/broken\/_command.json: timestamp: want an integer/ });
  t.equal(await deleteCommand(store, '2026-11-30T08:00:00Z-123456'), true);
  t.equal(await deleteCommand(store, '2026-11-30T08:00:00Z-123456'), false, 'gone already');
  await t.rejects(deleteCommand(store, '../etcd-cluster-spec'), /not a command id/);
  t.same((await listCommands(store)).commands.map((c) => c.id), ['2026-11-30T09:00:00Z-000000']);
});
