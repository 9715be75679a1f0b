// The operator commands that hand work to the leader and wait for it:
// `backup` (a request, followed through queued → running → done, against a
// fake leader made of the leader-side RequestInbox) and `restore-backup`
// (verify, then kOps' _command.json with the current spec and a ring of the
// doorbell; --wait follows it). Run in-process: the injected sleep advances
// the clock and lets the fake leader take one step, so nothing here times
// anything.
import t from 'tap';
import { markClusterCreated } from '../../agents/etcd-manager/control/cluster-created.js';
import { writeClusterSpecFile } from '../../agents/etcd-manager/control/cluster-spec.js';
import { deleteCommand, listCommands } from '../../agents/etcd-manager/control/commands.js';
import { DOORBELL_PATH, listRequests, RequestInbox } from '../../agents/etcd-manager/control/requests.js';
import { openStore, StoreError, type StateStore } from '../../shared/store/index.js';
import { cliHarness, makeBackup, type CliHarness } from '../harness/em-cli.js';
import { snapshotStore } from '../harness/tmp.js';

let volumes = 0;
function freshStore(): { url: string; store: StateStore } {
  const url = `memfs://cli-req-${process.pid}-${volumes++}/c.example.com/backups/etcd/main`;
  return { url, store: openStore(url) };
}

async function withCluster() {
  const s = freshStore();
  await writeClusterSpecFile(s.store, { memberCount: 3, etcdVersion: '3.4.23' });
  await markClusterCreated(s.store, { atMs: Date.parse('2026-11-30T07:00:00Z'), extra: { leader: 'a' } });
  return s;
}

/** A leader that, one step per sleep of the command, polls the inbox and runs requests one at a time in `steps` progress writes. */
function fakeLeader(store: StateStore, h: CliHarness, options: { steps?: number; outcome?: 'succeeded' | 'failed'; startAfterSleeps?: number } = {}) {
  const inbox = new RequestInbox(store, { runner: 'a/42', now: h.now });
  let current: { id: string; startedAt: string; step: number } | undefined;
  let sleeps = 0;
  const done: string[] = [];
  return {
    done,
    async step(): Promise<void> {
      if (++sleeps < (options.startAfterSleeps ?? 0)) return;
      if (!current) {
        const poll = await inbox.poll();
        const next = poll.pending.find((r) => !done.includes(r.id));
        if (!next) return;
        current = { id: next.id, startedAt: await inbox.start(next.id), step: 0 };
        return;
      }
      current.step++;
      if (current.step < (options.steps ?? 3)) {
        await inbox.progress(current.id, current.startedAt, { bytes: current.step * 3 * 1024 * 1024 });
        return;
      }
      if (options.outcome === 'failed') {
        await inbox.finish(current.id, { state: 'failed', startedAt: current.startedAt, error: 'etcd member b did not answer the snapshot call' });
      } else {
        await inbox.finish(current.id, { state: 'succeeded', startedAt: current.startedAt, backup: { name: `2026-11-30T12:00:0${done.length}Z-000111`, storedBytes: 5 * 1024 * 1024, snapshotBytes: 20 * 1024 * 1024, durationMs: 3200 } });
      }
      done.push(current.id);
      current = undefined;
    },
  };
}

