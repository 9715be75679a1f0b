// Forming a new cluster without a process: fake peers (their info answers and
// a recording transport), a fake etcd health check, a memfs store. Waits for
// every member; one token for all; a formation already started is finished,
// never replaced; members that disagree stop it; the marker is written only
// once etcd lists every member, healthy; nothing is sent once not leading.
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { openStore } from '../../shared/store/index.js';
import { formCluster, type NewClusterDeps } from '../../agents/etcd-manager/controller/newcluster.js';
import type { LivePeer } from '../../agents/etcd-manager/controller/election.js';
import type { Pass } from '../../agents/etcd-manager/controller/types.js';
import type { EtcdHealth } from '../../agents/etcd-manager/etcd/client.js';
import type { Command, PeerTransport } from '../../agents/etcd-manager/peer/api.js';

const lines: Array<Record<string, unknown>> = [];
configureLogging({ format: 'json', level: 'info', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
const spec = { memberCount: 3, etcdVersion: '3.4.23' };

const peer = (member: string, token?: string, initialCluster?: Record<string, string[]>): LivePeer => ({
  record: { member, instanceId: member, address: `10.0.0.${member.charCodeAt(0) - 96}`, dnsName: member, grpcEndpoint: member, peerURLs: [`https://${member}:2380`], clientURLs: [`https://${member}:4001`], updatedAt: '' },
  info: { member, term: 1, leader: 'a', etcdRunning: token !== undefined, volumeEmpty: token === undefined, clusterToken: token, initialCluster },
});

function deps(overrides: Partial<NewClusterDeps> & { health?: EtcdHealth } = {}) {
  const sent: Command[] = [];
  const transport = { command: async (_e: string, c: Command) => { sent.push(c); return { status: 200, body: { result: 'formed' } }; } } as unknown as PeerTransport;
  const backups = openStore(`memfs://newcluster-${Math.random()}/backups/etcd/main`);
  const d: NewClusterDeps = {
    self: 'a', clusterName: 'etcd', backups, transport: () => transport,
    checkCluster: async () => overrides.health ?? { healthy: false, error: 'starting' },
    isLeader: () => true, term: () => 7, clock: { now: () => 0, wallNow: () => Date.parse('2026-11-30T00:00:00Z') }, log: logger('test'),
    setPhase: () => undefined, newToken: () => 'etcd-new', ...overrides,
  };
  return { d, sent, backups };
}
const pass = (alive: LivePeer[]): Pass => ({ leading: true, spec, survey: { records: alive.map((a) => a.record), alive } });

t.test('waits until every member has registered, then asks all of them to form one cluster', async (t) => {
  const { d, sent } = deps();
  t.same(await formCluster(d, pass([peer('a'), peer('b')])), undefined, 'two of three: nothing to do, no poll (a registration wakes the leader)');
  t.same(sent, []);
  const r = await formCluster(d, pass([peer('a'), peer('b'), peer('c')]));
  t.same(sent.map((c) => [c.action, c.term, c.action === 'form' ? c.body.clusterToken : '']), [['form', 7, 'etcd-new'], ['form', 7, 'etcd-new'], ['form', 7, 'etcd-new']], 'one token, the leader\'s term');
  t.equal(r?.waitFor, 'the new cluster to be healthy', 'then it waits on etcd, polling');
  t.equal(lines.filter((l) => l.event === 'cluster.forming').length, 1, 'cluster.forming logged once');
});

t.test('a formation already started is finished with its own token, never a second one', async (t) => {
  const ic = { a: ['https://a:2380'], b: ['https://b:2380'], c: ['https://c:2380'] };
  const { d, sent } = deps({ newToken: () => { throw new Error('no new token may be made'); } });
  await formCluster(d, pass([peer('a', 'etcd-old', ic), peer('b', 'etcd-old', ic), peer('c')]));
  t.same(sent.map((c) => (c.action === 'form' ? `${c.body.clusterToken}` : c.action)), ['etcd-old'], 'only c, which lacks it, is asked, with the existing token');
});

t.test('members that disagree stop the formation', async (t) => {
  const { d, sent } = deps();
  await formCluster(d, pass([peer('a', 'etcd-1', { a: [] }), peer('b', 'etcd-2', { b: [] }), peer('c')]));
  t.same(sent, [], 'nothing sent');
  t.ok(lines.some((l) => l.event === 'cluster.disagreement'));
});

t.test('not leading: nothing is sent', async (t) => {
  const { d, sent } = deps({ isLeader: () => false });
  await formCluster(d, pass([peer('a'), peer('b'), peer('c')]));
  t.same(sent, []);
});

t.test('the marker is written once etcd lists every member, healthy', async (t) => {
  const ic = { a: ['https://a:2380'], b: ['https://b:2380'], c: ['https://c:2380'] };
  const members = ['a', 'b', 'c'].map((name, i) => ({ ID: String(i + 1), name, peerURLs: [], clientURLs: [] }));
  const half = deps({ health: { healthy: true, members: [...members.slice(0, 2), { ...members[2], name: '' }] } as unknown as EtcdHealth });
  t.equal((await formCluster(half.d, pass(['a', 'b', 'c'].map((m) => peer(m, 'etcd-x', ic)))))?.waitFor, 'the new cluster to be healthy', 'an unnamed (unstarted) member: not yet');
  t.notOk(await half.backups.exists('control/etcd-cluster-created'));
  const full = deps({ health: { healthy: true, members } as unknown as EtcdHealth });
  t.same(await formCluster(full.d, pass(['a', 'b', 'c'].map((m) => peer(m, 'etcd-x', ic)))), { did: 'cluster created' });
  t.match(JSON.parse((await full.backups.read('control/etcd-cluster-created')).toString()), { leader: 'a', term: 7, members: ['a', 'b', 'c'] });
  t.ok(lines.some((l) => l.event === 'cluster.created'));
});
