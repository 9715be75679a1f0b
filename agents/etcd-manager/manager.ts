// The manager daemon: volume → identity → TLS → /etc/hosts → status server →
// etcd supervisor, then a reconcile pass every --reconcile-interval.
//
// Scope of this build: creating a cluster and growing/healing it. One member
// (memberCount 1) needs no leader: only the holder of the member's volume can
// start it (claims are atomic) and only while control/etcd-cluster-created is
// absent. With memberCount > 1 the managers elect a leader over the
// mutual-TLS peer API (majority leases + fenced terms, peer/voter.ts); the
// leader forms the cluster once every member has registered, and afterwards
// adds missing members as learners, replaces members whose volume came back
// empty, removes members unhealthy past --unhealthy-member-timeout and extra
// members (shrink), every etcd membership change fenced in etcd itself
// (membership.ts). A removed member's manager stops its etcd, moves its data
// aside and stands by. Backups and restore are not here yet.
import { rename, rm, writeFile, readFile, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { logger, type Logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import type { StateStore } from '../../shared/store/types.js';
import { expandURLs, memberDNSName, splitBackupStore, type ManagerConfig } from './config.js';
import { listPeers, pruneStaleRecords, recordTTLms, registerPeer, type PeerRecord } from './discovery.js';
import { resolveEtcdBinary } from './etcd/binary.js';
import { checkEtcd, openEtcdClient } from './etcd/client.js';
import { EtcdSupervisor, listenURL, type EtcdProcessSpec } from './etcd/process.js';
import { updateHostsFile } from './hosts.js';
import { claimFence, reconcileMembership, type LivePeer } from './membership.js';
import { parseDuration } from './flags.js';
import { PeerClient, startPeerServer, type Command, type PeerInfo, type PeerServer } from './peer/api.js';
import { Leadership } from './peer/leadership.js';
import { Voter } from './peer/voter.js';
import { join } from 'node:path';
import { ManagerMetrics, startStatusServer, type StatusServer } from './metrics.js';
import { ensureManagerTLS, type ManagerTLS } from './tls.js';
import { etcdDataDir, newClusterToken, readVolumeState, writeVolumeState, type VolumeState } from './volume-state.js';
import { AwsVolumeProvider } from './volumes/aws.js';
import { InstanceMetadata } from './volumes/aws-imds.js';
import { LocalVolumeProvider } from './volumes/local.js';
import { StaticVolumeProvider } from './volumes/static.js';
import type { Volume, VolumeProvider } from './volumes/types.js';

export interface EtcdClusterSpecFile {
  memberCount: number;
  etcdVersion: string;
}

export const CONTROL = {
  spec: 'control/etcd-cluster-spec',
  created: 'control/etcd-cluster-created',
};

export async function readClusterSpec(store: StateStore): Promise<EtcdClusterSpecFile | undefined> {
  const data = await store.readIfExists(CONTROL.spec);
  if (!data) return undefined;
  const spec = JSON.parse(data.toString('utf8')) as Partial<EtcdClusterSpecFile>;
  if (!Number.isInteger(spec.memberCount) || (spec.memberCount ?? 0) < 1 || typeof spec.etcdVersion !== 'string') {
    throw new Error(`${store.urlOf(CONTROL.spec)}: want {"memberCount":N,"etcdVersion":"3.x.y"}, got ${data.toString('utf8').trim()}`);
  }
  return spec as EtcdClusterSpecFile;
}

export class Manager {
  readonly log: Logger;
  // is_leader is read at scrape time, so a manager resumed after a pause never reports a lapsed lease.
  readonly metrics = new ManagerMetrics({ defaultMetrics: true, isLeader: () => this.leaderNow() });
  private readonly backups: StateStore;
  private readonly state: StateStore;
  private readonly provider: VolumeProvider;
  private readonly etcd: EtcdSupervisor;
  private volume?: Volume;
  private dnsName = '';
  /** --address, else the provider's idea of this instance's IP, else 127.0.0.1 (resolved in start). */
  private address = '';
  private tls?: ManagerTLS;
  private status?: StatusServer;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private lastDiscovery = 0;
  private lastReconcileOK = 0;
  private lastError = '';
  private etcdHealthy = false;
  private phase = 'starting';
  private warnedMulti = false;
  private etcdStarted = false;
  private reconciling?: Promise<void>;
  private starting?: Promise<void>;
  private voter?: Voter;
  private peerServer?: PeerServer;
  private peerClient?: PeerClient;
  private leadership?: Leadership;
  private memberCount = 1;
  /** etcd's member count at the last health check: more than the spec means a shrink is due. */
  private lastMembers = 0;
  private fencedTerm = 0;
  /** Consecutive peer-info rounds each member did not answer (see lead). */
  private readonly missedInfo = new Map<string, number>();
  private standby = false;
  private testStoppedBeforeFence = false;
  /** When the running reconcile pass started (monotonic ms), 0 between passes; and when the last one ended. */
  private passStartedAt = 0;
  private passEndedAt = 0;
  private step = 'starting';
  private watchdog?: NodeJS.Timeout;
  private warnedStuck = false;

  constructor(readonly config: ManagerConfig, log: Logger = logger('etcd-manager')) {
    this.log = log.child({ cluster: config.clusterName });
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
    if (cfg.insecure) this.log.warn('--insecure: etcd runs without TLS and there is no peer API (one-member clusters only); for debugging only, never in production');
    if (cfg.metricsPort > 0) {
      this.status = await startStatusServer({ address: cfg.metricsAddress, port: cfg.metricsPort, metrics: this.metrics, health: () => this.health() });
      this.log.info('status server listening', { address: cfg.metricsAddress, port: this.status.port });
    }
    this.phase = 'mounting volume';
    this.volume = await this.provider.acquire();
    await this.resolveAddress();
    this.dnsName = memberDNSName(this.volume.memberName, cfg.dnsSuffix);
    this.log.info('member identity', { member: this.volume.memberName, dnsName: this.dnsName, volume: this.volume.id, mountPoint: this.volume.mountPoint });
    // Read before the peer API answers: a restarted member must never look empty to the leader.
    this.volumeStateCache = await readVolumeState(this.volume.mountPoint);
    this.volumeStateLoaded = true;
    if (!cfg.insecure) await this.startPeerAPI(this.volume);
    this.watchdog = setInterval(() => this.checkLoop(), Math.max(1_000, cfg.reconcileIntervalMs)).unref();
    await this.reconcileOnce();
    this.schedule();
  }

  private async resolveAddress(): Promise<void> {
    if (this.config.address !== '') {
      this.address = this.config.address;
      return;
    }
    const fromProvider = await this.provider.localAddress?.();
    this.address = fromProvider ?? '127.0.0.1';
    this.log.info(fromProvider ? 'address from the volume provider (no --address given)' : 'no --address given: using 127.0.0.1 (one-node clusters only)', { address: this.address, provider: this.provider.name });
  }

  /**
   * How long a pass may run, or the loop stay idle, before the manager counts
   * as stuck: its peers then stop waiting for it to lead (see peerInfo). Every
   * etcd, store and peer call has its own deadline, so this is a backstop.
   */
  private get stuckAfterMs(): number {
    return Math.max(20 * this.config.reconcileIntervalMs, 20_000);
  }

  /** False when a pass has run, or no pass has ended, for longer than stuckAfterMs. */
  private loopAlive(): boolean {
    const now = performance.now();
    if (this.passStartedAt > 0) return now - this.passStartedAt < this.stuckAfterMs;
    return this.passEndedAt === 0 || now - this.passEndedAt < this.stuckAfterMs + this.config.reconcileIntervalMs;
  }

  private checkLoop(): void {
    if (this.stopped || this.passStartedAt === 0) return;
    const ranMs = Math.round(performance.now() - this.passStartedAt);
    if (ranMs < this.stuckAfterMs || this.warnedStuck) return;
    this.warnedStuck = true;
    this.metrics.errors.inc({ step: 'stuck' });
    this.log.error('reconcile pass is stuck; peers no longer wait for this manager to lead', { step: this.step, ranMs });
  }

  private leaderNow(): number {
    if (this.memberCount === 1) return this.etcdHealthy && this.lastMembers === 1 ? 1 : 0;
    return this.leadership?.isLeader() ? 1 : 0;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.reconciling = this.reconcileOnce().finally(() => {
        this.reconciling = undefined;
        this.schedule();
      });
    }, this.config.reconcileIntervalMs);
  }

  health(): { healthy: boolean; detail: string } {
    const fresh = Date.now() - this.lastReconcileOK < Math.max(3 * this.config.reconcileIntervalMs, 30_000);
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

  async reconcileOnce(): Promise<void> {
    if (this.stopped || !this.volume) return;
    this.passStartedAt = performance.now();
    try {
      await this.reconcile(this.volume);
      this.lastError = '';
      this.lastReconcileOK = Date.now();
      this.metrics.lastReconcile.set(this.lastReconcileOK / 1000);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.metrics.errors.inc({ step: 'reconcile' });
      this.log.error('reconcile failed', { step: this.step, err });
    } finally {
      if (this.warnedStuck) this.log.info('reconcile pass ended after being stuck', { step: this.step, ranMs: Math.round(performance.now() - this.passStartedAt) });
      this.warnedStuck = false;
      this.passStartedAt = 0;
      this.passEndedAt = performance.now();
      this.step = 'idle';
    }
  }

  private async reconcile(volume: Volume): Promise<void> {
    const cfg = this.config;
    if (!cfg.insecure) {
      this.step = 'certificates';
      const result = await this.ensureTLS(volume);
      this.tls = result.files;
      // etcd reads its files per handshake; the peer API holds its certificate in memory.
      if (result.issued.includes('manager')) await this.reloadPeerTLS();
    }
    this.step = 'discovery';
    await this.discover(volume);

    this.metrics.etcdRunning.set(this.etcd.running ? 1 : 0);
    this.metrics.quarantined.set(this.etcd.isQuarantined ? 1 : 0);
    // Started once; after that the supervisor restarts it whenever it exits.
    this.step = 'starting etcd';
    if (!this.etcdStarted) await this.ensureEtcdStarted(volume);
    this.step = 'reading the cluster spec';
    const spec = await readClusterSpec(this.backups);
    const multiMember = Object.keys(this.volumeStateCache?.initialCluster ?? {}).length > 1 || this.lastMembers > 1;
    if (spec && (spec.memberCount > 1 || multiMember) && this.peerClient && !this.standby) await this.lead(spec);
    if (!this.etcdStarted) return;

    this.step = 'checking local etcd';
    const health = await checkEtcd(this.localClientEndpoints(), this.tls?.etcdClient);
    this.etcdHealthy = health.healthy;
    if (health.members) this.lastMembers = health.members.length;
    this.metrics.members.set(health.members?.length ?? 0);
    if (!health.healthy) {
      this.phase = 'etcd not healthy yet';
      this.log.info('etcd not healthy yet', { error: health.error });
      return;
    }
    const me = health.members?.find((m) => m.name === volume.memberName);
    if (this.etcd.isQuarantined && me && !me.isLearner) {
      // A new cluster is only announced once it answers: then the marker, then clients.
      // A joining member stays quarantined until it is a voting member.
      if (!(await this.backups.exists(CONTROL.created))) {
        await this.backups.write(CONTROL.created, JSON.stringify({ createdAt: new Date().toISOString(), member: volume.memberName }) + '\n');
        this.log.info('cluster created', { marker: this.backups.urlOf(CONTROL.created) });
      }
      const state = this.volumeStateCache;
      if (state?.initialClusterState === 'existing' && !state.votingSince) {
        this.volumeStateCache = { ...state, votingSince: new Date().toISOString() };
        await writeVolumeState(volume.mountPoint, this.volumeStateCache);
      }
      await this.etcd.setQuarantined(false);
    }
    this.phase = 'etcd healthy';
  }

  private async discover(volume: Volume): Promise<void> {
    const cfg = this.config;
    const now = Date.now();
    if (now - this.lastDiscovery < cfg.discoveryPollIntervalMs && this.lastDiscovery > 0) return;
    const self: PeerRecord = {
      member: volume.memberName,
      instanceId: cfg.instanceId,
      address: this.address,
      dnsName: this.dnsName,
      grpcEndpoint: `${this.address}:${cfg.grpcPort}`,
      peerURLs: this.urls(cfg.peerURLs),
      clientURLs: this.urls(cfg.clientURLs),
      updatedAt: new Date(now).toISOString(),
    };
    await registerPeer(this.backups, self);
    const peers = await listPeers(this.backups);
    await updateHostsFile(cfg.hostsFile, cfg.clusterName, peers.map((p) => ({ address: p.address, names: [p.dnsName] })), this.log);
    this.lastDiscovery = now;
  }

  /** One start at a time: the reconcile loop and a leader's command may both ask. */
  private ensureEtcdStarted(volume: Volume): Promise<void> {
    if (this.etcdStarted) return Promise.resolve();
    return (this.starting ??= this.startEtcd(volume).finally(() => (this.starting = undefined)));
  }

  /** The member's certificates (CN = member name; SANs = DNS name, host name, address), issued or renewed as needed. */
  private ensureTLS(volume: Volume): ReturnType<typeof ensureManagerTLS> {
    const cfg = this.config;
    const identity = { memberName: volume.memberName, dnsNames: [this.dnsName, hostname()], ipAddresses: [this.address] };
    return ensureManagerTLS({ store: this.state, etcdName: cfg.etcdName, identity, pkiDir: cfg.pkiDir, log: this.log, ...testCertLifetime() });
  }

  private async startPeerAPI(volume: Volume): Promise<void> {
    const cfg = this.config;
    this.tls = (await this.ensureTLS(volume)).files;
    // The lease outlives two missed renewals at the reconcile interval.
    const leaseMs = Math.max(3 * cfg.reconcileIntervalMs, 1000);
    this.voter = new Voter(join(volume.mountPoint, 'etcd-manager-vote.json'), leaseMs);
    await this.voter.load();
    this.peerServer = await startPeerServer({
      address: this.address,
      port: cfg.grpcPort,
      tls: this.tls.manager,
      voter: this.voter,
      log: this.log.child({ component: 'peer-api' }),
      handlers: { info: () => this.peerInfo(), command: (c) => this.onCommand(volume, c) },
    });
    this.peerClient = await PeerClient.open(this.tls.manager);
    this.log.info('peer API listening (mutual TLS)', { address: this.address, port: this.peerServer.port });
  }

  private volumeStateCache?: VolumeState;
  private volumeStateLoaded = false;

  private peerInfo(): PeerInfo {
    const v = this.voter?.current ?? { term: 0, leader: '' };
    return {
      member: this.volume?.memberName ?? '',
      term: v.term,
      leader: v.leader,
      etcdRunning: this.etcd.running,
      clusterToken: this.volumeStateCache?.clusterToken,
      initialCluster: this.volumeStateCache?.initialCluster,
      volumeEmpty: this.volumeStateLoaded && this.volumeStateCache === undefined,
      canLead: this.loopAlive() && !this.standby && !this.stopped,
    };
  }

  /** Commands from the leader; the fence in the peer API already checked the term. */
  private async onCommand(volume: Volume, command: Command): Promise<unknown> {
    if (command.action === 'quarantine') {
      this.log.info('quarantining etcd on the leader\'s command (a membership change is under way)', { leader: command.leader, term: command.term });
      await this.etcd.setQuarantined(true);
      return 'quarantined';
    }
    if (command.action === 'leave') return this.leave(volume, command);
    if (command.action !== 'form' && command.action !== 'join') throw new Error(`unknown command ${command.action}`);
    const body = command.body as { clusterToken: string; initialCluster: Record<string, string[]>; etcdVersion: string };
    const existing = await readVolumeState(volume.mountPoint);
    if (existing && existing.clusterToken !== body.clusterToken) {
      throw new Error(`member ${volume.memberName} already belongs to cluster ${existing.clusterToken}; refusing to form ${body.clusterToken}`);
    }
    if (!Object.hasOwn(body.initialCluster, volume.memberName)) throw new Error(`member ${volume.memberName} is not in the initial cluster`);
    if (!existing) {
      const state: VolumeState = {
        clusterToken: body.clusterToken,
        memberName: volume.memberName,
        etcdVersion: body.etcdVersion,
        createdAt: new Date().toISOString(),
        initialCluster: body.initialCluster,
        initialClusterState: command.action === 'join' ? 'existing' : 'new',
      };
      await writeVolumeState(volume.mountPoint, state);
      await rm(join(volume.mountPoint, STANDBY_FILE), { force: true });
      this.standby = false;
      this.volumeStateCache = state;
      this.joinQuarantined = command.action === 'join';
      this.log.info(command.action === 'join' ? 'joining the running cluster on the leader\'s command' : 'joining a new cluster on the leader\'s command', { leader: command.leader, term: command.term, members: Object.keys(body.initialCluster) });
    }
    await this.ensureEtcdStarted(volume);
    return command.action === 'join' ? 'joined' : 'formed';
  }

  /** The leader's part: keep the lease, and form the cluster once every member is there. */
  private async lead(spec: EtcdClusterSpecFile): Promise<void> {
    const client = this.peerClient!;
    const self = this.volume!.memberName;
    this.memberCount = spec.memberCount;
    // While etcd has more members than the spec (a shrink under way), votes are counted against the larger number.
    const voters = Math.max(spec.memberCount, this.lastMembers);
    const leadership = (this.leadership ??= new Leadership({ self, client: () => this.peerClient!, memberCount: voters, leaseMs: Math.max(3 * this.config.reconcileIntervalMs, 1000), log: this.log }));
    leadership.setMemberCount(voters);
    this.step = 'lead: asking peers';
    const records = await listPeers(this.backups);
    const answers = await Promise.all(records.map(async (p) => {
      try {
        const r = await client.info(p.grpcEndpoint);
        return r.status === 200 ? { record: p, info: r.body } : undefined;
      } catch {
        return undefined;
      }
    }));
    const alive = answers.filter((a): a is { record: PeerRecord; info: PeerInfo } => a !== undefined).sort((a, b) => a.info.member.localeCompare(b.info.member));
    // Only the lowest-named live member that can lead campaigns (kOps' rule), which keeps split votes
    // rare; the votes make it safe. A manager whose loop is stuck, or that stands by, still answers
    // its API but cannot lead, so it must not hold the others back. One missed answer is not enough to
    // pass a peer over: after a pause (or a burst of load) every request in flight times out at once.
    let firstCandidate: string | undefined;
    for (const [i, p] of records.entries()) {
      const answer = answers[i];
      const missed = answer ? 0 : (this.missedInfo.get(p.member) ?? 0) + 1;
      this.missedInfo.set(p.member, missed);
      if (firstCandidate === undefined && (answer ? answer.info.canLead !== false : missed < 2)) firstCandidate = p.member;
    }
    // The incumbent whose lease lapsed (a slow pass) may campaign too: its voters grant it at once,
    // where anyone else waits out the lease, so leadership does not move for nothing.
    if (!leadership.isLeader() && !leadership.incumbent && firstCandidate !== self) return;
    this.step = 'lead: leadership round';
    await leadership.round(alive.map((a) => ({ member: a.info.member, endpoint: a.record.grpcEndpoint })));
    if (!leadership.isLeader()) return;
    const ttlMs = recordTTLms(this.config.discoveryPollIntervalMs);
    const pruned = await pruneStaleRecords(this.backups, records, new Set(alive.map((a) => a.record.member)), ttlMs);
    if (pruned.length > 0) this.log.info('pruned the discovery records of managers silent for too long', { members: pruned, ttlMs });
    if (await this.backups.exists(CONTROL.created)) {
      await this.testHangWhileLeading();
      const token = this.volumeStateCache?.clusterToken ?? alive.find((a) => a.info.clusterToken)?.info.clusterToken;
      if (!token) return;
      const term = leadership.currentTerm;
      this.step = 'lead: membership';
      if (this.fencedTerm !== term) await this.claimFenceOnElection(alive, token, term);
      const did = await reconcileMembership({
        self,
        alive,
        memberCount: spec.memberCount,
        clusterToken: token,
        term,
        etcdTLS: this.tls?.etcdClient,
        log: this.log,
        unhealthyTimeoutMs: this.config.unhealthyMemberTimeoutMs,
        now: () => Date.now(),
        isLeader: () => leadership.isLeader(),
        beforeFence: (what) => this.testStopBeforeFence(what),
        join: async (peer, initialCluster) => {
          const r = await client.command(peer.record.grpcEndpoint, { leader: self, term, action: 'join', body: { clusterToken: token, initialCluster, etcdVersion: spec.etcdVersion } });
          if (r.status !== 200) throw new Error(`${peer.info.member} refused to join: ${r.body.error ?? r.status}`);
        },
        command: async (peer, action) => {
          const r = await client.command(peer.record.grpcEndpoint, { leader: self, term, action });
          if (r.status !== 200) throw new Error(`${peer.info.member} refused ${action}: ${r.body.error ?? r.status}`);
        },
      });
      if (did) this.log.info('membership step', { did });
      return;
    }

    const tokened = alive.filter((a) => a.info.clusterToken);
    let clusterToken: string;
    let initialCluster: Record<string, string[]>;
    if (tokened.length > 0) {
      // A formation was started (perhaps by a leader since deposed): finish that one, never a second.
      const first = tokened[0].info;
      if (tokened.some((a) => a.info.clusterToken !== first.clusterToken || JSON.stringify(a.info.initialCluster) !== JSON.stringify(first.initialCluster)) || !first.initialCluster) {
        this.log.error('members disagree about the cluster they belong to; not forming', { tokens: tokened.map((a) => `${a.info.member}:${a.info.clusterToken}`) });
        return;
      }
      clusterToken = first.clusterToken!;
      initialCluster = first.initialCluster;
    } else {
      if (alive.length < spec.memberCount) {
        this.phase = `leader: waiting for members (${alive.length}/${spec.memberCount})`;
        return;
      }
      const chosen = alive.slice(0, spec.memberCount);
      clusterToken = newClusterToken(this.config.clusterName);
      initialCluster = Object.fromEntries(chosen.map((a) => [a.info.member, a.record.peerURLs]));
      this.log.info('forming a new cluster', { term: leadership.currentTerm, members: Object.keys(initialCluster) });
    }
    this.step = 'lead: forming';
    for (const a of alive.filter((x) => Object.hasOwn(initialCluster, x.info.member) && x.info.clusterToken !== clusterToken)) {
      if (!leadership.isLeader()) return; // checked before every action
      const r = await client.command(a.record.grpcEndpoint, { leader: self, term: leadership.currentTerm, action: 'form', body: { clusterToken, initialCluster, etcdVersion: spec.etcdVersion } });
      if (r.status !== 200) this.log.warn('member refused to form', { member: a.info.member, status: r.status, error: r.body.error });
    }
    // Announce the cluster once etcd itself reports every member, healthy.
    const endpoints = alive.filter((a) => Object.hasOwn(initialCluster, a.info.member)).flatMap((a) => a.record.clientURLs.map((u) => listenURL(u, a.record.address)));
    // A short deadline: members still joining do not answer, and a long pass would cost the lease.
    const health = await checkEtcd(endpoints, this.tls?.etcdClient, 1_000);
    if (health.healthy && health.members?.length === spec.memberCount && health.members.every((m) => m.name !== '')) {
      await this.backups.write(CONTROL.created, JSON.stringify({ createdAt: new Date().toISOString(), leader: self, term: leadership.currentTerm, members: Object.keys(initialCluster) }) + '\n');
      this.log.info('cluster created', { marker: this.backups.urlOf(CONTROL.created), members: Object.keys(initialCluster) });
    }
  }

  private async startEtcd(volume: Volume): Promise<void> {
    const cfg = this.config;
    let state: VolumeState | undefined = await readVolumeState(volume.mountPoint);
    this.volumeStateCache = state;
    // A joined member stays quarantined until it is a voting member, across manager restarts too.
    let quarantined = this.joinQuarantined || (state?.initialClusterState === 'existing' && !state.votingSince);
    this.joinQuarantined = false;
    if (!state && (await readStandby(volume.mountPoint))) {
      this.phase = 'standby: removed from the etcd cluster';
      if (!this.standby) this.log.info('standing by: this member was removed from the etcd cluster; etcd stays stopped until the leader adds it again', { marker: join(volume.mountPoint, STANDBY_FILE) });
      this.standby = true;
      return;
    }
    if (!state) {
      const spec = await readClusterSpec(this.backups);
      if (!spec) {
        this.phase = `waiting for ${CONTROL.spec}`;
        this.log.info('no cluster spec yet; waiting', { path: this.backups.urlOf(CONTROL.spec) });
        return;
      }
      if (spec.memberCount !== 1) {
        this.phase = `waiting for the leader to form a ${spec.memberCount}-member cluster`;
        if (!this.warnedMulti) this.log.info('waiting for the leader to form the cluster', { memberCount: spec.memberCount });
        this.warnedMulti = true;
        return;
      }
      if (await this.backups.exists(CONTROL.created)) {
        // The cluster exists but this volume is empty: starting a fresh one would fork it.
        throw new Error(`volume ${volume.id} is empty but ${this.backups.urlOf(CONTROL.created)} says the cluster exists; refusing to create a second cluster (restore or member replacement needed)`);
      }
      state = { clusterToken: newClusterToken(cfg.clusterName), memberName: volume.memberName, etcdVersion: spec.etcdVersion, createdAt: new Date().toISOString() };
      await writeVolumeState(volume.mountPoint, state);
      this.volumeStateCache = state;
      quarantined = true; // new clusters start where the API server cannot see them
      this.log.info('creating a new one-member cluster', { member: state.memberName, token: state.clusterToken });
    }
    const binary = await resolveEtcdBinary(state.etcdVersion, cfg.etcdBinaryDir);
    const peerURLs = this.urls(cfg.peerURLs);
    const spec: EtcdProcessSpec = {
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
    this.phase = 'etcd starting';
    await this.etcd.start(spec, { quarantined });
    this.etcdStarted = true;
  }

  private joinQuarantined = false;

  /** The leader's command after removing this member from etcd: stop etcd, move its data aside, stand by. */
  private async leave(volume: Volume, command: Command): Promise<string> {
    const state = await readVolumeState(volume.mountPoint);
    await this.etcd.stop();
    this.etcdStarted = false;
    let movedTo: string | undefined;
    if (state) {
      const from = etcdDataDir(volume.mountPoint, state.clusterToken);
      movedTo = join(volume.mountPoint, 'data-removed', `${state.clusterToken}-${new Date().toISOString().replace(/[:.]/g, '')}`);
      await mkdir(join(volume.mountPoint, 'data-removed'), { recursive: true, mode: 0o700 });
      await rename(from, movedTo).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        movedTo = undefined;
      });
    }
    await writeFile(join(volume.mountPoint, STANDBY_FILE), JSON.stringify({ removedFrom: state?.clusterToken, removedAt: new Date().toISOString(), leader: command.leader, term: command.term, dataMovedTo: movedTo }) + '\n', { mode: 0o600 });
    await rm(join(volume.mountPoint, 'etcd-manager-state.json'), { force: true });
    this.volumeStateCache = undefined;
    this.lastMembers = 0;
    this.standby = true;
    this.phase = 'standby: removed from the etcd cluster';
    this.log.info('removed from the etcd cluster: etcd stopped, data moved aside (not deleted); standing by', { leader: command.leader, term: command.term, dataMovedTo: movedTo });
    return 'standing by';
  }

  /** A new leader writes its term into etcd's fence key before anything else, locking out older leaders' late changes. */
  private async claimFenceOnElection(alive: LivePeer[], token: string, term: number): Promise<void> {
    const endpoints = alive.filter((a) => a.info.clusterToken === token).flatMap((a) => a.record.clientURLs.map((u) => listenURL(u, a.record.address)));
    if (endpoints.length === 0) return;
    const etcd = await openEtcdClient(endpoints, this.tls?.etcdClient);
    try {
      const f = await claimFence(etcd, term);
      if (f.ok) {
        this.fencedTerm = term;
        this.log.info('etcd fence claimed for this term', { term });
      } else {
        this.log.warn('etcd fence holds a newer term: not acting', { term, fenceTerm: f.held });
      }
    } finally {
      etcd.close();
    }
  }

  /** Test hook (MOORING_TEST_ETCD_MANAGER_STOP_BEFORE_FENCE=1): SIGSTOP itself once, between the leadership check and the fence. */
  private testStopBeforeFence(what: string): void {
    if (process.env.MOORING_TEST_ETCD_MANAGER_STOP_BEFORE_FENCE !== '1' || this.testStoppedBeforeFence) return;
    this.testStoppedBeforeFence = true;
    this.log.warn('test hook: stopping before the etcd fence', { change: what, term: this.leadership?.currentTerm });
    process.kill(process.pid, 'SIGSTOP');
  }

  /** Test hook (MOORING_TEST_ETCD_MANAGER_HANG_WHILE_LEADING=1): the leader's pass hangs until stop, its peer API still answering. */
  private async testHangWhileLeading(): Promise<void> {
    if (process.env.MOORING_TEST_ETCD_MANAGER_HANG_WHILE_LEADING !== '1' || this.stopped) return;
    this.log.warn('test hook: this reconcile pass hangs until the manager stops', { term: this.leadership?.currentTerm });
    await new Promise<void>((resolve) => (this.releaseHang = resolve));
  }

  private releaseHang?: () => void;

  private async reloadPeerTLS(): Promise<void> {
    if (!this.tls || !this.peerServer) return;
    await this.peerServer.reload(this.tls.manager);
    this.peerClient = await PeerClient.open(this.tls.manager);
    this.log.info('peer API certificate reloaded');
  }

  /** Stops etcd and the loop; keeps the volume (a restarted manager takes it back). */
  async stop(options: { releaseVolume?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    this.releaseHang?.();
    await this.reconciling;
    await this.peerServer?.close();
    await this.etcd.stop();
    if (options.releaseVolume) await this.provider.release();
    await this.status?.close();
    this.log.info('manager stopped');
  }

  get etcdPid(): number | undefined {
    return this.etcd.pid;
  }

  get healthyEtcd(): boolean {
    return this.etcdHealthy;
  }
}

const STANDBY_FILE = 'etcd-manager-standby.json';

async function readStandby(mountPoint: string): Promise<boolean> {
  try {
    await readFile(join(mountPoint, STANDBY_FILE));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Test-only: MOORING_TEST_ETCD_MANAGER_CERT_LIFETIME=<duration> issues certificates that short-lived, renewed with a third left. */
function testCertLifetime(): { validityDays?: number; renewBeforeMs?: number } {
  const raw = process.env.MOORING_TEST_ETCD_MANAGER_CERT_LIFETIME;
  const ms = raw ? parseDuration(raw) : undefined;
  if (!ms) return {};
  return { validityDays: ms / 86_400_000, renewBeforeMs: ms / 3 };
}
