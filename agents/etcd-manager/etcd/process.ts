// Runs one etcd process and keeps it running: configured through ETCD_*
// environment variables (as kOps' etcd-manager does), restarted when it exits
// with a capped exponential backoff, stopped with SIGTERM then SIGKILL by PID.
// Quarantine moves the client listeners to the quarantine URLs (a restart), so
// the API server cannot reach an etcd in the middle of a risky step.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from '../../../shared/log.js';

export interface EtcdTLSFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

export interface EtcdProcessSpec {
  binary: string;
  name: string;
  /** <volume>/data/<cluster-token> */
  dataDir: string;
  clusterToken: string;
  peerURLs: string[];
  clientURLs: string[];
  quarantineClientURLs: string[];
  /** member name → peer URLs */
  initialCluster: Record<string, string[]>;
  initialClusterState: 'new' | 'existing';
  /** Address the listeners bind (URLs may name DNS names; etcd listens on IPs). */
  listenAddress: string;
  peerTLS?: EtcdTLSFiles;
  clientTLS?: EtcdTLSFiles;
  /** An etcd 2.x cluster: its data and its clients are the v2 API's (etcd 3.4 and 3.5 serve it only when asked). */
  v2API?: boolean;
}

export interface SupervisorOptions {
  log: Logger;
  /** First restart delay; doubles up to maxBackoffMs. kOps restarts within 10 s. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A run this long resets the backoff. */
  stableAfterMs?: number;
  stopTimeoutMs?: number;
  /** Every exit; `unexpected` unless stop() (or a quarantine switch) asked for it. */
  onExit?: (info: { code: number | null; signal: NodeJS.Signals | null; unexpected: boolean }) => void;
}

/** Host part replaced by the listen address; a URL already on an IP keeps it. */
export function listenURL(url: string, address: string): string {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0) u.hostname = isIP(address) === 6 ? `[${address}]` : address;
  return u.toString().replace(/\/$/, '');
}

/** The environment etcd reads its whole configuration from. */
export function etcdEnvironment(spec: EtcdProcessSpec, quarantined: boolean): Record<string, string> {
  const clientURLs = quarantined ? spec.quarantineClientURLs : spec.clientURLs;
  const env: Record<string, string> = {
    ETCD_NAME: spec.name,
    ETCD_DATA_DIR: spec.dataDir,
    ETCD_INITIAL_CLUSTER_TOKEN: spec.clusterToken,
    ETCD_INITIAL_CLUSTER_STATE: spec.initialClusterState,
    ETCD_INITIAL_CLUSTER: Object.entries(spec.initialCluster)
      .flatMap(([name, urls]) => urls.map((u) => `${name}=${u}`))
      .join(','),
    ETCD_INITIAL_ADVERTISE_PEER_URLS: spec.peerURLs.join(','),
    ETCD_LISTEN_PEER_URLS: spec.peerURLs.map((u) => listenURL(u, spec.listenAddress)).join(','),
    ETCD_ADVERTISE_CLIENT_URLS: clientURLs.join(','),
    ETCD_LISTEN_CLIENT_URLS: clientURLs.map((u) => listenURL(u, spec.listenAddress)).join(','),
    ETCD_STRICT_RECONFIG_CHECK: 'true',
    ETCD_ENABLE_V2: spec.v2API ? 'true' : 'false',
    // A member that comes back (a restart, a version change) must not depose a healthy leader by
    // calling an election of its own: with pre-vote it first asks whether it could win. 3.5 has it on
    // by default; 3.4 does not.
    ETCD_PRE_VOTE: 'true',
  };
  if (spec.peerTLS) {
    Object.assign(env, {
      ETCD_PEER_CERT_FILE: spec.peerTLS.certFile,
      ETCD_PEER_KEY_FILE: spec.peerTLS.keyFile,
      ETCD_PEER_TRUSTED_CA_FILE: spec.peerTLS.caFile,
      ETCD_PEER_CLIENT_CERT_AUTH: 'true',
    });
  }
  if (spec.clientTLS) {
    Object.assign(env, {
      ETCD_CERT_FILE: spec.clientTLS.certFile,
      ETCD_KEY_FILE: spec.clientTLS.keyFile,
      ETCD_TRUSTED_CA_FILE: spec.clientTLS.caFile,
      ETCD_CLIENT_CERT_AUTH: 'true',
    });
  }
  return env;
}

const TAIL_LINES = 30;
/** util-linux, on every Debian and Fedora; it execs etcd in place, so the PID stays etcd's. */
export const SETPRIV = '/usr/bin/setpriv';

export class EtcdSupervisor {
  private child?: ChildProcess;
  private spec?: EtcdProcessSpec;
  private quarantined = false;
  private wanted = false;
  private backoffMs: number;
  private restartTimer?: NodeJS.Timeout;
  private startedAt = 0;
  private exited?: Promise<void>;
  private tail: string[] = [];
  /** How many times etcd was restarted after exiting on its own. */
  restarts = 0;

