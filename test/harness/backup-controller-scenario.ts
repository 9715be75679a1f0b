// The managers' backups and restores end to end, with three real managers and
// etcd 3.4.23 on one store (file:// or s3rver); etcd-manager-backups-{file,s3}
// run it. In order, on one cluster:
//   1. the leader's first scheduled backup appears right after the cluster is
//      created, then the next one an interval later; the newest verifies
//      (sha256s, gzip, etcd's hash, `etcdctl snapshot status`);
//   2. growing 2→3, a backup is completed before the member is added;
//   3. an on-demand request (submitRequest, as the operator CLI writes it) is run
//      and its result says succeeded, with the backup's name and size;
//   4. two requests written at once run one after the other, never together
//      (their results' times, and every manager's log: a backup starts only
//      after the previous one ended);
//   5. a restore queued while the managers run (kOps' _command.json + the
//      doorbell) is carried out with no manager restarted: the data is back on
//      all three members with the same revisions, keys written after the backup
//      are gone, a key on a lease taken before the backup expires afterwards, the
//      command is removed, the old data is in each volume's trash;
//   6. a backup with one flipped byte is refused: the command's outcome names
//      the failed check, the log says restore.refused, and no etcd was stopped;
//   7. (s3 only) a retention pass lists the store once: synthetic old backups are
//      thinned by kOps' rules, with one recursive listing per pass;
//   8. the leading manager killed (kill -9) in the middle of a backup upload
//      leaves nothing listed, and the next leader's backup works.
// Nothing here measures time: every wait is on a condition, bounded.
import type { Test } from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { listBackups } from '../../agents/etcd-manager/backup/list.js';
import { BackupNamer, formatBackupName } from '../../agents/etcd-manager/backup/names.js';
import { verifyBackup } from '../../agents/etcd-manager/backup/verify.js';
import { SYSTEM_ETCDCTL } from '../../agents/etcd-manager/backup/etcdctl.js';
import { queueRestoreCommand, deleteCommand } from '../../agents/etcd-manager/control/commands.js';
import { readResult, ringDoorbell, submitRequest, type RequestResult } from '../../agents/etcd-manager/control/requests.js';
import { readOutcome } from '../../agents/etcd-manager/control/restore-plan.js';
import { readStatus } from '../../agents/etcd-manager/control/status.js';
import { describeManagers, type ManagerProcess } from './manager.js';
import { processAlive, waitFor } from './net.js';
import { threeManagers, votingMembers, type ThreeManagers } from './three-managers.js';
import { tempDir } from './tmp.js';

const namer = new BackupNamer({ now: Date.now, randomInt: (n) => Math.floor(Math.random() * n) });
const LEASE_TTL_S = 20;

interface KeyState { key: string; value: string; mod: string; create: string; version: string; lease: string }

async function registryKeys(client: Etcd3): Promise<{ revision: string; keys: KeyState[] }> {
  const res = await client.kv.range({ key: Buffer.from('/registry/'), range_end: Buffer.from('/registry0') });
  return {
    revision: res.header.revision,
    keys: res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), mod: kv.mod_revision, create: kv.create_revision, version: kv.version, lease: kv.lease })),
  };
}

const events = (m: ManagerProcess, event: string) => m.logs.filter((l) => l.event === event);

/** Every manager's backups started and ended in turn: never two at once in one process. */
function backupsInTurn(managers: ManagerProcess[]): string[] {
  const problems: string[] = [];
  managers.forEach((m, i) => {
    let running: string | undefined;
    for (const l of m.logs) {
      if (l.event === 'backup.started') {
        if (running) problems.push(`manager ${i}: ${String(l.name)} started while ${running} ran`);
        running = String(l.name);
      } else if (l.event === 'backup.completed' || l.event === 'backup.failed') {
        running = undefined;
      }
    }
  });
  return problems;
}

async function requestBackup(h: ThreeManagers, reason: string): Promise<string> {
  return submitRequest(h.backups, { kind: 'backup', reason }, { id: namer.next(), nowMs: Date.now(), requestedBy: 'test' });
}

