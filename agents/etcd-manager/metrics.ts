// /healthz and Prometheus /metrics on an optional port. The manager records its
// figures in plain values (below); prom-client, its registry and the default
// process metrics are loaded only when the status server starts
// (`--metrics-port`, off by default), so a manager without it never loads them
// (agents/etcd-manager/README.md, "Memory"). The registry is the manager's own
// (not prom-client's global one), so two managers in one process (tests) never
// mix their figures.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** A value read at scrape time. */
export class GaugeValue {
  value = 0;
  set(value: number): void {
    this.value = value;
  }
}

/** A counter, by label set (none, or one label's value). */
export class CounterValue<Label extends string = never> {
  private readonly counts = new Map<string, { labels: Partial<Record<Label, string>>; value: number }>();
  inc(labels: Partial<Record<Label, string>> = {}): void {
    const key = JSON.stringify(Object.entries(labels).sort());
    const entry = this.counts.get(key) ?? { labels, value: 0 };
    entry.value += 1;
    this.counts.set(key, entry);
  }
  entries(): Array<{ labels: Partial<Record<Label, string>>; value: number }> {
    return [...this.counts.values()];
  }
}

export class ManagerMetrics {
  readonly members = new GaugeValue();
  readonly etcdRunning = new GaugeValue();
  readonly quarantined = new GaugeValue();
  readonly lastReconcile = new GaugeValue();
  readonly etcdRestarts = new CounterValue();
  readonly errors = new CounterValue<'step'>();
  readonly backups = new CounterValue<'reason'>();
  readonly backupFailures = new CounterValue<'reason'>();
  readonly restores = new CounterValue<'result'>();
  readonly versionChangeBlocked = new CounterValue<'reason'>();
  readonly versionChangeRefused = new CounterValue();
  // The last backup's facts are known to the acting manager only (from the store): the others report no sample
  // rather than a zero an alert would read as "just backed up" or "never".
  private lastBackup?: { startedAtMs: number; storedBytes?: number; durationMs?: number };
  private readonly cluster: string;

  /** `isLeader` is asked at every scrape: a value stored once per pass would go stale while the lease lapses. */
  constructor(private readonly options: { defaultMetrics?: boolean; isLeader?: () => number; cluster?: string } = {}) {
    this.cluster = options.cluster ?? 'etcd';
  }

  /** The last successful backup, or none known (this manager stopped acting, or no backup yet). */
  setLastBackup(last: { startedAtMs: number; storedBytes?: number; durationMs?: number } | undefined): void {
    this.lastBackup = last;
  }

  /** A prom-client registry that reads these values at every scrape (loads prom-client). */
  async registry(): Promise<Registry> {
    const { Counter, Gauge, Registry, collectDefaultMetrics } = await import('prom-client');
    const registry = new Registry();
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [registry], collect(this: InstanceType<typeof Gauge>) { this.set(read()); } });
    const counter = <Label extends string>(name: string, help: string, source: CounterValue<Label>, labelNames: Label[] = []) =>
      new Counter({
        name, help, labelNames, registers: [registry],
        collect(this: InstanceType<typeof Counter>) {
          this.reset();
          for (const { labels, value } of source.entries()) this.inc(labels as Record<string, string>, value);
        },
      });
    // A gauge of the last backup, labelled by cluster, with no sample while none is known.
    const facts = () => this.lastBackup;
    const cluster = this.cluster;
    const lastBackupGauge = (name: string, help: string, read: (last: NonNullable<ManagerMetrics['lastBackup']>) => number | undefined) =>
      new Gauge({
        name, help, labelNames: ['cluster'], registers: [registry],
        collect(this: InstanceType<typeof Gauge>) {
          this.reset();
          const last = facts();
          const value = last ? read(last) : undefined;
          if (value !== undefined) this.set({ cluster }, value);
        },
      });
    const leader = this.options.isLeader;
    gauge('etcd_manager_is_leader', '1 while this manager holds the leader lease (one-member clusters: while its etcd is healthy)', () => leader?.() ?? 0);
    gauge('etcd_manager_members', 'etcd members this manager knows of', () => this.members.value);
    gauge('etcd_manager_etcd_running', '1 while the local etcd process runs', () => this.etcdRunning.value);
    gauge('etcd_manager_etcd_quarantined', '1 while etcd listens on its quarantine client URLs', () => this.quarantined.value);
    counter('etcd_manager_etcd_restarts_total', 'times the local etcd was restarted after exiting', this.etcdRestarts);
    gauge('etcd_manager_last_reconcile_timestamp_seconds', 'when the last reconcile finished (unix seconds)', () => this.lastReconcile.value);
    counter('etcd_manager_errors_total', 'errors, by where they happened', this.errors, ['step']);
    counter('etcd_manager_backups_total', 'backups taken by this manager, by reason (scheduled, on-demand, before-membership-change, before-restore)', this.backups, ['reason']);
    counter('etcd_manager_backup_failures_total', 'backups that failed, by reason', this.backupFailures, ['reason']);
    counter('etcd_manager_version_change_blocked_total', 'times a version change stopped on a member (counted once per new reason: member-unhealthy, member-behind, member-unexpected-version, no-leader)', this.versionChangeBlocked, ['reason']);
    counter('etcd_manager_version_change_refused_total', 'version changes the spec asked for that were refused before starting (no rule, a binary missing, the v2 migration not driven in this build)', this.versionChangeRefused);
    counter('etcd_manager_restores_total', 'restores carried out by this manager as leader, by result (succeeded, refused, failed)', this.restores, ['result']);
    lastBackupGauge('etcd_manager_backup_last_success_timestamp_seconds', 'when the last successful backup started (unix seconds; acting manager only)', (b) => b.startedAtMs / 1000);
    lastBackupGauge('etcd_manager_backup_last_success_age_seconds', 'age of the last successful backup, at scrape time (acting manager only)', (b) => Math.max(0, (Date.now() - b.startedAtMs) / 1000));
    lastBackupGauge('etcd_manager_backup_last_size_bytes', 'size in the store of the last successful backup (acting manager only)', (b) => b.storedBytes);
    lastBackupGauge('etcd_manager_backup_last_duration_seconds', 'how long the last successful backup took (acting manager only)', (b) => (b.durationMs === undefined ? undefined : b.durationMs / 1000));
    if (this.options.defaultMetrics) collectDefaultMetrics({ register: registry });
    return registry;
  }
}

export type HealthCheck = () => { healthy: boolean; detail: string };

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

export async function startStatusServer(options: { address: string; port: number; metrics: ManagerMetrics; health: HealthCheck }): Promise<StatusServer> {
  const registry = await options.metrics.registry();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const { healthy, detail } = options.health();
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(`${healthy ? 'ok' : 'unhealthy'}: ${detail}\n`);
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
