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
// Backups before changes are not done yet.
import type { Etcd3, IMember } from 'etcd3';
import type { Logger } from '../../shared/log.js';
import type { PeerInfo } from './peer/api.js';
import type { PeerRecord } from './discovery.js';
import { checkEtcd, openEtcdClient } from './etcd/client.js';
import { listenURL, type EtcdTLSFiles } from './etcd/process.js';

export interface LivePeer {
  record: PeerRecord;
  info: PeerInfo;
}

/** The key every membership change is fenced on: it holds the highest leader term that changed membership. */
export const FENCE_KEY = '/mooring/etcd-manager/leader-term';

/** member ID (decimal) → when a leader first saw it unhealthy with its manager gone (wall-clock ms). */
export const UNHEALTHY_PREFIX = '/mooring/etcd-manager/unhealthy-since/';

async function readUnhealthyClock(etcd: Etcd3): Promise<Map<string, number>> {
  const all = await etcd.getAll().prefix(UNHEALTHY_PREFIX).strings();
  return new Map(Object.entries(all).map(([key, value]) => [key.slice(UNHEALTHY_PREFIX.length), Number(value)]));
}

/** Zero-padded, so etcd's byte-wise comparison orders terms numerically. */
export const fenceValue = (term: number): string => String(term).padStart(20, '0');

export interface MembershipContext {
  self: string;
  alive: LivePeer[];
  memberCount: number;
  clusterToken: string;
  /** The leader's term: written to the fence before each change. */
  term: number;
  etcdTLS?: EtcdTLSFiles;
  log: Logger;
  unhealthyTimeoutMs: number;
  /** Wall-clock ms: the unhealthy clock is shared by successive leaders, possibly on other hosts. */
  now(): number;
  /** Checked right before each change. */
  isLeader(): boolean;
  /** Called after isLeader() said yes and before the fence: a test hook (a pause here is what the fence is for). */
  beforeFence?(what: string): void;
  /** Tells a peer's manager to join with this initial cluster (fenced by term). */
  join(peer: LivePeer, initialCluster: Record<string, string[]>): Promise<void>;
  /** Sends a fenced command ('quarantine', 'leave') to a peer's manager. */
  command(peer: LivePeer, action: 'quarantine' | 'leave'): Promise<void>;
}

const samePeerURLs = (m: IMember, p: PeerRecord) => m.peerURLs.length > 0 && m.peerURLs.every((u) => p.peerURLs.includes(u));
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

