// The peer protocol's decoders: every request is checked once where it is
// received, and anything that is not exactly one of the messages is refused
// with 400 (404 for an unknown path) before anything acts on it.
import t from 'tap';
import { decodeInfo, decodeRequest, decodeVoteResult } from '../../agents/etcd-manager/peer/protocol.js';

const body = (v: unknown) => JSON.stringify(v);
const cluster = { clusterToken: 'etcd-1', initialCluster: { a: ['https://10.0.0.1:2380'] }, etcdVersion: '3.4.23' };

t.test('each message decodes to its typed form', async (t) => {
  t.same(decodeRequest('GET', '/v1/info', ''), { ok: true, value: { kind: 'info' } });
  t.same(decodeRequest('POST', '/v1/vote', body({ candidate: 'a', term: 3 })), { ok: true, value: { kind: 'vote', candidate: 'a', term: 3, dryRun: false } });
  t.same(decodeRequest('POST', '/v1/vote', body({ candidate: 'a', term: 3, dryRun: true })), { ok: true, value: { kind: 'vote', candidate: 'a', term: 3, dryRun: true } });
  t.same(decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'form', body: cluster })), { ok: true, value: { kind: 'command', command: { leader: 'a', term: 2, action: 'form', body: cluster } } });
  t.same(decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'leave', extra: 1 })), { ok: true, value: { kind: 'command', command: { leader: 'a', term: 2, action: 'leave' } } }, 'unknown fields are dropped, not passed on');
  t.same(decodeRequest('POST', '/v1/announce', body({ member: 'b', reason: 'registered' })), { ok: true, value: { kind: 'announce', member: 'b', reason: 'registered' } });
});

t.test('anything else is refused before it is acted on', async (t) => {
  const refused = (method: string, path: string, raw: string) => {
    const d = decodeRequest(method, path, raw);
    return d.ok ? 0 : d.status;
  };
  t.equal(refused('GET', '/v1/nope', ''), 404);
  t.equal(refused('DELETE', '/v1/vote', ''), 404);
  t.equal(refused('POST', '/v1/vote', '{'), 400, 'not JSON');
  t.equal(refused('POST', '/v1/vote', '[1]'), 400, 'not an object');
  t.equal(refused('POST', '/v1/vote', body({ candidate: 'a', term: 0 })), 400, 'term 0');
  t.equal(refused('POST', '/v1/vote', body({ candidate: 'a', term: 1.5 })), 400, 'fractional term');
  t.equal(refused('POST', '/v1/vote', body({ candidate: 'a', term: '2' })), 400, 'term as a string');
  t.equal(refused('POST', '/v1/vote', body({ term: 2 })), 400, 'no candidate');
  t.equal(refused('POST', '/v1/vote', body({ candidate: 'a', term: 2, dryRun: 'yes' })), 400, 'dryRun not a boolean');
  t.equal(refused('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'noop' })), 400, 'unknown action');
  t.equal(refused('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'form' })), 400, 'form without its body');
  t.equal(refused('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'join', body: { ...cluster, initialCluster: { a: 'not-a-list' } } })), 400, 'initial cluster of the wrong shape');
  t.equal(refused('POST', '/v1/command', body({ term: 2, action: 'leave' })), 400, 'no leader');
  t.equal(refused('POST', '/v1/announce', body({})), 400, 'announce without a member');
});

t.test('answers are checked by the client that receives them', async (t) => {
  t.same(decodeInfo({ member: 'a', term: 1, leader: 'a', etcdRunning: true, volumeEmpty: false }), { member: 'a', term: 1, leader: 'a', etcdRunning: true, volumeEmpty: false, clusterToken: undefined, initialCluster: undefined, canLead: undefined });
  t.equal(decodeInfo({ member: 'a', term: -1, leader: '', etcdRunning: true, volumeEmpty: false }), undefined);
  t.equal(decodeInfo({ member: 'a', term: 1, leader: '', etcdRunning: 'yes', volumeEmpty: false }), undefined);
  t.same(decodeVoteResult({ granted: true, term: 4, leader: 'b' }), { granted: true, term: 4, leader: 'b' });
  t.equal(decodeVoteResult({ granted: 'true', term: 4 }), undefined);
});

t.test('restore commands and a member\'s restore state: typed, and checked like the rest', async (t) => {
  const restore = { planId: 'cmd-1', backup: '2026-11-30T08:00:00Z-000001', clusterToken: 'etcd-new', initialCluster: { a: ['https://a:2380'] }, etcdVersion: '3.4.23' };
  t.same(decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'restore-prepare', body: restore })), { ok: true, value: { kind: 'command', command: { leader: 'a', term: 2, action: 'restore-prepare', body: restore } } });
  for (const action of ['restore-stop', 'restore-start', 'restore-lift', 'restore-abort']) {
    t.same(decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action, body: { planId: 'cmd-1', extra: 1 } })), { ok: true, value: { kind: 'command', command: { leader: 'a', term: 2, action, body: { planId: 'cmd-1' } } } });
    const d = decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action }));
    t.equal(d.ok ? 0 : d.status, 400, `${action} without its plan`);
  }
  const d = decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'restore-prepare', body: { ...restore, initialCluster: 'x' } }));
  t.equal(d.ok ? 0 : d.status, 400, 'restore-prepare of the wrong shape');
  const info = { member: 'a', term: 1, leader: 'a', etcdRunning: true, volumeEmpty: false };
  t.same(decodeInfo({ ...info, restore: { planId: 'cmd-1', state: 'prepared', bytes: 10 } })?.restore, { planId: 'cmd-1', state: 'prepared', bytes: 10 });
  t.same(decodeInfo({ ...info, restore: { planId: 'cmd-1', state: 'failed', error: 'x', badBackup: 'gzip' } })?.restore, { planId: 'cmd-1', state: 'failed', error: 'x', badBackup: 'gzip' });
  t.equal(decodeInfo({ ...info, restore: { planId: 'cmd-1', state: 'dancing' } }), undefined, 'an unknown state is no info');
  t.equal(decodeInfo({ ...info, restore: { planId: 'cmd-1', state: 'failed', bytes: -1 } }), undefined);
});

t.test('set-version (a version change in place) and the version a member runs: typed, and checked like the rest', async (t) => {
  t.same(decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'set-version', body: { etcdVersion: '3.5.17', extra: 1 } })), { ok: true, value: { kind: 'command', command: { leader: 'a', term: 2, action: 'set-version', body: { etcdVersion: '3.5.17' } } } });
  for (const bad of [undefined, {}, { etcdVersion: 3.5 }, { etcdVersion: '3.5' }, { etcdVersion: '../3.5.17' }, { etcdVersion: '3.5.17; rm -rf /' }]) {
    const d = decodeRequest('POST', '/v1/command', body({ leader: 'a', term: 2, action: 'set-version', body: bad }));
    t.equal(d.ok ? 0 : d.status, 400, `set-version with ${JSON.stringify(bad)}`);
  }
  const info = { member: 'a', term: 1, leader: 'a', etcdRunning: true, volumeEmpty: false };
  t.equal(decodeInfo({ ...info, etcdVersion: '3.5.17' })?.etcdVersion, '3.5.17');
  t.notOk(decodeInfo(info) && 'etcdVersion' in decodeInfo(info)!, 'absent when not sent (older managers)');
  t.equal(decodeInfo({ ...info, etcdVersion: 3 }), undefined, 'not a string: the whole answer is refused');
});
