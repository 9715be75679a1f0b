// The election module without a process: real Voters on an in-memory peer
// network (test/harness/peer-net.ts), a stepped clock. The candidate rule
// (lowest name that answers and can lead; one missed answer is not enough, a
// refused connection is), campaigning and following, the lease kept on its own
// timer, withheld while the loop is stuck, and a follower woken once its
// leader's lease has run out.
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { Election } from '../../agents/etcd-manager/controller/election.js';
import type { Pass } from '../../agents/etcd-manager/controller/types.js';
import type { PeerRecord } from '../../agents/etcd-manager/discovery.js';
import type { PeerTransport } from '../../agents/etcd-manager/peer/api.js';
import { PeerNet } from '../harness/peer-net.js';

const lines: Array<Record<string, unknown>> = [];
configureLogging({ format: 'json', level: 'info', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
const LEASE = 1_000;

const record = (member: string): PeerRecord => ({
  member, instanceId: `i-${member}`, address: '127.0.0.1', dnsName: `etcd-${member}`, grpcEndpoint: member,
  peerURLs: [`https://${member}:2380`], clientURLs: [`https://${member}:4001`], updatedAt: new Date(0).toISOString(),
});
const records = ['a', 'b', 'c'].map(record);

async function setup() {
  const clock = { now: 10_000 };
  const net = new PeerNet({ leaseMs: LEASE, now: () => clock.now });
  for (const n of ['a', 'b', 'c']) await net.add(n);
  const woken: string[] = [];
  let loopAlive = true;
  const election = (self: string, transport: () => PeerTransport = () => net.transport(self)) => new Election({
    self, transport, voter: net.node(self).voter, leaseMs: LEASE, clock: { now: () => clock.now, wallNow: () => clock.now },
    log: logger('test'), canRenew: () => loopAlive, wake: (reason) => woken.push(`${self}: ${reason}`),
  });
  return { clock, net, woken, election, setLoopAlive: (v: boolean) => (loopAlive = v) };
}

t.test('the lowest-named manager that answers campaigns; the others follow', async (t) => {
  const { election } = await setup();
  const a = election('a');
  const b = election('b');
  const passB: Pass = { leading: false, spec: { memberCount: 3, etcdVersion: '3.4.23' } };
  passB.survey = await b.survey(records);
  t.equal(passB.survey.firstCandidate, 'a');
  t.same(passB.survey.alive.map((p) => p.info.member), ['a', 'b', 'c']);
  await b.step(passB, 3);
  t.notOk(passB.leading, 'b does not campaign while a can');
  const passA: Pass = { leading: false, survey: await a.survey(records) };
  await a.step(passA, 3);
  t.ok(passA.leading, 'a campaigns and wins');
  t.ok(lines.some((l) => l.event === 'leader.elected' && l.term === 1), 'leader.elected logged with its term');
});

t.test('one missed answer does not pass a manager over, two do; a refused connection does at once', async (t) => {
  const { net, election } = await setup();
  let silent = true;
  const base = net.transport('b');
  // a times out (as a paused process does): not a refusal.
  const flaky: PeerTransport = { ...base, info: (e) => (e === 'a' && silent ? Promise.reject(new Error('a/v1/info: no answer in 2000 ms')) : base.info(e)) };
  const b = election('b', () => flaky);
  t.equal((await b.survey(records)).firstCandidate, 'a', 'one timeout: a is still the candidate');
  t.equal((await b.survey(records)).firstCandidate, 'b', 'two in a row: b is');
  silent = false;
  t.equal((await b.survey(records)).firstCandidate, 'a', 'a answers again: a is the candidate again');
  net.node('a').up = false; // the process is gone: its port refuses
  t.equal((await b.survey(records)).firstCandidate, 'b', 'a refused connection passes a over at once');
});

t.test('the lease is renewed by the keeper, withheld while the loop is stuck, and a follower is woken when it lapses', async (t) => {
  const { clock, election, woken, setLoopAlive } = await setup();
  const a = election('a');
  const c = election('c');
  const pass: Pass = { leading: false, survey: await a.survey(records) };
  await a.step(pass, 3);
  t.ok(a.isLeader());
  await c.tick(); // c's voter granted a's lease: c sees a leader
  for (let i = 0; i < 5; i++) {
    clock.now += LEASE / 2;
    await a.tick();
    await c.tick();
  }
  t.ok(a.isLeader(), 'renewed on its own timer, with no reconcile pass, across 2.5 leases');
  t.same(woken, [], 'nobody woken while the leader renews');
  setLoopAlive(false);
  clock.now += LEASE / 2;
  await a.tick();
  t.ok(lines.some((l) => l.event === 'leader.renewal-withheld'), 'a stuck loop withholds the renewal (logged)');
  clock.now += LEASE;
  t.notOk(a.isLeader(), 'and the lease lapses');
  await c.tick();
  t.same(woken, ['c: the leader\'s lease lapsed'], 'the follower is woken once the lease it granted ran out');
});

t.test('a candidate that cannot reach a quorum does not lead, and says it waits for a leader', async (t) => {
  const { net, election } = await setup();
  net.node('b').up = false;
  net.node('c').up = false;
  const a = election('a');
  const pass: Pass = { leading: false, survey: await a.survey(records) };
  const r = await a.step(pass, 3);
  t.notOk(pass.leading);
  t.same(r, { waitFor: 'a leader' });
});
