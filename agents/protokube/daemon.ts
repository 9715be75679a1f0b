// The protokube daemon: two loops and a status server.
// - names (every --poll-interval, on every node): the control plane's live
//   addresses from the state store into the hosts block;
// - sync (control plane only, every --sync-interval): wait for the API server
//   with capped, jittered backoff, then apply the addon channels and the
//   node's labels and taints.
// Neither loop ever clears the hosts block because the store could not be
// read: the last known addresses stay until the store says otherwise.
// @kubernetes/client-node is loaded by the first sync pass, never in
// names-only mode (kube/api.ts).
import type { Logger } from '../../shared/log.js';
import { openStore as openStateStore, type OpenStoreOptions } from '../../shared/store/index.js';
import type { StateStore } from '../../shared/store/types.js';
import type { ProtokubeConfig } from './config.js';
import { Metrics } from './metrics.js';
import { HostsBlock } from './names/hosts-block.js';
import { resolveIdentity } from './names/identity.js';
import { ControlPlaneNames, PublishedNames, type Clock, type NamesPoller } from './names/pollers.js';
import type { InstanceIdentity } from './names/registry.js';
import { startStatusServer, type StatusServer } from './server.js';
import { StatusBoard } from './status.js';
import type { KubeAPI } from './kube/api.js';

export interface DaemonDeps {
  log: Logger;
  openStore?: (url: string, options: OpenStoreOptions) => StateStore;
  clock?: Clock;
  /** The instance metadata service's endpoint (--cloud=aws); tests point it at their server. */
  metadataEndpoint?: string;
}

/** A timer loop whose pass returns the delay before the next; stop() waits for a running pass. */
class Loop {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(private readonly pass: () => Promise<number>, private readonly log: Logger, private readonly name: string) {}

  start(): void {
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().then(
        (next) => this.schedule(next),
        (err: unknown) => {
          this.log.error(`${this.name} pass failed`, { event: 'loop-error', loop: this.name, err });
          this.schedule(1000);
        },
      );
    }, delayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

const API_BACKOFF_FIRST_MS = 500;
const API_BACKOFF_CAP_MS = 30_000;

export class Daemon {
  readonly metrics = new Metrics();
  readonly board: StatusBoard;
  private readonly log: Logger;
  private readonly hosts: HostsBlock;
  private store?: StateStore;
  private poller?: NamesPoller;
  private identity?: InstanceIdentity;
  private known: string[] = [];
  private names?: Loop;
  private sync?: Loop;
  private server?: StatusServer;
  private kube?: KubeAPI;
  private apiReady = false;
  private apiAttempts = 0;
  private readonly addonChecks = new Map<string, Set<string>>();
  private syncPass?: (daemon: SyncHost) => Promise<number>;

  constructor(readonly config: ProtokubeConfig, private readonly deps: DaemonDeps) {
    this.log = deps.log;
    this.board = new StatusBoard(deps.log, { mode: config.namesOnly ? 'names-only' : 'control-plane', cluster: config.cluster });
    this.hosts = new HostsBlock(config.hostsFile, config.cluster, [config.masterInternalName]);
    this.metrics.declare('protokube_hosts_writes_total', 'writes of the hosts block', 'counter');
    this.metrics.declare('protokube_names_addresses', 'control-plane addresses in the hosts block', 'gauge');
  }

  get statusPort(): number | undefined {
    return this.server?.port;
  }

  async start(): Promise<void> {
    const open = this.deps.openStore ?? openStateStore;
    this.store = open(this.config.configBase, { timeoutMs: this.config.storeTimeoutMs });
    if (this.config.namesOnly) {
      this.poller = new PublishedNames(this.store, { cluster: this.config.cluster, metrics: this.metrics });
    } else {
      this.identity = await resolveIdentity(this.config, { metadataEndpoint: this.deps.metadataEndpoint });
      this.poller = new ControlPlaneNames(this.store, this.identity, {
        cluster: this.config.cluster,
        ttlMs: this.config.registrationTTLms,
        log: this.log,
        metrics: this.metrics,
        clock: this.deps.clock,
      });
    }
    this.log.info('starting', {
      event: 'starting',
      mode: this.config.namesOnly ? 'names-only' : 'control-plane',
      cluster: this.config.cluster,
      configBase: this.config.configBase,
      hostsFile: this.config.hostsFile,
      names: [this.config.masterInternalName],
      ...(this.identity ? { instance: this.identity.name, address: this.identity.address, zone: this.identity.zone } : {}),
    });
    await this.seedHosts();
    if (this.config.statusPort > 0) {
      this.server = await startStatusServer({ address: this.config.statusAddress, port: this.config.statusPort, board: this.board, metrics: this.metrics });
      this.log.info('serving /healthz, /readyz, /metrics', { event: 'status-server-started', address: this.config.statusAddress, port: this.server.port });
    }
    this.names = new Loop(() => this.namesPass(), this.log, 'names');
    this.names.start();
    if (!this.config.namesOnly) {
      // The channels and labels code, and with it the Kubernetes client, load with the first sync pass.
      this.syncPass ??= (await import('./sync.js')).syncPass;
      this.sync = new Loop(() => this.syncPass!(this.syncHost()), this.log, 'sync');
      this.sync.start();
    }
  }

