// Discovery records: registering, listing, and the leader's pruning of records
// whose managers are silent past the TTL (never of one that answers).
import t from 'tap';
import { listPeers, pruneStaleRecords, recordTTLms, registerPeer, type PeerRecord } from '../../agents/etcd-manager/discovery.js';
import { openStore } from '../../shared/store/index.js';

const record = (member: string, updatedAt: string): PeerRecord => ({
  member, instanceId: `i-${member}`, address: '127.0.0.1', dnsName: `etcd-${member}.internal`, grpcEndpoint: '127.0.0.1:3996',
  peerURLs: ['https://127.0.0.1:2380'], clientURLs: ['https://127.0.0.1:4001'], updatedAt,
});

t.test('records of silent managers are pruned after the TTL, others kept', async (t) => {
  const store = openStore(`memfs://discovery-${process.pid}/backups/etcd/main`);
  const now = Date.parse('2026-11-22T12:00:00Z');
  const ttl = recordTTLms(300);
  t.equal(ttl, 600_000, 'ten minutes unless the poll interval is very long');
  t.equal(recordTTLms(60_000), 1_200_000, 'twenty polls when that is longer');
  await registerPeer(store, record('a', new Date(now - 5_000).toISOString()));
  await registerPeer(store, record('b', new Date(now - ttl - 1).toISOString())); // silent and old: pruned
  await registerPeer(store, record('c', new Date(now - ttl - 1).toISOString())); // old record but answers: kept
  await registerPeer(store, record('d', 'not a date')); // unreadable time, silent: pruned
  const records = await listPeers(store);
  const pruned = await pruneStaleRecords(store, records, new Set(['a', 'c']), ttl, now);
  t.same(pruned, ['b', 'd']);
  t.same((await listPeers(store)).map((r) => r.member), ['a', 'c']);
  t.same(await pruneStaleRecords(store, await listPeers(store), new Set(['a', 'c']), ttl, now), [], 'nothing more on the next pass');
});
