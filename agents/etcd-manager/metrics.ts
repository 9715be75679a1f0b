// /healthz and Prometheus /metrics on an optional port. The registry is the
// manager's own (not prom-client's global one), so two managers in one process
// (tests) never mix their figures.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class ManagerMetrics {
  readonly registry = new Registry();
  readonly isLeader: Gauge;
  readonly members = new Gauge({ name: 'etcd_manager_members', help: 'etcd members this manager knows of', registers: [this.registry] });
  readonly etcdRunning = new Gauge({ name: 'etcd_manager_etcd_running', help: '1 while the local etcd process runs', registers: [this.registry] });
  readonly quarantined = new Gauge({ name: 'etcd_manager_etcd_quarantined', help: '1 while etcd listens on its quarantine client URLs', registers: [this.registry] });
  readonly etcdRestarts = new Counter({ name: 'etcd_manager_etcd_restarts_total', help: 'times the local etcd was restarted after exiting', registers: [this.registry] });
  readonly lastReconcile = new Gauge({ name: 'etcd_manager_last_reconcile_timestamp_seconds', help: 'when the last reconcile finished (unix seconds)', registers: [this.registry] });
  readonly errors = new Counter({ name: 'etcd_manager_errors_total', help: 'errors, by where they happened', labelNames: ['step'], registers: [this.registry] });
  readonly backups = new Counter({ name: 'etcd_manager_backups_total', help: 'backups taken by this manager, by reason (scheduled, on-demand, before-membership-change, before-restore)', labelNames: ['reason'], registers: [this.registry] });
  readonly backupFailures = new Counter({ name: 'etcd_manager_backup_failures_total', help: 'backups that failed, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly versionChangeBlocked = new Counter({ name: 'etcd_manager_version_change_blocked_total', help: 'times a version change stopped on a member (counted once per new reason: member-unhealthy, member-behind, member-unexpected-version, no-leader)', labelNames: ['reason'], registers: [this.registry] });
  readonly versionChangeRefused = new Counter({ name: 'etcd_manager_version_change_refused_total', help: 'version changes the spec asked for that were refused before starting (no rule, a binary missing, not driven in this build)', registers: [this.registry] });
  readonly restores = new Counter({ name: 'etcd_manager_restores_total', help: 'restores carried out by this manager as leader, by result (succeeded, refused, failed)', labelNames: ['result'], registers: [this.registry] });
  // The last backup's facts are known to the acting manager only (from the store): the others report no sample
  // rather than a zero an alert would read as "just backed up" or "never".
  readonly lastBackupTimestamp: Gauge;
  readonly lastBackupAge: Gauge;
  readonly lastBackupSize = new Gauge({ name: 'etcd_manager_backup_last_size_bytes', help: 'size in the store of the last successful backup (acting manager only)', labelNames: ['cluster'], registers: [this.registry] });
  readonly lastBackupDuration = new Gauge({ name: 'etcd_manager_backup_last_duration_seconds', help: 'how long the last successful backup took (acting manager only)', labelNames: ['cluster'], registers: [this.registry] });
  private lastBackupAt?: number;
  private readonly cluster: string;

  /** `isLeader` is asked at every scrape: a value stored once per pass would go stale while the lease lapses. */
  constructor(options: { defaultMetrics?: boolean; isLeader?: () => number; cluster?: string } = {}) {
    const leader = options.isLeader;
    this.cluster = options.cluster ?? 'etcd';
    const self = () => this;
    this.lastBackupTimestamp = new Gauge({ name: 'etcd_manager_backup_last_success_timestamp_seconds', help: 'when the last successful backup started (unix seconds; acting manager only)', labelNames: ['cluster'], registers: [this.registry] });
    this.lastBackupAge = new Gauge({
      name: 'etcd_manager_backup_last_success_age_seconds',
      help: 'age of the last successful backup, at scrape time (acting manager only)',
      labelNames: ['cluster'],
      registers: [this.registry],
      collect(this: Gauge) {
        const at = self().lastBackupAt;
        this.reset();
        if (at !== undefined) this.set({ cluster: self().cluster }, Math.max(0, (Date.now() - at) / 1000));
      },
    });
    this.isLeader = new Gauge({
      name: 'etcd_manager_is_leader',
      help: '1 while this manager holds the leader lease (one-member clusters: while its etcd is healthy)',
      registers: [this.registry],
      ...(leader ? { collect(this: Gauge) { this.set(leader()); } } : {}),
    });
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The last successful backup, or none known (this manager stopped acting, or no backup yet). */
  setLastBackup(last: { startedAtMs: number; storedBytes?: number; durationMs?: number } | undefined): void {
    for (const g of [this.lastBackupTimestamp, this.lastBackupSize, this.lastBackupDuration]) g.reset();
    this.lastBackupAt = last?.startedAtMs;
    if (!last) return;
    const labels = { cluster: this.cluster };
    this.lastBackupTimestamp.set(labels, last.startedAtMs / 1000);
    if (last.storedBytes !== undefined) this.lastBackupSize.set(labels, last.storedBytes);
    if (last.durationMs !== undefined) this.lastBackupDuration.set(labels, last.durationMs / 1000);
  }
}

export type HealthCheck = () => { healthy: boolean; detail: string };

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

export async function startStatusServer(options: { address: string; port: number; metrics: ManagerMetrics; health: HealthCheck }): Promise<StatusServer> {
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
      options.metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.metrics.registry.contentType }).end(text),
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
