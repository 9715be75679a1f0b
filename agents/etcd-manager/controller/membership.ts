// The leader's membership step, once the cluster exists: at most ONE change per
// pass, so every change is judged against etcd's fresh view.
//   0. claim the etcd fence for this term (see claimFence);
//   1. promote a learner once etcd says it has caught up;
//   2. re-send the join to an added member whose etcd has not started;
//   3. tell a manager whose member etcd no longer lists to stand by (a removal
//      whose "leave" did not arrive, or a member removed while it was away);
//   4. remove a member whose manager is back with an EMPTY volume (its data is
//      gone; it will be added again as a new member — no restore needed);
//   5. remove a member unhealthy for longer than --unhealthy-member-timeout
//      whose manager is gone, so a replacement can join (the clock is kept in
//      etcd, so a change of leader does not restart it);
//   6. remove an extra member (more members than memberCount: shrink), after
//      quarantining it when the others keep quorum through its restart, then
//      tell its manager to stand by;
//   7. add a missing member as a learner, then tell its manager to join
//      (it starts quarantined and lifts that once it is a voting member).
// Every change to etcd's membership first passes the etcd fence; removals
// never leave fewer healthy members than the quorum of the new membership.
// etcd is reached through MembershipEtcd (etcdMembership() over etcd3 in
// production, a fake in the unit test). Before every add or remove a backup is
// taken (the `beforeChange` hook, controller/backup.ts): the change waits until
// one has completed (a promotion completes an add, which had its backup).
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../../shared/log.js';
import { listenURL } from '../etcd/process.js';
import type { PeerTransport } from '../peer/api.js';
import type { LeaderAction } from '../peer/protocol.js';
import type { LivePeer } from './election.js';
import type { Pass, StepResult, TestHooks } from './types.js';

export type { LivePeer } from './election.js';

/** An etcd member as the membership step sees it (etcd3's IMember, as far as it is used). */
export interface EtcdMember {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner?: boolean;
}

/** What the membership step asks of etcd. */
export interface MembershipEtcd {
  /** Linearizable member list. */
  memberList(): Promise<EtcdMember[]>;
  promote(id: string): Promise<void>;
  addLearner(peerURLs: string[]): Promise<void>;
  remove(id: string): Promise<void>;
  /** See claimFence. */
  claimFence(term: number): Promise<{ ok: boolean; held?: number }>;
  /** member ID → when the clock started (wall-clock ms). */
  unhealthyClock(): Promise<Map<string, number>>;
  /** Starts a member's clock, only under this term: false when the fence holds a newer one. */
  startUnhealthyClock(id: string, sinceMs: number, term: number): Promise<boolean>;
  clearUnhealthyClock(id: string): Promise<void>;
  close(): void;
}
/** The key every membership change is fenced on: it holds the highest leader term that changed membership. */
export const FENCE_KEY = '/mooring/etcd-manager/leader-term';

/** member ID (decimal) → when a leader first saw it unhealthy with its manager gone (wall-clock ms). */
export const UNHEALTHY_PREFIX = '/mooring/etcd-manager/unhealthy-since/';

/** Zero-padded, so etcd's byte-wise comparison orders terms numerically. */
export const fenceValue = (term: number): string => String(term).padStart(20, '0');

export interface MembershipContext {
  self: string;
  alive: LivePeer[];
  memberCount: number;
  clusterToken: string;
  /** The leader's term: written to the fence before each change. */
  term: number;
  /** Opens etcd through these client endpoints. */
  openEtcd(endpoints: string[]): Promise<MembershipEtcd>;
  /** Whether a member answers on these client URLs (a short deadline). */
  memberHealthy(clientURLs: string[]): Promise<boolean>;
  log: Logger;
  unhealthyTimeoutMs: number;
  /** Wall-clock ms: the unhealthy clock is shared by successive leaders, possibly on other hosts. */
  now(): number;
  /** Checked right before each change. */
  isLeader(): boolean;
  /** Called after isLeader() said yes and before the fence: a test hook (a pause here is what the fence is for). */
  beforeFence?(what: string): void;
  /** True once a backup was taken for this change; false: the change waits (the hook starts one). */
  beforeChange?(what: string): Promise<boolean>;
  /** Tells a peer's manager to join with this initial cluster (fenced by term). */
  join(peer: LivePeer, initialCluster: Record<string, string[]>): Promise<void>;
  /** Sends a fenced command ('quarantine', 'leave') to a peer's manager. */
  command(peer: LivePeer, action: 'quarantine' | 'leave'): Promise<void>;
}

