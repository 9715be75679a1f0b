// A restore without a process: the leader's plan (controller/restore.ts) over a
// memfs store with real conditional writes, three members' restore modules
// (controller/restore-member.ts) on temp-dir volumes, a fake etcd per member and
// a fake "snapshot restore" that writes a data dir. The phases in order, each
// recorded before it acts; a bad backup refused with nothing live touched; a
// leader change half way finishes the restore (and fences the old leader); a
// member restarted half way never starts its old etcd; prepare failures that
// are not the backup's are retried, then fail.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configureLogging, logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import type { StateStore } from '../../shared/store/types.js';
import { RestoreLeader, type RestoreLeaderDeps } from '../../agents/etcd-manager/controller/restore.js';
import { BadBackupError, MemberRestore, RESTORE_RECORD_FILE, type LocalRestoreControl } from '../../agents/etcd-manager/controller/restore-member.js';
import type { LivePeer } from '../../agents/etcd-manager/controller/election.js';
import type { Pass } from '../../agents/etcd-manager/controller/types.js';
import { queueRestoreCommand } from '../../agents/etcd-manager/control/commands.js';
import { listControl, readOutcome, readRestorePlan, RESTORE_PLAN_PATH } from '../../agents/etcd-manager/control/restore-plan.js';
import { emptyTrash, moveToTrash } from '../../agents/etcd-manager/backup/trash.js';
import type { RestoreCommand } from '../../agents/etcd-manager/peer/protocol.js';
import { readVolumeState, writeVolumeState, type VolumeState } from '../../agents/etcd-manager/volume-state.js';
import { tempDir } from '../harness/tmp.js';

const lines: Array<Record<string, unknown>> = [];
configureLogging({ format: 'json', level: 'info', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });

const clock = { now: () => performance.now(), wallNow: () => Date.now() };
const spec = { memberCount: 3, etcdVersion: '3.4.23' };
const NAMES = ['a', 'b', 'c'];

class FakeLocal implements LocalRestoreControl {
  running = true;
  quarantined = false;
  calls: string[] = [];
  constructor(public volumeState: VolumeState | undefined) {}
  async stopForRestore() { this.calls.push('stop'); this.running = false; }
  async startRestored(state: VolumeState) { this.calls.push('start'); this.volumeState = state; this.running = true; this.quarantined = true; }
  async liftRestoreQuarantine() { this.calls.push('lift'); this.quarantined = false; }
  async startLifted() { this.calls.push('start-lifted'); this.running = true; this.quarantined = false; }
}

interface Member { name: string; dir: string; local: FakeLocal; restore: MemberRestore }

type RestoreData = (name: string, r: { backup: string; clusterToken: string }) => Promise<void>;

const writeData: RestoreData = async (name, r) => {
  if (r.backup.startsWith('bad')) throw new BadBackupError('stored-sha256', `backup ${r.backup}: the stored object is damaged or was changed`);
  await mkdir(join(name, 'data', r.clusterToken, 'member', 'snap'), { recursive: true });
  await writeFile(join(name, 'data', r.clusterToken, 'member', 'snap', 'db'), r.backup);
};

function newMemberRestore(name: string, dir: string, local: FakeLocal, restoreData: RestoreData): MemberRestore {
  return new MemberRestore({
    volume: { mountPoint: dir, memberName: name }, local: () => local,
    restoreData: (r) => restoreData(dir, r),
    emptyTrash: async (root, now) => (await emptyTrash(root, now, { keepForMs: 0 })).map((e) => e.path),
    moveToTrash, clock, log: logger('test').child({ member: name }), changed: () => undefined,
  });
}

