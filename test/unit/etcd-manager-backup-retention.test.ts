// Backup retention: the pure planner over two years of synthetic names (one
// backup every 15 minutes), and cleanup passes that list the store exactly once.
import t, { type Test } from 'tap';
import { formatBackupName, parseBackupName } from '../../agents/etcd-manager/backup/names.js';
import { cleanupBackups, DEFAULT_RETENTION, planRetention, type RetentionPlan } from '../../agents/etcd-manager/backup/retention.js';
import { listBackups } from '../../agents/etcd-manager/backup/list.js';
import { openStore } from '../../shared/store/index.js';
import { countingStore } from '../harness/counting-store.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** A backup every `everyMs` for `spanMs`, the newest at `nowMs`; the suffix varies so names are not all alike. */
function synthetic(nowMs: number, spanMs: number, everyMs: number): string[] {
  const names: string[] = [];
  for (let t = nowMs; t > nowMs - spanMs; t -= everyMs) names.push(formatBackupName(t, (t / MIN) % 1000));
  return names.reverse();
}

function timeOf(name: string): number {
  return parseBackupName(name)!.time.getTime();
}

function byReason(plan: RetentionPlan): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const k of plan.keep) (out[k.reason] ??= []).push(k.name);
  return out;
}

/** Independent check of the rules: every bucket with a backup in its band keeps exactly its oldest. */
function checkBuckets(t: Test, names: string[], plan: RetentionPlan, nowMs: number): void {
  const kept = new Set(plan.keep.map((k) => k.name));
  const buckets = new Map<string, string[]>();
  for (const name of names) {
    const age = nowMs - timeOf(name);
    if (age < DEFAULT_RETENTION.keepAllForMs) {
      if (!kept.has(name)) t.fail(`${name} is under an hour old and was not kept`);
      continue;
    }
    const key = age < DEFAULT_RETENTION.hourlyForMs ? `h${Math.floor(timeOf(name) / HOUR)}` : age < DEFAULT_RETENTION.dailyForMs ? `d${Math.floor(timeOf(name) / DAY)}` : 'gone';
    (buckets.get(key) ?? buckets.set(key, []).get(key)!).push(name);
  }
  let bad = 0;
  for (const [key, members] of buckets) {
    const keptHere = members.filter((n) => kept.has(n));
    if (key === 'gone') bad += keptHere.length;
    else if (keptHere.length !== 1 || keptHere[0] !== members.sort()[0]) bad++;
  }
  t.equal(bad, 0, 'each hourly and daily bucket keeps exactly its oldest backup; nothing past the daily band is kept');
}

t.test('two years of backups every 15 minutes, now at midnight UTC: counts per band', async (t) => {
  const now = Date.parse('2026-11-30T00:00:00Z');
  const names = synthetic(now, 730 * DAY, 15 * MIN);
  t.equal(names.length, 730 * 96, 'a backup every 15 minutes for 730 days');
  const plan = planRetention(names, now);
  const reasons = byReason(plan);
  t.equal(reasons.recent?.length, 4, 'the last hour: all 4 backups kept');
  t.equal(reasons.hourly?.length, 168, 'one per UTC hour for the 7 days after that (7 × 24)');
  t.equal(reasons.daily?.length, 84, 'one per UTC day from day 7 to day 90');
  t.equal(plan.keep.length + plan.delete.length, names.length, 'every name is kept or deleted');
  t.equal(plan.delete.length, names.length - 4 - 168 - 84);
  t.same(reasons.recent, names.slice(-4), 'the newest hour is intact');
  t.ok(plan.delete.every((n) => !plan.keep.some((k) => k.name === n)));
  t.ok(plan.keep.every((k) => now - timeOf(k.name) < 90 * DAY), 'nothing older than 90 days is kept');
  t.ok(plan.delete.includes(names[0]), 'the oldest backup (two years old) is deleted');
  const hourly = plan.keep.filter((k) => k.reason === 'hourly').map((k) => new Date(timeOf(k.name)));
  t.same(hourly.filter((d) => d.getUTCMinutes() !== 0).map((d) => d.toISOString()), ['2026-11-23T00:15:00.000Z'], 'each hour keeps its :00 backup, except the oldest hour, whose :00 is already in the daily band');
  checkBuckets(t, names, plan, now);
});