/** Returns a short description of what it did, or undefined when nothing needed doing. */
export async function reconcileMembership(ctx: MembershipContext): Promise<string | undefined> {
  const inCluster = ctx.alive.filter((p) => p.info.clusterToken === ctx.clusterToken);
  const endpoints = inCluster.flatMap((p) => p.record.clientURLs.map((u) => listenURL(u, p.record.address)));
  if (endpoints.length === 0) return undefined;
  const etcd = await openEtcdClient(endpoints, ctx.etcdTLS);
  try {
    const { members } = await etcd.cluster.memberList({ linearizable: true });
    const peerOf = (m: IMember) => ctx.alive.find((p) => samePeerURLs(m, p.record));

    /** Leadership check, test hook, then the etcd fence: only then may membership change. */
    const fenced = async (what: string): Promise<boolean> => {
      if (!ctx.isLeader()) return false;
      ctx.beforeFence?.(what);
      const f = await claimFence(etcd, ctx.term);
      if (!f.ok) ctx.log.warn('membership change refused by the etcd fence: a newer leader has acted', { change: what, term: ctx.term, fenceTerm: f.held, key: FENCE_KEY });
      return f.ok;
    };

    for (const m of members.filter((x) => x.isLearner && x.name !== '')) {
      if (!(await fenced(`promote ${m.name}`))) return undefined;
      try {
        await etcd.cluster.memberPromote({ ID: m.ID });
        ctx.log.info('learner promoted to voting member', { member: m.name });
        return `promoted ${m.name}`;
      } catch (err) {
        ctx.log.info('learner not caught up yet', { member: m.name, reason: (err as Error).message });
        return undefined; // one at a time: wait for this one
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
      if (!peer || !ctx.isLeader()) return undefined;
      await ctx.join(peer, initialCluster());
      return `re-sent join to ${peer.info.member}`;
    }

    // A manager still holding this cluster's data whose member etcd no longer lists: it was removed.
    for (const peer of inCluster) {
      if (peer.info.member === ctx.self || members.some((m) => m.name === peer.info.member || samePeerURLs(m, peer.record))) continue;
      if (!ctx.isLeader()) return undefined;
      ctx.log.info('member is no longer in etcd: telling its manager to stand by', { member: peer.info.member });
      await ctx.command(peer, 'leave');
      return `told ${peer.info.member} to stand by`;
    }

    for (const peer of ctx.alive.filter((p) => p.info.volumeEmpty)) {
      const stale = members.find((m) => m.name === peer.info.member);
      if (!stale) continue;
      if (!(await fenced(`remove ${stale.name} (empty volume)`))) return undefined;
      ctx.log.warn('member is back with an empty volume: removing its old self so it can rejoin', { member: stale.name, id: stale.ID });
      await etcd.cluster.memberRemove({ ID: stale.ID });
      return `removed ${stale.name} (empty volume)`;
    }

    // Health of every member through its own client URLs (the ones it advertises, quarantined or not).
    const health = new Map<string, boolean>();
    await Promise.all(members.map(async (m) => {
      const urls = m.clientURLs.map((u) => {
        const peer = peerOf(m);
        return peer ? listenURL(u, peer.record.address) : u;
      });
      health.set(m.ID, urls.length > 0 && (await checkEtcd(urls, ctx.etcdTLS, 1_000)).healthy);
    }));
    const healthyWithout = (victim: IMember) => members.filter((m) => m.ID !== victim.ID && !m.isLearner && health.get(m.ID)).length;
    const keepsQuorum = (victim: IMember) => healthyWithout(victim) >= quorum(members.filter((m) => m.ID !== victim.ID && !m.isLearner).length);

    // The unhealthy clock lives in etcd (wall-clock ms per member ID), so a new leader goes on counting.
    const now = ctx.now();
    const since = await readUnhealthyClock(etcd);
    for (const m of members) {
      const gone = !health.get(m.ID) && !peerOf(m) && m.name !== ctx.self;
      if (!gone && since.has(m.ID)) {
        await etcd.delete().key(UNHEALTHY_PREFIX + m.ID).exec();
        since.delete(m.ID);
      } else if (gone && !since.has(m.ID)) {
        // Only under our term: a deposed leader's late write must not start the clock early.
        const w = await etcd.if(FENCE_KEY, 'Value', '>', fenceValue(ctx.term)).else(etcd.put(UNHEALTHY_PREFIX + m.ID).value(String(now))).commit();
        if (w.succeeded) return undefined; // the fence holds a newer term
        since.set(m.ID, now);
        ctx.log.warn('member unhealthy and its manager gone', { member: m.name, removeAfterMs: ctx.unhealthyTimeoutMs });
      }
    }
    for (const [id] of since) if (!members.some((m) => m.ID === id)) await etcd.delete().key(UNHEALTHY_PREFIX + id).exec();
    for (const m of members) {
      const from = since.get(m.ID);
      if (from === undefined || now - from < ctx.unhealthyTimeoutMs) continue;
      if (!keepsQuorum(m)) {
        ctx.log.warn('not removing an unhealthy member: the rest would not be a healthy quorum', { member: m.name });
        continue;
      }
      if (!(await fenced(`remove unhealthy ${m.name}`))) return undefined;
      ctx.log.warn('removing a member unhealthy past the threshold, its manager gone', { member: m.name, id: m.ID, unhealthyForMs: Math.round(now - from) });
      await etcd.cluster.memberRemove({ ID: m.ID });
      await etcd.delete().key(UNHEALTHY_PREFIX + m.ID).exec();
      return `removed unhealthy ${m.name}`;
    }

    if (members.length > ctx.memberCount) {
      // Shrink one member at a time: the highest-named other member, preferring one already unhealthy.
      const candidates = members.filter((m) => m.name !== ctx.self).sort((x, y) => Number(health.get(x.ID)) - Number(health.get(y.ID)) || y.name.localeCompare(x.name));
      const victim = candidates.find((m) => keepsQuorum(m));
      if (!victim) {
        ctx.log.warn('not shrinking: removing any member would lose quorum', { members: members.length, want: ctx.memberCount });
        return undefined;
      }
      const peer = peerOf(victim);
      if (!(await fenced(`remove extra ${victim.name}`))) return undefined;
      // Clients (the API server) should not use a member on its way out, but quarantine restarts its
      // etcd: only when the other members hold a quorum of the CURRENT membership without it (not 2→1).
      const othersHoldQuorum = healthyWithout(victim) >= quorum(members.filter((m) => !m.isLearner).length);
      if (peer && health.get(victim.ID) && othersHoldQuorum) {
        await ctx.command(peer, 'quarantine');
        ctx.log.info('quarantined the member being removed', { member: victim.name });
      } else if (peer && health.get(victim.ID)) {
        ctx.log.info('not quarantining the member being removed: restarting its etcd would cost the quorum', { member: victim.name, members: members.length });
      }
      await etcd.cluster.memberRemove({ ID: victim.ID });
      ctx.log.info('extra member removed', { member: victim.name, members: members.length - 1, want: ctx.memberCount });
      if (peer) await ctx.command(peer, 'leave').catch((err: unknown) => ctx.log.warn('removed member did not take the stand-by command (re-sent next pass)', { member: victim.name, err }));
      return `removed extra ${victim.name}`;
    }

    if (members.length < ctx.memberCount) {
      const candidate = ctx.alive.find((p) => p.info.volumeEmpty && !members.some((m) => samePeerURLs(m, p.record) || m.name === p.info.member));
      if (!candidate) return undefined;
      if (!(await fenced(`add ${candidate.info.member}`))) return undefined;
      await etcd.cluster.memberAdd({ peerURLs: candidate.record.peerURLs, isLearner: true });
      ctx.log.info('member added as a learner', { member: candidate.info.member, members: members.length + 1, want: ctx.memberCount });
      await ctx.join(candidate, initialCluster(candidate));
      return `added ${candidate.info.member}`;
    }
    return undefined;
  } finally {
    etcd.close();
  }
}
