// The operator commands as an operator runs them: the etcd-manager binary
// (dist/bin/etcd-manager when built and fresh, else the source), against a
// file:// store and against s3rver, with backups of a real etcd 3.4.23 (one
// made by the backup library, one in kOps' exact layout: `etcdctl snapshot
// save` + gzip + kOps' meta): list-backups, verify-backup (every check,
// etcdctl's too; a flipped byte refused), restore-backup queueing kOps'
// command, list-commands, delete-command, configure-cluster, get, and
// `backup` answered by a leader loop written here from the leader-side
// functions of control/requests.ts (RequestInbox) taking real snapshots;
// two `backup` runs at once are queued one behind the other. The end-to-end
// run with real managers comes when the leader side is merged.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { openEtcdClient } from '../../agents/etcd-manager/etcd/client.js';
import { BackupNamer } from '../../agents/etcd-manager/backup/names.js';
import { etcdSnapshotSource } from '../../agents/etcd-manager/backup/snapshot-stream.js';
import { takeBackup } from '../../agents/etcd-manager/backup/take.js';
import { markClusterCreated } from '../../agents/etcd-manager/control/cluster-created.js';
import { listCommands } from '../../agents/etcd-manager/control/commands.js';
import { DOORBELL_PATH, listRequests, RequestInbox } from '../../agents/etcd-manager/control/requests.js';
import { openStore, type StateStore } from '../../shared/store/index.js';
import { managerCommand } from '../harness/manager.js';
import { loopbackNet, processAlive } from '../harness/net.js';
import { startS3 } from '../harness/s3.js';
import { snapshotStore, tempDir } from '../harness/tmp.js';
import { etcdMissing, ETCDCTL_BINARY, makeEtcdPKI, startEtcd, type RunningEtcd } from '../harness/tls-etcd.js';

