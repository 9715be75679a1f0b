// etcd2 → etcd3 driven by the managers, end to end: three real managers whose
// --etcd-binary-dir holds 2.2.1 and 3.4.23 (test/harness/etcd-binary-dirs.ts:
// Debian's etcd 3.4.23 declaring each; the 2.2.1 members serve the v2 API, a
// faithful stand-in for etcd2's data model), a cluster formed on 2.2.1 whose
// data is written through the v2 API (leaves in nested directories, some with
// TTLs), and `etcd-manager configure-cluster --etcd-version 3.4.23 --yes` as the
// only operator action. The acting manager takes a v2 backup (a copy of its
// data directory), converts it into a v3 backup of 3.4.23 off the live cluster
// (every leaf under its path, TTLs as leases, verified), and restores that into
// every member: afterwards every member runs 3.4.23 on a new cluster, every v2
// leaf is a v3 key with the same bytes, and every TTL key is on a lease whose
// remaining TTL is no more than the key had plus the lease grouping's 1%.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { VERSION_CHANGE_PATH } from '../../agents/etcd-manager/versions/record.js';
import { binaryDirSkipReason, makeEtcdBinaryDir } from '../harness/etcd-binary-dirs.js';
import { logged } from '../harness/etcd-scenario.js';
import { managerCommand, type ManagerProcess } from '../harness/manager.js';
import { waitFor } from '../harness/net.js';
import { threeManagers, votingMembers } from '../harness/three-managers.js';
import { inParallel, V2Client } from '../harness/v2-etcd.js';

const run = promisify(execFile);
t.setTimeout(900_000);

const KEYS = 600;
/** Every tenth key has a TTL; long enough that none expires during the test. */
const TTL_SECONDS = 3600;