const samePeerURLs = (m: EtcdMember, p: LivePeer['record']) => m.peerURLs.length > 0 && m.peerURLs.every((u) => p.peerURLs.includes(u));
const quorum = (n: number) => Math.floor(n / 2) + 1;

/**
 * etcd as the fence: succeeds only if the fence key holds a term no higher
 * than ours, and then holds ours. A deposed leader (paused between its
 * leadership check and its etcd call) finds a higher term there and is refused.
 */
export async function claimFence(etcd: Etcd3, term: number): Promise<{ ok: boolean; held?: number }> {
  const mine = fenceValue(term);
  const created = await etcd.if(FENCE_KEY, 'Create', '==', 0).then(etcd.put(FENCE_KEY).value(mine)).commit();
  if (created.succeeded) return { ok: true };
  const r = await etcd.if(FENCE_KEY, 'Value', '>', mine).then(etcd.get(FENCE_KEY)).else(etcd.put(FENCE_KEY).value(mine)).commit();
  if (!r.succeeded) return { ok: true };
  const held = r.responses[0]?.response_range?.kvs[0]?.value.toString();
  return { ok: false, held: held === undefined ? undefined : Number(held) };
}

/** What one membership pass did (a change), or waits on (a learner catching up); empty when nothing is due. */
export interface MembershipOutcome {
  did?: string;
  waitFor?: string;
}

/** The etcd3 implementation of MembershipEtcd. */
export function etcdMembership(etcd: Etcd3): MembershipEtcd {
  return {
    memberList: async () => (await etcd.cluster.memberList({ linearizable: true })).members,
    promote: async (id) => { await etcd.cluster.memberPromote({ ID: id }); },
    addLearner: async (peerURLs) => { await etcd.cluster.memberAdd({ peerURLs, isLearner: true }); },
    remove: async (id) => { await etcd.cluster.memberRemove({ ID: id }); },
    claimFence: (term) => claimFence(etcd, term),
    unhealthyClock: async () => {
      const all = await etcd.getAll().prefix(UNHEALTHY_PREFIX).strings();
      return new Map(Object.entries(all).map(([key, value]) => [key.slice(UNHEALTHY_PREFIX.length), Number(value)]));
    },
    startUnhealthyClock: async (id, sinceMs, term) => {
      // Only under our term: a deposed leader's late write must not start the clock early.
      const w = await etcd.if(FENCE_KEY, 'Value', '>', fenceValue(term)).else(etcd.put(UNHEALTHY_PREFIX + id).value(String(sinceMs))).commit();
      return !w.succeeded;
    },
    clearUnhealthyClock: async (id) => { await etcd.delete().key(UNHEALTHY_PREFIX + id).exec(); },
    close: () => etcd.close(),
  };
}

