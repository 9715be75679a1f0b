// The guarded /etc/hosts block: one per cluster, replaced atomically, never
// duplicated, and everything outside it kept byte for byte.
import t from 'tap';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { blockMarkers, renderHosts, updateHostsFile } from '../../agents/etcd-manager/hosts.js';
import { logger } from '../../shared/log.js';
import { tempDir } from '../harness/tmp.js';

const log = logger('test');
const BASE = '127.0.0.1\tlocalhost\n# a comment\n::1 ip6-localhost\n';

t.test('block added, replaced, removed; the rest untouched', async (t) => {
  const dir = tempDir(t);
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, BASE, { mode: 0o644 });
  const { begin, end } = blockMarkers('etcd');
  t.ok(await updateHostsFile(hosts, 'etcd', [{ address: '127.0.1.2', names: ['etcd-b.internal.c'] }, { address: '127.0.1.1', names: ['etcd-a.internal.c'] }], log));
  t.equal(readFileSync(hosts, 'utf8'), `${BASE}${begin}\n127.0.1.1\tetcd-a.internal.c\n127.0.1.2\tetcd-b.internal.c\n${end}\n`);
  t.equal(statSync(hosts).mode & 0o777, 0o644, 'mode kept');
  t.notOk(await updateHostsFile(hosts, 'etcd', [{ address: '127.0.1.1', names: ['etcd-a.internal.c'] }, { address: '127.0.1.2', names: ['etcd-b.internal.c'] }], log), 'same entries: no write');

  // Another cluster's block and user lines after ours survive our rewrite.
  writeFileSync(hosts, readFileSync(hosts, 'utf8') + '10.1.1.1 user-added\n');
  await updateHostsFile(hosts, 'etcd-events', [{ address: '127.0.1.1', names: ['etcd-events-a.internal.c'] }], log);
  await updateHostsFile(hosts, 'etcd', [{ address: '127.0.1.3', names: ['etcd-c.internal.c'] }], log);
  const text = readFileSync(hosts, 'utf8');
  t.equal(text.split(begin).length - 1, 1, 'exactly one block for etcd');
  t.match(text, '10.1.1.1 user-added');
  t.match(text, 'etcd-events-a.internal.c');
  t.notMatch(text, 'etcd-a.internal.c\n', 'old entries gone');
  t.ok(text.startsWith(BASE), 'lines before untouched');
  await updateHostsFile(hosts, 'etcd', [], log);
  await updateHostsFile(hosts, 'etcd-events', [], log);
  t.equal(readFileSync(hosts, 'utf8'), `${BASE}10.1.1.1 user-added\n`, 'no entries: block removed, rest byte for byte');
});

t.test('duplicated blocks from older writers collapse into one', async (t) => {
  const { begin, end } = blockMarkers('etcd');
  const dup = `${BASE}${begin}\n1.1.1.1 x\n${end}\nkeep me\n${begin}\n2.2.2.2 y\n${end}\n`;
  const out = renderHosts(dup, 'etcd', [{ address: '127.0.1.1', names: ['etcd-a'] }]);
  t.equal(out, `${BASE}${begin}\n127.0.1.1\tetcd-a\n${end}\nkeep me\n`, 'where the first one was');
  t.equal(renderHosts('', 'etcd', []), '');
});

t.test('a missing hosts file is created', async (t) => {
  const hosts = join(tempDir(t), 'hosts');
  await updateHostsFile(hosts, 'etcd', [{ address: '127.0.1.1', names: ['etcd-a'] }], log);
  t.match(readFileSync(hosts, 'utf8'), /127\.0\.1\.1\tetcd-a/);
});

t.test('a block between other writers\' blocks stays where it is, so no writer sees its block moved', async (t) => {
  const main = blockMarkers('etcd');
  const events = blockMarkers('etcd-events');
  const nodeup = '# Begin host entries managed by nodeup\n127.0.0.1\tapi.internal.x\n# End host entries managed by nodeup\n';
  const file = `${BASE}${nodeup}${main.begin}\n10.0.0.1\tetcd-a\n${main.end}\n${events.begin}\n10.0.0.1\tetcd-a\n${events.end}\n`;
  const mainAgain = renderHosts(file, 'etcd', [{ address: '10.0.0.1', names: ['etcd-a'] }]);
  t.equal(mainAgain, file, 'main renders the same bytes: nothing to write');
  t.equal(renderHosts(mainAgain, 'etcd-events', [{ address: '10.0.0.1', names: ['etcd-a'] }]), file, 'and so does events');
  const moved = renderHosts(file, 'etcd', [{ address: '10.0.0.2', names: ['etcd-a'] }]);
  t.equal(moved, file.replace(`${main.begin}\n10.0.0.1`, `${main.begin}\n10.0.0.2`), 'a changed entry is replaced in place');
});
