// The manager daemon's lifecycle: volume → identity → TLS → status server →
// peer API → etcd supervisor → the controller (controller/), and stop. What a
// reconcile pass does lives in controller/: one module per concern (election,
// newcluster, membership, local, discovery, commands, restore, backup,
// status), each a step of the pass; this file only builds them from the
// configuration and hands them their dependencies. The backup library is
// loaded the first time a backup, restore or trash check needs it.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { logger, type Logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import { issueInProcess, type IssueCertificates } from '../../shared/pki/issue-batch.js';
import type { StateStore } from '../../shared/store/types.js';
import type { BackupKey } from './backup/encryption.js';
import type { SnapshotTool } from './backup/etcdctl.js';
import { expandURLs, memberDNSName, splitBackupStore, type ManagerConfig } from './config.js';
import type { StatusMember } from './control/status.js';
import { BackupController, type SnapshotLease } from './controller/backup.js';
import { ControlInbox } from './controller/commands.js';
import { Discovery } from './controller/discovery.js';
import { Election } from './controller/election.js';
import { LocalMember } from './controller/local.js';
import { etcdMembership, FENCE_KEY, fenceValue, MembershipLeader } from './controller/membership.js';
import { formCluster } from './controller/newcluster.js';
import { Controller } from './controller/reconcile.js';
import { RestoreLeader } from './controller/restore.js';
import { BadBackupError, MemberRestore } from './controller/restore-member.js';
import { CONTROL, readClusterSpec, type EtcdClusterSpecFile } from './controller/spec.js';
import { StatusWriter } from './controller/status.js';
import { systemClock, type Clock, type Pass, type Step, type TestHooks } from './controller/types.js';
import { VersionStep } from './controller/version.js';
import type { ClusterObservation, MemberObservation } from './versions/plan.js';
import { runsV2 } from './versions/version.js';
import type { LivePeer } from './controller/election.js';
import { listPeers, type PeerRecord } from './discovery.js';
import { resolveEtcdBinary } from './etcd/binary.js';
import { checkEtcd, memberRaftStatus, moveEtcdLeader, openEtcdClient, openSnapshotClient } from './etcd/client.js';
import { EtcdSupervisor, listenURL, type EtcdProcessSpec } from './etcd/process.js';
import { updateHostsFile } from './hosts.js';
import { ManagerMetrics, startStatusServer, type StatusServer } from './metrics.js';
import { PeerClient, startPeerServer, type PeerInfo, type PeerServer } from './peer/api.js';
import { leaseMs } from './peer/lease.js';
import { isRestoreCommand, type RestoreAction, type RestoreCommand } from './peer/protocol.js';
import { Voter } from './peer/voter.js';
import { ensureManagerTLS, type ManagerTLS } from './tls.js';
import { etcdDataDir, type VolumeState } from './volume-state.js';
import { AwsVolumeProvider } from './volumes/aws.js';
import { InstanceMetadata } from '../../shared/aws-imds.js';
import { LocalVolumeProvider } from './volumes/local.js';
import { StaticVolumeProvider } from './volumes/static.js';
import type { Volume, VolumeProvider } from './volumes/types.js';

export { CONTROL, readClusterSpec, type EtcdClusterSpecFile } from './controller/spec.js';

/** What an established member's health check may take: a member still joining accepts and never answers. */
const MEMBER_HEALTH_TIMEOUT_MS = 1_000;

export class Manager {
  readonly log: Logger;
  // is_leader is read at scrape time, so a manager resumed after a pause never reports a lapsed lease.
  readonly metrics: ManagerMetrics;
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
  private backupCtl?: BackupController;
  private inbox?: ControlInbox;
  private restoreLeader?: RestoreLeader;
  private memberRestore?: MemberRestore;
  private versionStep?: VersionStep;
  /** The spec as the last pass read it (undefined until then, or while there is none). */
  private spec?: EtcdClusterSpecFile;
  /** The managers that answered the last survey (multi-member clusters). */
  private lastAlive: LivePeer[] = [];
  /** `<member>/<nonce>`: names this process in request results and the status object. */
  private runner = '';
  private memberCount = 1;
  private certsCheckedAt = 0;
  private phase = 'starting';
  private lastReconcileOK = 0;
  private lastError = '';
  private stopped = false;
  private releaseStopped: () => void = () => undefined;
  private readonly stoppedSignal = new Promise<void>((resolve) => (this.releaseStopped = resolve));

