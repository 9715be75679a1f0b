// The main job, end to end, on the local cloud: three control-plane instances
// boot the cached Debian 12 image from user-data (systemd-nspawn, real systemd),
// download the agent from the mirror, run nodeup, and etcd-manager forms etcd
// main and events on tagged loop-image volumes over the instances' 198.18.x.y
// addresses. Every etcd check runs inside an instance with etcdctl over TLS.
//
// One cluster is brought up once and reused, in order: cold start, instance
// loss (with protokube's api.internal names checked around the replacement),
// reboot of every instance, backups and a restore (operator commands from the
// host), cleanup (also of what a crash leaves).
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import {
  BINARY, etcdctl, imageInodes, instances, leftovers, localCloudSkipReason, recordedProcesses, startCloud, stopCloud, type CloudHandle, type InstanceJSON,
} from '../harness/local-cloud.js';
import { checkApiInternalNames, type Instance } from './protokube-names.check.js';

const skip = await localCloudSkipReason();
if (skip) console.log(`# skipping local cloud e2e: ${skip}`);
// The whole file runs for minutes (boots, a replacement, reboots): the runner's per-file limit is raised for it.
else t.setTimeout(40 * 60_000);

const CLUSTER = 'e2e.local.example.com';
const ZONES = ['local-a', 'local-b', 'local-c'];
const WAIT = '8m';