t.test('backup: a request, queued then running with progress, then the name, sizes and duration', async (t) => {
  const s = await withCluster();
  const h = cliHarness();
  const leader = fakeLeader(s.store, h, { steps: 4, startAfterSleeps: 3 });
  h.onSleep = () => leader.step();
  const r = await h.run(['backup', `--backup-store=${s.url}`]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'NAME                         STORED   SNAPSHOT  DURATION\n2026-11-30T12:00:00Z-000111  5.0 MiB  20.0 MiB  3.2 s\n');
  const lines = r.stderr.split('\n');
  t.match(lines[0], /^requested backup 2026-11-30T12:00:00Z-\d{6}; waiting for the leader \(Ctrl-C stops waiting, not the backup\)$/);
  t.match(r.stderr, /^queued: waiting for the leader, 1\.0 s$/m, 'after a second: queued');
  t.notMatch(r.stderr, /^backing up/m, 'throttled to a line every 10 s when stderr is not a terminal');
  const [entry] = await listRequests(s.store);
  t.match(entry, { request: { spec: { kind: 'backup', reason: 'on-demand' }, requestedBy: 'ops@test-host' }, result: { state: 'succeeded', runner: 'a/42' } });

  h.errIsTTY = true;
  const tty = await h.run(['backup', `--backup-store=${s.url}`, '-o', 'json']);
  t.equal(tty.code, 0);
  t.match(tty.stderr, /\rbacking up on a\/42: 3\.0 MiB, [\d.]+ s\x1b\[K/, 'on a terminal the line shows the bytes as they grow');
  t.match(tty.stderr, /\rbacking up on a\/42: 6\.0 MiB/);
  const doc = JSON.parse(tty.stdout) as Record<string, unknown>;
  t.same(Object.keys(doc).sort(), ['backup', 'request', 'runner', 'state', 'waitedMs']);
  t.match(doc, { state: 'succeeded', runner: 'a/42', backup: { name: '2026-11-30T12:00:01Z-000111', storedBytes: 5 * 1024 * 1024, snapshotBytes: 20 * 1024 * 1024, durationMs: 3200 } });
});

t.test('backup: a second request while one runs is queued behind it, never run beside it', async (t) => {
  const s = await withCluster();
  const h = cliHarness();
  h.errIsTTY = true;
  // An earlier request, already running on the leader (someone else's `backup`).
  const other = new RequestInbox(s.store, { runner: 'a/42', now: h.now });
  const { submitRequest } = await import('../../agents/etcd-manager/control/requests.js');
  const first = await submitRequest(s.store, { kind: 'backup' }, { id: '2026-11-30T11:59:00Z-000001', nowMs: h.now() });
  await other.poll();
  const startedAt = await other.start(first);
  await other.progress(first, startedAt, { bytes: 12 * 1024 * 1024 });
  let sleeps = 0;
  let running = 0;
  let maxRunning = 0;
  const leader = fakeLeader(s.store, h, { steps: 2 });
  h.onSleep = async () => {
    sleeps++;
    if (sleeps === 12) await other.finish(first, { state: 'succeeded', startedAt, backup: { name: 'x', storedBytes: 1, snapshotBytes: 1, durationMs: 1 } });
    if (sleeps > 12) await leader.step();
    running = (await listRequests(s.store)).filter((e) => e.result?.state === 'running').length;
    maxRunning = Math.max(maxRunning, running);
  };
  const r = await h.run(['backup', `--backup-store=${s.url}`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /\rqueued: waiting for the leader behind 1 running \(a\/42, 12\.0 MiB\), [\d.]+ s/, 'says what it waits behind');
  t.equal(maxRunning, 1, 'never two running at once');
});

t.test('backup: failed and expired requests, --timeout, Ctrl-C, no cluster: one clear line and the exit code', async (t) => {
  const s = await withCluster();
  const h = cliHarness();
  const failing = fakeLeader(s.store, h, { outcome: 'failed' });
  h.onSleep = () => failing.step();
  const failed = await h.run(['backup', `--backup-store=${s.url}`, '-o', 'json']);
  t.equal(failed.code, 1);
  t.match(failed.stderr, /\netcd-manager: backup request 2026-11-30T12:00:00Z-\d{6} failed on a\/42: etcd member b did not answer the snapshot call\n$/);
  t.match(JSON.parse(failed.stdout), { state: 'failed', runner: 'a/42', error: 'etcd member b did not answer the snapshot call' });

  // No leader at all: the request expires (the inbox of a leader elected an hour later answers it so).
  const quiet = await withCluster();
  h.onSleep = undefined;
  const expireAt = h.now() + 61 * 60_000;
  const late = new RequestInbox(quiet.store, { runner: 'b/7', now: h.now });
  h.onSleep = async () => {
    if (h.now() >= expireAt) await late.poll();
  };
  const expired = await h.run(['backup', `--backup-store=${quiet.url}`, '--timeout=2h']);
  t.equal(expired.code, 1);
  t.match(expired.stderr, /\netcd-manager: backup request \S+ expired: not started within 60 min of being asked\n$/);

  const none = await withCluster();
  h.onSleep = undefined;
  const timedOut = await h.run(['backup', `--backup-store=${none.url}`, '--timeout=5s']);
  t.equal(timedOut.code, 1);
  t.match(timedOut.stderr, /\netcd-manager: gave up waiting after --timeout=5\.0 s: backup request (\S+) is still queued \(no leader has started it\); it was not cancelled, and list-backups shows the backup once it is done\n$/);
  t.equal((await listRequests(none.store)).length, 1, 'the request stays for the leader');

  h.interruptAtSleep = 3;
  const before = (await listRequests(none.store)).length;
  const interrupted = await h.run(['backup', `--backup-store=${none.url}`]);
  t.equal(interrupted.code, 130);
  t.match(interrupted.stderr, /\netcd-manager: interrupted: stopped waiting; request \S+ stays queued and the leader still takes the backup \(list-backups shows it once done\)\n$/);
  t.equal((await listRequests(none.store)).length, before + 1, 'Ctrl-C leaves the request');
  h.interruptAtSleep = undefined;

  // A result caught mid-rewrite (s3rver lets a GET see that) is not fatal; one that stays unreadable for 30 s is.
  const torn = await withCluster();
  const tornLeader = fakeLeader(torn.store, h, { steps: 3 });
  let tornSleeps = 0;
  h.onSleep = async () => {
    await tornLeader.step();
    if (++tornSleeps === 3) {
      const [e] = await listRequests(torn.store);
      await torn.store.write(`control/requests/${e.id}.result.json`, '{"format":"mooring.etcd-manager-req');
    }
  };
  const survived = await h.run(['backup', `--backup-store=${torn.url}`]);
  t.equal(survived.code, 0, `a torn read is read again: ${survived.stderr}`);
  h.onSleep = async () => {
    for (const e of await listRequests(torn.store)) if (!e.result || e.result.state === 'running' || e.invalid) await torn.store.write(`control/requests/${e.id}.result.json`, 'garbage');
  };
  const garbage = await h.run(['backup', `--backup-store=${torn.url}`]);
  t.equal(garbage.code, 1);
  t.match(garbage.stderr, /\netcd-manager: memfs:.*control\/requests\/\S+\.result\.json: not JSON\n$/);

  const empty = freshStore();
  h.onSleep = undefined;
  const noCluster = await h.run(['backup', `--backup-store=${empty.url}`]);
  t.same([noCluster.code, noCluster.stderr], [4, `etcd-manager: no etcd cluster in ${empty.url} (control/etcd-cluster-created is missing): no leader would take the backup\n`]);
  t.same(await empty.store.list(), [], 'nothing written');
});

t.test('backup: a store that drops connections for a while is polled again; one that denies access fails at once (exit 5)', async (t) => {
  const s = await withCluster();
  const h = cliHarness();
  const leader = fakeLeader(s.store, h, { steps: 2 });
  const proto = Object.getPrototypeOf(s.store) as { readIfExists(path: string): Promise<Buffer | undefined> };
  const original = proto.readIfExists;
  let failure: StoreError | undefined;
  proto.readIfExists = async function (this: StateStore, path: string) {
    if (failure && path.endsWith('.result.json')) throw failure;
    return original.call(this, path);
  };
  t.teardown(() => void (proto.readIfExists = original));
  let sleeps = 0;
  h.onSleep = async () => {
    sleeps++;
    // 25 s of failed polls (under the 30 s limit), then the store answers again.
    failure = sleeps >= 2 && sleeps < 52 ? new StoreError('Unreachable', 'memfs://x', 'cannot reach it: connection reset') : undefined;
    if (!failure) await leader.step();
  };
  const survived = await h.run(['backup', `--backup-store=${s.url}`]);
  t.equal(survived.code, 0, `25 s of dropped connections are waited out: ${survived.stderr}`);

  sleeps = 0;
  h.onSleep = async () => {
    sleeps++;
    failure = sleeps >= 2 ? new StoreError('Unreachable', `${s.url}/control/requests/x.result.json`, 'cannot reach it: connection reset') : undefined;
  };
  const gone = await h.run(['backup', `--backup-store=${s.url}`]);
  t.equal(gone.code, 5, 'a store gone for 30 s: exit 5');
  t.match(gone.stderr, /\netcd-manager: memfs:.*x\.result\.json: cannot reach it: connection reset\n$/);

  sleeps = 0;
  h.onSleep = async () => {
    sleeps++;
    failure = sleeps >= 1 ? new StoreError('AccessDenied', `${s.url}/control/requests/x.result.json`, 'access denied (AccessDenied: no)') : undefined;
  };
  const denied = await h.run(['backup', `--backup-store=${s.url}`]);
  t.equal(denied.code, 5);
  t.equal(denied.stderr.split('\n').filter((l) => l.startsWith('queued') || l.startsWith('backing')).length, 0, 'access denied: no waiting first');
});

t.test('restore-backup: verified, then kOps\' command with the current spec and a ring; refusals write nothing', async (t) => {
  const s = await withCluster();
  const B = '2026-11-30T08:00:00Z-000001';
  const DAMAGED = '2026-11-30T09:00:00Z-000002';
  await makeBackup(s.store, B);
  await makeBackup(s.store, DAMAGED);
  const data = await s.store.read(`${DAMAGED}/etcd.backup.gz`);
  data[40] ^= 1;
  await s.store.write(`${DAMAGED}/etcd.backup.gz`, data);
  await s.store.write('2026-11-30T10:00:00Z-000003/etcd.backup.gz', 'cut off');
  const h = cliHarness();

  const before = await snapshotStore(s.store);
  for (const [name, code, message] of [
    ['2026-01-01T00:00:00Z-000000', 4, `no backup 2026-01-01T00:00:00Z-000000 in ${s.url} (etcd-manager list-backups shows the backups)`],
    ['2026-11-30T10:00:00Z-000003', 4, /is incomplete: it has no _etcd_backup.meta/],
    [DAMAGED, 1, /^backup 2026-11-30T09:00:00Z-000002: .*the stored object is damaged or was changed \(check stored-sha256 failed\); no restore was queued$/],
    ['control', 2, 'restore-backup: "control" is not a backup name (list-backups shows the names)'],
  ] as const) {
    const r = await h.run(['restore-backup', name, `--backup-store=${s.url}`]);
    t.equal(r.code, code, `${name}: exit ${code}`);
    const line = r.stderr.split('\n').filter((l) => l.startsWith('etcd-manager: '));
    t.equal(line.length, 1, `${name}: one error line`);
    t.match(line[0].slice('etcd-manager: '.length), message);
  }
  t.same(await snapshotStore(s.store), before, 'no refusal wrote anything (no command, no ring)');

  const r = await h.run(['restore-backup', B, `--backup-store=${s.url}`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, new RegExp(`^backup ${B}: verified\\n`), 'the verification is shown on stderr');
  t.match(r.stdout, new RegExp(`^queued the restore of backup ${B} as command (\\S+) \\(3 members, etcd 3\\.4\\.23\\); the leader starts it at its next look at the store\\n$`));
  const { commands } = await listCommands(s.store);
  t.equal(commands.length, 1);
  t.match(commands[0], { restoreBackup: { backup: B, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } } });
  t.equal(commands[0].timestampNanos, BigInt(h.now()) * 1_000_000n, 'kOps\' timestamp: unix nanoseconds of the queueing');
  t.match(JSON.parse((await s.store.read(DOORBELL_PATH)).toString()), { about: commands[0].id }, 'the doorbell names the command');

  const again = await h.run(['restore-backup', B, `--backup-store=${s.url}`, '--skip-verify']);
  t.same([again.code, again.stderr], [6, `etcd-manager: a restore is already queued: command ${commands[0].id} restores ${B} (delete-command ${commands[0].id} first, if it should not run)\n`]);
  await deleteCommand(s.store, commands[0].id);

  const skipped = await h.run(['restore-backup', DAMAGED, `--backup-store=${s.url}`, '--skip-verify', '-o', 'json']);
  t.equal(skipped.code, 0, '--skip-verify queues without downloading (the leader verifies before touching a member)');
  const doc = JSON.parse(skipped.stdout) as Record<string, unknown>;
  t.same(Object.keys(doc).sort(), ['backup', 'clusterSpec', 'command', 'state', 'verification']);
  t.match(doc, { backup: DAMAGED, verification: null, state: 'queued', clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  await deleteCommand(s.store, doc.command as string);

  // Ctrl-C before anything was written (here: during the checks, with --skip-verify): nothing is queued.
  h.interruptAtSleep = undefined;
  const { main } = await import('../../agents/etcd-manager/main.js');
  const aborted = new AbortController();
  aborted.abort();
  let abortedErr = '';
  const abortedCode = await main(['restore-backup', B, `--backup-store=${s.url}`, '--skip-verify'], {
    io: { out: () => undefined, err: (x) => void (abortedErr += x), errIsTTY: false }, env: {}, now: h.now, sleep: async () => undefined,
    randomInt: () => 0, interrupted: aborted.signal, readLeaderStatus: async () => undefined, requestedBy: 't', fileExists: () => false,
  });
  t.same([abortedCode, abortedErr], [130, 'etcd-manager: interrupted: no restore was queued\n']);
  t.same((await listCommands(s.store)).commands, [], 'nothing queued after Ctrl-C');

  const noSpec = freshStore();
  await makeBackup(noSpec.store, B);
  const r2 = await h.run(['restore-backup', B, `--backup-store=${noSpec.url}`]);
  t.same([r2.code, r2.stderr], [4, `etcd-manager: no cluster spec at ${noSpec.url}/control/etcd-cluster-spec: a restore is queued with the current spec (configure-cluster writes one)\n`]);
  await noSpec.store.write('control/etcd-cluster-spec', '{"memberCount": 0}');
  const r3 = await h.run(['restore-backup', B, `--backup-store=${noSpec.url}`]);
  t.equal(r3.code, 3, 'an invalid spec is exit 3');
  t.match(r3.stderr, /memberCount must be 1 or more .*\(configure-cluster rewrites it\)\n$/);
});

t.test('restore-backup --wait: done when the leader removes the command having rewritten the created marker; a deleted command is not a restore', async (t) => {
  const s = await withCluster();
  const B = '2026-11-30T08:00:00Z-000001';
  await makeBackup(s.store, B);
  const h = cliHarness();
  let sleeps = 0;
  h.onSleep = async () => {
    if (++sleeps !== 4) return;
    const [c] = (await listCommands(s.store)).commands;
    await markClusterCreated(s.store, { atMs: h.now(), extra: { restoredFrom: c.restoreBackup!.backup } });
    await deleteCommand(s.store, c.id);
  };
  const ok = await h.run(['restore-backup', B, `--backup-store=${s.url}`, '--wait', '--skip-verify']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, new RegExp(`^restored backup ${B}: the cluster was re-created from it at 2026-11-30T12:00:04Z \\(command \\S+ carried out\\)\\n$`));
  t.match(ok.stderr, /waiting for the leader to carry it out \(Ctrl-C stops waiting, not the restore\)/);

  sleeps = 0;
  h.onSleep = async () => {
    if (++sleeps !== 2) return;
    const [c] = (await listCommands(s.store)).commands;
    await deleteCommand(s.store, c.id);
  };
  const gone = await h.run(['restore-backup', B, `--backup-store=${s.url}`, '--wait', '--skip-verify', '-o', 'json']);
  t.equal(gone.code, 1);
  t.match(gone.stderr, /\netcd-manager: restore of \S+ \(command \S+\) failed: command \S+ left the queue, but nothing says the restore happened: control\/etcd-cluster-created was not rewritten since it was queued/);
  t.match(JSON.parse(gone.stdout), { state: 'failed' });

  // The leader's status, when it writes one, says how it ended.
  sleeps = 0;
  h.onSleep = async () => {
    if (++sleeps !== 2) return;
    const [c] = (await listCommands(s.store)).commands;
    h.status = { lastRestore: { command: c.id, backup: B, state: 'failed', error: 'member c: etcdctl snapshot restore: exit 1' } };
    await deleteCommand(s.store, c.id);
  };
  const failed = await h.run(['restore-backup', B, `--backup-store=${s.url}`, '--wait', '--skip-verify']);
  t.equal(failed.code, 1);
  t.match(failed.stderr, /failed: member c: etcdctl snapshot restore: exit 1\n$/);
  h.status = undefined;

  h.onSleep = undefined;
  const waited = await h.run(['restore-backup', B, `--backup-store=${s.url}`, '--wait', '--skip-verify', '--timeout=3s']);
  t.equal(waited.code, 1);
  t.match(waited.stderr, /\netcd-manager: gave up waiting after --timeout=3\.0 s: command (\S+) \(restore of \S+\) is still queued; it was not withdrawn \(delete-command \1 does that before the leader starts it\)\n$/);
  const [left] = (await listCommands(s.store)).commands;
  t.ok(left, 'the command stays queued');
  await deleteCommand(s.store, left.id);

  h.interruptAtSleep = 2;
  const stopped = await h.run(['restore-backup', B, `--backup-store=${s.url}`, '--wait', '--skip-verify']);
  t.equal(stopped.code, 130);
  t.match(stopped.stderr, /\netcd-manager: interrupted: stopped waiting; command (\S+) stays queued and the leader still restores \S+ \(delete-command \1 withdraws it before the leader starts it\)\n$/);
  t.equal((await listCommands(s.store)).commands.length, 1, 'Ctrl-C leaves the command');
});