async function world(t: Parameters<typeof tempDir>[0], restoreData: RestoreData = writeData) {
  const store = openStore(`memfs://restore-${Math.random()}/c.example.com/backups/etcd/main`);
  const members: Record<string, Member> = {};
  for (const name of NAMES) {
    const dir = tempDir(t);
    const state: VolumeState = { clusterToken: 'live', memberName: name, etcdVersion: '3.4.23', createdAt: new Date().toISOString(), initialCluster: Object.fromEntries(NAMES.map((n) => [n, [`https://${n}:2380`]])) };
    await writeVolumeState(dir, state);
    await mkdir(join(dir, 'data', 'live'), { recursive: true });
    await writeFile(join(dir, 'data', 'live', 'db'), 'live data');
    const local = new FakeLocal(state);
    members[name] = { name, dir, local, restore: newMemberRestore(name, dir, local, restoreData) };
  }
  const peer = (m: Member): LivePeer => {
    const restore = m.restore.info();
    return {
      record: { member: m.name, instanceId: m.name, address: `10.0.0.${m.name.charCodeAt(0) - 96}`, dnsName: m.name, grpcEndpoint: m.name, peerURLs: [`https://${m.name}:2380`], clientURLs: [`https://${m.name}:4001`], updatedAt: '' },
      info: { member: m.name, term: 1, leader: 'a', etcdRunning: m.local.running, volumeEmpty: false, ...(m.local.volumeState ? { clusterToken: m.local.volumeState.clusterToken } : {}), ...(restore ? { restore } : {}) },
    };
  };
  const results: string[] = [];
  const after: string[] = [];
  const leader = (term: number, extra: Partial<RestoreLeaderDeps> = {}) => new RestoreLeader({
    self: 'a', clusterName: 'etcd', store,
    send: async (p, action) => { await members[p.info.member].restore.onCommand({ leader: 'a', term, ...action } as RestoreCommand); },
    peers: () => NAMES.map((n) => peer(members[n])),
    liveToken: () => members.a.local.volumeState?.clusterToken,
    clusterHealthy: async () => NAMES.every((n) => members[n].local.running),
    restoredHealthy: async (ms, plan) => ({ healthy: ms.every((p) => p.info.clusterToken === plan.clusterToken && members[p.info.member].local.running), detail: 'fake' }),
    checkBackup: async (name) => { if (name.startsWith('missing')) throw new BadBackupError('meta', `backup ${name} not found`); },
    backupNow: async () => ({ name: `pre-${term}` }),
    afterRestore: async (plan, ms) => { after.push(`${plan.commandId}:${ms.map((p) => p.info.member).join(',')}`); },
    isActing: () => true, term: () => term, clock, log: logger('test').child({ leader: term }), wake: () => undefined,
    metrics: { restore: (r) => results.push(r) },
    newToken: () => `restored-${term}`,
    ...extra,
  });
  return { store, members, leader, results, after };
}

async function queue(store: StateStore, id: string, backup: string, leader: RestoreLeader): Promise<void> {
  await queueRestoreCommand(store, id, Date.now(), { backup, clusterSpec: spec });
  leader.noticeCommands(await listControl(store));
}