export async function reconcileMembership(ctx: MembershipContext): Promise<MembershipOutcome> {
  const inCluster = ctx.alive.filter((p) => p.info.clusterToken === ctx.clusterToken);
  const endpoints = inCluster.flatMap((p) => p.record.clientURLs.map((u) => listenURL(u, p.record.address)));
  if (endpoints.length === 0) return {};
  const etcd = await ctx.openEtcd(endpoints);
  try {
    const members = await etcd.memberList();
    const peerOf = (m: EtcdMember) => ctx.alive.find((p) => samePeerURLs(m, p.record));

    /** A backup first (add and remove only): false while it is being taken. */
    const backedUp = async (what: string): Promise<boolean> => !ctx.beforeChange || (await ctx.beforeChange(what));
    const waitBackup = (what: string): MembershipOutcome => ({ waitFor: `a backup before ${what}` });

    /** Leadership check, test hook, then the etcd fence: only then may membership change. */
    const fenced = async (what: string): Promise<boolean> => {
      if (!ctx.isLeader()) return false;
      ctx.beforeFence?.(what);
      const f = await etcd.claimFence(ctx.term);
      if (!f.ok) ctx.log.warn('membership change refused by the etcd fence: a newer leader has acted', { event: 'membership.fenced', change: what, term: ctx.term, fenceTerm: f.held, key: FENCE_KEY });
      return f.ok;
    };

    for (const m of members.filter((x) => x.isLearner && x.name !== '')) {
      if (!(await fenced(`promote ${m.name}`))) return {};
      try {
        await etcd.promote(m.ID);
        ctx.log.info('learner promoted to voting member', { event: 'member.promoted', member: m.name });
        return { did: `promoted ${m.name}` };
      } catch (err) {
        ctx.log.info('learner not caught up yet', { event: 'member.learner-behind', member: m.name, reason: (err as Error).message });
        return { waitFor: `learner ${m.name} to catch up` }; // one at a time: wait for this one
      }
    }

    const initialCluster = (extra?: LivePeer): Record<string, string[]> => {
      const map: Record<string, string[]> = {};
      for (const m of members) {
        const name = m.name || peerOf(m)?.info.member;
        if (name) map[name] = m.peerURLs;
      }
      if (extra) map[extra.info.member] = extra.record.peerURLs;
      return map;
    };

    for (const m of members.filter((x) => x.name === '')) {
      const peer = peerOf(m);
      if (!peer || !ctx.isLeader()) return { waitFor: 'an added member to start' };
      await ctx.join(peer, initialCluster());
      return { did: `re-sent join to ${peer.info.member}` };
    }

    // A manager still holding this cluster's data whose member etcd no longer lists: it was removed.
    for (const peer of inCluster) {
      if (peer.info.member === ctx.self || members.some((m) => m.name === peer.info.member || samePeerURLs(m, peer.record))) continue;
      if (!ctx.isLeader()) return {};
      ctx.log.info('member is no longer in etcd: telling its manager to stand by', { event: 'member.told-to-leave', member: peer.info.member });
      await ctx.command(peer, 'leave');
      return { did: `told ${peer.info.member} to stand by` };
    }

    for (const peer of ctx.alive.filter((p) => p.info.volumeEmpty)) {
      const stale = members.find((m) => m.name === peer.info.member);
      if (!stale) continue;
      if (!(await backedUp(`remove ${stale.name}`))) return waitBackup(`remove ${stale.name}`);
      if (!(await fenced(`remove ${stale.name} (empty volume)`))) return {};
      ctx.log.warn('member is back with an empty volume: removing its old self so it can rejoin', { event: 'member.removed-empty', member: stale.name, id: stale.ID });
      await etcd.remove(stale.ID);
      return { did: `removed ${stale.name} (empty volume)` };
    }

    // Health of every member through its own client URLs (the ones it advertises, quarantined or not).
    const health = new Map<string, boolean>();
    await Promise.all(members.map(async (m) => {
      const urls = m.clientURLs.map((u) => {
        const peer = peerOf(m);
        return peer ? listenURL(u, peer.record.address) : u;
      });
      health.set(m.ID, urls.length > 0 && (await ctx.memberHealthy(urls)));
    }));
    const healthyWithout = (victim: EtcdMember) => members.filter((m) => m.ID !== victim.ID && !m.isLearner && health.get(m.ID)).length;
    const keepsQuorum = (victim: EtcdMember) => healthyWithout(victim) >= quorum(members.filter((m) => m.ID !== victim.ID && !m.isLearner).length);

    // The unhealthy clock lives in etcd (wall-clock ms per member ID), so a new leader goes on counting.
    const now = ctx.now();
    const since = await etcd.unhealthyClock();
    for (const m of members) {
      const gone = !health.get(m.ID) && !peerOf(m) && m.name !== ctx.self;
      if (!gone && since.has(m.ID)) {
        await etcd.clearUnhealthyClock(m.ID);
        since.delete(m.ID);
      } else if (gone && !since.has(m.ID)) {
        if (!(await etcd.startUnhealthyClock(m.ID, now, ctx.term))) return {}; // the fence holds a newer term
        since.set(m.ID, now);
        ctx.log.warn('member unhealthy and its manager gone', { event: 'member.unhealthy', member: m.name, removeAfterMs: ctx.unhealthyTimeoutMs });
      }
    }
    for (const [id] of since) if (!members.some((m) => m.ID === id)) await etcd.clearUnhealthyClock(id);
    for (const m of members) {
      const from = since.get(m.ID);
      if (from === undefined || now - from < ctx.unhealthyTimeoutMs) continue;
      if (!keepsQuorum(m)) {
        ctx.log.warn('not removing an unhealthy member: the rest would not be a healthy quorum', { event: 'member.removal-skipped', member: m.name });
        continue;
      }
      if (!(await backedUp(`remove ${m.name}`))) return waitBackup(`remove ${m.name}`);
      if (!(await fenced(`remove unhealthy ${m.name}`))) return {};
      ctx.log.warn('removing a member unhealthy past the threshold, its manager gone', { event: 'member.removed-unhealthy', member: m.name, id: m.ID, unhealthyForMs: Math.round(now - from) });
      await etcd.remove(m.ID);
      await etcd.clearUnhealthyClock(m.ID);
      return { did: `removed unhealthy ${m.name}` };
    }

    if (members.length > ctx.memberCount) {
      // Shrink one member at a time: the highest-named other member, preferring one already unhealthy.
      const candidates = members.filter((m) => m.name !== ctx.self).sort((x, y) => Number(health.get(x.ID)) - Number(health.get(y.ID)) || y.name.localeCompare(x.name));
      const victim = candidates.find((m) => keepsQuorum(m));
      if (!victim) {
        ctx.log.warn('not shrinking: removing any member would lose quorum', { event: 'member.removal-skipped', members: members.length, want: ctx.memberCount });
        return {};
      }
      const peer = peerOf(victim);
      if (!(await backedUp(`remove ${victim.name}`))) return waitBackup(`remove ${victim.name}`);
      if (!(await fenced(`remove extra ${victim.name}`))) return {};
      // Clients (the API server) should not use a member on its way out, but quarantine restarts its
      // etcd: only when the other members hold a quorum of the CURRENT membership without it (not 2→1).
      const othersHoldQuorum = healthyWithout(victim) >= quorum(members.filter((m) => !m.isLearner).length);
      if (peer && health.get(victim.ID) && othersHoldQuorum) {
        await ctx.command(peer, 'quarantine');
        ctx.log.info('quarantined the member being removed', { event: 'member.quarantined', member: victim.name });
      } else if (peer && health.get(victim.ID)) {
        ctx.log.info('not quarantining the member being removed: restarting its etcd would cost the quorum', { event: 'member.quarantine-skipped', member: victim.name, members: members.length });
      }
      await etcd.remove(victim.ID);
      ctx.log.info('extra member removed', { event: 'member.removed-extra', member: victim.name, members: members.length - 1, want: ctx.memberCount });
      if (peer) await ctx.command(peer, 'leave').catch((err: unknown) => ctx.log.warn('removed member did not take the stand-by command (re-sent next pass)', { member: victim.name, err }));
      return { did: `removed extra ${victim.name}` };
    }

    if (members.length < ctx.memberCount) {
      const candidate = ctx.alive.find((p) => p.info.volumeEmpty && !members.some((m) => samePeerURLs(m, p.record) || m.name === p.info.member));
      if (!candidate) return {};
      if (!(await backedUp(`add ${candidate.info.member}`))) return waitBackup(`add ${candidate.info.member}`);
      if (!(await fenced(`add ${candidate.info.member}`))) return {};
      await etcd.addLearner(candidate.record.peerURLs);
      ctx.log.info('member added as a learner', { event: 'member.added', member: candidate.info.member, members: members.length + 1, want: ctx.memberCount });
      await ctx.join(candidate, initialCluster(candidate));
      return { did: `added ${candidate.info.member}` };
    }
    return {};
  } finally {
    etcd.close();
  }
}

