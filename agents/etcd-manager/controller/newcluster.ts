// Forming a new N-member cluster (the leader's step while
// control/etcd-cluster-created is absent): once every member has registered,
// choose the initial cluster and a new token, tell each member to form it
// (fenced commands, answered as soon as the member has accepted), and write
// the created marker once etcd itself lists every member, healthy.
//
// At most one cluster is ever formed: a formation already started (perhaps by
// a leader since deposed) is finished, never replaced: members that already
// hold a token are the source of truth, and members that disagree stop it.
// A one-member cluster needs no leader; its volume's holder creates it
// (local.ts), which cannot race either: volume claims are atomic.
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { EtcdHealth } from '../etcd/client.js';
import { listenURL } from '../etcd/process.js';
import type { PeerTransport } from '../peer/api.js';
import { newClusterToken } from '../volume-state.js';
import { CONTROL } from './spec.js';
import type { Clock, Pass, StepResult } from './types.js';

export interface NewClusterDeps {
  self: string;
  clusterName: string;
  backups: StateStore;
  transport(): PeerTransport;
  /** etcd's health through these client endpoints, each call within timeoutMs. */
  checkCluster(endpoints: string[], timeoutMs: number): Promise<EtcdHealth>;
  isLeader(): boolean;
  term(): number;
  clock: Clock;
  log: Logger;
  setPhase(phase: string): void;
  newToken?(clusterName: string): string;
}

/** A short deadline: members still starting do not answer, and the leader should not wait on them. */
const FORMING_HEALTH_TIMEOUT_MS = 1_000;

export async function formCluster(deps: NewClusterDeps, pass: Pass): Promise<StepResult | undefined> {
  const { self, log, backups } = deps;
  const spec = pass.spec;
  const alive = pass.survey?.alive ?? [];
  if (!spec) return undefined;
  const tokened = alive.filter((a) => a.info.clusterToken);
  let clusterToken: string;
  let initialCluster: Record<string, string[]>;
  if (tokened.length > 0) {
    // A formation was started (perhaps by a leader since deposed): finish that one, never a second.
    const first = tokened[0].info;
    if (tokened.some((a) => a.info.clusterToken !== first.clusterToken || JSON.stringify(a.info.initialCluster) !== JSON.stringify(first.initialCluster)) || !first.initialCluster) {
      log.error('members disagree about the cluster they belong to; not forming', { event: 'cluster.disagreement', tokens: tokened.map((a) => `${a.info.member}:${a.info.clusterToken}`) });
      return undefined;
    }
    clusterToken = first.clusterToken!;
    initialCluster = first.initialCluster;
  } else {
    if (alive.length < spec.memberCount) {
      // No poll: a manager that registers announces itself, which wakes this leader.
      deps.setPhase(`leader: waiting for members (${alive.length}/${spec.memberCount})`);
      return undefined;
    }
    const chosen = alive.slice(0, spec.memberCount);
    clusterToken = (deps.newToken ?? newClusterToken)(deps.clusterName);
    initialCluster = Object.fromEntries(chosen.map((a) => [a.info.member, a.record.peerURLs]));
    log.info('forming a new cluster', { event: 'cluster.forming', term: deps.term(), members: Object.keys(initialCluster) });
  }
  deps.setPhase('leader: forming the cluster');
  const transport = deps.transport();
  let asked = 0;
  for (const a of alive.filter((x) => Object.hasOwn(initialCluster, x.info.member) && x.info.clusterToken !== clusterToken)) {
    if (!deps.isLeader()) return undefined; // checked before every action
    const r = await transport.command(a.record.grpcEndpoint, { leader: self, term: deps.term(), action: 'form', body: { clusterToken, initialCluster, etcdVersion: spec.etcdVersion } });
    if (r.status !== 200) log.warn('member refused to form', { event: 'cluster.form-refused', member: a.info.member, status: r.status, error: r.body.error });
    else asked++;
  }
  // Announce the cluster once etcd itself reports every member, healthy.
  const endpoints = alive.filter((a) => Object.hasOwn(initialCluster, a.info.member)).flatMap((a) => a.record.clientURLs.map((u) => listenURL(u, a.record.address)));
  const health = await deps.checkCluster(endpoints, FORMING_HEALTH_TIMEOUT_MS);
  if (health.healthy && health.members?.length === spec.memberCount && health.members.every((m) => m.name !== '')) {
    await backups.write(CONTROL.created, JSON.stringify({ createdAt: new Date(deps.clock.wallNow()).toISOString(), leader: self, term: deps.term(), members: Object.keys(initialCluster) }) + '\n');
    log.info('cluster created', { event: 'cluster.created', marker: backups.urlOf(CONTROL.created), members: Object.keys(initialCluster) });
    return { did: 'cluster created' };
  }
  return { ...(asked > 0 ? { did: `asked ${asked} member(s) to form ${clusterToken}` } : {}), waitFor: 'the new cluster to be healthy' };
}
