// An etcd version change in place, end to end: three real managers whose
// --etcd-binary-dir holds two version directories (test/harness/etcd-binary-dirs.ts:
// Debian's etcd 3.4.23 declaring 3.4.23 and 3.5.17), a client writing all along,
// and `etcd-manager configure-cluster --etcd-version 3.5.17 --yes` as the only
// operator action. The acting manager takes a backup first, then restarts one
// member at a time on the 3.5.17 directory's binary (same data directory), its own
// member last, etcd's raft leadership moved off a member before it restarts; the
// change record is removed at the end and every member's volume says 3.5.17. No
// write fails. A downgrade back to 3.4.23 asked afterwards goes by a backup and a
// restore of it into 3.4.23 (a new cluster, same members, no manager restarted),
// with every key kept. A member whose instance is down when the change is asked stops it
// before anything moves (the record and `get` say why); it goes on once the
// member is back.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { VERSION_CHANGE_PATH } from '../../agents/etcd-manager/versions/record.js';
import { binaryDirSkipReason, makeEtcdBinaryDir } from '../harness/etcd-binary-dirs.js';
import { logged } from '../harness/etcd-scenario.js';
import { managerCommand, type ManagerProcess } from '../harness/manager.js';
import { waitFor } from '../harness/net.js';
import { threeManagers, votingMembers } from '../harness/three-managers.js';

const run = promisify(execFile);
// The in-place upgrade and the downgrade by backup + restore take several minutes on a busy 2-core machine.
t.setTimeout(1_200_000);

