// The leader's membership step without a process: a fake etcd (member list,
// learners, the fence, the unhealthy clock) behind MembershipEtcd, fake peers.
// One change per pass, each behind the leadership check and the etcd fence;
// learners promoted; a missing member added as a learner and told to join; an
// empty-volume member removed to be re-added; the unhealthy clock and the
// quorum rule; shrinking with quarantine only when the others keep a quorum.
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { reconcileMembership, type EtcdMember, type MembershipContext, type MembershipEtcd } from '../../agents/etcd-manager/controller/membership.js';
import type { LivePeer } from '../../agents/etcd-manager/controller/election.js';

const lines: Array<Record<string, unknown>> = [];
configureLogging({ format: 'json', level: 'info', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });

class FakeEtcd implements MembershipEtcd {
  fence = 0;
  clock = new Map<string, number>();
  actions: string[] = [];
  promotable = true;
  nextId = 100;
  constructor(public members: EtcdMember[]) {}
  memberList = async () => this.members.map((m) => ({ ...m }));
  promote = async (id: string) => {
    if (!this.promotable) throw new Error('can only promote a learner member which is in sync with leader');
    this.members = this.members.map((m) => (m.ID === id ? { ...m, isLearner: false } : m));
    this.actions.push(`promote ${id}`);
  };
  addLearner = async (peerURLs: string[]) => {
    this.members.push({ ID: String(this.nextId++), name: '', peerURLs, clientURLs: [], isLearner: true });
    this.actions.push(`add ${peerURLs.join(',')}`);
  };
  remove = async (id: string) => {
    this.members = this.members.filter((m) => m.ID !== id);
    this.actions.push(`remove ${id}`);
  };
  claimFence = async (term: number) => {
    if (this.fence > term) return { ok: false, held: this.fence };
    this.fence = term;
    return { ok: true };
  };
  unhealthyClock = async () => new Map(this.clock);
  startUnhealthyClock = async (id: string, since: number, term: number) => {
    if (this.fence > term) return false;
    this.clock.set(id, since);
    return true;
  };
  clearUnhealthyClock = async (id: string) => { this.clock.delete(id); };
  close = () => undefined;
}

const member = (name: string, id: string, extra: Partial<EtcdMember> = {}): EtcdMember => ({ ID: id, name, peerURLs: [`https://${name}:2380`], clientURLs: [`https://${name}:4001`], isLearner: false, ...extra });
const peer = (name: string, info: Partial<LivePeer['info']> = {}): LivePeer => ({
  record: { member: name, instanceId: name, address: `10.0.0.${name.charCodeAt(0) - 96}`, dnsName: name, grpcEndpoint: name, peerURLs: [`https://${name}:2380`], clientURLs: [`https://${name}:4001`], updatedAt: '' },
  info: { member: name, term: 5, leader: 'a', etcdRunning: true, volumeEmpty: false, clusterToken: 'tok', ...info },
});

function context(etcd: FakeEtcd, alive: LivePeer[], overrides: Partial<MembershipContext> & { unhealthy?: string[] } = {}) {
  const sent: string[] = [];
  const ctx: MembershipContext = {
    self: 'a', alive, memberCount: 3, clusterToken: 'tok', term: 5,
    openEtcd: async () => etcd,
    memberHealthy: async (urls) => !(overrides.unhealthy ?? []).some((n) => urls.some((u) => u.includes(`//${n}:`) || u.includes(`10.0.0.${n.charCodeAt(0) - 96}`))),
    log: logger('test'), unhealthyTimeoutMs: 60_000, now: () => 1_000_000, isLeader: () => true,
    join: async (p) => { sent.push(`join ${p.info.member}`); },
    command: async (p, action) => { sent.push(`${action} ${p.info.member}`); },
    ...overrides,
  };
  return { ctx, sent };
}

t.test('a learner is promoted once caught up; until then the step waits on it', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3', { isLearner: true })]);
  etcd.promotable = false;
  const { ctx } = context(etcd, [peer('a'), peer('b'), peer('c')]);
  t.same(await reconcileMembership(ctx), { waitFor: 'learner c to catch up' });
  etcd.promotable = true;
  t.same(await reconcileMembership(ctx), { did: 'promoted c' });
  t.equal(etcd.fence, 5, 'the fence holds the leader\'s term');
  t.ok(lines.some((l) => l.event === 'member.promoted' && l.member === 'c'));
});

t.test('a missing member whose manager has an empty volume is added as a learner and told to join', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2')]);
  const { ctx, sent } = context(etcd, [peer('a'), peer('b'), peer('c', { volumeEmpty: true, clusterToken: undefined })]);
  t.same(await reconcileMembership(ctx), { did: 'added c' });
  t.same(etcd.actions, ['add https://c:2380']);
  t.same(sent, ['join c']);
});

