// The manager's figures as /metrics shows them: plain values read at scrape
// time, labelled counters, and the last backup's gauges present only while
// this manager knows a last backup (no sample, not a zero, otherwise).
import t from 'tap';
import { ManagerMetrics } from '../../agents/etcd-manager/metrics.js';

const sampleLines = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

t.test('values, counters by label, last-backup gauges only while known', async (t) => {
  let leading = 0;
  const m = new ManagerMetrics({ isLeader: () => leading, cluster: 'etcd-events' });
  const registry = await m.registry();
  m.members.set(3);
  m.backups.inc({ reason: 'scheduled' });
  m.backups.inc({ reason: 'scheduled' });
  m.backups.inc({ reason: 'on-demand' });
  m.restores.inc({ result: 'refused' });
  m.versionChangeBlocked.inc({ reason: 'member-unhealthy' });
  m.versionChangeRefused.inc();
  let text = await registry.metrics();
  t.same(sampleLines(text, 'etcd_manager_members'), ['etcd_manager_members 3']);
  t.same(sampleLines(text, 'etcd_manager_is_leader'), ['etcd_manager_is_leader 0']);
  t.same(sampleLines(text, 'etcd_manager_backups_total').sort(), ['etcd_manager_backups_total{reason="on-demand"} 1', 'etcd_manager_backups_total{reason="scheduled"} 2']);
  t.same(sampleLines(text, 'etcd_manager_restores_total'), ['etcd_manager_restores_total{result="refused"} 1']);
  t.same(sampleLines(text, 'etcd_manager_version_change_blocked_total'), ['etcd_manager_version_change_blocked_total{reason="member-unhealthy"} 1']);
  t.same(sampleLines(text, 'etcd_manager_version_change_refused_total'), ['etcd_manager_version_change_refused_total 1']);
  t.same(sampleLines(text, 'etcd_manager_backup_last_success_timestamp_seconds'), [], 'no last backup known: no sample');

  leading = 1;
  const startedAtMs = Date.now() - 90_000;
  m.setLastBackup({ startedAtMs, storedBytes: 4096, durationMs: 1500 });
  text = await registry.metrics();
  t.same(sampleLines(text, 'etcd_manager_is_leader'), ['etcd_manager_is_leader 1'], 'asked at scrape time');
  t.same(sampleLines(text, 'etcd_manager_backup_last_success_timestamp_seconds'), [`etcd_manager_backup_last_success_timestamp_seconds{cluster="etcd-events"} ${startedAtMs / 1000}`]);
  t.same(sampleLines(text, 'etcd_manager_backup_last_size_bytes'), ['etcd_manager_backup_last_size_bytes{cluster="etcd-events"} 4096']);
  t.same(sampleLines(text, 'etcd_manager_backup_last_duration_seconds'), ['etcd_manager_backup_last_duration_seconds{cluster="etcd-events"} 1.5']);
  const age = Number(sampleLines(text, 'etcd_manager_backup_last_success_age_seconds')[0]?.split(' ')[1]);
  t.ok(age >= 90 && age < 3600, `age computed at scrape (${age} s)`);

  m.setLastBackup(undefined);
  text = await registry.metrics();
  for (const name of ['etcd_manager_backup_last_success_timestamp_seconds', 'etcd_manager_backup_last_success_age_seconds', 'etcd_manager_backup_last_size_bytes', 'etcd_manager_backup_last_duration_seconds']) {
    t.same(sampleLines(text, name), [], `${name}: cleared when this manager stops acting`);
  }
});