export interface MembershipStepDeps {
  self: string;
  transport(): PeerTransport;
  openEtcd(endpoints: string[]): Promise<MembershipEtcd>;
  memberHealthy(clientURLs: string[]): Promise<boolean>;
  /** This member's cluster token (from its volume), if it has one. */
  clusterToken(): string | undefined;
  isLeader(): boolean;
  term(): number;
  unhealthyTimeoutMs: number;
  /** Wall-clock ms (the unhealthy clock is shared with other hosts). */
  wallNow(): number;
  log: Logger;
  hooks: TestHooks;
  /** Settles when the manager stops (ends the hang test hook). */
  stopped: Promise<void>;
  /** A backup before each add or remove (BackupController.beforeChange). */
  beforeChange?(what: string): Promise<boolean>;
}

/** The leader's membership step: claims the etcd fence once per term, then one change per pass. */
export class MembershipLeader {
  private fencedTerm = 0;
  private stoppedBeforeFence = false;

  constructor(private readonly deps: MembershipStepDeps) {}

  async step(pass: Pass): Promise<StepResult | undefined> {
    const { deps } = this;
    const { self, log, hooks } = deps;
    const spec = pass.spec;
    const alive = pass.survey?.alive ?? [];
    if (!spec) return undefined;
    if (hooks.hangWhileLeading) {
      log.warn('test hook: this reconcile pass hangs until the manager stops', { event: 'test-hook.hang', term: deps.term() });
      await deps.stopped;
      return { stop: true };
    }
    const token = deps.clusterToken() ?? alive.find((a) => a.info.clusterToken)?.info.clusterToken;
    if (!token) return undefined;
    const term = deps.term();
    if (this.fencedTerm !== term) await this.claimOnElection(alive, token, term);
    const transport = deps.transport();
    const send = async (peer: LivePeer, action: LeaderAction): Promise<void> => {
      const r = await transport.command(peer.record.grpcEndpoint, { leader: self, term, ...action });
      if (r.status !== 200) throw new Error(`${peer.info.member} refused ${action.action}: ${r.body.error ?? r.status}`);
    };
    const outcome = await reconcileMembership({
      self,
      alive,
      memberCount: spec.memberCount,
      clusterToken: token,
      term,
      openEtcd: deps.openEtcd,
      memberHealthy: deps.memberHealthy,
      log,
      unhealthyTimeoutMs: deps.unhealthyTimeoutMs,
      now: deps.wallNow,
      isLeader: deps.isLeader,
      beforeFence: (what) => this.testStopBeforeFence(what, term),
      ...(deps.beforeChange ? { beforeChange: deps.beforeChange } : {}),
      join: (peer, initialCluster) => send(peer, { action: 'join', body: { clusterToken: token, initialCluster, etcdVersion: spec.etcdVersion } }),
      command: (peer, action) => send(peer, { action }),
    });
    if (outcome.did) log.info('membership step', { event: 'membership.step', did: outcome.did });
    return outcome;
  }