t.test('configure-cluster --etcd-version 3.4.23 on a 2.2.1 cluster: v2 backup, converted off the live cluster, restored into every member; every key and TTL kept', { skip: binaryDirSkipReason, timeout: 720_000 }, async (t) => {
  const h = await threeManagers(t, { memberCount: 3 });
  await h.backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 3, etcdVersion: '2.2.1' }));
  const binaryDir = await makeEtcdBinaryDir(join(h.area.root, 'etcd-versions'), ['2.2.1', '3.4.23']);
  const managers = await h.startAll([`--etcd-binary-dir=${binaryDir}`]);
  await waitFor('three healthy voting members on 2.2.1', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 120_000, 500);
  const startedOn = (m: ManagerProcess) => String(logged([m], 'etcd.started').at(-1)?.binary);
  for (const m of managers) t.equal(startedOn(m), `${binaryDir}/2.2.1/etcd`, `${h.memberOf(m)} runs the 2.2.1 directory's etcd`);

  // The cluster's data, written as an etcd2 client writes it.
  const v2 = new V2Client(h.endpoint(0), h.tls, 16);
  t.teardown(() => v2.close());
  const keys = Array.from({ length: KEYS }, (_, i) => ({ key: `/registry/pods/ns-${i % 7}/pod-${i}`, value: `{"kind":"Pod","n":${i},"pad":"${'x'.repeat(i % 300)}"}`, ttl: i % 10 === 0 ? TTL_SECONDS : undefined }));
  await inParallel(keys, 16, (k) => v2.put(k.key, k.value, k.ttl));
  const written = await v2.leaves();
  t.equal(written.size, KEYS, `${KEYS} v2 leaves written`);
  const tokenBefore = (JSON.parse(readFileSync(join(h.mountPoint(managers[0]), 'etcd-manager-state.json'), 'utf8')) as { clusterToken: string }).clusterToken;

  const env = { ...process.env, ...(h.s3?.env ?? {}) };
  const cli = await run(managerCommand()[0], [...managerCommand().slice(1), 'configure-cluster', '--etcd-version=3.4.23', '--yes', `--backup-store=${h.backups.baseURL}`], { env });
  t.match(cli.stdout, /^ {2}how: 2\.2\.1 → 3\.4\.23: v2 backup, then the v2 → v3 migration into a new 3\.4\.23 cluster; a new cluster, writes after the backup are not in it$/m, 'configure-cluster says how');

  const leader = await waitFor('the acting manager finishes the change', async () => managers.find((m) => logged([m], 'version-change.done').length > 0), 480_000, 500);
  t.same(logged(managers, 'version-change.refused'), [], 'not refused');
  const backups = logged([leader], 'backup.completed');
  const v2Backup = backups.find((l) => l.format === 'v2-data-dir');
  const converted = backups.find((l) => l.reason === 'v2-migration');
  t.ok(v2Backup, 'a v2 backup (a copy of the data directory) first');
  t.ok(converted, 'then the converted v3 backup');
  const queued = logged([leader], 'version-change.restore-queued');
  t.equal(queued.length, 1, 'one restore command queued');
  t.equal(queued[0]?.backup, converted?.name, 'for the converted backup, not the v2 one');
  t.equal(logged([leader], 'restore.completed').at(-1)?.backup, converted?.name, 'and the restore carried it out');
  const conversion = logged([leader], 'version-change.converted').at(-1);
  t.match(conversion, { leaves: KEYS, written: KEYS, verified: true }, 'the conversion logged what it did');
  t.ok(Number(conversion?.leases) >= 1, `on ${String(conversion?.leases)} lease(s)`);
  t.equal(await h.backups.exists(VERSION_CHANGE_PATH), false, 'the change record is removed');

  await waitFor('three healthy voting members on 3.4.23', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 120_000, 500);
  for (const m of managers) {
    t.equal(startedOn(m), `${binaryDir}/3.4.23/etcd`, `${h.memberOf(m)} runs the 3.4.23 directory's etcd`);
    const state = JSON.parse(readFileSync(join(h.mountPoint(m), 'etcd-manager-state.json'), 'utf8')) as { etcdVersion: string; clusterToken: string };
    t.equal(state.etcdVersion, '3.4.23', `${h.memberOf(m)}'s volume says 3.4.23`);
    t.not(state.clusterToken, tokenBefore, `${h.memberOf(m)}: a new cluster`);
  }

  // Every v2 leaf is a v3 key with the same bytes; every TTL key is on a lease with no more than its TTL left.
  const client = await openEtcdClient([h.endpoint(1)], h.tls);
  t.teardown(() => client.close());
  const all = await client.getAll().prefix('/registry/').exec();
  const v3 = new Map(all.kvs.map((kv) => [kv.key.toString(), kv]));
  t.equal(v3.size, KEYS, `${KEYS} v3 keys under /registry/`);
  let same = 0;
  let onLease = 0;
  const ttlsLeft: number[] = [];
  for (const k of keys) {
    const kv = v3.get(k.key);
    if (kv?.value.toString() === k.value) same++;
    if (k.ttl !== undefined && kv && kv.lease !== '0') {
      onLease++;
      ttlsLeft.push(Number((await client.leaseClient.leaseTimeToLive({ ID: kv.lease })).TTL));
    }
  }
  t.equal(same, KEYS, 'every key with the same value');
  const ttlKeys = keys.filter((k) => k.ttl !== undefined).length;
  t.equal(onLease, ttlKeys, `all ${ttlKeys} TTL keys on a lease`);
  // A shared lease ends at its bucket's end: at most 1% of the remaining TTL after the key's own expiry, plus
  // a second of rounding (migrate/leases.ts); the restore starts lease clocks again, so none has aged since.
  const mostLeft = Math.ceil(TTL_SECONDS * 1.01) + 1;
  t.ok(ttlsLeft.every((s) => s > 0 && s <= mostLeft), `their leases have 1..${mostLeft} s left (${Math.min(...ttlsLeft)}..${Math.max(...ttlsLeft)})`);
  t.equal(keys.filter((k) => k.ttl === undefined && v3.get(k.key)?.lease !== '0').length, 0, 'keys without a TTL on no lease');
  await Promise.all(managers.map((m) => m.stop()));
});