// A little under the file's limit, so that this test's own timeout fails it and its teardown still runs.
t.test('local cloud: three control-plane instances from user-data to etcd', { skip, timeout: 37 * 60_000 }, async (t) => {
  // Our own folder, removed only after the cloud is down: its overlays are mounted inside it. The teardown
  // runs on failures too; if this process is killed instead (tap's file timeout), the harness's reaper does it.
  const dir = mkdtempSync(join(tmpdir(), 'mooring-lc-'));
  const c: CloudHandle = await startCloud(dir);
  t.teardown(async () => {
    const failed = await stopCloud(dir, c.reaper);
    if (failed) console.error(`# ${failed}`);
  });
  const ok = async (t: Test, what: string, args: string[]) => {
    const r = await c.mooring(...args);
    t.equal(r.exitCode, 0, `${what}${r.exitCode === 0 ? '' : `: ${r.stderr}`}`);
    return r;
  };
  const ready = async (t: Test, what: string) => {
    const r = await c.mooring('validate', 'cluster', CLUSTER, '--wait', WAIT);
    t.equal(r.exitCode, 0, `${what}: validate cluster says ready`);
    if (r.exitCode !== 0) t.comment(String(r.stdout), String(r.stderr));
    return r.exitCode === 0;
  };
  /** Members of one etcd cluster as seen from inside an instance, over TLS: name → status. */
  const members = async (id: string, port: number): Promise<string[]> => {
    const r = await c.inside(CLUSTER, id, etcdctl(port, 'member list -w simple'));
    return String(r.stdout).split('\n').filter((l) => l.trim() !== '').map((l) => l.split(', ').slice(1, 3).join(' '));
  };
  const checkBoth = async (t: Test, id: string, why: string) => {
    for (const [etcd, port] of [['main', 4001], ['events', 4002]] as const) {
      const seen = await members(id, port);
      t.equal(seen.length, 3, `${why}: ${etcd} has three members (seen from ${id})`);
      t.ok(seen.every((m) => m.startsWith('started ')), `${why}: every ${etcd} member started (${seen.join(', ')})`);
      const health = await c.inside(CLUSTER, id, etcdctl(port, 'endpoint health --cluster'));
      t.equal(health.exitCode, 0, `${why}: ${etcd} healthy on every endpoint, over TLS${health.exitCode === 0 ? '' : `: ${String(health.stdout)} ${String(health.stderr)}`}`);
    }
  };

  await t.test('cold start: update cluster --yes to healthy main and events, three members each', async (t) => {
    await ok(t, 'create cluster', ['create', 'cluster', CLUSTER, '--cloud', 'local', '--zones', ZONES.join(','), '--control-plane-count', '3', '--node-count', '0']);
    const update = await ok(t, 'update cluster --yes', ['update', 'cluster', CLUSTER, '--yes']);
    t.equal((String(update.stdout).match(/launched instance i-[0-9a-f]+/g) ?? []).length, 3, 'three instances launched');
    t.equal((String(update.stdout).match(/created volume /g) ?? []).length, 6, 'six volumes: main and events per member');

    // The network rule: the instances and the bridge have no default route, and no
    // interface of the host namespace has a 198.18.x.y address.
    const list = await instances(c, CLUSTER);
    t.equal(list.length, 3);
    for (const netns of [...list.map((i) => i.netns), c.layout.bridgeNetns]) {
      t.equal((await execa('ip', ['-n', netns, 'route', 'show', 'default'])).stdout.trim(), '', `${netns}: no default route`);
    }
    t.notMatch((await execa('ip', ['-o', 'addr'])).stdout, /198\.18\./, 'no 198.18.x.y address in the host namespace');

    if (!(await ready(t, 'cold start'))) return;
    const now = await instances(c, CLUSTER);
    t.same(now.map((i) => i.zone).sort(), ZONES, 'one instance per zone');
    for (const i of now) {
      const nodeup = await c.inside(CLUSTER, i.id, 'journalctl -b -u mooring-nodeup -o cat --no-pager | grep "tasks:" | tail -1');
      t.match(String(nodeup.stdout), / 0 failed, /, `${i.id}: nodeup ran with no failure`);
      const skipped = await c.inside(CLUSTER, i.id, 'journalctl -b -u mooring-nodeup -o cat --no-pager | grep "skipped   Asset:/usr/local/bin/kubelet"');
      t.match(String(skipped.stdout), /kubelet: not in the local mirror/, `${i.id}: the kubelet asset is reported skipped, with the reason`);
    }
    await checkBoth(t, now[0].id, 'cold start');
    for (const [etcd, port] of [['main', 4001], ['events', 4002]] as const) {
      const put = await c.inside(CLUSTER, now[0].id, etcdctl(port, `put /e2e/before-loss ${etcd}-value`));
      t.equal(put.exitCode, 0, `a key written into ${etcd}`);
    }
  });

  await t.test('instance loss: destroyed with its volumes wiped, a replacement from the same user-data; api.internal follows', async (t) => {
    // protokube's names (issue 11), checked around this same replacement: before it every instance resolves
    // api.internal.<cluster> to the live control plane, after it the new address is in and the lost one out.
    const asInstance = (i: InstanceJSON): Instance => ({
      name: i.id,
      address: i.address,
      // This cluster has control-plane groups only (--node-count 0), named control-plane-<zone>.
      role: i.instanceGroup.startsWith('control-plane') ? 'control-plane' : 'node',
      exec: async (argv) => {
        const r = await c.mooring('ssh', CLUSTER, i.id, '--', ...argv);
        return { code: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
      },
    });
    let lost: InstanceJSON | undefined;
    let replacement: InstanceJSON | undefined;
    const loseAndReplace = async (id: string): Promise<Instance> => {
      const gone = (await instances(c, CLUSTER)).find((i) => i.id === id) as InstanceJSON;
      lost = gone;
      const volumes = JSON.parse(String((await ok(t, 'get volumes', ['get', 'volumes', CLUSTER, '-o', 'json'])).stdout)) as { items: Array<{ id: string; holder?: string }> };
      const held = volumes.items.filter((v) => v.holder === gone.id).map((v) => v.id);
      t.equal(held.length, 2, `the lost instance held its main and events volumes (${held.join(', ')})`);
      await ok(t, 'delete instance --force', ['delete', 'instance', CLUSTER, gone.id, '--yes', '--force']);
      // The disk is lost too: the images come back blank (a new, sparse, unformatted file).
      for (const volume of held) {
        const image = join(c.layout.volumeDir(CLUSTER), `${volume}.img`);
        truncateSync(image, 0);
        truncateSync(image, 1024 * 1024 * 1024);
      }
      const update = await ok(t, 'update cluster --yes boots a replacement', ['update', 'cluster', CLUSTER, '--yes']);
      t.equal((String(update.stdout).match(new RegExp(`launched instance i-[0-9a-f]+ \\(${gone.instanceGroup}`, 'g')) ?? []).length, 1, `one replacement in the lost instance's group (${gone.instanceGroup})`);
      if (!(await ready(t, 'after the loss'))) throw new Error('the cluster was not ready after the loss');
      replacement = (await instances(c, CLUSTER)).find((i) => i.instanceGroup === gone.instanceGroup && i.id !== gone.id);
      if (!replacement) throw new Error(`no replacement in ${gone.instanceGroup}`);
      return asInstance(replacement);
    };
    const running = async () => (await instances(c, CLUSTER)).filter((i) => i.state === 'running').map(asInstance);
    try {
      await checkApiInternalNames(t, { cluster: CLUSTER, instances: running, replace: loseAndReplace });
    } catch (err) {
      t.fail(`api.internal names: ${(err as Error).message}`);
    }
    // The etcd checks do not depend on protokube's: when its check failed before replacing anything, the loss happens here.
    if (!lost) {
      const first = (await instances(c, CLUSTER)).find((i) => i.zone === 'local-a') as InstanceJSON;
      await loseAndReplace(first.id).catch((err: Error) => t.fail(err.message));
    }
    if (!lost || !replacement) return;
    t.not(replacement.id, lost.id, 'a new instance');
    await checkBoth(t, replacement.id, 'after the loss');
    for (const [etcd, port] of [['main', 4001], ['events', 4002]] as const) {
      const get = await c.inside(CLUSTER, replacement.id, etcdctl(port, 'get /e2e/before-loss --print-value-only'));
      t.equal(String(get.stdout).trim(), `${etcd}-value`, `${etcd}: the earlier key is on the replacement's own (wiped) member, without a restore`);
    }
    const mainLog = await c.inside(CLUSTER, replacement.id, 'journalctl -u etcd-manager@main -o cat --no-pager');
    t.match(String(mainLog.stdout), /blank volume: formatting ext4/, 'the replacement found its volume blank and formatted it');
  });

  await t.test('reboot of every instance: nodeup changes nothing, the clusters come back with their data', async (t) => {
    const before = await instances(c, CLUSTER);
    for (const i of before) await c.mooring('ssh', CLUSTER, i.id, '--', 'systemctl', 'reboot');
    // Each instance's supervisor boots it again (nspawn exits 133 on a reboot): wait for the second boot.
    const deadline = Date.now() + 5 * 60_000;
    let rebooted: InstanceJSON[] = [];
    while (Date.now() < deadline) {
      rebooted = await instances(c, CLUSTER);
      if (rebooted.every((i) => i.boots === (before.find((b) => b.id === i.id)?.boots ?? 0) + 1 && i.state === 'running')) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    t.same(rebooted.map((i) => i.id).sort(), before.map((i) => i.id).sort(), 'the same instances');
    t.ok(rebooted.every((i) => i.boots === (before.find((b) => b.id === i.id)?.boots ?? 0) + 1), 'each booted once more');
    if (!(await ready(t, 'after the reboot'))) return;
    for (const i of rebooted) {
      const run = await c.inside(CLUSTER, i.id, 'journalctl -b -u mooring-nodeup -o cat --no-pager | grep "tasks:" | tail -1');
      t.match(String(run.stdout), / 0 changed, .* 0 failed, /, `${i.id}: nodeup's run at this boot changed nothing (${String(run.stdout).trim()})`);
      // The cloud-init stand-in runs beside nodeup at a boot, not before it: the cluster can be ready while
      // it still waits for its metadata token (CI saw the first boot's last line). Its unit's end is waited
      // for: a oneshot kept after exit ends active or failed (inactive is also a start job still queued).
      const settled = await c.inside(CLUSTER, i.id, 'for n in $(seq 1 180); do s=$(systemctl show -P ActiveState mooring-cloud-init.service); case "$s" in active|failed) break;; esac; sleep 1; done; echo "$s"');
      const userData = await c.inside(CLUSTER, i.id, 'tail -1 /var/log/mooring-cloud-init.log');
      t.match(String(userData.stdout), /already ran/, `${i.id}: user-data ran once per instance, not again at the reboot (unit ${String(settled.stdout).trim()}; log: ${String(userData.stdout).trim()})`);
    }
    await checkBoth(t, rebooted[0].id, 'after the reboot');
    for (const [etcd, port] of [['main', 4001], ['events', 4002]] as const) {
      const get = await c.inside(CLUSTER, rebooted[1].id, etcdctl(port, 'get /e2e/before-loss --print-value-only'));
      t.equal(String(get.stdout).trim(), `${etcd}-value`, `${etcd}: data back after the reboot`);
    }
  });

  // ── Backups ───────────────────────────────────────────────────────────────────────────────────────
  // On this same cluster after the reboot, with the operator commands run from the host against the
  // cloud's S3 state store (the instances' managers are reached only through the store): the first
  // leader's scheduled backup is there and verifies; `etcd-manager backup` takes one on demand;
  // `restore-backup --wait` brings the data of that backup back on all three members, with no restart.
  await t.test('backups: a scheduled and an on-demand backup appear in the store and verify; restore-backup brings earlier data back on all three', async (t) => {
    const store = `${c.env.MOORING_STATE_STORE}/${CLUSTER}/backups/etcd/main`;
    const em = (...args: string[]) => execa(join(dirname(BINARY), 'etcd-manager'), [...args, `--backup-store=${store}`], { reject: false, extendEnv: false, env: c.env, timeout: 10 * 60_000 });
    const list = async () => {
      const r = await em('list-backups', '--details', '-o', 'json');
      t.equal(r.exitCode, 0, `list-backups${r.exitCode === 0 ? '' : `: ${r.stderr}`}`);
      return r.exitCode === 0 ? (JSON.parse(String(r.stdout)) as { backups: Array<{ name: string; reason?: string | null; complete: boolean }> }).backups : [];
    };
    const verify = async (name: string, what: string) => {
      const r = await em('verify-backup', name, '-o', 'json');
      t.equal(r.exitCode, 0, `${what} ${name} verifies${r.exitCode === 0 ? '' : `: ${r.stderr}`}`);
    };
    const why = (b: { reason?: string | null }) => b.reason?.split(':')[0]; // "on-demand: <the request's reason>"
    const scheduled = (await list()).filter((b) => why(b) === 'scheduled');
    t.ok(scheduled.length >= 1, `a scheduled backup is in the store (${scheduled.map((b) => b.name).join(', ')})`);
    if (scheduled.length > 0) await verify(scheduled[scheduled.length - 1].name, 'the scheduled backup');

    const id = (await instances(c, CLUSTER))[0].id;
    const put = async (key: string, value: string) => t.equal((await c.inside(CLUSTER, id, etcdctl(4001, `put ${key} ${value}`))).exitCode, 0, `put ${key}=${value}`);
    await put('/e2e/restore-marker', 'in-the-backup');
    const taken = await em('backup', '-o', 'json', '--timeout=5m');
    t.equal(taken.exitCode, 0, `etcd-manager backup from the host${taken.exitCode === 0 ? '' : `: ${taken.stderr}`}`);
    if (taken.exitCode !== 0) return;
    const name = (JSON.parse(String(taken.stdout)) as { backup?: { name: string } }).backup?.name ?? '';
    t.ok((await list()).some((b) => b.name === name && b.complete && why(b) === 'on-demand'), `the on-demand backup ${name} is listed as such`);
    await verify(name, 'the on-demand backup');

    await put('/e2e/restore-marker', 'after-the-backup');
    await put('/e2e/after-backup', 'gone-after-restore');
    const restore = await em('restore-backup', name, '--wait', '--timeout=8m', '-o', 'json');
    t.equal(restore.exitCode, 0, `restore-backup ${name} --wait${restore.exitCode === 0 ? '' : `: ${restore.stderr}`}`);
    t.match(JSON.parse(String(restore.stdout || '{}')), { backup: name, state: 'succeeded' }, 'the leader reports the restore done');
    if (!(await ready(t, 'after the restore'))) return;
    for (const i of await instances(c, CLUSTER)) {
      const marker = await c.inside(CLUSTER, i.id, etcdctl(4001, 'get /e2e/restore-marker --print-value-only'));
      t.equal(String(marker.stdout).trim(), 'in-the-backup', `${i.id}: the backup's value is back`);
      const later = await c.inside(CLUSTER, i.id, etcdctl(4001, 'get /e2e/after-backup --print-value-only'));
      t.equal(String(later.stdout).trim(), '', `${i.id}: a key written after the backup is gone`);
      const earlier = await c.inside(CLUSTER, i.id, etcdctl(4001, 'get /e2e/before-loss --print-value-only'));
      t.equal(String(earlier.stdout).trim(), 'main-value', `${i.id}: older data kept`);
    }
    await checkBoth(t, id, 'after the restore');
  });

  await t.test('cleanup: delete cluster releases every process, mount, loop device, overlay and namespace, also after a crash', async (t) => {
    const list = await instances(c, CLUSTER);
    const known = { processes: recordedProcesses(c.layout), inodes: imageInodes(c.layout), instanceIds: list.map((i) => i.id) };
    const during = await leftovers(c.layout, known);
    t.equal(during.processes.length, 3 * 3 + 2, `while running, the test sees the cloud's processes: per instance its supervisor, nspawn and PID 1, and the two daemons (${during.processes.join(', ')})`);
    t.ok(during.mounts.length >= 3, `and its overlays (${during.mounts.length})`);
    t.ok(during.loopDevices.length >= 6, `and its loop devices (${during.loopDevices.length})`);
    t.ok(during.namespaces.length >= 4, `and its namespaces (${during.namespaces.length})`);

    // A crash: every instance supervisor dies at once (kill -9), leaving instances running with nobody watching.
    for (const p of known.processes.filter((p) => p.what.endsWith(' supervisor'))) process.kill(p.record.pid, 'SIGKILL');
    await ok(t, 'delete cluster --yes after the crash', ['delete', 'cluster', CLUSTER, '--yes', '--include-backups']);
    // The cloud's own daemons and bridge stay: they belong to the local cloud, not to the cluster.
    const afterDelete = await leftovers(c.layout, known, { withDaemons: false });
    t.same(afterDelete, { processes: [], mounts: [], loopDevices: [], namespaces: [c.layout.bridgeNetns], nspawn: [] }, 'nothing of the cluster is left (the bridge belongs to the cloud)');
    t.notOk(existsSync(c.layout.clusterDir(CLUSTER)), 'its folder is gone');

    await ok(t, 'local-cloud down --purge', ['local-cloud', 'down', '--purge']);
    t.same(await leftovers(c.layout, known), { processes: [], mounts: [], loopDevices: [], namespaces: [], nspawn: [] }, 'nothing of the cloud is left');
  });
});
