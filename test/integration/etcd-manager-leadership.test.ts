// Leadership between managers over the real mutual-TLS peer API: one leader
// per term, leases that block a second leader, and the fence that refuses a
// deposed leader's late commands. Voters and candidates share a test clock so
// lease expiry is stepped, not waited for.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../../shared/log.js';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { openStore } from '../../shared/store/index.js';
import { ensureManagerTLS } from '../../agents/etcd-manager/tls.js';
import { PeerClient, startPeerServer, type Command } from '../../agents/etcd-manager/peer/api.js';
import { Leadership, type Member } from '../../agents/etcd-manager/peer/leadership.js';
import { Voter } from '../../agents/etcd-manager/peer/voter.js';
import { loopbackNet } from '../harness/net.js';
import { tempDir, type Teardown } from '../harness/tmp.js';

const log = logger('test');
const LEASE = 10_000;
const NAMES = ['a', 'b', 'c'];

interface Node {
  name: string;
  address: string;
  voter: Voter;
  client: PeerClient;
  executed: Command[];
  endpoint: string;
}

async function cluster(t: Teardown, dir: string, clock: { now: number }) {
  const store = openStore(`file://${dir}/state/c.example.com`);
  await ensureClusterPKI(store, ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
  const net = loopbackNet();
  const nodes: Node[] = [];
  for (const [i, name] of NAMES.entries()) {
    const address = net(i + 1);
    const { files } = await ensureManagerTLS({ store, etcdName: 'main', identity: { memberName: name, dnsNames: [], ipAddresses: [address] }, pkiDir: join(dir, `pki-${name}`), log, keyAlgorithm: 'ECDSA-P256' });
    const voter = new Voter(join(dir, `vote-${name}.json`), LEASE, () => clock.now);
    await voter.load();
    const executed: Command[] = [];
    const server = await startPeerServer({
      address, port: 0, tls: files.manager, voter, log,
      handlers: { info: () => ({ member: name, term: voter.current.term, leader: voter.current.leader, etcdRunning: false, volumeEmpty: true }), command: async (c) => { executed.push(c); return 'done'; } },
    });
    t.teardown(() => server.close());
    const client = await PeerClient.open(files.manager);
    nodes.push({ name, address, voter, client, executed, endpoint: `${address}:${server.port}` });
  }
  const members: Member[] = nodes.map((n) => ({ member: n.name, endpoint: n.endpoint }));
  const leadership = (name: string) => new Leadership({ self: name, client: () => nodes.find((n) => n.name === name)!.client, memberCount: 3, leaseMs: LEASE, log, now: () => clock.now });
  return { store, nodes, members, leadership };
}

t.test('the peer API needs a manager certificate, and a caller can only speak for itself', async (t) => {
  const dir = tempDir(t);
  const { nodes, store } = await cluster(t, dir, { now: 0 });
  const [a, b] = nodes;
  t.equal((await a.client.info(b.endpoint)).body.member, 'b', 'mutual TLS between managers works');
  // A certificate from another CA (etcd's peer CA) is refused in the handshake.
  const foreign = await ensureManagerTLS({ store, etcdName: 'main', identity: { memberName: 'a', dnsNames: [], ipAddresses: [a.address] }, pkiDir: join(dir, 'pki-a'), log, keyAlgorithm: 'ECDSA-P256' });
  const wrongCA = await PeerClient.open({ ...foreign.files.peer, caFile: foreign.files.manager.caFile });
  await t.rejects(wrongCA.info(b.endpoint), 'a certificate from another CA is refused');
  t.equal((await a.client.vote(b.endpoint, 'c', 1)).status, 403, 'a cannot ask votes for c');
  t.equal((await a.client.command(b.endpoint, { leader: 'c', term: 1, action: 'quarantine' })).status, 403, 'a cannot command as c');
  t.equal((await a.client.vote(b.endpoint, 'a', Number.NaN)).status, 400, 'a malformed term is refused');
  t.equal((await a.client.command(b.endpoint, { leader: 'a', term: -1, action: 'quarantine' })).status, 400);
});

t.test('three candidates racing: never two leaders, 20 rounds', async (t) => {
  for (let round = 0; round < 20; round++) {
    const dir = tempDir(t);
    const clock = { now: 0 };
    const { members, leadership } = await cluster(t, dir, clock);
    const ls = NAMES.map(leadership);
    await Promise.all(ls.map((l) => l.round(members)));
    const leaders = ls.filter((l) => l.isLeader());
    t.ok(leaders.length <= 1, `round ${round}: ${leaders.length} leader(s)`);
    // Nobody leading (split vote) is allowed; a retry after the leases lapse elects one.
    if (leaders.length === 0) {
      clock.now += LEASE + 1;
      await ls[round % 3].round(members);
      t.ok(ls[round % 3].isLeader(), `round ${round}: elected on retry`);
    }
  }
});

t.test('a paused leader is deposed after its lease, and its late commands are fenced', async (t) => {
  const dir = tempDir(t);
  const clock = { now: 0 };
  const { nodes, members, leadership } = await cluster(t, dir, clock);
  const a = leadership('a');
  const b = leadership('b');
  t.ok(await a.round(members), 'a leads');
  const termA = a.currentTerm;
  t.notOk(await b.round(members), 'b cannot win while a\'s lease runs');
  t.ok(a.isLeader());
  clock.now += LEASE / 2;
  t.ok(await a.round(members), 'a renews');

  // a is paused (SIGSTOP): no renewals. Its own clock says it no longer leads before the voters free themselves.
  clock.now += (LEASE * 3) / 4;
  t.notOk(a.isLeader(), 'a deposes itself by its own clock first');
  t.notOk(await b.round(members), 'voters still hold a\'s lease');
  clock.now += LEASE;
  t.ok(await b.round(members), 'b leads once the leases lapse');
  t.ok(b.currentTerm > termA, 'in a newer term');

  // a resumes and sends a command stamped with its old term: every voter refuses it.
  const late = await Promise.all(nodes.map((n) => nodes[0].client.command(n.endpoint, { leader: 'a', term: termA, action: 'form', body: { clusterToken: 'etcd-late', initialCluster: { a: ['https://127.0.0.1:2380'] }, etcdVersion: '3.4.23' } })));
  t.same(late.map((r) => r.status), [409, 409, 409], 'stale term fenced everywhere');
  t.same(nodes.flatMap((n) => n.executed), [], 'nothing executed');
  const ok = await nodes[1].client.command(nodes[2].endpoint, { leader: 'b', term: b.currentTerm, action: 'quarantine' });
  t.equal(ok.status, 200, 'the current leader\'s command passes');

  // A voter restarted from disk keeps its promise: it cannot be talked into the old term again.
  const reloaded = new Voter(join(dir, 'vote-c.json'), LEASE, () => clock.now);
  await reloaded.load();
  t.equal(reloaded.current.term, b.currentTerm);
  t.notOk((await reloaded.requestVote('a', termA)).granted);
  t.notOk((await reloaded.requestVote('a', b.currentTerm + 1)).granted, 'a restarted voter waits out one lease before promising someone new');
  t.ok(existsSync(join(dir, 'vote-c.json')));
});

t.test('a candidate that cannot win raises no term (pre-vote); a leader that hears of a newer term steps down', async (t) => {
  const dir = tempDir(t);
  const clock = { now: 0 };
  const { nodes, members, leadership } = await cluster(t, dir, clock);
  const a = leadership('a');
  const c = leadership('c');
  t.ok(await a.round(members), 'a leads');
  const termA = a.currentTerm;
  for (let i = 0; i < 5; i++) t.notOk(await c.round(members), `c cannot win while a's lease runs (try ${i + 1})`);
  t.same(nodes.map((n) => n.voter.current), NAMES.map(() => ({ term: termA, leader: 'a' })), 'nobody promised c anything: every voter is still at a\'s term');
  const cmd = await nodes[0].client.command(nodes[2].endpoint, { leader: 'a', term: termA, action: 'quarantine' });
  t.equal(cmd.status, 200, 'so a\'s commands still pass at c');

  // A voter that did promise a newer term (a race a pre-vote cannot exclude) would refuse a's commands:
  // a steps down at its next renewal instead of leading on with a member it cannot command.
  await nodes[2].voter.admit('c', termA + 3);
  // A renewal returns at a quorum, so c's refusal may only be heard after it: within two renewals, then.
  let renewals = 0;
  while (await a.round(members)) if (++renewals > 2) break;
  t.ok(renewals <= 1, `a steps down (after ${renewals} more renewal(s))`);
  t.notOk(a.isLeader());
  clock.now += LEASE + 1;
  t.ok(await c.round(members), 'once the leases lapse, c is elected');
  t.ok(c.currentTerm > termA + 3, `in a term above the promised one (${c.currentTerm})`);
});

t.test('a voter answers concurrent requests one at a time: never two grants in one lease', async (t) => {
  const dir = tempDir(t);
  for (let round = 0; round < 20; round++) {
    const voter = new Voter(join(dir, `vote-${round}.json`), LEASE, () => 0);
    await voter.load();
    // Two candidates at once, in different terms: whichever is decided first holds the lease.
    const answers = await Promise.all([voter.requestVote('a', 1), voter.requestVote('c', 2), voter.requestVote('b', 3)]);
    const granted = answers.filter((a) => a.granted).map((a) => a.leader);
    t.equal(granted.length, 1, `round ${round}: exactly one candidate granted (${granted.join(',')})`);
  }
});