  /** A new leader writes its term into etcd's fence key before anything else, locking out older leaders' late changes. */
  private async claimOnElection(alive: LivePeer[], token: string, term: number): Promise<void> {
    const endpoints = alive.filter((a) => a.info.clusterToken === token).flatMap((a) => a.record.clientURLs.map((u) => listenURL(u, a.record.address)));
    if (endpoints.length === 0) return;
    const etcd = await this.deps.openEtcd(endpoints);
    try {
      const f = await etcd.claimFence(term);
      if (f.ok) {
        this.fencedTerm = term;
        this.deps.log.info('etcd fence claimed for this term', { event: 'fence.claimed', term });
      } else {
        this.deps.log.warn('etcd fence holds a newer term: not acting', { event: 'fence.newer', term, fenceTerm: f.held });
      }
    } finally {
      etcd.close();
    }
  }

  /** Test hook (stopBeforeFence): SIGSTOP this process once, between the leadership check and the fence. */
  private testStopBeforeFence(what: string, term: number): void {
    if (!this.deps.hooks.stopBeforeFence || this.stoppedBeforeFence) return;
    this.stoppedBeforeFence = true;
    this.deps.log.warn('test hook: stopping before the etcd fence', { event: 'test-hook.stop-before-fence', change: what, term });
    process.kill(process.pid, 'SIGSTOP');
  }
}