  /** A block from an earlier run is kept as it is; without one, the seed addresses (and this instance's own) go in at once. */
  private async seedHosts(): Promise<void> {
    try {
      this.known = await this.hosts.current();
      const seeds = [...new Set([...(this.identity ? [this.identity.address] : []), ...this.config.seedAddresses])];
      if (this.known.length === 0 && seeds.length > 0) {
        await this.hosts.write(seeds);
        this.known = seeds;
        this.log.info('hosts block seeded until the state store answers', { event: 'hosts-seeded', addresses: seeds });
      }
    } catch (err) {
      this.board.set('hosts-file', false, `${this.config.hostsFile}: ${(err as Error).message}`, { failed: 'hosts-failed', recovered: 'hosts-recovered' });
    }
  }

  private async namesPass(): Promise<number> {
    const events = { failed: 'names-failed', recovered: 'names-recovered' };
    try {
      const addresses = await this.poller!.poll();
      this.metrics.inc('protokube_names_polls_total', 'polls of the state store for control-plane addresses', { result: 'ok' });
      if (addresses.length === 0) {
        this.board.set('names', false, 'the state store lists no live control-plane address; the hosts block is kept as it is', events);
      } else {
        this.known = addresses;
        this.board.set('names', true, undefined, events, { addresses });
      }
    } catch (err) {
      this.metrics.inc('protokube_names_polls_total', 'polls of the state store for control-plane addresses', { result: 'error' });
      this.board.set('names', false, `cannot read the control plane's addresses: ${(err as Error).message}`, events);
    }
    // Written every pass from what is known, so a block edited or removed by hand comes back within one poll.
    if (this.known.length > 0) await this.writeHosts(this.known);
    await this.saveStatus();
    return this.config.pollIntervalMs;
  }

  private async writeHosts(addresses: string[]): Promise<void> {
    const events = { failed: 'hosts-failed', recovered: 'hosts-recovered' };
    try {
      const result = await this.hosts.write(addresses, () => this.log.warn('hosts file is a mount point; writing it in place', { event: 'hosts-in-place', path: this.config.hostsFile }));
      this.metrics.set('protokube_names_addresses', 'control-plane addresses in the hosts block', addresses.length);
      if (result.changed) {
        this.metrics.inc('protokube_hosts_writes_total', 'writes of the hosts block');
        this.log.info('hosts block updated', {
          event: 'hosts-updated',
          path: this.config.hostsFile,
          addresses,
          ...(result.blocksFound > 1 ? { duplicatesRemoved: result.blocksFound - 1 } : {}),
          ...(result.repaired ? { repaired: true } : {}),
          ...(result.blocksFound === 0 ? { created: true } : {}),
          ...(result.retries > 0 ? { retries: result.retries } : {}),
        });
      } else {
        this.log.debug('hosts block already right', { event: 'hosts-unchanged', path: this.config.hostsFile });
      }
      this.board.set('hosts-file', true, undefined, events);
    } catch (err) {
      this.board.set('hosts-file', false, `${this.config.hostsFile}: ${(err as Error).message}`, events);
    }
  }

  private async saveStatus(): Promise<void> {
    this.metrics.set('protokube_ready', '1 when every check is ok (what /readyz answers)', this.board.failing().length === 0 ? 1 : 0);
    try {
      await this.board.save(this.config.statusFile);
    } catch (err) {
      this.log.debug('cannot write the status file', { event: 'status-file-failed', path: this.config.statusFile, err });
    }
  }

  /** What the sync pass (sync.ts) may use and change. */
  private syncHost(): SyncHost {
    return {
      config: this.config,
      log: this.log,
      board: this.board,
      metrics: this.metrics,
      store: this.store!,
      getKube: () => this.kube,
      setKube: (kube) => (this.kube = kube),
      apiReady: () => this.apiReady,
      setApiReady: (ready) => {
        this.apiReady = ready;
        if (ready) this.apiAttempts = 0;
      },
      backoff: () => {
        const cap = Math.min(API_BACKOFF_CAP_MS, this.config.syncIntervalMs);
        const delay = Math.min(cap, API_BACKOFF_FIRST_MS * 2 ** this.apiAttempts++);
        return Math.round(delay * (0.5 + Math.random() / 2));
      },
      saveStatus: () => this.saveStatus(),
      addonChecks: this.addonChecks,
    };
  }

  async stop(): Promise<void> {
    await this.names?.stop();
    await this.sync?.stop();
    if (this.poller instanceof ControlPlaneNames) {
      try {
        await this.poller.deregister();
      } catch (err) {
        this.log.warn('could not remove this instance\'s registration; it drops out after the TTL', { event: 'deregister-failed', err });
      }
    }
    await this.server?.close();
    await this.saveStatus();
  }
}

export interface SyncHost {
  config: ProtokubeConfig;
  log: Logger;
  board: StatusBoard;
  metrics: Metrics;
  store: StateStore;
  getKube(): KubeAPI | undefined;
  setKube(kube: KubeAPI): void;
  apiReady(): boolean;
  setApiReady(ready: boolean): void;
  /** The next wait for the API server: capped, jittered, growing. */
  backoff(): number;
  saveStatus(): Promise<void>;
  /** Addon checks of the last pass, per channel: an addon that left its channel is forgotten. */
  addonChecks: Map<string, Set<string>>;
}