  /**
   * `issue`: where the member's certificates are issued. The binary passes a
   * child process (issue-batch.ts), so the daemon never holds X.509 issuing code;
   * the default, in this process, is for tests that run a manager from source.
   */
  constructor(readonly config: ManagerConfig, log: Logger = logger('etcd-manager'), private readonly issue: IssueCertificates = issueInProcess) {
    this.log = log.child({ cluster: config.clusterName });
    this.metrics = new ManagerMetrics({ defaultMetrics: true, isLeader: () => this.leaderNow(), cluster: config.clusterName });
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
      restoreGate: () => this.memberRestore?.gate(),
      restorePending: () => this.restoreLeader?.pending ?? false,
    }));
    this.runner = `${volume.memberName}/${randomBytes(4).toString('hex')}`;
    this.memberRestore = this.newMemberRestore(volume, local);
    // Read before the peer API answers: a restarted member must never look empty to the leader,
    // nor start the etcd a restore has stopped.
    await local.load();
    await this.memberRestore.load();
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
    this.inbox?.start();
    await this.controller.start();
  }

  /**
   * This manager acts for the cluster (backups, restores, operator commands, the status object):
   * the elected leader, or the manager of a one-member cluster.
   */
  private isActing(): boolean {
    if (this.stopped || !this.local || this.local.standby) return false;
    if (this.soleMember()) return true;
    return this.election?.isLeader() ?? false;
  }

  private soleMember(): boolean {
    return this.spec?.memberCount === 1 && !(this.local?.multiMember ?? false);
  }

  private term(): number {
    return this.soleMember() ? 0 : (this.election?.currentTerm ?? 0);
  }

  /** The pass, in order. */
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
    const backup = (this.backupCtl = this.newBackupController());
    const restore = (this.restoreLeader = this.newRestoreLeader(volume, local));
    const memberRestore = this.memberRestore!;
    const version = (this.versionStep = this.newVersionStep(volume, local));
    this.inbox = new ControlInbox({
      store: this.backups,
      runner: this.runner,
      clock: this.clock,
      log: this.log,
      isActing: () => this.isActing(),
      onRequests: (requests, inbox) => backup.enqueue(requests, inbox),
      onCommands: (listing) => restore.noticeCommands(listing),
    });
    const status = new StatusWriter({
      store: this.backups,
      self: volume.memberName,
      runner: this.runner,
      term: () => this.term(),
      isActing: () => this.isActing(),
      observeMembers: (pass) => this.observeMembers(volume, pass),
      managers: (pass) => this.peersFor(volume, pass).map((p) => ({ name: p.info.member, healthy: false, managerAlive: true, clientURLs: p.record.clientURLs, peerURLs: p.record.peerURLs })),
      backup,
      restore,
      clock: this.clock,
      log: this.log,
    });
    const acting = (pass: Pass) => this.isActing() && (pass.leading || this.soleMember());
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
      beforeChange: (what) => backup.beforeChange(what),
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
          this.spec = pass.spec;
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
          this.lastAlive = pass.survey.alive;
          // While etcd has more members than the spec (a shrink under way), votes are counted against the larger number.
          const result = await election.step(pass, Math.max(pass.spec.memberCount, local.lastMembers));
          if (pass.leading) pass.created = await this.backups.exists(CONTROL.created);
          return result;
        },
      },
      { name: 'discovery', leaderOnly: true, run: (pass) => discovery.prune(pass) },
      {
        name: 'commands',
        run: async (pass) => {
          if (!acting(pass)) return undefined;
          pass.created ??= await this.backups.exists(CONTROL.created);
          return this.inbox!.step();
        },
      },
      { name: 'restore', run: (pass) => (acting(pass) || !this.isActing() ? restore.step(pass) : Promise.resolve(undefined)) },
      {
        name: 'newcluster',
        leaderOnly: true,
        run: (pass) => (pass.created || pass.restoring ? Promise.resolve(undefined) : formCluster({
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
      { name: 'membership', leaderOnly: true, run: (pass) => (pass.created && !pass.restoring ? membership.step(pass) : Promise.resolve(undefined)) },
      { name: 'version', run: (pass) => (acting(pass) ? version.step(pass) : Promise.resolve(undefined)) },
      { name: 'backup', run: (pass) => (acting(pass) || !this.isActing() ? backup.step(pass) : Promise.resolve(undefined)) },
      { name: 'status', run: (pass) => (acting(pass) ? status.step(pass) : Promise.resolve(undefined)) },
      {
        name: 'local-health',
        run: async () => {
          const result = await local.healthStep();
          this.metrics.members.set(local.lastMembers);
          return result;
        },
      },
      {
        name: 'trash',
        run: async () => {
          await memberRestore.trashStep();
          return undefined;
        },
      },
    ];
  }

  /** The key backups are encrypted with: --backup-encryption-key-file, else the state store's secret, else none. Read each time. */
  private async backupKey(): Promise<BackupKey | undefined> {
    const { loadKeyFile, loadKeySecret } = await import('./backup/encryption.js');
    return this.config.backupEncryptionKeyFile ? loadKeyFile(this.config.backupEncryptionKeyFile) : loadKeySecret(this.state);
  }

  /** etcd 3.4's etcdctl for this version: <etcd-binary-dir>/<version>/etcdctl when there, else the system one. */
  private async snapshotTool(version: string): Promise<SnapshotTool> {
    const { SYSTEM_ETCDCTL } = await import('./backup/etcdctl.js');
    const dir = this.config.etcdBinaryDir;
    const own = dir ? join(dir, version, 'etcdctl') : undefined;
    return own && existsSync(own) ? { binary: own, kind: 'etcdctl' } : SYSTEM_ETCDCTL;
  }

  /** The managers that answered this pass; a one-member cluster's manager is its own. */
  private peersFor(volume: Volume, pass: Pass): LivePeer[] {
    if (pass.survey) return pass.survey.alive;
    return this.soleMember() && this.local ? [{ record: this.peerRecord(volume), info: this.peerInfo(volume) }] : this.lastAlive;
  }

  /** Client endpoints (by IP) of a peer, or of this member (quarantined or not). */
  private endpointsOf(peer: LivePeer, self: string): string[] {
    if (peer.info.member === self) return this.localClientEndpoints();
    return peer.record.clientURLs.map((u) => listenURL(u, peer.record.address));
  }

  /** A snapshot source on one healthy member: this one's etcd first, then the others that answered. */
  private async openSnapshot(volume: Volume): Promise<SnapshotLease | undefined> {
    const candidates: string[] = [];
    if (this.etcd.running) candidates.push(...this.localClientEndpoints());
    for (const a of this.lastAlive) if (a.info.member !== volume.memberName && a.info.etcdRunning) candidates.push(...this.endpointsOf(a, volume.memberName));
    for (const endpoint of [...new Set(candidates)]) {
      const client = await openSnapshotClient(endpoint, this.tls?.etcdClient);
      try {
        await client.maintenance.status();
      } catch {
        client.close();
        continue;
      }
      const { etcdSnapshotSource } = await import('./backup/snapshot-stream.js');
      return { source: etcdSnapshotSource(client, endpoint), endpoint, close: () => client.close() };
    }
    return undefined;
  }

  private newBackupController(): BackupController {
    const cfg = this.config;
    return new BackupController({
      store: this.backups,
      openSnapshot: () => this.openSnapshot(this.volume!),
      v2DataDir: async () => {
        const state = this.local?.volumeState;
        if (!this.volume || !state || !runsV2(state.etcdVersion)) return undefined;
        return { dataDir: etcdDataDir(this.volume.mountPoint, state.clusterToken), etcdctl: (await this.snapshotTool(state.etcdVersion)).binary, etcdVersion: state.etcdVersion };
      },
      key: () => this.backupKey(),
      clusterSpec: () => this.spec,
      intervalMs: cfg.backupIntervalMs,
      retention: cfg.retention,
      clock: this.clock,
      log: this.log,
      isActing: () => this.isActing(),
      term: () => this.term(),
      wake: (reason) => this.controller?.wake(reason),
      metrics: {
        setLast: (last) => this.metrics.setLastBackup(last),
        succeeded: (reason) => this.metrics.backups.inc({ reason }),
        failed: (reason) => this.metrics.backupFailures.inc({ reason }),
      },
      ...(this.hooks.holdBackupUpload ? { holdUploadReason: this.hooks.holdBackupUpload } : {}),
    });
  }

  private newMemberRestore(volume: Volume, local: LocalMember): MemberRestore {
    const cfg = this.config;
    return new MemberRestore({
      volume,
      local: () => local,
      restoreData: async ({ backup, clusterToken, initialCluster, onProgress }) => {
        const lib = await import('./backup/index.js');
        const key = await this.backupKey();
        try {
          await lib.restoreMemberData({
            store: this.backups, name: backup, key, tool: await this.snapshotTool(local.volumeState?.etcdVersion ?? this.spec?.etcdVersion ?? ''),
            workDir: join(volume.mountPoint, 'restore-work'), dataRoot: join(volume.mountPoint, 'data'),
            member: { name: volume.memberName, peerURLs: initialCluster[volume.memberName] ?? [] }, initialCluster, clusterToken,
            onProgress: (p) => onProgress(p.storedBytes),
          });
        } catch (err) {
          if (err instanceof lib.BackupVerifyError) throw new BadBackupError(err.check, err.message);
          throw err;
        }
      },
      emptyTrash: async (root, nowMs) => (await (await import('./backup/trash.js')).emptyTrash(root, nowMs, { keepForMs: cfg.trashRetentionMs })).map((e) => e.path),
      moveToTrash: async (path, root, nowMs) => (await import('./backup/trash.js')).moveToTrash(path, root, nowMs),
      clock: this.clock,
      log: this.log,
      changed: (reason) => this.changed(reason),
    });
  }

  private newRestoreLeader(volume: Volume, local: LocalMember): RestoreLeader {
    const cfg = this.config;
    const self = volume.memberName;
    const tls = () => this.tls?.etcdClient;
    const quarantined = (p: LivePeer) => expandURLs(cfg.quarantineClientURLs, p.record.dnsName, p.record.address).map((u) => listenURL(u, p.record.address));
    return new RestoreLeader({
      self,
      clusterName: cfg.clusterName,
      store: this.backups,
      send: async (peer, action: RestoreAction) => {
        const command = { leader: self, term: this.term(), ...action } as RestoreCommand;
        if (peer.info.member === self) {
          await this.memberRestore!.onCommand(command); // this manager's own member: no fence to pass but its own
          return;
        }
        const r = await this.peerClient!.command(peer.record.grpcEndpoint, command);
        if (r.status !== 200) throw new Error(`${peer.info.member} refused ${action.action}: ${r.body.error ?? r.status}`);
      },
      peers: (pass) => this.peersFor(volume, pass),
      liveToken: () => local.volumeState?.clusterToken,
      clusterHealthy: async (peers) => {
        const token = local.volumeState?.clusterToken;
        const endpoints = peers.filter((p) => token !== undefined && p.info.clusterToken === token && p.info.etcdRunning).flatMap((p) => this.endpointsOf(p, self));
        return endpoints.length > 0 && (await checkEtcd([...new Set(endpoints)], tls(), MEMBER_HEALTH_TIMEOUT_MS)).healthy;
      },
      restoredHealthy: async (members, plan, through) => {
        const wrongToken = members.filter((p) => p.info.clusterToken !== plan.clusterToken).map((p) => p.info.member);
        if (wrongToken.length > 0) return { healthy: false, detail: `not on the restored data yet: ${wrongToken.join(', ')}` };
        const urls = through === 'quarantine' ? quarantined : (p: LivePeer) => this.endpointsOf(p, self);
        const all = await checkEtcd(members.flatMap(urls), tls(), MEMBER_HEALTH_TIMEOUT_MS);
        const names = Object.keys(plan.initialCluster).sort();
        const listed = (all.members ?? []).filter((m) => !m.isLearner).map((m) => m.name).sort();
        if (!all.healthy || JSON.stringify(listed) !== JSON.stringify(names)) return { healthy: false, detail: all.healthy ? `etcd lists ${listed.join(',') || 'no named member'}` : (all.error ?? 'no answer') };
        const each = await Promise.all(members.map(async (p) => ((await checkEtcd(urls(p), tls(), MEMBER_HEALTH_TIMEOUT_MS)).healthy ? '' : p.info.member)));
        const down = each.filter((m) => m !== '');
        return down.length > 0 ? { healthy: false, detail: `not answering: ${down.join(', ')}` } : { healthy: true, detail: 'every member healthy' };
      },
      checkBackup: (name) => this.checkBackup(name),
      backupNow: (detail) => this.backupCtl!.takeNow('before-restore', detail),
      afterRestore: async (plan, members) => {
        const etcd = await openEtcdClient(members.flatMap(quarantined), tls());
        try {
          await etcd.put(FENCE_KEY).value(fenceValue(this.term())).exec();
        } finally {
          etcd.close();
        }
        if (plan.writeSpec) {
          const { writeClusterSpecFile } = await import('./control/cluster-spec.js');
          await writeClusterSpecFile(this.backups, plan.clusterSpec);
        }
        if (!(await this.backups.exists(CONTROL.created))) {
          const { markClusterCreated } = await import('./control/cluster-created.js');
          await markClusterCreated(this.backups, { atMs: this.clock.wallNow(), extra: { restoredFrom: plan.backup, leader: self } });
        }
      },
      isActing: () => this.isActing(),
      term: () => this.term(),
      clock: this.clock,
      log: this.log,
      wake: (reason) => this.controller?.wake(reason),
      metrics: { restore: (result) => this.metrics.restores.inc({ result }) },
    });
  }

  /** The acting manager's version step (controller/version.ts) and what it reaches: the members' etcd and managers, the backup chain. */
  private newVersionStep(volume: Volume, local: LocalMember): VersionStep {
    const self = volume.memberName;
    return new VersionStep({
      store: this.backups,
      self,
      term: () => this.term(),
      currentVersion: () => local.volumeState?.etcdVersion,
      binaryDir: this.config.etcdBinaryDir || undefined,
      observe: async (pass) => (await this.observeVersions(volume, local, pass)).observation,
      backupNow: (detail) => this.backupCtl!.takeNow('before-upgrade', detail),
      convertV2: async (from, to, detail) => {
        const [{ convertV2Backup }, { findEtcdBinaries }] = await Promise.all([import('./migrate/convert.js'), import('./versions/binaries.js')]);
        const binaryDir = this.config.etcdBinaryDir || undefined;
        const binaries = await findEtcdBinaries(to, binaryDir);
        const memberCount = this.spec?.memberCount;
        return this.backupCtl!.convertNow(detail, async (name, key) => {
          const { taken } = await convertV2Backup({
            store: this.backups, from, name, to: binaries, binaryDir, clusterSpec: { ...(memberCount ? { memberCount } : {}), etcdVersion: to },
            ...(key ? { key } : {}), reason: `v2-migration: ${detail}`, log: this.log, now: () => this.clock.wallNow(),
          });
          return { name, storedBytes: taken.storedBytes, durationMs: taken.durationMs, snapshotBytes: taken.sidecar.snapshot.bytes, revision: taken.sidecar.etcd.revision, encrypted: taken.sidecar.encryption !== undefined };
        });
      },
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      clock: () => this.clock.now(),
      // Within the pass, well below the watchdog's bound (controller/reconcile.ts stuckAfterMs: 20 intervals, at least 20 s).
      restartTimeoutMs: Math.max(10_000, Math.min(120_000, 10 * this.config.reconcileIntervalMs)),
      setMemberVersion: async (member, etcdVersion, pass) => {
        const command = { leader: self, term: this.term(), action: 'set-version' as const, body: { etcdVersion } };
        if (member === self) {
          await local.onCommand(command); // this manager's own member: no fence to pass but its own
          return;
        }
        const peer = this.peersFor(volume, pass).find((p) => p.info.member === member);
        if (!peer) throw new Error(`the manager of member ${member} does not answer`);
        const r = await this.peerClient!.command(peer.record.grpcEndpoint, command);
        if (r.status !== 200) throw new Error(`${member} refused set-version ${etcdVersion}: ${r.body.error ?? r.status}`);
      },
      moveRaftLeader: async (from, to, pass) => {
        const { ids, endpoints } = await this.observeVersions(volume, local, pass);
        const target = ids.get(to);
        const source = endpoints.get(from) ?? [];
        if (!target || source.length === 0) throw new Error(`cannot move etcd's raft leadership from ${from} to ${to}: one of them is not in etcd's member list or has no client URL`);
        await moveEtcdLeader(source, target, this.tls?.etcdClient);
      },
      log: this.log,
      metrics: {
        blocked: (reason) => this.metrics.versionChangeBlocked.inc({ reason }),
        refused: () => this.metrics.versionChangeRefused.inc(),
      },
    });
  }

  /**
   * What every etcd member runs and how it is, for a version change: etcd's member list, each member's
   * own status (applied index, whom it follows), and the version its manager started it with; with
   * each member's etcd ID and client endpoints, for MoveLeader.
   */
  private async observeVersions(volume: Volume, local: LocalMember, pass: Pass): Promise<{ observation: ClusterObservation; ids: Map<string, string>; endpoints: Map<string, string[]> }> {
    const self = volume.memberName;
    const tls = this.tls?.etcdClient;
    const peers = this.peersFor(volume, pass);
    const all = [...(this.etcd.running ? this.localClientEndpoints() : []), ...peers.filter((p) => p.info.member !== self && p.info.etcdRunning).flatMap((p) => this.endpointsOf(p, self))];
    const view = all.length === 0 ? undefined : await checkEtcd([...new Set(all)], tls, MEMBER_HEALTH_TIMEOUT_MS);
    if (!view?.healthy || !view.members) throw new Error(`etcd's member list cannot be read${view?.error ? `: ${view.error}` : ''}`);
    const seen = await Promise.all(view.members.map(async (m) => {
      const peer = peers.find((p) => p.info.member === m.name);
      const urls = m.name === self ? this.localClientEndpoints() : peer ? m.clientURLs.map((u) => listenURL(u, peer.record.address)) : [];
      const status = urls.length > 0 ? await memberRaftStatus(urls, tls, MEMBER_HEALTH_TIMEOUT_MS) : undefined;
      const version = m.name === self ? local.runningVersion : peer?.info.etcdVersion;
      return { name: m.name, id: m.ID, urls, status, version };
    }));
    const leaderId = seen.map((m) => m.status?.leader).find((l) => l !== undefined && l !== '0');
    const leader = seen.find((m) => m.id === leaderId);
    const members: MemberObservation[] = seen.map((m) => ({
      name: m.name,
      healthy: m.status !== undefined,
      isRaftLeader: m.id === leaderId,
      ...(m.version !== undefined ? { version: m.version } : {}),
      ...(m.status ? { appliedIndex: m.status.raftAppliedIndex } : {}),
    }));
    return {
      observation: { managerLeader: self, members, ...(leader?.status ? { leaderIndex: leader.status.raftIndex } : {}) },
      ids: new Map(seen.map((m) => [m.name, m.id])),
      endpoints: new Map(seen.map((m) => [m.name, m.urls])),
    };
  }

  /** The leader's cheap look at a backup before a restore: it exists, its meta parses, the key fits. */
  private async checkBackup(name: string): Promise<void> {
    const lib = await import('./backup/index.js');
    try {
      lib.checkBackupName(name);
    } catch (err) {
      throw new BadBackupError('meta', `restore: ${(err as Error).message}`);
    }
    let info;
    try {
      info = await lib.loadBackupInfo(this.backups, name);
    } catch (err) {
      if (err instanceof lib.BackupNotFoundError || err instanceof lib.BackupFormatError) throw new BadBackupError('meta', err.message);
      throw err;
    }
    if (!info.meta.etcdVersion) throw new BadBackupError('meta', `backup ${name}: ${this.backups.urlOf(`${name}/${lib.META_FILE}`)} names no etcdVersion`);
    const encryption = info.sidecar?.encryption;
    if (!encryption) return;
    let key: BackupKey | undefined;
    try {
      key = await this.backupKey();
    } catch (err) {
      throw new BadBackupError('key', `backup ${name} is encrypted, and the key cannot be read: ${(err as Error).message}`);
    }
    if (!key) throw new BadBackupError('key', `backup ${name} is encrypted (AES-256-GCM, key id ${encryption.keyId}); give the managers its key (--backup-encryption-key-file, or the state store secret ${this.state.urlOf('secrets/etcd-backup-encryption-key')})`);
    if (key.id !== encryption.keyId) throw new BadBackupError('key', `backup ${name} is encrypted with key id ${encryption.keyId}, but the key from ${key.source} has id ${key.id} (wrong key)`);
  }

  /** etcd's members, each one's health through its own client URLs; undefined when etcd does not answer. */
  private async observeMembers(volume: Volume, pass: Pass): Promise<StatusMember[] | undefined> {
    const self = volume.memberName;
    const peers = this.peersFor(volume, pass);
    const endpoints = [...(this.etcd.running ? this.localClientEndpoints() : []), ...peers.filter((p) => p.info.member !== self && p.info.etcdRunning).flatMap((p) => this.endpointsOf(p, self))];
    if (endpoints.length === 0) return undefined;
    const tls = this.tls?.etcdClient;
    const view = await checkEtcd([...new Set(endpoints)], tls, MEMBER_HEALTH_TIMEOUT_MS);
    if (!view.healthy || !view.members) return undefined;
    return Promise.all(view.members.map(async (m): Promise<StatusMember> => {
      const peer = peers.find((p) => p.info.member === m.name);
      const address = m.name === self ? this.address : peer?.record.address;
      const urls = m.clientURLs.map((u) => (address ? listenURL(u, address) : u));
      const healthy = urls.length > 0 && (await checkEtcd(urls, tls, MEMBER_HEALTH_TIMEOUT_MS)).healthy;
      return {
        name: m.name, id: m.ID, healthy, ...(m.isLearner ? { learner: true } : {}), managerAlive: peer !== undefined || m.name === self,
        ...(m.name === self ? { quarantined: this.etcd.isQuarantined } : {}), clientURLs: m.clientURLs, peerURLs: m.peerURLs,
      };
    }));
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
      v2API: runsV2(state.etcdVersion),
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
    return ensureManagerTLS({ store: this.state, etcdName: cfg.etcdName, identity, pkiDir: cfg.pkiDir, log: this.log, issue: this.issue, ...short });
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
          const result = isRestoreCommand(c) ? await this.memberRestore!.onCommand(c) : await this.local!.onCommand(c);
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
    const restore = this.memberRestore?.info();
    return {
      member: volume.memberName,
      term: v.term,
      leader: v.leader,
      etcdRunning: this.etcd.running,
      clusterToken: local?.volumeState?.clusterToken,
      initialCluster: local?.volumeState?.initialCluster,
      volumeEmpty: local?.volumeEmpty ?? false,
      canLead: (this.controller?.loopAlive() ?? true) && !local?.standby && !this.stopped,
      ...(restore ? { restore } : {}),
      ...(local?.runningVersion ? { etcdVersion: local.runningVersion } : {}),
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
    this.inbox?.stop();
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