  constructor(private readonly options: SupervisorOptions) {
    this.backoffMs = options.initialBackoffMs ?? 1000;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  get isQuarantined(): boolean {
    return this.quarantined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** The last lines etcd wrote, for error messages. */
  recentOutput(): string {
    return this.tail.join('\n');
  }

  /** Starts etcd (stopping a running one first, with `graceMs` before SIGKILL when given). */
  async start(spec: EtcdProcessSpec, options: { quarantined?: boolean; graceMs?: number } = {}): Promise<void> {
    await this.stop(options.graceMs !== undefined ? { graceMs: options.graceMs } : {});
    this.spec = spec;
    this.quarantined = options.quarantined ?? false;
    this.wanted = true;
    this.backoffMs = this.options.initialBackoffMs ?? 1000;
    await this.launch();
  }

  /** Moves etcd's client URLs to (or back from) the quarantine URLs: a restart (`graceMs`: see stop). */
  async setQuarantined(quarantined: boolean, options: { graceMs?: number } = {}): Promise<void> {
    if (!this.spec || quarantined === this.quarantined) return;
    this.options.log.info(quarantined ? 'quarantining etcd: client URLs moved to the quarantine port' : 'lifting etcd quarantine', {
      event: quarantined ? 'etcd.quarantine-entered' : 'etcd.quarantine-lifted',
      clientURLs: (quarantined ? this.spec.quarantineClientURLs : this.spec.clientURLs).join(','),
    });
    await this.start(this.spec, { quarantined, ...options });
  }

  private async launch(): Promise<void> {
    const spec = this.spec;
    if (!spec || !this.wanted) return;
    await mkdir(spec.dataDir, { recursive: true, mode: 0o700 });
    // Stray ETCD_* variables from our own environment must not leak into etcd's configuration.
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    Object.assign(env, etcdEnvironment(spec, this.quarantined));
    // etcd dies with its manager (SIGTERM on the manager's death, via setpriv's parent-death signal):
    // a manager restarted after a crash must not find an orphaned etcd holding its ports and data.
    const [command, args] = existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'TERM', '--', spec.binary]] : [spec.binary, []];
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.startedAt = Date.now();
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        this.tail.push(line);
        if (this.tail.length > TAIL_LINES) this.tail.shift();
        this.options.log.debug('etcd output', { line });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        resolve();
        this.onExit(child, code, signal);
      });
      child.once('error', (err) => {
        this.options.log.error('cannot start etcd', { binary: spec.binary, err });
        resolve();
        this.onExit(child, null, null);
      });
    });
    this.options.log.info('etcd started', { event: 'etcd.started', pid: child.pid, name: spec.name, binary: spec.binary, dataDir: spec.dataDir, quarantined: this.quarantined, state: spec.initialClusterState });
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.options.onExit?.({ code, signal, unexpected: this.wanted });
    if (!this.wanted) return;
    const ranMs = Date.now() - this.startedAt;
    if (ranMs >= (this.options.stableAfterMs ?? 30_000)) this.backoffMs = this.options.initialBackoffMs ?? 1000;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 10_000);
    this.options.log.warn('etcd exited; restarting', { event: 'etcd.exited', code, signal, restartInMs: delay, reason: this.exitReason() });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restarts++;
      void this.launch().catch((err: unknown) => this.options.log.error('etcd restart failed', { err }));
    }, delay);
  }

  /** etcd's own last fatal or error line (a panic's cause comes before its stack), else its last line. */
  private exitReason(): string {
    const important = this.tail.filter((l) => /"level":"(fatal|panic|error)"|^panic:|^[0-9-]+ [0-9:.]+ [CE] \|/.test(l));
    return important.at(-1) ?? this.tail.at(-1) ?? '';
  }

  /**
   * SIGTERM, then SIGKILL by PID after the timeout (or `graceMs`); no restart afterwards. A short
   * grace suits stopping every member at once (a restore): etcd's leader spends seconds trying to
   * hand its leadership to followers that are stopping too.
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    this.wanted = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    const pid = this.pid;
    if (!child || pid === undefined) return;
    const exited = this.exited;
    process.kill(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited?.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), options.graceMs ?? this.options.stopTimeoutMs ?? 10_000))),
    ]);
    clearTimeout(timer);
    if (timedOut && child.exitCode === null && child.signalCode === null) {
      this.options.log.warn('etcd ignored SIGTERM; killing it', { pid });
      process.kill(pid, 'SIGKILL');
      await exited;
    }
    this.options.log.info('etcd stopped', { event: 'etcd.stopped', pid });
  }
}