t.test('a member back with an empty volume is removed first (then added again)', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3')]);
  const { ctx } = context(etcd, [peer('a'), peer('b'), peer('c', { volumeEmpty: true, clusterToken: undefined })]);
  t.same(await reconcileMembership(ctx), { did: 'removed c (empty volume)' });
  t.same(await reconcileMembership(ctx), { did: 'added c' }, 'one change per pass: the add comes next');
  t.same(etcd.actions, ['remove 3', 'add https://c:2380']);
});

t.test('a newer term in the fence refuses every change', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3')]);
  etcd.fence = 9;
  const { ctx } = context(etcd, [peer('a'), peer('b'), peer('c', { volumeEmpty: true, clusterToken: undefined })]);
  t.same(await reconcileMembership(ctx), {});
  t.same(etcd.actions, []);
  t.ok(lines.some((l) => l.event === 'membership.fenced' && l.fenceTerm === 9));
});

t.test('not leading at the moment of a change: nothing changes', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3', { isLearner: true })]);
  const { ctx } = context(etcd, [peer('a'), peer('b'), peer('c')], { isLeader: () => false });
  t.same(await reconcileMembership(ctx), {});
  t.same(etcd.actions, []);
});

t.test('an unhealthy member whose manager is gone: the clock starts, then it is removed past the timeout', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3')]);
  let now = 1_000_000;
  const { ctx } = context(etcd, [peer('a'), peer('b')], { unhealthy: ['c'], now: () => now });
  t.same(await reconcileMembership(ctx), {});
  t.same([...etcd.clock], [['3', 1_000_000]], 'the clock is started in etcd');
  now += 59_000;
  t.same(await reconcileMembership(ctx), {}, 'not before the timeout');
  now += 2_000;
  t.same(await reconcileMembership(ctx), { did: 'removed unhealthy c' });
  t.same(etcd.clock.size, 0, 'and its clock is cleared');
});

t.test('no removal that would leave no healthy quorum', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3')]);
  etcd.clock.set('2', 0);
  etcd.clock.set('3', 0);
  const { ctx } = context(etcd, [peer('a')], { unhealthy: ['b', 'c'] });
  t.same(await reconcileMembership(ctx), {});
  t.same(etcd.actions, [], 'a alone removes nobody');
  t.ok(lines.some((l) => l.event === 'member.removal-skipped'));
});

t.test('shrink: the highest-named other member, quarantined first when the rest keep a quorum, then told to stand by', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3')]);
  const three = context(etcd, [peer('a'), peer('b'), peer('c')], { memberCount: 1 });
  t.same(await reconcileMembership(three.ctx), { did: 'removed extra c' });
  t.same(three.sent, ['quarantine c', 'leave c'], '3 → 2: quarantined, then told to leave');
  const two = context(etcd, [peer('a'), peer('b')], { memberCount: 1 });
  t.same(await reconcileMembership(two.ctx), { did: 'removed extra b' });
  t.same(two.sent, ['leave b'], '2 → 1: no quarantine (its restart would cost the quorum)');
  t.same(etcd.actions, ['remove 3', 'remove 2']);
});

t.test('an add or a remove waits for a backup first; a promotion does not', async (t) => {
  const etcd = new FakeEtcd([member('a', '1'), member('b', '2')]);
  let ready = false;
  const asked: string[] = [];
  const { ctx, sent } = context(etcd, [peer('a'), peer('b'), peer('c', { volumeEmpty: true, clusterToken: undefined })], {
    beforeChange: async (what) => { asked.push(what); return ready; },
  });
  t.same(await reconcileMembership(ctx), { waitFor: 'a backup before add c' });
  t.same(etcd.actions, [], 'nothing changed while the backup runs');
  t.same(sent, []);
  ready = true;
  t.same(await reconcileMembership(ctx), { did: 'added c' });
  t.same(asked, ['add c', 'add c']);
  etcd.members = etcd.members.map((m) => ({ ...m, name: m.name || 'c' }));
  ready = false;
  t.same(await reconcileMembership(ctx), { did: 'promoted c' }, 'a promotion completes the add: no backup of its own');
  const shrink = new FakeEtcd([member('a', '1'), member('b', '2'), member('c', '3')]);
  const s = context(shrink, [peer('a'), peer('b'), peer('c')], { memberCount: 2, beforeChange: async (what) => { asked.push(what); return false; } });
  t.same(await reconcileMembership(s.ctx), { waitFor: 'a backup before remove c' });
  t.same(shrink.actions, []);
});