async function finished(h: ThreeManagers, id: string, managers: ManagerProcess[], timeoutMs = 90_000): Promise<RequestResult> {
  return waitFor(`request ${id} finished`, async () => {
    for (const m of managers) if (m.child.exitCode !== null && m.child.signalCode === null) throw new Error(`a manager exited:\n${describeManagers(managers)}`);
    const r = await readResult(h.backups, id);
    return r && r.state !== 'running' ? r : undefined;
  }, timeoutMs, 200);
}

async function leaderOf(managers: ManagerProcess[]): Promise<ManagerProcess> {
  return waitFor('a leader', async () => {
    const terms = managers.filter((m) => m.child.exitCode === null && m.child.signalCode === null).map((m) => ({ m, term: Math.max(0, ...events(m, 'leader.elected').map((l) => Number(l.term))) }));
    const best = terms.sort((x, y) => y.term - x.term)[0];
    return best && best.term > 0 ? best.m : undefined;
  }, 60_000, 200);
}

export async function backupControllerScenario(t: Test, store: 'file' | 's3'): Promise<void> {
  const h = await threeManagers(t, { memberCount: 2, store });
  // a (the first to register, so the leader) holds the upload of the request asked with reason "hold-me".
  const first = h.start(0, ['--backup-interval=4s', '--test-hook=hold-backup-upload=hold-me']);
  await waitFor('the first manager registered', () => h.backups.exists('discovery/a.json'), 120_000, 100);
  // b before c: the leader forms the 2-member cluster from the first two managers it sees alive, so c
  // starting with b could take b's place (CI run 8); a lone manager claims the first free volume, b.
  const second = h.start(1, ['--backup-interval=4s']);
  await waitFor('the second manager registered as b', () => h.backups.exists('discovery/b.json'), 120_000, 100);
  const managers = await h.byMember([first, second, h.start(2, ['--backup-interval=4s'])]);
  const [a, b, c] = managers;
  await waitFor('two voting members a, b', () => votingMembers(h, [a, b], ['a', 'b'], managers), 180_000, 300);
  const clients = new Map<ManagerProcess, Etcd3>();
  const client = async (m: ManagerProcess) => {
    let cl = clients.get(m);
    if (!cl) clients.set(m, (cl = await openEtcdClient([h.endpointOf(m)], h.tls)));
    return cl;
  };
  t.teardown(() => { for (const cl of clients.values()) cl.close(); });
  const workDir = tempDir(t, 'mooring-verify-');

  // ---- 1. scheduled backups ----
  await t.test('scheduled backups: the first right after creation, the next an interval later; they verify', async (t) => {
    const scheduled = await waitFor('two scheduled backups by the leader', async () => {
      const done = events(a, 'backup.completed').filter((l) => l.reason === 'scheduled');
      return done.length >= 2 ? done : undefined;
    }, 60_000, 200);
    const listing = await listBackups(h.backups);
    for (const l of scheduled.slice(0, 2)) t.ok(listing.backups.some((b) => b.name === l.name), `${String(l.name)} is listed`);
    const report = await verifyBackup({ store: h.backups, name: String(scheduled[1].name), statusCheck: { tool: SYSTEM_ETCDCTL, workDir } });
    t.same(report.passed, ['meta', 'stored-sha256', 'gzip', 'snapshot-sha256', 'snapshot-integrity', 'snapshot-status'], 'every check passes');
    t.equal(report.storedBytes, Number(scheduled[1].storedBytes), 'the size logged is the size stored');
    t.ok(events(a, 'backup.last-from-store').length >= 1, 'the leader read the last backup time from the store when it started leading');
    const status = await waitFor('the status object names a backup', async () => {
      const s = await readStatus(h.backups);
      return s?.lastBackup ? s : undefined;
    }, 30_000, 200);
    t.equal(status.leader.member, 'a');
    t.same(status.clusterSpec, { memberCount: 2, etcdVersion: '3.4.23' });
    t.ok(listing.backups.some((b) => b.name === status.lastBackup!.name), 'status.lastBackup is a listed backup');
  });

  // ---- 2. before a membership change ----
  await t.test('growing 2→3: a backup completes before the member is added', async (t) => {
    await h.backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount: 3, etcdVersion: '3.4.23' }));
    await waitFor('three voting members', () => votingMembers(h, [a, b, c], ['a', 'b', 'c'], managers), 120_000, 300);
    const added = a.logs.findIndex((l) => l.event === 'member.added' && l.member === 'c');
    const before = a.logs.findIndex((l) => l.event === 'backup.completed' && l.reason === 'before-membership-change');
    t.ok(added > 0, 'the leader added c');
    t.ok(before >= 0 && before < added, 'a backup before the membership change completed before the add');
    const started = a.logs.find((l) => l.event === 'backup.started' && l.reason === 'before-membership-change');
    t.equal(started?.detail, 'add c', 'taken for that change');
  });

  // ---- 3. on demand ----
  await t.test('an on-demand request is run and its result names the backup', async (t) => {
    const id = await requestBackup(h, 'operator asked');
    const r = await finished(h, id, managers);
    t.equal(r.state, 'succeeded', r.error ?? '');
    t.ok(r.backup && r.backup.storedBytes > 0 && (r.backup.snapshotBytes ?? 0) > 0, 'sizes in the result');
    const listing = await listBackups(h.backups);
    t.ok(listing.backups.some((b) => b.name === r.backup?.name), 'the backup it names is listed');
    const sidecar = JSON.parse((await h.backups.read(`${r.backup!.name}/_mooring_backup.json`)).toString()) as { stored: { bytes: number }; reason: string };
    t.equal(sidecar.stored.bytes, r.backup!.storedBytes, 'the size in the result is the stored size');
    t.equal(sidecar.reason, 'on-demand: operator asked');
  });

  // ---- 4. two at once ----
  await t.test('two requests at once run one after the other', async (t) => {
    const [first, second] = [await requestBackup(h, 'one'), await requestBackup(h, 'two')];
    const r1 = await finished(h, first, managers);
    const r2 = await finished(h, second, managers);
    t.equal(r1.state, 'succeeded');
    t.equal(r2.state, 'succeeded');
    t.not(r1.backup?.name, r2.backup?.name, 'two backups');
    t.ok(Date.parse(r2.startedAt) >= Date.parse(r1.finishedAt!), `the second started (${r2.startedAt}) after the first finished (${r1.finishedAt})`);
    t.same(backupsInTurn(managers), [], 'no manager ever ran two backups at once');
  });

  // ---- 5. restore ----
  await t.test('a restore queued while the managers run: data, revisions and leases back on all three, no restart', async (t) => {
    const w = await client(a);
    for (let i = 0; i < 20; i++) await w.put(`/registry/r${String(i).padStart(2, '0')}`).value(`v${i}`);
    for (let i = 0; i < 20; i += 3) await w.put(`/registry/r${String(i).padStart(2, '0')}`).value(`v${i}-again`);
    for (let i = 1; i < 20; i += 7) await w.delete().key(`/registry/r${String(i).padStart(2, '0')}`);
    const grant = await w.leaseClient.leaseGrant({ TTL: LEASE_TTL_S });
    await w.kv.put({ key: Buffer.from('/registry/leased'), value: Buffer.from('goes away'), lease: grant.ID });
    const before = await registryKeys(w);
    const id = await requestBackup(h, 'before the restore test');
    const r = await finished(h, id, managers);
    t.equal(r.state, 'succeeded');
    const backup = r.backup!.name;
    await w.put('/registry/after-backup').value('must go');
    await w.put('/registry/r00').value('changed after the backup');
    await w.delete().key('/registry/r02');

    const managerPids = managers.map((m) => m.child.pid);
    const etcdBefore = managers.map((m) => m.etcdPids().length);
    const commandId = namer.next();
    await queueRestoreCommand(h.backups, commandId, Date.now(), { backup, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
    await ringDoorbell(h.backups, commandId, Date.now());
    const completed = await waitFor('restore.completed', async () => {
      for (const m of managers) if (m.child.exitCode !== null) throw new Error(`a manager exited:\n${describeManagers(managers)}`);
      const refused = managers.flatMap((m) => events(m, 'restore.refused').concat(events(m, 'restore.failed')));
      if (refused.length) throw new Error(`restore refused: ${JSON.stringify(refused)}`);
      return managers.flatMap((m) => events(m, 'restore.completed'))[0];
    }, 180_000, 250);
    t.equal(completed.commandId, commandId);
    t.same(managers.map((m) => m.child.pid), managerPids, 'no manager restarted');
    t.ok(managers.every((m) => m.child.exitCode === null && m.child.signalCode === null), 'every manager still runs');
    t.ok(managers.every((m, i) => m.etcdPids().length > etcdBefore[i]), 'every member\'s etcd was restarted on the restored data');
    t.notOk(await h.backups.exists(`control/${commandId}/_command.json`), 'the command is removed (kOps\' semantics)');
    const outcome = await readOutcome(h.backups, commandId);
    t.equal(outcome?.state, 'succeeded');
    t.ok(outcome?.preRestoreBackup, 'a backup of the live cluster was taken first');
    t.ok((await listBackups(h.backups)).backups.some((b) => b.name === outcome?.preRestoreBackup), 'and it is listed');

    await waitFor('three voting members on the restored data', () => votingMembers(h, [a, b, c], ['a', 'b', 'c'], managers), 60_000, 300);
    for (const [name, m] of [['a', a], ['b', b], ['c', c]] as const) {
      const cl = await openEtcdClient([h.endpointOf(m)], h.tls);
      try {
        const now = await registryKeys(cl);
        t.same(now.keys, before.keys, `${name}: every key back with its value, create and mod revisions, version and lease`);
        t.ok(BigInt(now.revision) >= BigInt(before.revision), `${name}: the store revision did not go back (${now.revision} ≥ ${before.revision})`);
      } finally {
        cl.close();
      }
    }
    const ttl = Number((await (await client(b)).leaseClient.leaseTimeToLive({ ID: grant.ID })).TTL);
    t.ok(ttl > 0 && ttl <= LEASE_TTL_S, `the lease is back with its TTL (${ttl} s left)`);
    await waitFor('the leased key expires', async () => (await (await client(b)).get('/registry/leased').string()) === null, (LEASE_TTL_S + 30) * 1000, 500);
    t.pass('the key attached to the lease before the backup expired after the restore');
    const term = Math.max(...events(a, 'leader.elected').map((l) => Number(l.term)));
    t.equal(Number(await (await client(b)).get('/mooring/etcd-manager/leader-term').string()), term, 'the etcd fence holds the leader\'s term again, not the backup\'s');
    for (const [name, m] of [['a', a], ['b', b], ['c', c]] as const) {
      t.equal(readdirSync(join(h.mountPoint(m), 'data-trashcan')).length, 1, `${name}: the replaced data is in the trash`);
      t.equal(readdirSync(join(h.mountPoint(m), 'data')).filter((d) => !d.startsWith('.')).length, 1, `${name}: one data dir, the restored one`);
    }
    t.same(backupsInTurn(managers), [], 'backups still one at a time');
  });

  // ---- 6. a flipped byte ----
  await t.test('a backup with a flipped byte is refused; the live data stays', async (t) => {
    const id = await requestBackup(h, 'to be damaged');
    const r = await finished(h, id, managers);
    t.equal(r.state, 'succeeded');
    const name = r.backup!.name;
    const data = await h.backups.read(`${name}/etcd.backup.gz`);
    data[Math.floor(data.length / 2)] ^= 0x40;
    await h.backups.write(`${name}/etcd.backup.gz`, data);
    await (await client(a)).put('/registry/live-after-flip').value('stays');
    const etcdBefore = managers.map((m) => m.etcdPids().length);
    const trashBefore = managers.map((m) => readdirSync(join(h.mountPoint(m), 'data-trashcan')).length);
    const commandId = namer.next();
    await queueRestoreCommand(h.backups, commandId, Date.now(), { backup: name, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
    await ringDoorbell(h.backups, commandId, Date.now());
    const refused = await waitFor('restore.refused', async () => managers.flatMap((m) => events(m, 'restore.refused'))[0], 120_000, 250);
    t.equal(refused.commandId, commandId);
    t.equal(refused.check, 'stored-sha256', 'the failed check is named in the log');
    const outcome = await readOutcome(h.backups, commandId);
    t.equal(outcome?.state, 'refused');
    t.equal(outcome?.check, 'stored-sha256');
    t.match(outcome?.error ?? '', new RegExp(`backup ${name}: .*the stored object is damaged or was changed`), 'the outcome says what is wrong, naming the backup');
    t.ok(await h.backups.exists(`control/${commandId}/_command.json`), 'the refused command stays queued with its outcome');
    t.same(managers.map((m) => m.etcdPids().length), etcdBefore, 'no etcd was stopped or restarted');
    t.same(managers.map((m) => readdirSync(join(h.mountPoint(m), 'data-trashcan')).length), trashBefore, 'nothing moved to the trash');
    for (const m of managers) t.same(readdirSync(join(h.mountPoint(m), 'data')).filter((d) => !d.startsWith('.')).length, 1, 'what members prepared was discarded');
    t.equal(await (await client(c)).get('/registry/live-after-flip').string(), 'stays', 'the live data is untouched');
    const status = await waitFor('the status lists the refused command', async () => {
      const s = await readStatus(h.backups);
      return s?.commands.find((x) => x.id === commandId && x.state === 'refused') ? s : undefined;
    }, 30_000, 200);
    t.ok(status, 'status.json shows it refused');
    t.ok(await deleteCommand(h.backups, commandId));
  });

  // ---- 7. retention: one listing per pass (s3rver counts the requests) ----
  if (h.s3) {
    const s3 = h.s3;
    await t.test('retention: old backups thinned by kOps\' rules, one listing of the store per pass', async (t) => {
      const alive = managers.filter((m) => m.child.exitCode === null && m.child.signalCode === null);
      const newest = (await listBackups(h.backups)).backups.at(-1)!.name;
      const hour = 3_600_000;
      const now = Date.now();
      const names: string[] = [];
      // Three backups in each of six hours two days ago, and two a day 30 days and 120 days ago.
      for (let hr = 0; hr < 6; hr++) for (let k = 0; k < 3; k++) names.push(formatBackupName(Math.floor((now - 48 * hour) / hour) * hour - hr * hour + k * 600_000, 100 + k));
      for (const d of [30, 120]) for (let k = 0; k < 2; k++) names.push(formatBackupName(Math.floor(now / (24 * hour)) * 24 * hour - d * 24 * hour + k * hour, 200 + k));
      for (const n of names) for (const f of ['etcd.backup.gz', '_mooring_backup.json', '_etcd_backup.meta']) await h.backups.write(`${n}/${f}`, await h.backups.read(`${newest}/${f}`));
      // The whole store's recursive listing: ListObjectsV2 with exactly the store's own prefix and no delimiter.
      // A listing is one call of the store: the SDK's own retries of it (attempt 2 and up, under load) are
      // counted apart and shown, not taken for listings the manager made.
      const root = h.backups.baseURL.replace(/^s3:\/\/[^/]+\//, '') + '/';
      const rootListingRequests = async () => (await s3.requests()).filter((r) => {
        const q = new URL(r.url, 'http://s3').searchParams;
        return r.method === 'GET' && q.get('list-type') === '2' && q.get('prefix') === root && !q.has('delimiter');
      });
      const rootListings = async () => (await rootListingRequests()).filter((r) => (r.attempt ?? 1) === 1).length;
      const retriedListings = async () => (await rootListingRequests()).filter((r) => (r.attempt ?? 1) > 1).length;
      const passes = () => alive.flatMap((m) => events(m, 'backup.retention')).length;
      const terms = () => alive.flatMap((m) => events(m, 'backup.last-from-store')).length;
      // Counted between backups (scheduled ones keep coming): the leader's last backup event is its
      // retention pass, before and after the store's request log is read, so no pass is half counted.
      const BACKUP_EVENTS = new Set(['backup.started', 'backup.completed', 'backup.failed', 'backup.retention']);
      const lastBackupEvent = () => alive.map((m) => m.logs.map((l) => l.event).filter((e) => BACKUP_EVENTS.has(String(e))).length + ':' + String(m.logs.filter((l) => BACKUP_EVENTS.has(String(l.event))).at(-1)?.event)).join(',');
      // A listing's request reaches s3rver's log before the manager logs its event, so a moment is
      // quiet only if nothing moved in 250 ms: no listing or event half counted.
      const quiet = () => waitFor('a moment between backups', async () => {
        const before = lastBackupEvent();
        if (before.split(',').some((x) => !x.endsWith(':backup.retention') && !x.endsWith(':undefined'))) return undefined;
        const counts = [await rootListings(), passes(), terms()] as const;
        await sleep(250);
        const again = [await rootListings(), passes(), terms()];
        return lastBackupEvent() === before && counts.every((c, i) => c === again[i]) ? counts : undefined;
      }, 60_000, 50);
      const [listedBefore, passesBefore, termsBefore] = await quiet();
      const r = await finished(h, await requestBackup(h, 'retention'), alive);
      t.equal(r.state, 'succeeded');
      await waitFor('its retention pass', async () => alive.some((m) => {
        const done = m.logs.findIndex((l) => l.event === 'backup.completed' && String(l.name) === r.backup!.name);
        return done >= 0 && m.logs.slice(done).some((l) => l.event === 'backup.retention');
      }), 30_000, 100);
      const [listedAfter, passesAfter, termsAfter] = await quiet();
      t.ok(passesAfter > passesBefore, 'at least one retention pass ran');
      t.equal(listedAfter - listedBefore, (passesAfter - passesBefore) + (termsAfter - termsBefore), `one listing of the store per retention pass (and per new term), nothing more (${passesAfter - passesBefore} passes, ${termsAfter - termsBefore} new terms; SDK retries of listings so far: ${await retriedListings()})`);
      const left = new Set((await listBackups(h.backups)).backups.map((b) => b.name));
      const kept = names.filter((n) => left.has(n)).sort();
      t.same(kept, [...Array.from({ length: 6 }, (_, hr) => names[hr * 3]), names[18]].sort(), 'the oldest of each hour (2 days old) and of the 30-day-old day kept; the rest, and everything past 90 days, deleted');
    });
  }
  // ---- 8. kill -9 during an upload ----
  await t.test('the leading manager killed during a backup upload: nothing listed; the next leader\'s backup works', async (t) => {
    const w = await client(b);
    const random = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 12; i++) {
      for (let j = 0; j < random.length; j += 4) random.writeUInt32LE(Math.floor(Math.random() * 2 ** 32), j);
      await w.put(`/registry/bulk-${i}`).value(random);
    }
    const leader = await leaderOf(managers);
    t.equal(leader, a, 'a still leads (the one with the test hook)');
    const id = await requestBackup(h, 'hold-me');
    const held = await waitFor('the upload held half way', async () => events(leader, 'test-hook.hold-backup-upload')[0], 60_000, 100);
    t.ok(Number(held.bytes) >= 10 * 1024 * 1024, 'more than one S3 part went through');
    const name = String(events(leader, 'backup.started').find((l) => l.requestId === id)?.name);
    await leader.kill();
    t.notOk(processAlive(leader.child.pid!), 'the leader is gone (kill -9)');
    const listing = await listBackups(h.backups);
    t.notOk(listing.backups.some((b) => b.name === name), `${name} is not listed as a backup`);
    t.notOk(listing.incomplete.some((b) => b.name === name), 'nor as an incomplete folder: no object of it exists');
    const rest = managers.filter((m) => m !== leader);
    const next = await leaderOf(rest);
    t.not(next, leader);
    const again = await requestBackup(h, 'after the kill');
    const r = await finished(h, again, rest);
    t.equal(r.state, 'succeeded', r.error ?? '');
    const report = await verifyBackup({ store: h.backups, name: r.backup!.name, statusCheck: { tool: SYSTEM_ETCDCTL, workDir } });
    t.equal(report.passed.at(-1), 'snapshot-status', 'the next leader\'s backup verifies');
  });

}
