// etcd-manager's operator commands, in-process against memfs:// and file://
// stores holding backups made by the backup library and in kOps' layout:
// dispatch and --help, list-backups, verify-backup, list-commands,
// delete-command, configure-cluster and get; what each prints for people and
// for scripts (-o json field names), its exit codes, and that a refusal
// changes nothing in the store.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatKeySecret, parseKeyMaterial } from '../../agents/etcd-manager/backup/encryption.js';
import { readLeaderStatus } from '../../agents/etcd-manager/cli/leader-status.js';
import { OUTCOME_FORMAT, writeOutcome } from '../../agents/etcd-manager/control/restore-plan.js';
import { formatStatus, STATUS_FORMAT, STATUS_PATH, type ManagerStatus } from '../../agents/etcd-manager/control/status.js';
import { markClusterCreated } from '../../agents/etcd-manager/control/cluster-created.js';
import { writeClusterSpecFile } from '../../agents/etcd-manager/control/cluster-spec.js';
import { listCommands, queueRestoreCommand } from '../../agents/etcd-manager/control/commands.js';
import { DOORBELL_PATH, submitRequest } from '../../agents/etcd-manager/control/requests.js';
import { registerPeer } from '../../agents/etcd-manager/discovery.js';
import { FLAGS, type FlagDef } from '../../agents/etcd-manager/flags.js';
import { SUBCOMMANDS } from '../../agents/etcd-manager/subcommands.js';
import { markBlocked, markDone, newVersionChange } from '../../agents/etcd-manager/versions/plan.js';
import { saveVersionChange } from '../../agents/etcd-manager/versions/record.js';
import { openStore, type StateStore } from '../../shared/store/index.js';
import { cliHarness, makeBackup, makeKopsBackup, syntheticSnapshot } from '../harness/em-cli.js';
import { snapshotStore, tempDir } from '../harness/tmp.js';

let volumes = 0;
/** A fresh memfs backup store with kOps' layout (so the state store above it can hold the key secret). */
function freshStore(): { url: string; store: StateStore; state: StateStore } {
  const base = `memfs://cli-${process.pid}-${volumes++}`;
  const url = `${base}/c.example.com/backups/etcd/main`;
  return { url, store: openStore(url), state: openStore(`${base}/c.example.com`) };
}

const B1 = '2026-11-30T08:00:00Z-000001';
const B2 = '2026-11-30T09:00:00Z-000002';
const KOPS = '2026-11-30T10:00:00Z-000003';
const CUT = '2026-11-30T11:00:00Z-000004';

async function populated() {
  const s = freshStore();
  await makeBackup(s.store, B1, { reason: 'scheduled' });
  await makeBackup(s.store, B2, { reason: 'on-demand', pages: 6 });
  await makeKopsBackup(s.store, KOPS, syntheticSnapshot(3));
  await s.store.write(`${CUT}/etcd.backup.gz`, 'half an upload');
  await writeClusterSpecFile(s.store, { memberCount: 3, etcdVersion: '3.4.23' });
  return s;
}