t.test('at an odd time of day, with irregular gaps: the bucket rules hold', async (t) => {
  const now = Date.parse('2026-11-30T13:37:21Z');
  // Every 7 to 29 minutes, deterministic.
  const names: string[] = [];
  let x = 12345;
  for (let at = now; at > now - 730 * DAY; ) {
    names.push(formatBackupName(at, x % 1_000_000));
    x = (x * 1103515245 + 12345) % 2 ** 31;
    at -= (7 + (x % 23)) * MIN;
  }
  const plan = planRetention(names, now);
  checkBuckets(t, names, plan, now);
  const reasons = byReason(plan);
  t.ok(reasons.recent.length >= 2, 'the last hour kept whole');
  t.ok(reasons.hourly.length >= 167 && reasons.hourly.length <= 169, `about one per hour (${reasons.hourly.length})`);
  t.ok(reasons.daily.length >= 83 && reasons.daily.length <= 85, `about one per day (${reasons.daily.length})`);
});

t.test('names that do not parse are kept, never deleted; duplicates in the input are harmless', async (t) => {
  const now = Date.parse('2026-11-30T00:00:00Z');
  const old = formatBackupName(now - 400 * DAY, 1);
  const plan = planRetention(['manual-copy', '2026-02-30T00:00:00Z-000001', old, old, 'control'], now);
  t.same(plan.delete, [old]);
  t.same(plan.keep.map((k) => [k.name, k.reason]), [['2026-02-30T00:00:00Z-000001', 'unparseable'], ['control', 'unparseable'], ['manual-copy', 'unparseable']]);
  t.throws(() => planRetention([], now, { keepAllForMs: HOUR, hourlyForMs: 30 * MIN, dailyForMs: DAY }), /hourly band/);
});

t.test('a cleanup pass lists the store exactly once and deletes what the plan says', async (t) => {
  const url = `memfs://retention-${process.pid}/backups/etcd/main`;
  const inner = openStore(url);
  const now = Date.parse('2026-11-30T00:00:00Z');
  const names = synthetic(now, 10 * DAY, 15 * MIN); // 960 backups, 3 objects each
  for (const name of names) {
    await inner.write(`${name}/etcd.backup.gz`, 'x');
    await inner.write(`${name}/_mooring_backup.json`, '{}');
    await inner.write(`${name}/_etcd_backup.meta`, '{}');
  }
  // Not backups: control files, discovery records, an incomplete upload (old and young), a foreign folder.
  await inner.write('control/etcd-cluster-spec', '{"memberCount":3,"etcdVersion":"3.4.23"}');
  await inner.write('control/2026-11-29T00:00:00Z-000000/_command.json', '{}');
  await inner.write('discovery/a.json', '{}');
  const staleIncomplete = formatBackupName(now - 2 * DAY, 7);
  const youngIncomplete = formatBackupName(now - 10 * MIN, 7);
  await inner.write(`${staleIncomplete}/etcd.backup.gz`, 'half');
  await inner.write(`${youngIncomplete}/etcd.backup.gz`, 'being written');
  await inner.write('someones-folder/file', 'kept');

  const store = countingStore(inner);
  const expected = planRetention(names, now);
  const result = await cleanupBackups(store, { now });
  t.equal(store.calls.list, 1, 'one listing per pass');
  t.equal(store.calls.listChildren, 0);
  t.equal(store.calls.read + store.calls.readIfExists + store.calls.exists, 0, 'no reads: the plan needs names only');
  t.same(result.deleted, expected.delete);
  t.same(result.deletedIncomplete, [staleIncomplete], 'an abandoned upload past the bound is removed, a young one is not');
  t.same(result.failed, []);
  t.equal(store.calls.delete, expected.delete.length * 3 + 1, 'each deleted backup is its three objects; the stale upload its one');

  const after = await listBackups(inner);
  t.same(after.backups.map((b) => b.name), expected.keep.map((k) => k.name));
  t.same(after.incomplete.map((i) => i.name), [youngIncomplete, 'someones-folder']);
  t.ok(await inner.exists('control/etcd-cluster-spec'));
  t.ok(await inner.exists('discovery/a.json'));

  store.reset();
  const again = await cleanupBackups(store, { now });
  t.equal(store.calls.list, 1, 'the next pass: again one listing');
  t.same(again.deleted, [], 'and nothing more to delete');
  t.equal(store.calls.delete, 0);
});

t.test('a pass cut off after a meta was deleted leaves an incomplete folder that a later pass removes', async (t) => {
  const store = openStore(`memfs://retention-cut-${process.pid}/b`);
  const now = Date.parse('2026-11-30T00:00:00Z');
  const name = formatBackupName(now - 200 * DAY, 1);
  await store.write(`${name}/etcd.backup.gz`, 'x');
  await store.write(`${name}/_etcd_backup.meta`, '{}');
  await store.delete(`${name}/_etcd_backup.meta`); // as a pass would, then "crash"
  const listing = await listBackups(store);
  t.same(listing.backups, [], 'no longer a backup');
  const result = await cleanupBackups(store, { now });
  t.same(result.deletedIncomplete, [name]);
  t.same(await store.list(), []);
});
