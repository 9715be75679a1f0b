// The manager daemon's lifecycle: volume → identity → TLS → status server →
// peer API → etcd supervisor → the controller (controller/), and stop. What a
// reconcile pass does lives in controller/: one module per concern (election,
// newcluster, membership, local, discovery), each a step of the pass; this file
// only builds them from the configuration and hands them their dependencies.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { logger, type Logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import type { StateStore } from '../../shared/store/types.js';
import { expandURLs, memberDNSName, splitBackupStore, type ManagerConfig } from './config.js';
import { Discovery } from './controller/discovery.js';
import { Election } from './controller/election.js';
import { LocalMember } from './controller/local.js';
import { etcdMembership, MembershipLeader } from './controller/membership.js';
import { formCluster } from './controller/newcluster.js';
import { Controller } from './controller/reconcile.js';
import { CONTROL, readClusterSpec } from './controller/spec.js';
import { systemClock, type Clock, type Pass, type Step, type TestHooks } from './controller/types.js';
import { listPeers, type PeerRecord } from './discovery.js';
import { resolveEtcdBinary } from './etcd/binary.js';
import { checkEtcd, openEtcdClient } from './etcd/client.js';
import { EtcdSupervisor, listenURL, type EtcdProcessSpec } from './etcd/process.js';
import { updateHostsFile } from './hosts.js';
import { ManagerMetrics, startStatusServer, type StatusServer } from './metrics.js';
import { PeerClient, startPeerServer, type PeerInfo, type PeerServer } from './peer/api.js';
import { leaseMs } from './peer/lease.js';
import { Voter } from './peer/voter.js';
import { ensureManagerTLS, type ManagerTLS } from './tls.js';
import { etcdDataDir, type VolumeState } from './volume-state.js';
import { AwsVolumeProvider } from './volumes/aws.js';
import { InstanceMetadata } from './volumes/aws-imds.js';
import { LocalVolumeProvider } from './volumes/local.js';
import { StaticVolumeProvider } from './volumes/static.js';
import type { Volume, VolumeProvider } from './volumes/types.js';

export { CONTROL, readClusterSpec, type EtcdClusterSpecFile } from './controller/spec.js';

/** What an established member's health check may take: a member still joining accepts and never answers. */
const MEMBER_HEALTH_TIMEOUT_MS = 1_000;

export class Manager {
  readonly log: Logger;
  // is_leader is read at scrape time, so a manager resumed after a pause never reports a lapsed lease.
  readonly metrics = new ManagerMetrics({ defaultMetrics: true, isLeader: () => this.leaderNow() });
  private readonly backups: StateStore;
  private readonly state: StateStore;
  private readonly provider: VolumeProvider;
  private readonly etcd: EtcdSupervisor;
  private readonly clock: Clock = systemClock;
  private readonly hooks: TestHooks;
  private volume?: Volume;
  private dnsName = '';
  /** --address, else the provider's idea of this instance's IP, else 127.0.0.1 (resolved in start). */
  private address = '';
  private tls?: ManagerTLS;
  private status?: StatusServer;
  private peerServer?: PeerServer;
  private peerClient?: PeerClient;
  private voter?: Voter;
  private local?: LocalMember;
  private election?: Election;
  private discovery?: Discovery;
  private controller?: Controller;
  private memberCount = 1;
  private certsCheckedAt = 0;
  private phase = 'starting';
  private lastReconcileOK = 0;
  private lastError = '';
  private stopped = false;
  private releaseStopped: () => void = () => undefined;
  private readonly stoppedSignal = new Promise<void>((resolve) => (this.releaseStopped = resolve));

  constructor(readonly config: ManagerConfig, log: Logger = logger('etcd-manager')) {
    this.log = log.child({ cluster: config.clusterName });
    this.hooks = config.testHooks;
    this.backups = openStore(config.backupStore, { timeoutMs: config.storeTimeoutMs });
    this.state = openStore(config.stateStore, { timeoutMs: config.storeTimeoutMs });
    this.provider =
      config.volumeProvider === 'static'
        ? new StaticVolumeProvider({ dataDir: config.dataDir ?? '', nameTag: config.volumeNameTag, defaultMember: config.instanceId, log: this.log })
        : config.volumeProvider === 'aws'
        ? new AwsVolumeProvider({
            kubernetesClusterName: splitBackupStore(config.backupStore).cluster,
            tagFilters: config.volumeTags,
            nameTag: config.volumeNameTag,
            mountRoot: config.mountRoot,
            log: this.log,
          })
        : new LocalVolumeProvider({
            volumeDir: config.localVolumeDir,
            mountRoot: config.mountRoot,
            holder: config.instanceId,
            tagFilters: config.volumeTags,
            nameTag: config.volumeNameTag,
            log: this.log,
            metadata: config.instanceMetadata ? new InstanceMetadata() : undefined,
          });
    this.etcd = new EtcdSupervisor({
      log: this.log.child({ component: 'etcd' }),
      onExit: ({ unexpected }) => {
        if (unexpected) this.metrics.etcdRestarts.inc();
      },
    });
  }