t.setTimeout(600_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the binary with a clean environment (PATH, HOME and what the store needs); bounded, killed by PID at teardown. */
function cli(t: Test, args: string[], env: Record<string, string>, timeoutMs = 120_000, started?: (pid: number) => void): Promise<Run> {
  const [command, ...prefix] = managerCommand();
  const child = spawn(command, [...prefix, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  started?.(pid);
  t.teardown(() => {
    if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface World {
  etcd: RunningEtcd;
  client: Etcd3;
  pki: Awaited<ReturnType<typeof makeEtcdPKI>>;
  dir: string;
}

async function liveEtcd(t: Test): Promise<World> {
  const dir = tempDir(t, 'em-cli-int-');
  const ip = loopbackNet();
  const pki = await makeEtcdPKI(join(dir, 'pki'), [ip(1)]);
  const etcd = await startEtcd(t, { name: 'a', dataDir: join(dir, 'a'), ip: ip(1), pki, token: 'cli-token' });
  const client = await openEtcdClient([etcd.endpoint], pki.client);
  t.teardown(() => client.close());
  for (let i = 0; i < 50; i++) await client.put(`/registry/k${i}`).value(`v${i}`);
  return { etcd, client, pki, dir };
}

const KOPS = '2026-11-30T06:00:00Z-000001';

/** One backup by the library from the live etcd, one in kOps' exact layout; the control spec and the created marker. */
async function fill(store: StateStore, w: World): Promise<string> {
  const name = new BackupNamer({ now: Date.now, randomInt: () => 7 }).next();
  await takeBackup({ store, name, snapshot: etcdSnapshotSource(w.client, w.etcd.endpoint), clusterSpec: { memberCount: 1, etcdVersion: '3.4.23' }, reason: 'scheduled' });
  const { execa } = await import('execa');
  const file = join(w.dir, `kops-${Date.now()}.db`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
  await execa(ETCDCTL_BINARY, [`--endpoints=${w.etcd.endpoint}`, `--cacert=${w.pki.client.caFile}`, `--cert=${w.pki.client.certFile}`, `--key=${w.pki.client.keyFile}`, 'snapshot', 'save', file], { env: { ...env, ETCDCTL_API: '3' }, extendEnv: false });
  await store.write(`${KOPS}/etcd.backup.gz`, gzipSync(await readFile(file)));
  await store.write(`${KOPS}/_etcd_backup.meta`, '{\n  "etcdVersion": "3.4.23",\n  "timestamp": "1796018400",\n  "clusterSpec": {\n    "memberCount": 1,\n    "etcdVersion": "3.4.23"\n  }\n}');
  await store.write('2026-11-30T07:00:00Z-000002/etcd.backup.gz', 'cut off');
  await store.write('control/etcd-cluster-spec', '{"memberCount":1,"etcdVersion":"3.4.23"}');
  await markClusterCreated(store, { atMs: Date.now(), extra: { leader: 'a' } });
  return name;
}

/** The leader's side of on-demand backups, from requests.ts: one request at a time, real snapshots, progress while it runs. */
function leaderLoop(t: Test, store: StateStore, w: World, holdMs: number) {
  const inbox = new RequestInbox(store, { runner: 'a/test-leader', now: Date.now });
  const namer = new BackupNamer({ now: Date.now, randomInt: (n) => Math.floor(Math.random() * n) });
  let stopped = false;
  let running = 0;
  let maxRunning = 0;
  const served: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      const poll = await inbox.poll();
      for (const request of poll.pending) {
        if (stopped) break;
        running++;
        maxRunning = Math.max(maxRunning, running);
        const startedAt = await inbox.start(request.id);
        try {
          let last = 0;
          const taken = await takeBackup({
            store, name: namer.next(), snapshot: etcdSnapshotSource(w.client, w.etcd.endpoint), clusterSpec: { memberCount: 1, etcdVersion: '3.4.23' }, reason: request.spec.reason,
            onProgress: (p) => {
              if (p.snapshotBytes - last > 64 * 1024) void inbox.progress(request.id, startedAt, { bytes: (last = p.snapshotBytes) });
            },
          });
          // A real backup of a big database runs for a while: stay "running" with progress, so a second request meets this one.
          for (let held = 0; held < holdMs; held += 250) {
            await inbox.progress(request.id, startedAt, { bytes: taken.sidecar.snapshot.bytes });
            await sleep(250);
          }
          await inbox.finish(request.id, { state: 'succeeded', startedAt, backup: { name: taken.name, storedBytes: taken.storedBytes, snapshotBytes: taken.sidecar.snapshot.bytes, durationMs: taken.durationMs } });
          served.push(taken.name);
        } catch (err) {
          await inbox.finish(request.id, { state: 'failed', startedAt, error: (err as Error).message });
        }
        running--;
      }
      await sleep(200);
    }
  })();
  t.teardown(async () => {
    stopped = true;
    await loop;
  });
  return { served, maxRunning: () => maxRunning, stop: async () => { stopped = true; await loop; } };
}

async function operatorFlow(t: Test, url: string, env: Record<string, string>, w: World): Promise<void> {
  const store = openStore(url, { env });
  const ours = await fill(store, w);
  const at = [`--backup-store=${url}`];

  // ---- list-backups ----
  const list = await cli(t, ['list-backups', ...at], env);
  t.equal(list.code, 0, list.stderr);
  t.same(list.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), [KOPS, ours], 'complete backups, oldest first; the cut-off one is not listed');
  // (A listing that lasts over a second on this busy machine also shows a `listing …` line.)
  t.same(list.stderr.split('\n').filter((l) => l !== '' && !l.endsWith('…')), ['(1 incomplete backup not shown: --include-incomplete shows it)']);
  const listed = JSON.parse((await cli(t, ['list-backups', ...at, '-o', 'json', '--details', '--include-incomplete'], env)).stdout) as { backups: Array<Record<string, unknown>> };
  t.match(listed.backups, [{ name: KOPS, complete: true, hasSidecar: false, etcdVersion: '3.4.23' }, { name: '2026-11-30T07:00:00Z-000002', complete: false }, { name: ours, complete: true, hasSidecar: true, reason: 'scheduled' }]);

  // ---- verify-backup: ours and kOps', every check with etcdctl ----
  const v = await cli(t, ['verify-backup', ours, ...at, '-o', 'json'], env);
  t.equal(v.code, 0, v.stderr);
  const verified = JSON.parse(v.stdout) as Record<string, unknown>;
  t.same(verified.checks, ['meta', 'stored-sha256', 'gzip', 'snapshot-sha256', 'snapshot-integrity', 'snapshot-status']);
  t.ok((verified.totalKeys as number) >= 50, 'etcdctl snapshot status read the keys');
  const vk = await cli(t, ['verify-backup', KOPS, ...at], env);
  t.equal(vk.code, 0, vk.stderr);
  t.match(vk.stdout, /checks +meta, gzip, snapshot-integrity, snapshot-status\n/);

  // ---- a flipped byte: refused, named, nothing queued ----
  const before = await snapshotStore(store);
  const data = await store.read(`${ours}/etcd.backup.gz`);
  const flipped = Buffer.from(data);
  flipped[Math.floor(flipped.length / 3)] ^= 0x20;
  await store.write(`${ours}/etcd.backup.gz`, flipped);
  const bad = await cli(t, ['verify-backup', ours, ...at], env);
  t.equal(bad.code, 1);
  t.match(bad.stderr, new RegExp(`^etcd-manager: backup ${ours}: .*the stored object is damaged or was changed \\(check stored-sha256 failed\\)\\n$`));
  const refused = await cli(t, ['restore-backup', ours, ...at], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /no restore was queued\n$/);
  t.same((await listCommands(store)).commands, [], 'a damaged backup queues no restore');
  await store.write(`${ours}/etcd.backup.gz`, data);
  t.same(await snapshotStore(store), before, 'verification and the refused restore changed nothing');

  // ---- restore-backup queues kOps' command, rings; list-commands; delete-command ----
  const r = await cli(t, ['restore-backup', KOPS, ...at, '-o', 'json'], env);
  t.equal(r.code, 0, r.stderr);
  const queued = JSON.parse(r.stdout) as { command: string; verification: { checks: string[] } };
  t.same(queued.verification.checks, ['meta', 'gzip', 'snapshot-integrity', 'snapshot-status'], 'verified before queueing');
  const commandText = (await store.read(`control/${queued.command}/_command.json`)).toString();
  t.match(commandText, new RegExp(`^\\{\\n  "timestamp": "\\d{19}",\\n  "restoreBackup": \\{\\n    "clusterSpec": \\{\\n      "memberCount": 1,\\n      "etcdVersion": "3\\.4\\.23"\\n    \\},\\n    "backup": "${KOPS}"\\n  \\}\\n\\}$`), "kOps' jsonpb Command");
  t.match(JSON.parse((await store.read(DOORBELL_PATH)).toString()), { about: queued.command });
  const lc = await cli(t, ['list-commands', ...at], env);
  t.match(lc.stdout, new RegExp(`^${queued.command} +\\d+ s ago +restore-backup +${KOPS} +1 +3\\.4\\.23$`, 'm'));
  const dc = await cli(t, ['delete-command', queued.command, ...at], env);
  t.same([dc.code, dc.stdout], [0, `deleted command ${queued.command} (restore of backup ${KOPS})\n`]);
  t.same((await listCommands(store)).commands, []);

  // ---- configure-cluster ----
  const dry = await cli(t, ['configure-cluster', ...at, '--member-count=3'], env);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /memberCount: 1 -> 3\n/);
  t.equal((await store.read('control/etcd-cluster-spec')).toString(), '{"memberCount":1,"etcdVersion":"3.4.23"}', 'a dry run writes nothing');
  const yes = await cli(t, ['configure-cluster', ...at, '--member-count=3', '--yes'], env);
  t.equal(yes.code, 0, yes.stderr);
  t.equal((await store.read('control/etcd-cluster-spec')).toString(), '{\n  "memberCount": 3,\n  "etcdVersion": "3.4.23"\n}');

  // ---- backup through a leader loop; two at once are queued ----
  const leader = leaderLoop(t, store, w, 6000);
  const first = cli(t, ['backup', ...at], env);
  // The second starts once the first is running on the leader.
  for (let i = 0; i < 600 && !(await listRequests(store)).some((e) => e.result?.state === 'running'); i++) await sleep(100);
  const second = cli(t, ['backup', ...at, '-o', 'json'], env);
  const [a, b] = await Promise.all([first, second]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  const [aName] = a.stdout.split('\n')[1].split(/\s+/);
  const bDoc = JSON.parse(b.stdout) as { state: string; backup: { name: string } };
  t.equal(bDoc.state, 'succeeded');
  t.same(leader.served, [aName, bDoc.backup.name], 'both served, one after the other');
  t.equal(leader.maxRunning(), 1, 'never two backups at once');
  t.match(b.stderr, /^queued: waiting for the leader behind 1 running \(a\/test-leader, [\d.]+ [KM]iB\), [\d.]+ s$/m, 'the second says it is queued behind the first');
  t.match(a.stdout, new RegExp(`^NAME +STORED +SNAPSHOT +DURATION\\n${aName} +[\\d.]+ [KM]iB +[\\d.]+ [KM]iB +[\\d.]+ s\\n$`));
  await leader.stop();
  const again = await cli(t, ['verify-backup', aName, ...at], env);
  t.equal(again.code, 0, `the on-demand backup verifies: ${again.stderr}`);

  // ---- Ctrl-C while waiting: the request stays ----
  let pid = 0;
  const waiting = cli(t, ['backup', ...at], env, 120_000, (p) => (pid = p));
  for (let i = 0; i < 600 && !(await listRequests(store)).some((e) => !e.result); i++) await sleep(100);
  process.kill(pid, 'SIGINT');
  const interrupted = await waiting;
  t.equal(interrupted.code, 130, 'Ctrl-C: exit 130');
  t.match(interrupted.stderr, /\netcd-manager: interrupted: stopped waiting; request \S+ stays queued and the leader still takes the backup/);
  t.equal((await listRequests(store)).filter((e) => !e.result).length, 1, 'the request stays for the leader');

  // ---- get ----
  const g = await cli(t, ['get', ...at, '-o', 'json'], env);
  t.equal(g.code, 0, g.stderr);
  t.match(JSON.parse(g.stdout), { clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' }, created: { facts: { leader: 'a' } }, backups: { complete: 4, incomplete: 1 }, commands: [], requests: [{ state: 'succeeded' }, { state: 'succeeded' }, { state: 'queued' }] });
  const gt = await cli(t, ['get', ...at], env);
  t.match(gt.stdout, /^Cluster spec: 3 members, etcd 3\.4\.23$/m);
}

t.test('file:// store', { skip: etcdMissing }, async (t) => {
  const w = await liveEtcd(t);
  const dir = tempDir(t, 'em-cli-store-');
  await operatorFlow(t, `file://${dir}/state/c.example.com/backups/etcd/main`, {}, w);
});

t.test('s3rver store', { skip: etcdMissing }, async (t) => {
  const w = await liveEtcd(t);
  const s3 = await startS3(t);
  await operatorFlow(t, `${s3.url}/state/c.example.com/backups/etcd/main`, s3.env, w);
});