/** Runs passes (members' background jobs get a moment between them) until `done`. */
async function drive(leader: RestoreLeader, done: () => Promise<boolean>, max = 400): Promise<Pass[]> {
  const passes: Pass[] = [];
  for (let i = 0; i < max; i++) {
    const pass: Pass = { leading: true, spec, created: true };
    await leader.step(pass);
    passes.push(pass);
    if (await done()) return passes;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error('the restore never got there');
}

const phases = (id: string) => lines.filter((l) => l.event === 'restore.phase' && l.commandId === id).map((l) => l.phase);

t.test('a restore runs every phase in order on every member, then removes the command', async (t) => {
  const w = await world(t);
  const leader = w.leader(1);
  await queue(w.store, 'cmd-1', 'good-1', leader);
  t.ok(lines.some((l) => l.event === 'restore.noticed' && l.commandId === 'cmd-1'));
  t.equal(leader.pending, true, 'a queued restore is pending (an empty one-member volume waits for it)');
  const passes = await drive(leader, async () => (await readOutcome(w.store, 'cmd-1')) !== undefined);
  t.ok(passes.every((p) => p.restoring), 'every pass of the restore skips formation, membership changes and scheduled backups');
  t.same(phases('cmd-1'), ['stopping', 'starting', 'waiting-healthy', 'lifting']);
  const outcome = await readOutcome(w.store, 'cmd-1');
  t.equal(outcome?.state, 'succeeded');
  t.equal(outcome?.preRestoreBackup, 'pre-1', 'a backup of the live cluster first');
  t.notOk(await w.store.exists('control/cmd-1/_command.json'), 'the command is removed');
  t.notOk(await w.store.exists(RESTORE_PLAN_PATH), 'the plan is gone');
  t.same(w.after, ['cmd-1:a,b,c'], 'the fence, spec and marker written once, through every member, before the quarantine is lifted');
  t.same(w.results, ['succeeded']);
  for (const n of NAMES) {
    const m = w.members[n];
    t.same(m.local.calls, ['stop', 'start', 'stop', 'start-lifted'], `${n}: stopped, started on the restored data (quarantined), stopped again and started on its client URLs`);
    t.equal((await readVolumeState(m.dir))?.clusterToken, 'restored-1', `${n}: the volume names the restored cluster`);
    t.same((await readVolumeState(m.dir))?.initialCluster, Object.fromEntries(NAMES.map((x) => [x, [`https://${x}:2380`]])));
    t.same(readdirSync(join(m.dir, 'data')), ['restored-1'], `${n}: only the restored data dir`);
    t.match(readdirSync(join(m.dir, 'data-trashcan')), [/^\d{8}T\d{6}Z-live$/], `${n}: the old data in the trash`);
    t.notOk(existsSync(join(m.dir, RESTORE_RECORD_FILE)), `${n}: the restore record is gone`);
    t.equal(m.restore.gate(), undefined);
  }
  t.equal(leader.pending, false);
  t.same(await leader.step({ leading: true, spec, created: true }), undefined, 'nothing more to do');
});

t.test('a bad backup is refused before anything live is touched; the command stays with its outcome', async (t) => {
  const w = await world(t);
  const leader = w.leader(1);
  await queue(w.store, 'cmd-bad', 'bad-1', leader);
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-bad')) !== undefined);
  const outcome = await readOutcome(w.store, 'cmd-bad');
  t.equal(outcome?.state, 'refused');
  t.equal(outcome?.check, 'stored-sha256');
  t.match(outcome?.error, /backup bad-1: the stored object is damaged/);
  t.ok(lines.some((l) => l.event === 'restore.refused' && l.commandId === 'cmd-bad' && l.check === 'stored-sha256'));
  t.ok(await w.store.exists('control/cmd-bad/_command.json'), 'the command stays, with its outcome');
  t.notOk(await w.store.exists(RESTORE_PLAN_PATH));
  t.same(w.results, ['refused']);
  for (const n of NAMES) {
    const m = w.members[n];
    t.same(m.local.calls, [], `${n}: etcd never stopped`);
    t.same(readdirSync(join(m.dir, 'data')), ['live'], `${n}: the live data dir alone, nothing prepared left`);
    t.equal((await readVolumeState(m.dir))?.clusterToken, 'live');
    t.notOk(existsSync(join(m.dir, 'data-trashcan')), `${n}: nothing in the trash`);
    t.notOk(existsSync(join(m.dir, RESTORE_RECORD_FILE)), `${n}: its restore record discarded`);
  }
  leader.noticeCommands(await listControl(w.store));
  t.equal(leader.pending, false, 'a command with an outcome is not pending');
  t.same(await leader.step({ leading: true, spec, created: true }), undefined, 'and never tried again');
});

t.test('a backup that is not there is refused at once, no member asked', async (t) => {
  const w = await world(t);
  const leader = w.leader(1);
  await queue(w.store, 'cmd-missing', 'missing-1', leader);
  await leader.step({ leading: true, spec, created: true });
  const outcome = await readOutcome(w.store, 'cmd-missing');
  t.equal(outcome?.state, 'refused');
  t.equal(outcome?.check, 'meta');
  for (const n of NAMES) t.notOk(existsSync(join(w.members[n].dir, RESTORE_RECORD_FILE)), `${n} never asked`);
});

t.test('a new leader half way finishes the restore; the deposed leader is fenced', async (t) => {
  const w = await world(t);
  const first = w.leader(1);
  await queue(w.store, 'cmd-2', 'good-2', first);
  await drive(first, async () => (await readRestorePlan(w.store))?.plan.phase === 'starting');
  const second = w.leader(2);
  second.noticeCommands(await listControl(w.store));
  await drive(second, async () => (await readOutcome(w.store, 'cmd-2')) !== undefined);
  t.ok(lines.some((l) => l.event === 'restore.resumed' && l.commandId === 'cmd-2' && l.phase === 'starting' && l.planTerm === 1 && l.term === 2), 'the new leader went on from the phase reached');
  t.equal((await readOutcome(w.store, 'cmd-2'))?.state, 'succeeded');
  t.equal((await readOutcome(w.store, 'cmd-2'))?.term, 2);
  for (const n of NAMES) t.same(w.members[n].local.calls, ['stop', 'start', 'stop', 'start-lifted'], `${n}: each step once`);
  t.equal((await readOutcome(w.store, 'cmd-2'))?.preRestoreBackup, 'pre-1', 'the pre-restore backup recorded by the first leader');

  // The deposed leader still holds the plan in memory: its next write is refused by the version.
  const third = w.leader(3);
  await queue(w.store, 'cmd-3', 'good-3', third);
  await drive(third, async () => (await readRestorePlan(w.store))?.plan.phase === 'stopping');
  const deposed = w.leader(3);
  deposed.noticeCommands(await listControl(w.store));
  await deposed.step({ leading: true, spec, created: true }); // reads the plan (term 3), and rewrites it: the version changes
  // Both now act on the same plan: whichever writes second was overtaken and is refused.
  for (let i = 0; i < 200 && !lines.some((l) => l.event === 'restore.fenced'); i++) {
    await third.step({ leading: true, spec, created: true });
    await deposed.step({ leading: true, spec, created: true });
    await new Promise((r) => setTimeout(r, 2));
  }
  t.ok(lines.some((l) => l.event === 'restore.fenced' && l.commandId === 'cmd-3'), 'a write over a changed plan is refused');
});

t.test('a member restarted half way resumes from its record: never its old etcd again', async (t) => {
  const w = await world(t);
  const leader = w.leader(1);
  await queue(w.store, 'cmd-4', 'good-4', leader);
  await drive(leader, async () => (await readRestorePlan(w.store))?.plan.phase === 'starting');
  const b = w.members.b;
  t.equal(b.restore.gate(), 'hold', 'told to stop: etcd may not start');
  const reloaded = newMemberRestore('b', b.dir, b.local, writeData);
  await reloaded.load();
  t.equal(reloaded.gate(), 'hold', 'after a restart too');
  t.equal(reloaded.info()?.state, 'stopped');
  w.members.b = { ...b, restore: reloaded };
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-4')) !== undefined);
  t.equal((await readVolumeState(b.dir))?.clusterToken, 'restored-1');

  // A prepare cut off by a restart is reported failed; the leader asks again.
  const w2 = await world(t);
  const slow: RestoreData = async (dir, r) => {
    if (!existsSync(join(dir, 'interrupted'))) {
      await writeFile(join(dir, 'interrupted'), '');
      await new Promise(() => undefined); // never finishes: the process "dies" here
    }
    await writeData(dir, r);
  };
  const l2 = w2.leader(1);
  const c = w2.members.c;
  w2.members.c = { ...c, restore: newMemberRestore('c', c.dir, c.local, slow) };
  await queue(w2.store, 'cmd-5', 'good-5', l2);
  await drive(l2, async () => w2.members.c.restore.info()?.state === 'preparing');
  const restarted = newMemberRestore('c', c.dir, c.local, slow);
  await restarted.load();
  t.same(restarted.info(), { planId: 'cmd-5', state: 'failed', error: 'interrupted by a manager restart' });
  w2.members.c = { ...c, restore: restarted };
  await drive(l2, async () => (await readOutcome(w2.store, 'cmd-5')) !== undefined);
  t.equal((await readOutcome(w2.store, 'cmd-5'))?.state, 'succeeded', 'asked again, it prepared and the restore went on');
});

t.test('the quarantine is lifted in two steps: no etcd starts on its client URLs before every member has stopped', async (t) => {
  const w = await world(t);
  const order: string[] = [];
  for (const n of NAMES) {
    const local = w.members[n].local;
    const stop = local.stopForRestore.bind(local);
    const startLifted = local.startLifted.bind(local);
    local.stopForRestore = async () => { await stop(); if (local.calls.length > 2) order.push(`stopped ${n}`); };
    local.startLifted = async () => { order.push(`started ${n}`); await startLifted(); };
  }
  const leader = w.leader(1);
  await queue(w.store, 'cmd-two-step', 'good-1', leader);
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-two-step')) !== undefined);
  t.equal((await readOutcome(w.store, 'cmd-two-step'))?.state, 'succeeded');
  t.equal(order.length, 6, `each member stopped and started once for the lift (${order.join(', ')})`);
  t.ok(order.slice(0, 3).every((e) => e.startsWith('stopped')), `every member stopped before the first start (${order.join(', ')})`);
  for (const n of NAMES) t.equal(w.members[n].local.quarantined, false, `${n}: on its client URLs`);
});

t.test('a restore completes only once the cluster serves on its client URLs, not when the last member is lifted', async (t) => {
  const w = await world(t);
  const asked: string[] = [];
  let answersOnClientURLs = false;
  const leader = w.leader(1, {
    restoredHealthy: async (ms, plan, through) => {
      asked.push(through);
      const onRestored = ms.every((p) => p.info.clusterToken === plan.clusterToken && w.members[p.info.member].local.running);
      return { healthy: onRestored && (through === 'quarantine' || answersOnClientURLs), detail: 'fake' };
    },
  });
  await queue(w.store, 'cmd-serving', 'good-1', leader);
  await drive(leader, async () => NAMES.every((n) => w.members[n].restore.info() === undefined && !w.members[n].local.quarantined) && asked.includes('client'));
  for (let i = 0; i < 5; i++) await leader.step({ leading: true, spec, created: true });
  t.equal(await readOutcome(w.store, 'cmd-serving'), undefined, 'every member lifted, but the cluster does not answer on its client URLs: not completed');
  t.ok(lines.every((l) => !(l.event === 'restore.completed' && l.commandId === 'cmd-serving')), 'no restore.completed logged');
  t.ok(await w.store.exists('control/cmd-serving/_command.json'), 'the command is still queued');
  answersOnClientURLs = true;
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-serving')) !== undefined);
  t.equal((await readOutcome(w.store, 'cmd-serving'))?.state, 'succeeded');
  t.equal(asked.indexOf('client') > asked.lastIndexOf('quarantine'), true, 'asked through the client URLs only after the quarantine checks');
});

t.test('a stop that fails, for the switch or for the lift, is tried again on the leader\'s next command', async (t) => {
  const w = await world(t);
  // b's first stop (restore-stop) and c's second (restore-lift-stop) fail once.
  for (const [n, failing] of [['b', 1], ['c', 2]] as const) {
    const local = w.members[n].local;
    const stop = local.stopForRestore.bind(local);
    let stops = 0;
    local.stopForRestore = async () => {
      if (++stops === failing) {
        local.calls.push('stop-failed');
        throw new Error('etcd did not stop');
      }
      await stop();
    };
  }
  const leader = w.leader(1);
  await queue(w.store, 'cmd-stop-fails', 'good-1', leader);
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-stop-fails')) !== undefined);
  t.equal((await readOutcome(w.store, 'cmd-stop-fails'))?.state, 'succeeded', 'the restore completed');
  t.same(w.members.b.local.calls, ['stop-failed', 'stop', 'start', 'stop', 'start-lifted'], 'b: its stop for the switch failed, and was tried again');
  t.same(w.members.c.local.calls, ['stop', 'start', 'stop-failed', 'stop', 'start-lifted'], 'c: its stop for the lift failed, and was tried again');
  t.equal(lines.filter((l) => l.event === 'member.restore-stop-failed' && l.planId === 'cmd-stop-fails').length, 2, 'each failure logged');
});

t.test('a member restarted while stopped for the lift keeps etcd stopped until the leader lifts it', async (t) => {
  const w = await world(t);
  const leader = w.leader(1);
  await queue(w.store, 'cmd-lift-restart', 'good-1', leader);
  const b = w.members.b;
  await drive(leader, async () => b.restore.info()?.state === 'lift-stopped');
  t.equal(b.restore.gate(), 'hold', 'stopped for the lift: etcd may not start on its own');
  const reloaded = newMemberRestore('b', b.dir, b.local, writeData);
  await reloaded.load();
  t.equal(reloaded.gate(), 'hold', 'after a manager restart too');
  t.equal(reloaded.info()?.state, 'lift-stopped');
  w.members.b = { ...b, restore: reloaded };
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-lift-restart')) !== undefined);
  t.equal(b.local.quarantined, false, 'then started on its client URLs');
  t.equal(reloaded.gate(), undefined, 'its record gone');
});

t.test('a lift sent to a member still started (a leader of an older build) restarts it on its client URLs in one step', async (t) => {
  const w = await world(t);
  const leader = w.leader(1);
  await queue(w.store, 'cmd-old-lift', 'good-1', leader);
  await drive(leader, async () => (await readRestorePlan(w.store))?.plan.phase === 'lifting');
  const c = w.members.c;
  t.equal(c.restore.info()?.state, 'started');
  t.equal(await c.restore.onCommand({ leader: 'a', term: 1, action: 'restore-lift', body: { planId: 'cmd-old-lift' } }), 'lifting');
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-old-lift')) !== undefined);
  t.same(c.local.calls, ['stop', 'start', 'lift'], 'restarted in one step, never stopped for a two-step lift');
  t.equal((await readOutcome(w.store, 'cmd-old-lift'))?.state, 'succeeded');
});

t.test('a prepare that fails for another reason is tried again, then the restore fails untouched', async (t) => {
  let tries = 0;
  const w = await world(t, async () => {
    tries++;
    throw new Error('no space left on device');
  });
  const leader = w.leader(1);
  await queue(w.store, 'cmd-6', 'good-6', leader);
  await drive(leader, async () => (await readOutcome(w.store, 'cmd-6')) !== undefined);
  const outcome = await readOutcome(w.store, 'cmd-6');
  t.equal(outcome?.state, 'failed');
  t.match(outcome?.error, /failed 3 times: no space left on device/);
  t.ok(tries >= 3);
  for (const n of NAMES) t.same(w.members[n].local.calls, [], `${n}: never stopped`);
});

t.test('member commands out of order are refused; abort after stop is refused', async (t) => {
  const w = await world(t);
  const m = w.members.a.restore;
  const cmd = (action: string, body: object) => ({ leader: 'a', term: 1, action, body }) as RestoreCommand;
  await t.rejects(m.onCommand(cmd('restore-stop', { planId: 'x' })), /was not prepared/);
  await t.rejects(m.onCommand(cmd('restore-prepare', { planId: 'x', backup: 'b', clusterToken: 'live', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' })), /the new cluster token is this member's live one/);
  t.equal(await m.onCommand(cmd('restore-prepare', { planId: 'x', backup: 'good', clusterToken: 'new', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' })), 'preparing');
  for (let i = 0; i < 100 && m.info()?.state !== 'prepared'; i++) await new Promise((r) => setTimeout(r, 2));
  await t.rejects(m.onCommand(cmd('restore-start', { planId: 'x' })), /not stopped yet/);
  t.equal(await m.onCommand(cmd('restore-stop', { planId: 'x' })), 'stopping');
  for (let i = 0; i < 100 && m.info()?.state !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 2));
  await t.rejects(m.onCommand(cmd('restore-abort', { planId: 'x' })), /can only go forward/);
  await t.rejects(m.onCommand(cmd('restore-prepare', { planId: 'y', backup: 'good', clusterToken: 'other', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' })), /in the middle of restore x/);
});

t.test('a restore into fewer members than hold the live data fails, untouched: the others would run the old cluster on', async (t) => {
  const w = await world(t);
  const leader = w.leader(1);
  await queueRestoreCommand(w.store, 'cmd-small', Date.now(), { backup: 'good-7', clusterSpec: { memberCount: 1, etcdVersion: '3.4.23' } });
  leader.noticeCommands(await listControl(w.store));
  await leader.step({ leading: true, spec, created: true });
  const outcome = await readOutcome(w.store, 'cmd-small');
  t.equal(outcome?.state, 'failed');
  t.match(outcome?.error, /asks for 1 member\(s\), but 3 members hold the live cluster's data \(a, b, c\)/);
  for (const n of NAMES) t.notOk(existsSync(join(w.members[n].dir, RESTORE_RECORD_FILE)), `${n} never asked`);
});