t.test('dispatch: the command table, each command\'s --help lists exactly its flags, wrong flags and arguments are usage errors', async (t) => {
  const h = cliHarness();
  const top = await h.run(['--help']);
  t.equal(top.code, 0);
  t.match(top.stdout, /^Usage: etcd-manager \[run\] \[flags\]/);
  for (const c of SUBCOMMANDS.filter((c) => c.name !== 'run')) t.match(top.stdout, new RegExp(`^  ${c.name} +${c.summary.replace(/[()'.]/g, '.')}$`, 'm'), `${c.name} listed in --help`);
  for (const f of (FLAGS as readonly FlagDef[]).filter((f) => f.operator)) t.notMatch(top.stdout, `--${f.name}=`, `operator flag --${f.name} is not in the manager's help`);
  t.same((await h.run(['run', '--help'])).stdout, top.stdout, 'run --help is the manager\'s help');

  for (const sub of SUBCOMMANDS.filter((c) => c.name !== 'run')) {
    const { command } = await sub.load();
    const help = await h.run([sub.name, '--help']);
    t.equal(help.code, 0, `${sub.name} --help exits 0`);
    t.match(help.stdout, new RegExp(`^Usage: etcd-manager ${sub.name}${command.args.map((a) => ` ${a}`).join('')} \\[flags\\]`), `${sub.name}: usage line`);
    const shown = [...help.stdout.matchAll(/^ {2}(?:-\w, )?--([a-z-]+)/gm)].map((m) => m[1]).filter((f) => f !== 'help');
    t.same(shown.sort(), [...command.flags].sort(), `${sub.name} --help shows exactly the flags it takes`);
    t.match(help.stdout, /Exit codes: 0 ok, 1 failure.*\n.*2 bad usage/, `${sub.name} --help has the exit codes`);
    for (const f of command.flags) {
      const def = (FLAGS as readonly FlagDef[]).find((d) => d.name === f)!;
      if (def.range) t.match(help.stdout, `${def.range[0]} to ${def.range[1]}`, `${sub.name} --help: --${f}'s range`);
    }
    const refused = (FLAGS as readonly FlagDef[]).find((d) => !command.flags.includes(d.name as never) && !d.hidden)!;
    const wrong = await h.run([sub.name, `--${refused.name}=${refused.kind === 'bool' ? 'true' : refused.kind === 'int' ? '1' : refused.kind === 'duration' ? '1s' : 'x'}`]);
    t.equal(wrong.code, 2, `${sub.name} --${refused.name}: exit 2`);
    t.match(wrong.stderr, new RegExp(`^etcd-manager: ${sub.name}: --${refused.name} is not a flag of this command \\(see etcd-manager ${sub.name} --help\\)\\n$`));
  }
  const run = await h.run(['run', '--yes']);
  t.same([run.code, run.stderr], [2, 'etcd-manager: --yes is a flag of the operator commands, not of the manager (see etcd-manager --help)\n']);
  const plain = await h.run(['--member-count=3']);
  t.equal(plain.code, 2, 'plain etcd-manager [flags] is run: operator flags refused there too');
  const unknown = await h.run(['backups']);
  t.same([unknown.code, unknown.stdout], [2, '']);
  t.match(unknown.stderr, /^etcd-manager: unknown command "backups" \(commands: run, backup, list-backups, .*configure-cluster, migrate-v2; see --help\)\n$/);
  t.match((await h.run(['verify-backup', '--backup-store=memfs://x/y'])).stderr, /^etcd-manager: verify-backup: missing NAME \(usage: etcd-manager verify-backup NAME\)\n$/);
  t.match((await h.run(['list-backups', 'extra', '--backup-store=memfs://x/y'])).stderr, /^etcd-manager: list-backups takes no arguments/);
  t.match((await h.run(['delete-command', 'a', 'b', '--backup-store=memfs://x/y'])).stderr, /^etcd-manager: delete-command: too many arguments/);
  const noStore = await h.run(['list-backups']);
  t.same([noStore.code, noStore.stderr], [2, 'etcd-manager: list-backups: --backup-store is required (or ETCD_MANAGER_BACKUP_STORE in the environment or in --env-file)\n']);
  const badStore = await h.run(['list-backups', '--backup-store=ftp://host/x']);
  t.equal(badStore.code, 2);
  t.match(badStore.stderr, /^etcd-manager: --backup-store: ftp:\/\/host\/x: unsupported state store scheme "ftp"/);
  const badOutput = await h.run(['list-backups', '--backup-store=memfs://x/y', '-o', 'yaml']);
  t.same([badOutput.code, badOutput.stderr], [2, 'etcd-manager: -o/--output: unknown format "yaml" (want table or json)\n']);
});