t.test('configure-cluster --etcd-version 3.5.17 --yes: in place under writes, a backup first, one member at a time, the acting manager\'s member last; back to 3.4.23 by backup + restore', { skip: binaryDirSkipReason, timeout: 720_000 }, async (t) => {
  const h = await threeManagers(t, { memberCount: 3 });
  const binaryDir = await makeEtcdBinaryDir(join(h.area.root, 'etcd-versions'), ['3.4.23', '3.5.17']);
  const managers = await h.startAll([`--etcd-binary-dir=${binaryDir}`]);
  await waitFor('three healthy voting members', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 120_000, 500);
  const startedOn = (m: ManagerProcess) => m.logs.filter((l) => l.event === 'etcd.started').map((l) => String(l.binary));
  for (const m of managers) t.match(startedOn(m).at(-1), `${binaryDir}/3.4.23/etcd`, `${h.memberOf(m)} runs the 3.4.23 directory's etcd`);

  // A client writing through all three endpoints for the whole change.
  const writer = await openEtcdClient([0, 1, 2].map(h.endpoint), h.tls);
  t.teardown(() => writer.close());
  let writes = 0;
  const failures: string[] = [];
  let writing = true;
  const load = (async () => {
    while (writing) {
      try {
        await writer.put(`/registry/upgrade/${writes}`).value(`v${writes}`);
        writes++;
      } catch (err) {
        failures.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  t.teardown(() => void (writing = false));
  // etcd's raft term counts elections: each leadership move is one; a member restarted while it led,
  // or one that calls an election when it comes back, shows as more.
  const raftTerm = async () => Number((await writer.maintenance.status()).header.raft_term);
  const termBefore = await raftTerm();

  const cli = await run(managerCommand()[0], [...managerCommand().slice(1), 'configure-cluster', '--etcd-version=3.5.17', '--yes', `--backup-store=${h.backups.baseURL}`], { env: { ...process.env, ...(h.s3?.env ?? {}) } });
  t.match(cli.stdout + cli.stderr, /3\.5\.17/, 'configure-cluster wrote the change');
  t.match(cli.stdout, /^ {2}how: 3\.4\.23 → 3\.5\.17: in place, one member at a time \(next minor\)$/m, 'and said how it will be carried out');

  const leader = await waitFor('the acting manager finishes the change', async () => managers.find((m) => m.logs.some((l) => l.event === 'version-change.done')), 300_000, 500);
  writing = false;
  await load;
  const self = h.memberOf(leader)!;
  const moves = logged([leader], 'version-change.move-leader').length;
  const elections = (await raftTerm()) - termBefore;
  // Members run with pre-vote, so a member that comes back cannot depose a healthy leader: every
  // term change is a leadership move the manager asked for, and the writer never waits through an
  // election of its own. (Without pre-vote: 4 elections for 1 move under a CPU hog, CI run 15.)
  t.comment(`raft term ${termBefore} → ${termBefore + elections}: ${elections} election(s) for ${moves} leadership move(s) and 3 member restarts`);
  t.ok(moves >= 1, 'the leader\'s own member moved after handing leadership on');
  t.ok(elections <= moves, `no election beyond the leadership moves (${elections} for ${moves})`);
  t.equal(await h.backups.exists(VERSION_CHANGE_PATH), false, 'the change record is removed at the end');

  // The order: the backup, then the two other members, then the leader's own.
  const events = leader.logs.filter((l) => l.event === 'backup.completed' || l.event === 'version-change.step-done' || l.event === 'version-change.move-leader');
  const steps = events.map((l) => (l.event === 'backup.completed' ? `backup:${String(l.reason)}` : l.event === 'version-change.move-leader' ? 'move-leader' : String(l.step)));
  t.equal(steps.filter((s) => s === 'backup:before-upgrade').length, 1, 'one backup for the change (scheduled ones may come too)');
  t.comment(`acting manager ${self}: ${steps.join(', ')}`);
  const memberSteps = steps.filter((s) => s.startsWith('member/'));
  t.equal(new Set(memberSteps).size, 3, 'every member once');
  t.equal(memberSteps.at(-1), `member/${self}`, 'the acting manager\'s member last');
  t.ok(steps.indexOf('backup:before-upgrade') < steps.indexOf(memberSteps[0]), 'the backup came first');

  // Every member restarted once, on the 3.5.17 directory's etcd, on the same data; its volume says so.
  for (const m of managers) {
    const started = m.logs.filter((l) => l.event === 'etcd.started');
    t.match(String(started.at(-1)?.binary), `${binaryDir}/3.5.17/etcd`, `${h.memberOf(m)} runs the 3.5.17 directory's etcd`);
    t.equal(new Set(started.map((l) => l.dataDir)).size, 1, `${h.memberOf(m)}: the same data directory`);
    t.equal(logged([m], 'member.set-version').length, 1, `${h.memberOf(m)} was told once`);
    const state = JSON.parse(readFileSync(join(h.mountPoint(m), 'etcd-manager-state.json'), 'utf8')) as { etcdVersion: string };
    t.equal(state.etcdVersion, '3.5.17', `${h.memberOf(m)}'s volume says 3.5.17`);
  }
  await waitFor('three healthy voting members after the change', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 60_000, 500);
  t.ok(writes > 0, `${writes} writes during the change`);
  t.comment(`${writes} writes during the change, ${failures.length} failed`);
  t.same(failures, [], 'no write failed');
  const reader = await openEtcdClient([h.endpoint(2)], h.tls);
  t.equal(await reader.get(`/registry/upgrade/${writes - 1}`).string(), `v${writes - 1}`, 'the last write is there');
  reader.close();

  // Back down to 3.4.23: a downgrade goes by a backup, then that backup restored into 3.4.23 on every member.
  const tokenBefore = (JSON.parse(readFileSync(join(h.mountPoint(leader), 'etcd-manager-state.json'), 'utf8')) as { clusterToken: string }).clusterToken;
  const kept = await openEtcdClient([h.endpoint(0)], h.tls);
  await kept.put('/registry/downgrade/before').value('kept');
  kept.close();
  const doneBefore = logged(managers, 'version-change.done').length;
  const down = await run(managerCommand()[0], [...managerCommand().slice(1), 'configure-cluster', '--etcd-version=3.4.23', '--yes', `--backup-store=${h.backups.baseURL}`], { env: { ...process.env, ...(h.s3?.env ?? {}) } });
  t.match(down.stdout, /^ {2}how: 3\.5\.17 → 3\.4\.23: backup, then restore into 3\.4\.23 \(a downgrade\); a new cluster, writes after the backup are not in it$/m, 'configure-cluster says it goes by backup + restore');
  const downLeader = await waitFor('the downgrade finishes', async () => managers.find((m) => logged([m], 'version-change.done').length > (m === leader ? doneBefore : 0)), 300_000, 500);
  t.same(logged(managers, 'version-change.refused'), [], 'not refused');
  const queued = logged([downLeader], 'version-change.restore-queued');
  t.equal(queued.length, 1, 'one restore command queued for the change');
  const restored = logged([downLeader], 'restore.completed');
  t.equal(restored.at(-1)?.commandId, queued[0]?.commandId, 'the restore step carried that command out');
  t.equal(restored.at(-1)?.backup, queued[0]?.backup, 'restoring the change\'s own backup');
  t.equal(await h.backups.exists(VERSION_CHANGE_PATH), false, 'the change record is removed');
  await waitFor('three healthy voting members after the downgrade', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 120_000, 500);
  for (const m of managers) {
    t.match(String(logged([m], 'etcd.started').at(-1)?.binary), `${binaryDir}/3.4.23/etcd`, `${h.memberOf(m)} runs the 3.4.23 directory's etcd again`);
    const state = JSON.parse(readFileSync(join(h.mountPoint(m), 'etcd-manager-state.json'), 'utf8')) as { etcdVersion: string; clusterToken: string };
    t.equal(state.etcdVersion, '3.4.23', `${h.memberOf(m)}'s volume says 3.4.23`);
    t.not(state.clusterToken, tokenBefore, `${h.memberOf(m)}: a new cluster (the restore)`);
  }
  const after = await openEtcdClient([h.endpoint(1)], h.tls);
  t.equal(await after.get('/registry/downgrade/before').string(), 'kept', 'a key written before the downgrade is in the restored cluster');
  t.equal(await after.get(`/registry/upgrade/${writes - 1}`).string(), `v${writes - 1}`, 'and the writes made during the upgrade');
  after.close();
  t.ok(existsSync(join(binaryDir, '3.4.23', 'etcd')));
  await Promise.all(managers.map((m) => m.stop()));
});

t.test('a member down when the change is asked stops it before anything moves; it goes on once the member is back', { skip: binaryDirSkipReason, timeout: 420_000 }, async (t) => {
  const h = await threeManagers(t, { memberCount: 3 });
  const binaryDir = await makeEtcdBinaryDir(join(h.area.root, 'etcd-versions'), ['3.4.23', '3.4.24']);
  const managers = await h.startAll([`--etcd-binary-dir=${binaryDir}`]);
  await waitFor('three healthy voting members', () => votingMembers(h, managers, ['a', 'b', 'c'], managers), 120_000, 500);
  const leader = await waitFor('a leader', async () => managers.find((m) => m.logs.some((l) => l.event === 'leader.elected')), 60_000, 200);
  const victim = managers.find((m) => m !== leader)!;
  const victimMember = h.memberOf(victim)!;
  await victim.kill(); // its instance is gone: manager and etcd

  const env = { ...process.env, ...(h.s3?.env ?? {}) };
  await run(managerCommand()[0], [...managerCommand().slice(1), 'configure-cluster', '--etcd-version=3.4.24', '--yes', `--backup-store=${h.backups.baseURL}`], { env });
  const blocked = await waitFor('the change stops on the missing member', async () => leader.logs.find((l) => l.event === 'version-change.blocked'), 60_000, 500);
  t.match(blocked, { reason: 'member-unhealthy', member: victimMember });
  const get = await run(managerCommand()[0], [...managerCommand().slice(1), 'get', `--backup-store=${h.backups.baseURL}`], { env });
  t.match(get.stdout, new RegExp(`^Version change: +etcd 3\\.4\\.23 → 3\\.4\\.24 \\(in-place, patch\\): 0 of 4 steps done, next backup; WAITING since .*: member ${victimMember} is not healthy$`, 'm'), 'get says why it waits');
  await new Promise((r) => setTimeout(r, 3_000)); // passes go by: still nothing moves
  t.same(logged(managers, 'member.set-version'), [], 'no member restarted while one is missing');
  t.equal(logged([leader], 'version-change.blocked').length, 1, 'blocked once (not once per pass)');

  // The same instance again (its host, so its volume and address): before --unhealthy-member-timeout (1m) would have it removed.
  const host = h.ips.indexOf(String(victim.child.spawnargs.find((a) => a.startsWith('--address='))?.slice('--address='.length)));
  const back = h.start(host, [`--etcd-binary-dir=${binaryDir}`]);
  const all = managers.map((m) => (m === victim ? back : m));
  await waitFor('the change finishes once the member is back', async () => leader.logs.some((l) => l.event === 'version-change.done'), 300_000, 500);
  t.equal(await h.backups.exists(VERSION_CHANGE_PATH), false, 'the record is removed');
  for (const m of all) t.match(String(logged([m], 'etcd.started').at(-1)?.binary), `${binaryDir}/3.4.24/etcd`, `${h.memberOf(m)} runs 3.4.24`);
  t.equal(h.memberOf(back), victimMember, 'the member that came back is the one that was down');
  t.same(logged([leader], 'member.removed-unhealthy'), [], 'it was waited for, not removed');
  await waitFor('three healthy voting members after the change', () => votingMembers(h, all, ['a', 'b', 'c'], all), 60_000, 500);
  await Promise.all(all.map((m) => m.stop()));
});