  get statusPort(): number | undefined {
    return this.status?.port;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    if (cfg.insecure) this.log.warn('--insecure: etcd runs without TLS and there is no peer API (one-member clusters only); for debugging only, never in production', { event: 'config.insecure' });
    if (cfg.metricsPort > 0) {
      this.status = await startStatusServer({ address: cfg.metricsAddress, port: cfg.metricsPort, metrics: this.metrics, health: () => this.health() });
      this.log.info('status server listening', { address: cfg.metricsAddress, port: this.status.port });
    }
    this.phase = 'mounting volume';
    const volume = (this.volume = await this.provider.acquire());
    await this.resolveAddress();
    this.dnsName = memberDNSName(volume.memberName, cfg.dnsSuffix);
    this.log.info('member identity', { event: 'member.identity', member: volume.memberName, dnsName: this.dnsName, volume: volume.id, mountPoint: volume.mountPoint });
    const local = (this.local = new LocalMember({
      volume,
      clusterName: cfg.clusterName,
      backups: this.backups,
      etcd: this.etcd,
      processSpec: (state) => this.processSpec(volume, state),
      checkLocal: () => checkEtcd(this.localClientEndpoints(), this.tls?.etcdClient),
      clock: this.clock,
      log: this.log,
      setPhase: (phase) => (this.phase = phase),
      changed: (reason) => this.changed(reason),
    }));
    // Read before the peer API answers: a restarted member must never look empty to the leader.
    await local.load();
    if (!cfg.insecure) await this.startPeerAPI(volume);
    this.controller = new Controller({
      steps: this.steps(volume, local),
      reconcileIntervalMs: cfg.reconcileIntervalMs,
      clock: this.clock,
      log: this.log,
      onPassEnd: ({ report, error }) => {
        this.metrics.etcdRunning.set(this.etcd.running ? 1 : 0);
        this.metrics.quarantined.set(this.etcd.isQuarantined ? 1 : 0);
        if (error) {
          this.lastError = error.message;
          this.metrics.errors.inc({ step: 'reconcile' });
          return;
        }
        if (report) {
          this.lastError = '';
          this.lastReconcileOK = this.clock.wallNow();
          this.metrics.lastReconcile.set(this.lastReconcileOK / 1000);
        }
      },
      onStuck: () => this.metrics.errors.inc({ step: 'stuck' }),
    });
    this.election?.start();
    await this.controller.start();
  }