t.test('an env file of a node gives the backup store; its manager settings are not refused, its operator choices cannot exist', async (t) => {
  const s = await populated();
  const dir = tempDir(t, 'em-cli-env-');
  const envFile = join(dir, 'main.env');
  writeFileSync(envFile, `ETCD_MANAGER_CLUSTER_NAME=etcd\nETCD_MANAGER_BACKUP_STORE=${s.url}\nETCD_MANAGER_VOLUME_PROVIDER=aws\n`);
  const h = cliHarness();
  const r = await h.run(['list-backups', `--env-file=${envFile}`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, B1);
  writeFileSync(envFile, `ETCD_MANAGER_BACKUP_STORE=${s.url}\nETCD_MANAGER_YES=true\n`);
  const yes = await h.run(['configure-cluster', `--env-file=${envFile}`, '--member-count=5']);
  t.equal(yes.code, 2, '--yes has no environment form: an env file cannot answer yes for the operator');
  t.match(yes.stderr, /ETCD_MANAGER_YES is not an etcd-manager setting/);
});

t.test('list-backups: complete backups from one listing, kOps\' too; incomplete only when asked, marked; --details; -o json', async (t) => {
  const s = await populated();
  const h = cliHarness();
  const r = await h.run(['list-backups', `--backup-store=${s.url}`]);
  t.equal(r.code, 0);
  t.equal(r.stdout, [
    'NAME                         AGE',
    `${B1}  4 h 0 min ago`,
    `${B2}  3 h 0 min ago`,
    `${KOPS}  2 h 0 min ago`,
    '',
  ].join('\n'));
  t.equal(r.stderr, '(1 incomplete backup not shown: --include-incomplete shows it)\n');

  const all = await h.run(['list-backups', `--backup-store=${s.url}`, '--include-incomplete']);
  t.match(all.stdout, new RegExp(`^${CUT} +1 h 0 min ago +INCOMPLETE$`, 'm'));
  t.match(all.stdout, new RegExp(`^${B1} .* complete$`, 'm'));

  const key = parseKeyMaterial(randomBytes(32), 'k');
  await makeBackup(s.store, '2026-11-30T11:30:00Z-000005', { key });
  const details = await h.run(['list-backups', `--backup-store=${s.url}`, '--details']);
  t.match(details.stdout, /^NAME +AGE +ETCD +MEMBERS +STORED +SNAPSHOT +TOOK +REVISION +ENCRYPTED +REASON$/m);
  t.match(details.stdout, new RegExp(`^${B2} .* 3\\.4\\.23 +3 +[\\d.]+ KiB +24\\.0 KiB +[\\d.]+ s +42 +no +on-demand$`, 'm'));
  t.match(details.stdout, new RegExp(`^${KOPS} .* 3\\.4\\.23 +1 +- +- +- +- +- +kOps' \\(no sidecar\\)$`, 'm'));
  t.match(details.stdout, new RegExp(`^2026-11-30T11:30:00Z-000005 .* yes \\(key ${key.id}\\)`, 'm'));
  t.notMatch(details.stdout + details.stderr, key.key.toString('hex'), 'no key material');

  const j = await h.run(['list-backups', `--backup-store=${s.url}`, '-o', 'json', '--include-incomplete', '--details']);
  t.equal(j.stderr, '', 'json: nothing on stderr when nothing is slow');
  const doc = JSON.parse(j.stdout) as { backupStore: string; backups: Array<Record<string, unknown>> };
  t.equal(doc.backupStore, s.url);
  t.same(doc.backups.map((b) => [b.name, b.complete]), [[B1, true], [B2, true], [KOPS, true], [CUT, false], ['2026-11-30T11:30:00Z-000005', true]]);
  t.same(Object.keys(doc.backups[1]).sort(), ['complete', 'durationMs', 'encrypted', 'etcdVersion', 'hasData', 'hasSidecar', 'keyId', 'memberCount', 'name', 'reason', 'revision', 'snapshotBytes', 'storedBytes', 'time'].sort(), 'stable field names');
  t.match(doc.backups[1], { name: B2, time: '2026-11-30T09:00:00Z', hasData: true, hasSidecar: true, etcdVersion: '3.4.23', memberCount: 3, snapshotBytes: 6 * 4096 + 32, revision: '42', reason: 'on-demand', encrypted: false, keyId: null });
  t.same(Object.keys(doc.backups[3]).sort(), ['complete', 'hasData', 'hasSidecar', 'name', 'time'], 'incomplete: no details');
  const plain = JSON.parse((await h.run(['list-backups', `--backup-store=${s.url}`, '-o', 'json'])).stdout) as typeof doc;
  t.same(Object.keys(plain.backups[0]).sort(), ['complete', 'hasData', 'hasSidecar', 'name', 'time']);

  const empty = freshStore();
  const none = await h.run(['list-backups', `--backup-store=${empty.url}`]);
  t.same([none.code, none.stdout, none.stderr], [0, '', `no backups in ${empty.url}\n`]);
  t.same(JSON.parse((await h.run(['list-backups', `--backup-store=${empty.url}`, '-o', 'json'])).stdout), { backupStore: empty.url, backups: [] });
});

t.test('list-backups --details shows a progress line on stderr once it runs past a second', async (t) => {
  const s = freshStore();
  for (let i = 0; i < 3; i++) await makeBackup(s.store, `2026-11-30T08:00:0${i}Z-000001`);
  const h = cliHarness();
  // Each read of the store takes 700 ms by the injected clock.
  const memfsProto = Object.getPrototypeOf(s.store) as { readIfExists(path: string): Promise<Buffer | undefined> };
  const original = memfsProto.readIfExists;
  memfsProto.readIfExists = async function (this: StateStore, path: string) {
    h.advance(700);
    return original.call(this, path);
  };
  t.teardown(() => void (memfsProto.readIfExists = original));
  const r = await h.run(['list-backups', `--backup-store=${s.url}`, '--details']);
  t.equal(r.code, 0);
  t.match(r.stderr, /^reading backup details: \d of 3\n/m, 'a progress line, not a terminal: a plain line');
  t.equal(r.stderr.split('\n').filter((l) => l.startsWith('reading')).length, 1, 'throttled: one line within ten seconds');
  h.errIsTTY = true;
  const tty = await h.run(['list-backups', `--backup-store=${s.url}`, '--details']);
  t.match(tty.stderr, /\rreading backup details: \d of 3\x1b\[K/, 'a terminal: rewritten in place');
  t.match(tty.stderr, /\r\x1b\[K$/, 'and cleared when done');
});

t.test('a listing that takes more than a second says so on stderr, and a quick one prints nothing', async (t) => {
  const s = await populated();
  const h = cliHarness();
  const quick = await h.run(['list-commands', `--backup-store=${s.url}`]);
  t.equal(quick.stderr, `no commands queued in ${s.url}\n`, 'quick: no progress line');
  const proto = Object.getPrototypeOf(s.store) as { list(prefix?: string): Promise<string[]> };
  const original = proto.list;
  // A slow endpoint: the listing answers only after 1.5 s (real time; nothing is measured).
  proto.list = async function (this: StateStore, prefix?: string) {
    await new Promise((r) => setTimeout(r, 1500));
    return original.call(this, prefix);
  };
  t.teardown(() => void (proto.list = original));
  for (const [command, line] of [['list-backups', `listing ${s.url}…`], ['list-commands', `reading the commands in ${s.url}…`], ['get', `reading ${s.url}…`]]) {
    const slow = await h.run([command, `--backup-store=${s.url}`]);
    t.equal(slow.code, 0, command);
    t.equal(slow.stderr.split('\n')[0], line, `${command}: a line once it has lasted a second`);
  }
  h.errIsTTY = true;
  const tty = await h.run(['list-backups', `--backup-store=${s.url}`]);
  t.match(tty.stderr, new RegExp(`^\\r${'listing '}.*…\\x1b\\[K\\r\\x1b\\[K`), 'on a terminal it is cleared when the listing ends');
});

t.test('verify-backup: every check, named when one fails; keys from a file or the state store secret; nothing changes', async (t) => {
  const s = await populated();
  const h = cliHarness();
  const ok = await h.run(['verify-backup', B1, `--backup-store=${s.url}`]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, new RegExp(`^backup ${B1}: verified\\n  checks    meta, stored-sha256, gzip, snapshot-sha256, snapshot-integrity\\n  skipped   snapshot-status skipped: /usr/bin/etcdctl is not installed`));
  t.match(ok.stdout, /  etcd      3\.4\.23\n$/);
  const kops = JSON.parse((await h.run(['verify-backup', KOPS, `--backup-store=${s.url}`, '-o', 'json'])).stdout) as Record<string, unknown>;
  t.match(kops, { name: KOPS, verified: true, checks: ['meta', 'gzip', 'snapshot-integrity'], encrypted: false, etcdVersion: '3.4.23', snapshotBytes: 3 * 4096 + 32 });

  // With etcdctl there, it opens the database: a synthetic one is not a bolt db, so that check (and only it) fails.
  h.etcdctl = true;
  const status = await h.run(['verify-backup', B1, `--backup-store=${s.url}`]);
  t.equal(status.code, 1);
  t.match(status.stderr, new RegExp(`^etcd-manager: backup ${B1}: etcd cannot open the snapshot's database: .*\\(check snapshot-status failed\\)\\n$`));
  h.etcdctl = false;

  const before = await snapshotStore(s.store);
  const data = await s.store.read(`${B2}/etcd.backup.gz`);
  const flipped = Buffer.from(data);
  flipped[Math.floor(flipped.length / 2)] ^= 0x10;
  await s.store.write(`${B2}/etcd.backup.gz`, flipped);
  const bad = await h.run(['verify-backup', B2, `--backup-store=${s.url}`]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, new RegExp(`^etcd-manager: backup ${B2}: .*etcd.backup.gz is \\d+ bytes with sha256 [0-9a-f]{64}, the sidecar says .*: the stored object is damaged or was changed \\(check stored-sha256 failed\\)\\n$`));
  const badJson = await h.run(['verify-backup', B2, `--backup-store=${s.url}`, '-o', 'json']);
  t.match(JSON.parse(badJson.stdout), { name: B2, verified: false, failedCheck: 'stored-sha256', error: /damaged/ });
  await s.store.write(`${B2}/etcd.backup.gz`, data);
  t.same(await snapshotStore(s.store), before, 'verify changes nothing in the store');

  const unknown = await h.run(['verify-backup', '2026-01-01T00:00:00Z-000000', `--backup-store=${s.url}`]);
  t.same([unknown.code, unknown.stderr], [4, `etcd-manager: no backup 2026-01-01T00:00:00Z-000000 in ${s.url} (etcd-manager list-backups shows the backups)\n`]);
  const cut = await h.run(['verify-backup', CUT, `--backup-store=${s.url}`]);
  t.equal(cut.code, 4);
  t.match(cut.stderr, /is incomplete: it has no _etcd_backup.meta \(cut off, or still being written\)/);
  const path = await h.run(['verify-backup', '../secrets', `--backup-store=${s.url}`]);
  t.same([path.code, path.stderr], [2, 'etcd-manager: verify-backup: "../secrets" is not a backup name (list-backups shows the names)\n']);

  // Encrypted: no key, a key file (bad mode refused, right key), the state store secret, a wrong key.
  const material = randomBytes(32);
  const key = parseKeyMaterial(material, 'k');
  const ENC = '2026-11-30T11:30:00Z-000005';
  await makeBackup(s.store, ENC, { key });
  const noKey = await h.run(['verify-backup', ENC, `--backup-store=${s.url}`]);
  t.equal(noKey.code, 1);
  t.match(noKey.stderr, new RegExp(`is encrypted \\(AES-256-GCM, key id ${key.id}\\); pass its key .*\\(check key failed\\)`));
  const dir = tempDir(t, 'em-cli-key-');
  const keyFile = join(dir, 'backup.key');
  writeFileSync(keyFile, material.toString('hex'), { mode: 0o644 });
  chmodSync(keyFile, 0o644);
  const open = await h.run(['verify-backup', ENC, `--backup-store=${s.url}`, `--backup-encryption-key-file=${keyFile}`]);
  t.equal(open.code, 2);
  t.match(open.stderr, /^etcd-manager: --backup-encryption-key-file: .*backup.key: the backup encryption key file is readable by group or others \(mode 644\); chmod 600 it\n$/);
  chmodSync(keyFile, 0o600);
  const withFile = await h.run(['verify-backup', ENC, `--backup-store=${s.url}`, `--backup-encryption-key-file=${keyFile}`, '-o', 'json']);
  t.match(JSON.parse(withFile.stdout), { verified: true, encrypted: true, keyId: key.id, checks: ['meta', 'key', 'stored-sha256', 'decrypt', 'gzip', 'snapshot-sha256', 'snapshot-integrity'] });
  await s.state.write('secrets/etcd-backup-encryption-key', formatKeySecret(material));
  const withSecret = await h.run(['verify-backup', ENC, `--backup-store=${s.url}`]);
  t.equal(withSecret.code, 0, 'the state store secret is found above a backup store of kOps\' layout');
  t.match(withSecret.stdout, `(AES-256-GCM, key id ${key.id})`);
  writeFileSync(keyFile, randomBytes(32).toString('hex'));
  const wrong = await h.run(['verify-backup', ENC, `--backup-store=${s.url}`, `--backup-encryption-key-file=${keyFile}`]);
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /\(wrong key\) \(check key failed\)/);
  for (const r of [noKey, open, withFile, withSecret, wrong]) {
    for (const secret of [material.toString('hex'), material.toString('base64')]) t.notMatch(r.stdout + r.stderr, secret, 'no key material printed');
  }
});

t.test('verify-backup: Ctrl-C stops the download, removes the temporary snapshot and exits 130', async (t) => {
  const s = freshStore();
  await makeBackup(s.store, B1, { pages: 64 });
  const h = cliHarness();
  h.etcdctl = true; // so the snapshot goes to a work dir
  const work = tempDir(t, 'em-cli-work-');
  const proto = Object.getPrototypeOf(s.store) as { openReadStream(path: string): Promise<NodeJS.ReadableStream> };
  const original = proto.openReadStream;
  let abort: (() => void) | undefined;
  proto.openReadStream = async function (this: StateStore, path: string) {
    const stream = await original.call(this, path);
    const { Readable } = await import('node:stream');
    // Hand out one chunk, then Ctrl-C, then the rest only if nobody stopped reading.
    return Readable.from((async function* () {
      let first = true;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        yield chunk;
        if (first) abort?.();
        first = false;
        await new Promise((r) => setTimeout(r, 5));
      }
    })());
  };
  t.teardown(() => void (proto.openReadStream = original));
  const { main } = await import('../../agents/etcd-manager/main.js');
  const controller = new AbortController();
  abort = () => controller.abort();
  let stderr = '';
  const code = await main(['verify-backup', B1, `--backup-store=${s.url}`, `--work-dir=${work}`], {
    io: { out: () => undefined, err: (x) => void (stderr += x), errIsTTY: false }, env: {}, now: Date.now, sleep: async () => undefined,
    randomInt: () => 0, interrupted: controller.signal, readLeaderStatus: async () => undefined, requestedBy: 't', fileExists: () => true,
  });
  t.equal(code, 130);
  t.equal(stderr, `etcd-manager: interrupted: verification of ${B1} stopped; nothing was changed and its temporary snapshot was removed\n`);
  const { readdirSync } = await import('node:fs');
  t.same(readdirSync(work), [], 'no snapshot left in the work dir');
});

t.test('list-commands and delete-command: kOps\' queue, invalid files named, ids not backup names, the doorbell rung', async (t) => {
  const s = await populated();
  const h = cliHarness();
  const none = await h.run(['list-commands', `--backup-store=${s.url}`]);
  t.same([none.code, none.stdout, none.stderr], [0, '', `no commands queued in ${s.url}\n`]);
  const ID = '2026-11-30T11:50:00Z-123456';
  await queueRestoreCommand(s.store, ID, Date.parse('2026-11-30T11:50:00Z'), { backup: B1, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  // kOps' etcd-manager-ctl's own form: folder <RFC3339>-000000, nanosecond timestamp as a string.
  await s.store.write('control/2026-11-30T11:55:00Z-000000/_command.json', '{\n  "timestamp": "1796039700000000000",\n  "restoreBackup": {\n    "clusterSpec": {\n      "memberCount": 1,\n      "etcdVersion": "3.4.23"\n    },\n    "backup": "' + KOPS + '"\n  }\n}');
  await s.store.write('control/broken/_command.json', '{not json');
  const list = await h.run(['list-commands', `--backup-store=${s.url}`]);
  t.equal(list.code, 0);
  t.equal(list.stdout.split('\n')[0], 'ID                           QUEUED      COMMAND         BACKUP                       MEMBERS  ETCD');
  t.match(list.stdout, new RegExp(`^${ID} +10 min ago +restore-backup +${B1} +3 +3\\.4\\.23$`, 'm'));
  t.match(list.stdout, new RegExp(`^2026-11-30T11:55:00Z-000000 +.* +restore-backup +${KOPS} +1 +3\\.4\\.23$`, 'm'));
  t.match(list.stdout, /^broken +- +INVALID +- +- +memfs:.*control\/broken\/_command\.json/m);
  const doc = JSON.parse((await h.run(['list-commands', `--backup-store=${s.url}`, '-o', 'json'])).stdout) as { commands: Array<Record<string, unknown>>; invalid: Array<Record<string, unknown>> };
  t.same(doc.commands[0], { id: ID, queuedAt: '2026-11-30T11:50:00.000Z', kind: 'restore-backup', backup: B1, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  t.same(doc.invalid.map((i) => Object.keys(i)), [['id', 'error']]);

  const before = await snapshotStore(s.store);
  const byBackup = await h.run(['delete-command', B1, `--backup-store=${s.url}`]);
  t.same([byBackup.code, byBackup.stderr], [4, `etcd-manager: no command ${B1} queued in ${s.url}; ${B1} is the backup of queued restore ${ID} (delete-command takes the command's id)\n`]);
  const unknown = await h.run(['delete-command', '2026-01-01T00:00:00Z-000000', `--backup-store=${s.url}`]);
  t.equal(unknown.code, 4);
  t.match(unknown.stderr, /\(list-commands shows the queued commands\)/);
  const dots = await h.run(['delete-command', '../x', `--backup-store=${s.url}`]);
  t.same([dots.code, dots.stderr], [2, 'etcd-manager: delete-command: "../x" is not a command id (list-commands shows them)\n']);
  t.same(await snapshotStore(s.store), before, 'refusals change nothing');

  const del = await h.run(['delete-command', ID, `--backup-store=${s.url}`]);
  t.same([del.code, del.stdout], [0, `deleted command ${ID} (restore of backup ${B1})\n`]);
  const broken = await h.run(['delete-command', 'broken', `--backup-store=${s.url}`, '-o', 'json']);
  t.same(JSON.parse(broken.stdout), { deleted: 'broken', command: null });
  t.same((await listCommands(s.store)).commands.map((c) => c.id), ['2026-11-30T11:55:00Z-000000']);
  t.same((await listCommands(s.store)).invalid, []);
  t.match(JSON.parse((await s.store.read(DOORBELL_PATH)).toString()), { about: 'deleted broken' }, 'the doorbell was rung');
});

t.test('configure-cluster: validated, the change shown, written only with --yes (kOps\' jsonpb), unchanged not rewritten', async (t) => {
  const s = freshStore();
  const h = cliHarness();
  const specPath = 'control/etcd-cluster-spec';
  for (const [args, message] of [
    [['--member-count=0'], '--member-count 0: want 1 to 7 (members of the etcd cluster)'],
    [['--member-count=8'], '--member-count 8: want 1 to 7 (members of the etcd cluster)'],
    [['--member-count=-1'], '--member-count: "-1" is not a whole number'],
    [['--member-count=3x'], '--member-count: "3x" is not a whole number'],
    [['--etcd-version=3.4'], '--etcd-version "3.4": want a full etcd 3 version like 3.4.23'],
    [['--etcd-version=2.2.1'], '--etcd-version "2.2.1": want a full etcd 3 version like 3.4.23'],
    [['--etcd-version=v3.4.23'], '--etcd-version "v3.4.23": want a full etcd 3 version like 3.4.23'],
    [['--etcd-version='], '--etcd-version "": want a full etcd 3 version like 3.4.23'],
    [[], 'configure-cluster: give --member-count, --etcd-version or both'],
    [['--member-count=3'], `configure-cluster: there is no ${s.url}/control/etcd-cluster-spec yet, so --etcd-version is needed too`],
  ] as const) {
    const r = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--yes', ...args]);
    t.same([r.code, r.stdout, r.stderr], [2, '', `etcd-manager: ${message}\n`], args.join(' ') || 'no flags');
  }
  t.same(await s.store.list(), [], 'nothing written by any refusal');

  const dry = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--member-count=3', '--etcd-version=3.4.23']);
  t.equal(dry.code, 0);
  t.equal(dry.stdout, `${s.url}/control/etcd-cluster-spec (new):\n  memberCount: (none) -> 3\n  etcdVersion: (none) -> 3.4.23\nnew content:\n  {\n    "memberCount": 3,\n    "etcdVersion": "3.4.23"\n  }\n`);
  t.equal(dry.stderr, 'not written: run again with --yes to write it\n');
  t.same(await s.store.list(), [], 'a dry run writes nothing');

  const yes = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--member-count=3', '--etcd-version=3.4.23', '--yes']);
  t.same([yes.code, yes.stderr], [0, 'written; the leader applies it at its next pass\n']);
  t.equal((await s.store.read(specPath)).toString(), '{\n  "memberCount": 3,\n  "etcdVersion": "3.4.23"\n}', "kOps' jsonpb, as etcd-manager-ctl writes it");
  t.match(JSON.parse((await s.store.read(DOORBELL_PATH)).toString()), { about: 'cluster-spec' });

  const one = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--member-count=5', '-o', 'json']);
  t.same(JSON.parse(one.stdout), {
    path: `${s.url}/control/etcd-cluster-spec`, current: { memberCount: 3, etcdVersion: '3.4.23' }, desired: { memberCount: 5, etcdVersion: '3.4.23' },
    changes: [{ field: 'memberCount', from: 3, to: 5 }], content: '{\n  "memberCount": 5,\n  "etcdVersion": "3.4.23"\n}', written: false, upToDate: false,
  });
  const before = await snapshotStore(s.store);
  const same = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--member-count=3', '--yes']);
  t.same([same.code, same.stdout], [0, `${s.url}/control/etcd-cluster-spec already says 3 members, etcd 3.4.23: nothing to change\n`]);
  t.same(await snapshotStore(s.store), before, 'an unchanged spec is not rewritten');

  // mooring's compact form is read; a broken file is shown and replaced.
  await s.store.write(specPath, '{"memberCount":1,"etcdVersion":"3.4.23"}');
  const up = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--etcd-version=3.5.9', '--yes']);
  t.match(up.stdout, /memberCount: 1 \(unchanged\)\n  etcdVersion: 3\.4\.23 -> 3\.5\.9\n/);
  await s.store.write(specPath, '{"memberCount": "lots"}');
  const broken = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--etcd-version=3.4.23']);
  t.equal(broken.code, 2, 'a broken file and one flag: the other is needed');
  t.match(broken.stderr, /cannot be read .* so --member-count is needed too/);
  const fixed = await h.run(['configure-cluster', `--backup-store=${s.url}`, '--etcd-version=3.4.23', '--member-count=1', '--yes']);
  t.equal(fixed.code, 0);
  t.match(fixed.stdout, /the current file cannot be read and is replaced: /);
  t.equal((await s.store.read(specPath)).toString(), '{\n  "memberCount": 1,\n  "etcdVersion": "3.4.23"\n}');
});

t.test('get: the store\'s view of the cluster, the leader\'s status when there is one, -o json, exit 4 for an empty store', async (t) => {
  const h = cliHarness();
  const empty = freshStore();
  const nothing = await h.run(['get', `--backup-store=${empty.url}`]);
  t.same([nothing.code, nothing.stdout], [4, '']);
  t.match(nothing.stderr, /^etcd-manager: nothing in memfs:.*: no control\/etcd-cluster-spec, no backups, no managers \(is --backup-store right\? configure-cluster writes a spec\)\n$/);

  const s = await populated();
  await markClusterCreated(s.store, { atMs: Date.parse('2026-11-30T07:00:00Z'), extra: { leader: 'a', term: 3 } });
  await registerPeer(s.store, { member: 'a', instanceId: 'i-1', address: '10.0.0.1', dnsName: 'etcd-a.internal.c.example.com', grpcEndpoint: '10.0.0.1:3996', peerURLs: [], clientURLs: [], updatedAt: '2026-11-30T11:59:30Z' });
  await queueRestoreCommand(s.store, '2026-11-30T11:50:00Z-123456', Date.parse('2026-11-30T11:50:00Z'), { backup: B1, clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' } });
  await submitRequest(s.store, { kind: 'backup' }, { id: '2026-11-30T11:58:00Z-000001', nowMs: Date.parse('2026-11-30T11:58:00Z'), requestedBy: 'ops@laptop' });
  const r = await h.run(['get', `--backup-store=${s.url}`]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, [
    `Backup store: ${s.url}`,
    'Cluster spec: 3 members, etcd 3.4.23',
    'Created:      2026-11-30T07:00:00.000Z (5 h 0 min ago); leader=a term=3',
    'Leader:       unknown (no control/status.json: no manager has acted on this cluster yet)',
    'Managers:     a 10.0.0.1 (registered 30 s ago)',
    `Last backup:  ${KOPS} (2 h 0 min ago)`,
    `Backups:      3 complete, 1 incomplete; newest ${KOPS}, ${B2}, ${B1}`,
    `Commands:     2026-11-30T11:50:00Z-123456: restore-backup ${B1}`,
    'Requests:     2026-11-30T11:58:00Z-000001: backup queued by ops@laptop',
    '',
  ].join('\n'));
  const doc = JSON.parse((await h.run(['get', `--backup-store=${s.url}`, '-o', 'json'])).stdout) as Record<string, unknown>;
  t.same(Object.keys(doc).sort(), ['backupStore', 'backups', 'clusterSpec', 'commands', 'created', 'invalidCommands', 'leaderStatus', 'managers', 'requests', 'versionChange'].sort());
  t.equal(doc.versionChange, null, 'no version change under way');
  t.match(doc, {
    clusterSpec: { memberCount: 3, etcdVersion: '3.4.23' }, created: { at: '2026-11-30T07:00:00.000Z', facts: { leader: 'a', term: 3 } }, leaderStatus: null,
    backups: { complete: 3, incomplete: 1, newest: [{ name: KOPS }, { name: B2 }, { name: B1 }] },
    requests: [{ id: '2026-11-30T11:58:00Z-000001', kind: 'backup', state: 'queued', requestedBy: 'ops@laptop', bytes: null, error: null }],
  });

  h.status = {
    updatedAt: '2026-11-30T11:59:58Z', leader: { member: 'b', term: 7 }, activity: 'backing up',
    members: [{ name: 'a', healthy: true }, { name: 'b', healthy: true }, { name: 'c', healthy: false, voting: false }],
    lastBackup: { name: B2, at: '2026-11-30T09:00:00Z', storedBytes: 2048 },
  };
  const withStatus = await h.run(['get', `--backup-store=${s.url}`]);
  t.match(withStatus.stdout, /^Leader: +b \(term 7\), status written 2 s ago$/m);
  t.match(withStatus.stdout, /^Members: +a, b, c \(unhealthy\) \(learner\)$/m);
  t.match(withStatus.stdout, /^Doing: +backing up$/m);
  t.match(withStatus.stdout, new RegExp(`^Last backup: +${B2}, 2\\.0 KiB, 3 h 0 min ago$`, 'm'));

  // A version change the acting manager keeps, stopped by a member: shown with why it waits.
  const change = markBlocked(markDone(newVersionChange({ kind: 'in-place', from: '3.4.23', to: '3.5.17', change: 'next-minor' }, ['a', 'b', 'c'], 7, new Date('2026-11-30T11:00:00Z'), 'abc123'), 'backup', new Date('2026-11-30T11:01:00Z'), { name: B2 }),
    { kind: 'wait', reason: 'member-unhealthy', member: 'c', message: 'member c is not healthy' }, new Date('2026-11-30T11:02:00Z'));
  t.ok((await saveVersionChange(s.store, change, undefined)).saved);
  const changing = await h.run(['get', `--backup-store=${s.url}`]);
  t.match(changing.stdout, /^Version change: +etcd 3\.4\.23 → 3\.5\.17 \(in-place, next-minor\): 1 of 4 steps done, next member\/a; WAITING since 2026-11-30T11:02:00\.000Z: member c is not healthy$/m);
  const changingDoc = JSON.parse((await h.run(['get', `--backup-store=${s.url}`, '-o', 'json'])).stdout) as Record<string, unknown>;
  t.match(changingDoc.versionChange, { id: 'abc123', from: '3.4.23', to: '3.5.17', blocked: { reason: 'member-unhealthy', member: 'c' } });
  await s.store.write('control/etcd-version-change', '{"format": 9}');
  t.match((await h.run(['get', `--backup-store=${s.url}`])).stdout, /^Version change: +unreadable: memfs:.*etcd-version-change: format: unknown format 9/m);
  await s.store.delete('control/etcd-version-change');

  await s.store.write('control/etcd-cluster-spec', 'not json');
  const broken = await h.run(['get', `--backup-store=${s.url}`]);
  t.equal(broken.code, 0, 'a broken spec is shown, not fatal');
  t.match(broken.stdout, /^Cluster spec: unreadable: memfs:.*etcd-cluster-spec/m);
});

t.test('the leader\'s status as get and restore-backup --wait read it: control/status.json mapped, a command\'s outcome (refused restores stay queued)', async (t) => {
  const { store } = freshStore();
  t.equal(await readLeaderStatus(store), undefined, 'nothing written: no view');
  const status: ManagerStatus = {
    format: STATUS_FORMAT, updatedAt: '2026-11-30T11:59:58Z', leader: { member: 'b', term: 7, runner: 'b/n1' }, created: true, etcdAnswered: true,
    members: [
      { name: 'a', healthy: true, managerAlive: true, clientURLs: [], peerURLs: [] },
      { name: 'c', healthy: false, learner: true, managerAlive: false, clientURLs: [], peerURLs: [] },
    ],
    lastBackup: { name: 'b1', startedAt: '2026-11-30T09:00:00Z', storedBytes: 2048 },
    backupsQueued: [], commands: [],
    restore: { commandId: 'cmd-1', backup: 'b1', phase: 'stopping', startedAt: '2026-11-30T11:59:00Z', members: { a: 'stopped', c: 'waiting' } },
  };
  await store.write(STATUS_PATH, formatStatus(status));
  const view = await readLeaderStatus(store, 'cmd-1');
  t.match(view, {
    updatedAt: '2026-11-30T11:59:58Z', leader: { member: 'b', term: 7 },
    members: [{ name: 'a', healthy: true }, { name: 'c', healthy: false, voting: false }],
    lastBackup: { name: 'b1', at: '2026-11-30T09:00:00Z', storedBytes: 2048 },
    activity: 'restoring b1 (command cmd-1): stopping; a stopped, c waiting',
  });
  t.equal(view?.lastRestore, undefined, 'no outcome yet');
  await writeOutcome(store, { format: OUTCOME_FORMAT, id: 'cmd-1', state: 'refused', backup: 'b1', error: 'stored sha256 differs', finishedAt: '2026-11-30T12:00:00Z', leader: 'b', term: 7 });
  t.same((await readLeaderStatus(store, 'cmd-1'))?.lastRestore, { command: 'cmd-1', backup: 'b1', state: 'failed', error: 'refused: stored sha256 differs', finishedAt: '2026-11-30T12:00:00Z' });
  await store.delete(STATUS_PATH);
  t.equal((await readLeaderStatus(store, 'cmd-1'))?.lastRestore?.state, 'failed', 'the outcome alone is read too');
  await store.write(STATUS_PATH, '{"format":"x"}');
  await t.rejects(readLeaderStatus(store), /format "x"/, 'a malformed status is an error, named');
});
