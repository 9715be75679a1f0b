// The leader's membership step, once the cluster exists: at most ONE change per
// pass, so every change is judged against etcd's fresh view.
//   1. promote a learner once etcd says it has caught up;
//   2. re-send the join to an added member whose etcd has not started;
//   3. remove a member whose manager is back with an EMPTY volume (its data is
//      gone; it will be added again as a new member — no restore needed);
//   4. add a missing member as a learner, then tell its manager to join.
// Backups before changes and removing extra members (shrink) are not done yet.
import type { IMember } from 'etcd3';
import type { Logger } from '../../shared/log.js';
import type { PeerInfo } from './peer/api.js';
import type { PeerRecord } from './discovery.js';
import { openEtcdClient } from './etcd/client.js';
import { listenURL, type EtcdTLSFiles } from './etcd/process.js';

export interface LivePeer {
  record: PeerRecord;
  info: PeerInfo;
}

export interface MembershipContext {
  alive: LivePeer[];
  memberCount: number;
  clusterToken: string;
  etcdTLS?: EtcdTLSFiles;
  log: Logger;
  /** Checked right before each change. */
  isLeader(): boolean;
  /** Tells a peer's manager to join with this initial cluster (fenced by term). */
  join(peer: LivePeer, initialCluster: Record<string, string[]>): Promise<void>;
}

const samePeerURLs = (m: IMember, p: PeerRecord) => m.peerURLs.length > 0 && m.peerURLs.every((u) => p.peerURLs.includes(u));

/** Returns a short description of what it did, or undefined when nothing needed doing. */
export async function reconcileMembership(ctx: MembershipContext): Promise<string | undefined> {
  const inCluster = ctx.alive.filter((p) => p.info.clusterToken === ctx.clusterToken);
  const endpoints = inCluster.flatMap((p) => p.record.clientURLs.map((u) => listenURL(u, p.record.address)));
  if (endpoints.length === 0) return undefined;
  const etcd = await openEtcdClient(endpoints, ctx.etcdTLS);
  try {
    const { members } = await etcd.cluster.memberList({ linearizable: true });
    const peerOf = (m: IMember) => ctx.alive.find((p) => samePeerURLs(m, p.record));

    for (const m of members.filter((x) => x.isLearner && x.name !== '')) {
      if (!ctx.isLeader()) return undefined;
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

    for (const peer of ctx.alive.filter((p) => p.info.volumeEmpty)) {
      const stale = members.find((m) => m.name === peer.info.member);
      if (!stale || !ctx.isLeader()) continue;
      ctx.log.warn('member is back with an empty volume: removing its old self so it can rejoin', { member: stale.name, id: stale.ID });
      await etcd.cluster.memberRemove({ ID: stale.ID });
      return `removed ${stale.name} (empty volume)`;
    }

    if (members.length < ctx.memberCount) {
      const candidate = ctx.alive.find((p) => p.info.volumeEmpty && !members.some((m) => samePeerURLs(m, p.record) || m.name === p.info.member));
      if (!candidate || !ctx.isLeader()) return undefined;
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