  /** The pass, in order. Backups, restore and operator commands will be steps here too. */
  private steps(volume: Volume, local: LocalMember): Step[] {
    const cfg = this.config;
    const discovery = (this.discovery = new Discovery({
      backups: this.backups,
      record: () => this.peerRecord(volume),
      updateHosts: async (records) => void await updateHostsFile(cfg.hostsFile, cfg.clusterName, records.map((p) => ({ address: p.address, names: [p.dnsName] })), this.log),
      pollIntervalMs: cfg.discoveryPollIntervalMs,
      clock: this.clock,
      log: this.log,
      announce: (records, reason) => this.announce(records, reason),
    }));
    const election = this.election;
    const isLeader = () => election?.isLeader() ?? false;
    const term = () => election?.currentTerm ?? 0;
    const openMembershipEtcd = async (endpoints: string[]) => etcdMembership(await openEtcdClient(endpoints, this.tls?.etcdClient));
    const membership = new MembershipLeader({
      self: volume.memberName,
      transport: () => this.peerClient!,
      openEtcd: openMembershipEtcd,
      memberHealthy: async (urls) => (await checkEtcd(urls, this.tls?.etcdClient, MEMBER_HEALTH_TIMEOUT_MS)).healthy,
      clusterToken: () => local.volumeState?.clusterToken,
      isLeader,
      term,
      unhealthyTimeoutMs: cfg.unhealthyMemberTimeoutMs,
      wallNow: () => this.clock.wallNow(),
      log: this.log,
      hooks: this.hooks,
      stopped: this.stoppedSignal,
    });
    /** Multi-member clusters elect a leader; a one-member cluster has none. */
    const elects = (pass: Pass) => !!pass.spec && (pass.spec.memberCount > 1 || local.multiMember) && !!this.peerClient && !!election && !local.standby;
    return [
      {
        name: 'certificates',
        run: async () => {
          // At most once an interval: renewal is never urgent (a third of a lifetime is left), and each check reads the CAs.
          if (cfg.insecure || (this.certsCheckedAt > 0 && this.clock.now() - this.certsCheckedAt < cfg.reconcileIntervalMs)) return undefined;
          this.certsCheckedAt = this.clock.now();
          const result = await this.ensureTLS(volume);
          this.tls = result.files;
          // etcd reads its files per handshake; the peer API holds its certificate in memory.
          if (result.issued.includes('manager')) await this.reloadPeerTLS();
          return undefined;
        },
      },
      { name: 'discovery', run: () => discovery.step() },
      {
        name: 'spec',
        run: async (pass) => {
          pass.spec = await readClusterSpec(this.backups);
          return undefined;
        },
      },
      { name: 'local-start', run: (pass) => local.startStep(pass) },
      {
        name: 'election',
        run: async (pass) => {
          if (!elects(pass) || !election || !pass.spec) return undefined;
          this.memberCount = pass.spec.memberCount;
          pass.survey = await election.survey(await listPeers(this.backups));
          // While etcd has more members than the spec (a shrink under way), votes are counted against the larger number.
          const result = await election.step(pass, Math.max(pass.spec.memberCount, local.lastMembers));
          if (pass.leading) pass.created = await this.backups.exists(CONTROL.created);
          return result;
        },
      },
      { name: 'discovery', leaderOnly: true, run: (pass) => discovery.prune(pass) },
      {
        name: 'newcluster',
        leaderOnly: true,
        run: (pass) => (pass.created ? Promise.resolve(undefined) : formCluster({
          self: volume.memberName,
          clusterName: cfg.clusterName,
          backups: this.backups,
          transport: () => this.peerClient!,
          checkCluster: (endpoints, timeoutMs) => checkEtcd(endpoints, this.tls?.etcdClient, timeoutMs),
          isLeader,
          term,
          clock: this.clock,
          log: this.log,
          setPhase: (phase) => (this.phase = phase),
        }, pass)),
      },
      { name: 'membership', leaderOnly: true, run: (pass) => (pass.created ? membership.step(pass) : Promise.resolve(undefined)) },
      {
        name: 'local-health',
        run: async () => {
          const result = await local.healthStep();
          this.metrics.members.set(local.lastMembers);
          return result;
        },
      },
    ];
  }

  private async resolveAddress(): Promise<void> {
    if (this.config.address !== '') {
      this.address = this.config.address;
      return;
    }
    const fromProvider = await this.provider.localAddress?.();
    this.address = fromProvider ?? '127.0.0.1';
    this.log.info(fromProvider ? 'address from the volume provider (no --address given)' : 'no --address given: using 127.0.0.1 (one-node clusters only)', { event: fromProvider ? 'member.address-from-provider' : 'member.address-default', address: this.address, provider: this.provider.name });
  }

  private leaderNow(): number {
    if (this.memberCount === 1) return this.local?.etcdHealthy && this.local.lastMembers === 1 ? 1 : 0;
    return this.election?.isLeader() ? 1 : 0;
  }

  health(): { healthy: boolean; detail: string } {
    const fresh = this.clock.wallNow() - this.lastReconcileOK < Math.max(3 * this.config.reconcileIntervalMs, 30_000);
    const detail = `${this.phase}${this.lastError ? `; last error: ${this.lastError}` : ''}`;
    return { healthy: this.lastReconcileOK > 0 && fresh && this.lastError === '', detail };
  }

  private urls(template: string): string[] {
    return expandURLs(template, this.dnsName, this.address);
  }

  /** Where the manager itself reaches its etcd: by IP, so it needs no DNS. */
  private localClientEndpoints(): string[] {
    const urls = this.etcd.isQuarantined ? this.config.quarantineClientURLs : this.config.clientURLs;
    return this.urls(urls).map((u) => listenURL(u, this.address));
  }

  private peerRecord(volume: Volume): PeerRecord {
    const cfg = this.config;
    return {
      member: volume.memberName,
      instanceId: cfg.instanceId,
      address: this.address,
      dnsName: this.dnsName,
      grpcEndpoint: `${this.address}:${cfg.grpcPort}`,
      peerURLs: this.urls(cfg.peerURLs),
      clientURLs: this.urls(cfg.clientURLs),
      updatedAt: new Date(this.clock.wallNow()).toISOString(),
    };
  }

  private async processSpec(volume: Volume, state: VolumeState): Promise<EtcdProcessSpec> {
    const cfg = this.config;
    const binary = await resolveEtcdBinary(state.etcdVersion, cfg.etcdBinaryDir);
    const peerURLs = this.urls(cfg.peerURLs);
    return {
      binary,
      name: state.memberName,
      dataDir: etcdDataDir(volume.mountPoint, state.clusterToken),
      clusterToken: state.clusterToken,
      peerURLs,
      clientURLs: this.urls(cfg.clientURLs),
      quarantineClientURLs: this.urls(cfg.quarantineClientURLs),
      initialCluster: state.initialCluster ?? { [state.memberName]: peerURLs },
      initialClusterState: state.initialClusterState ?? 'new',
      listenAddress: this.address,
      peerTLS: this.tls?.peer,
      clientTLS: this.tls?.server,
    };
  }

  /** This member changed in a way the leader should see now: tell the others, and look again ourselves. */
  private changed(reason: string): void {
    if (this.discovery && this.volume) this.announce(this.discovery.records.filter((r) => r.member !== this.volume!.memberName), reason);
    this.controller?.wake(reason);
  }

  /** Best effort: a peer that misses it finds out at its next pass anyway. */
  private announce(records: PeerRecord[], reason: string): void {
    const client = this.peerClient;
    const self = this.volume?.memberName;
    if (!client || !self) return;
    for (const r of records) {
      client.announce(r.grpcEndpoint, self, reason).catch((err: unknown) => this.log.debug('announcement not delivered', { to: r.member, err }));
    }
  }

  /** The member's certificates (CN = member name; SANs = DNS name, host name, address), issued or renewed as needed. */
  private ensureTLS(volume: Volume): ReturnType<typeof ensureManagerTLS> {
    const cfg = this.config;
    const identity = { memberName: volume.memberName, dnsNames: [this.dnsName, hostname()], ipAddresses: [this.address] };
    const lifetime = this.hooks.certLifetimeMs;
    const short = lifetime ? { validityDays: lifetime / 86_400_000, renewBeforeMs: lifetime / 3 } : {};
    return ensureManagerTLS({ store: this.state, etcdName: cfg.etcdName, identity, pkiDir: cfg.pkiDir, log: this.log, ...short });
  }

  private async startPeerAPI(volume: Volume): Promise<void> {
    const cfg = this.config;
    this.tls = (await this.ensureTLS(volume)).files;
    const lease = leaseMs(cfg.reconcileIntervalMs);
    const voter = (this.voter = new Voter(join(volume.mountPoint, 'etcd-manager-vote.json'), lease, () => this.clock.now()));
    await voter.load();
    this.peerServer = await startPeerServer({
      address: this.address,
      port: cfg.grpcPort,
      tls: this.tls.manager,
      voter,
      log: this.log.child({ component: 'peer-api' }),
      handlers: {
        info: () => this.peerInfo(volume),
        command: async (c) => {
          const result = await this.local!.onCommand(c);
          this.controller?.wake(`command ${c.action}`);
          return result;
        },
        announce: (member, reason) => this.controller?.wake(`${member}: ${reason}`),
      },
    });
    this.peerClient = await PeerClient.open(this.tls.manager);
    this.election = new Election({
      self: volume.memberName,
      transport: () => this.peerClient!,
      voter,
      leaseMs: lease,
      clock: this.clock,
      log: this.log,
      canRenew: () => !this.stopped && (this.controller?.loopAlive() ?? true),
      wake: (reason) => this.controller?.wake(reason),
    });
    this.log.info('peer API listening (mutual TLS)', { address: this.address, port: this.peerServer.port, leaseMs: lease });
  }

  private peerInfo(volume: Volume): PeerInfo {
    const v = this.voter?.current ?? { term: 0, leader: '' };
    const local = this.local;
    return {
      member: volume.memberName,
      term: v.term,
      leader: v.leader,
      etcdRunning: this.etcd.running,
      clusterToken: local?.volumeState?.clusterToken,
      initialCluster: local?.volumeState?.initialCluster,
      volumeEmpty: local?.volumeEmpty ?? false,
      canLead: (this.controller?.loopAlive() ?? true) && !local?.standby && !this.stopped,
    };
  }

  private async reloadPeerTLS(): Promise<void> {
    if (!this.tls || !this.peerServer) return;
    await this.peerServer.reload(this.tls.manager);
    this.peerClient = await PeerClient.open(this.tls.manager);
    this.log.info('peer API certificate reloaded', { event: 'tls.peer-api-reloaded' });
  }

  /** Stops etcd and the loop; keeps the volume (a restarted manager takes it back). */
  async stop(options: { releaseVolume?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.releaseStopped();
    this.election?.stop();
    await this.controller?.stop();
    await this.peerServer?.close();
    await this.etcd.stop();
    if (options.releaseVolume) await this.provider.release();
    await this.status?.close();
    this.log.info('manager stopped', { event: 'manager.stopped' });
  }

  get etcdPid(): number | undefined {
    return this.etcd.pid;
  }

  get healthyEtcd(): boolean {
    return this.local?.etcdHealthy ?? false;
  }
}
