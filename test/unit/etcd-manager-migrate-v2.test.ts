// The pure parts of the etcd2 → etcd3 migration: TTL → lease grouping (the
// rule, its bound, never early, bounded lateness, our own lease IDs), the walk
// order and the done ranges a resumed run skips, the content hash, v2
// expiration times, the tar.gz reader (hostile archives refused), the progress
// line, and the command's usage errors. No etcd here: see
// test/integration/etcd-manager-migrate-v2.test.ts.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { checkEndpoint, textSummary } from '../../agents/etcd-manager/cli/migrate-v2.js';
import { FLAGS } from '../../agents/etcd-manager/flags.js';
import type { MigrationSummary } from '../../agents/etcd-manager/migrate/migrate.js';
import { ContentSums, keyDigest } from '../../agents/etcd-manager/migrate/content-hash.js';
import { bucketEndMs, bucketOf, bucketStartMs, grantTTLSeconds, LEASE_BOUND, leaseBound, leaseIdFor, MAX_LEASE_TTL_S } from '../../agents/etcd-manager/migrate/leases.js';
import { compareLeafOrder, DoneRanges } from '../../agents/etcd-manager/migrate/order.js';
import { progressLine } from '../../agents/etcd-manager/migrate/progress.js';
import { extractTarGz, safeMemberPath } from '../../agents/etcd-manager/migrate/tar.js';
import { classifyLimit, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, putBudget } from '../../agents/etcd-manager/migrate/target.js';
import { encodeKeyPath, leavesOf, parseExpiration } from '../../agents/etcd-manager/migrate/v2-source.js';
import { cliHarness } from '../harness/em-cli.js';
import { tempDir } from '../harness/tmp.js';

const S = 1000;
const H = 3600 * S;

t.test('TTL → lease buckets: 1 s wide up to 100 s, then 1% wider each; never early, late by at most max(1 s, 1%)', async (t) => {
  t.equal(bucketOf(1), 1);
  t.equal(bucketOf(1000), 1);
  t.equal(bucketOf(1001), 2);
  t.equal(bucketOf(30_000), 30);
  t.equal(bucketOf(100_000), 100);
  t.equal(bucketOf(100_001), 101);
  t.equal(bucketEndMs(101), 101_000);
  // Every remaining time lands in the bucket whose interval holds it; the lease ends at the bucket's end.
  const samples = [1, 999, 1000, 1001, 29_500, 99_999, 100_000, 100_001, 100_999, 101_000, 101_001, 350_000, 3_599_999, H, H + 1, 86_400_000, 365 * 24 * H, MAX_LEASE_TTL_S * S];
  for (let r = 1; r < 2 * H; r = Math.ceil(r * 1.0007) + 1) samples.push(r);
  const outside: string[] = [];
  const tooLate: string[] = [];
  for (const r of samples) {
    const b = bucketOf(r);
    if (!(bucketStartMs(b) < r && r <= bucketEndMs(b))) outside.push(`r=${r} in bucket ${b} (${bucketStartMs(b)}, ${bucketEndMs(b)}]`);
    const late = bucketEndMs(b) - r;
    if (late >= Math.max(S, Math.ceil(r * 0.01) + 1)) tooLate.push(`r=${r}: ${late} ms late`);
  }
  t.same(outside, [], `each of ${samples.length} remaining times lies in its bucket (never early)`);
  t.same(tooLate, [], 'and its lease ends at most max(1 s, 1%) after it');
  // Buckets are contiguous and increasing.
  const gaps: number[] = [];
  for (let i = 1; i < 2000; i++) if (!(bucketEndMs(i) < bucketEndMs(i + 1) && bucketStartMs(i + 1) === bucketEndMs(i))) gaps.push(i);
  t.same(gaps, [], 'buckets are contiguous and increasing');
});

t.test('the lease bound: 461 leases for TTLs under an hour, 1,373 under a year, 1,941 at most', async (t) => {
  t.equal(leaseBound(H), 461);
  t.equal(leaseBound(365 * 24 * H), 1373);
  t.equal(LEASE_BOUND, 1941);
  t.equal(bucketOf(10 * MAX_LEASE_TTL_S * S), LEASE_BOUND, 'longer TTLs are capped at etcd\'s longest lease');
  // 4,600 keys spread evenly over 30 s .. 1 h (the integration test's shape) share at most 461 leases.
  const used = new Set<number>();
  for (let i = 0; i < 4600; i++) used.add(bucketOf(30 * S + ((H - 30 * S) * i) / 4599));
  t.ok(used.size <= leaseBound(H), `${used.size} leases for 4,600 keys`);
  t.ok(used.size >= 400, 'and they do spread over the buckets');
});

t.test('lease IDs: ours, deterministic per migration and bucket, positive int64, never 0', async (t) => {
  t.equal(leaseIdFor('m1', 7), leaseIdFor('m1', 7), 'a resumed run asks for the same ID');
  t.not(leaseIdFor('m1', 7), leaseIdFor('m1', 8));
  t.not(leaseIdFor('m1', 7), leaseIdFor('m2', 7));
  const ids = new Set<string>();
  const bad: string[] = [];
  for (let b = 1; b <= LEASE_BOUND; b++) {
    const id = BigInt(leaseIdFor('abc', b));
    if (!(id > 0n && id < 2n ** 63n)) bad.push(`bucket ${b}: ${id}`);
    ids.add(id.toString());
  }
  t.same(bad, [], 'every ID is a positive int64');
  t.equal(ids.size, LEASE_BOUND, 'no two buckets share an ID');
  // The TTL granted reaches the bucket's end from the grant time, rounded up, at least 1 s.
  const t0 = 1_700_000_000_000;
  t.equal(grantTTLSeconds(t0, 30, t0), 30);
  t.equal(grantTTLSeconds(t0, 30, t0 + 10_500), 20);
  t.equal(grantTTLSeconds(t0, 30, t0 + 29_999), 1);
  t.equal(grantTTLSeconds(t0, 30, t0 + 40_000), 1);
});

t.test('walk order: component by component, a directory\'s leaves together', async (t) => {
  const keys = ['/a/b', '/a-c', '/a', '/a/b/c', '/ab', '/a/a', '/b', '/a/bb', '/a/b-', '/\u00e9', '/z'];
  const sorted = [...keys].sort(compareLeafOrder);
  t.same(sorted, ['/a', '/a/a', '/a/b', '/a/b/c', '/a/b-', '/a/bb', '/a-c', '/ab', '/b', '/z', '/\u00e9']);
  // Same as splitting into components and comparing those.
  const bySplit = [...keys].sort((x, y) => {
    const [px, py] = [x.split('/'), y.split('/')];
    for (let i = 0; i < Math.min(px.length, py.length); i++) if (px[i] !== py[i]) return px[i] < py[i] ? -1 : 1;
    return px.length - py.length;
  });
  t.same(sorted, bySplit);
  const ranges = new DoneRanges([{ first: '/a/b', last: '/a/bb' }, { first: '/m', last: '/n/z' }, { first: '/a/bb', last: '/a-c' }]);
  t.equal(ranges.size, 2, 'touching ranges merge');
  for (const key of ['/a/b', '/a/b/c', '/a/b-', '/a/bb', '/a-c', '/m', '/m/x', '/n', '/n/z']) t.ok(ranges.has(key), `${key} done`);
  for (const key of ['/a', '/a/a', '/ab', '/l', '/n/z/a', '/o', '/']) t.notOk(ranges.has(key), `${key} not done`);
  t.notOk(new DoneRanges().has('/a'));
});

t.test('content hash: the same whatever the order, different for any change', async (t) => {
  const kv = (k: string, v: string) => [Buffer.from(k), Buffer.from(v)] as const;
  const items = [kv('/a', '1'), kv('/b', '2'), kv('/c/d', 'three')];
  const forward = new ContentSums();
  const backward = new ContentSums();
  items.forEach(([k, v]) => forward.add(0, k, v));
  [...items].reverse().forEach(([k, v]) => backward.add(0, k, v));
  t.same(forward.total(), backward.total());
  t.equal(forward.total().count, 3);
  t.match(forward.total().hash, /^[0-9a-f]{64}$/);
  const changed = (mutate: (s: ContentSums) => void) => {
    const s = new ContentSums();
    mutate(s);
    return s.total().hash;
  };
  const base = forward.total().hash;
  t.not(changed((s) => items.slice(0, 2).forEach(([k, v]) => s.add(0, k, v))), base, 'a missing key');
  t.not(changed((s) => [...items, kv('/e', '')].forEach(([k, v]) => s.add(0, k, v))), base, 'an extra key');
  t.not(changed((s) => [kv('/a', '1'), kv('/b', '2'), kv('/c/d', 'threE')].forEach(([k, v]) => s.add(0, k, v))), base, 'a changed value');
  t.not(changed((s) => [...items, items[0]].forEach(([k, v]) => s.add(0, k, v))), base, 'a key twice');
  t.not(keyDigest(Buffer.from('/ab'), Buffer.from('c')).toString('hex'), keyDigest(Buffer.from('/a'), Buffer.from('bc')).toString('hex'), 'key and value are told apart');
  t.equal(keyDigest(Buffer.from('/a'), Buffer.from('b')).toString('hex'), createHash('sha256').update(Buffer.from([0, 0, 0, 2])).update('/a').update('b').digest('hex'), 'sha256(uint32 key length ‖ key ‖ value)');
  // the sums wrap around per 32-bit word
  const wrap = new ContentSums();
  wrap.addDigest(1, Buffer.alloc(32, 0xff));
  wrap.addDigest(1, Buffer.concat([Buffer.alloc(28, 0), Buffer.from([0, 0, 0, 2])]));
  t.equal(wrap.total().hash, `${'ffffffff'.repeat(7)}00000001`);
  // per bucket: a key on the wrong lease bucket differs even though the totals match
  const a = new ContentSums();
  const b = new ContentSums();
  a.add(5, ...kv('/t', 'x'));
  b.add(6, ...kv('/t', 'x'));
  t.same(a.total(), b.total());
  t.not(JSON.stringify(a.buckets.get(5)), JSON.stringify(b.buckets.get(5)));
});

t.test('v2 nodes: expiration parsed to ms rounded up, leaves flattened in walk order, paths escaped', async (t) => {
  t.equal(parseExpiration('2024-11-30T10:50:41Z'), Date.parse('2024-11-30T10:50:41Z'));
  t.equal(parseExpiration('2024-11-30T10:50:41.123Z'), Date.parse('2024-11-30T10:50:41.123Z'));
  t.equal(parseExpiration('2024-11-30T10:50:41.123000001Z'), Date.parse('2024-11-30T10:50:41.123Z') + 1, 'never early');
  t.equal(parseExpiration('2024-11-30T10:50:41.5+01:00'), Date.parse('2024-11-30T09:50:41.500Z'));
  t.equal(parseExpiration('yesterday'), undefined);
  const leaves = leavesOf({ dir: true, nodes: [
    { key: '/r/b', dir: true, nodes: [{ key: '/r/b/x', value: 'bx' }] },
    { key: '/r/a', value: 'a', expiration: '2030-01-01T00:00:00.0000005Z', ttl: 99 },
    { key: '/r/empty', dir: true },
  ] });
  t.same(leaves, [{ key: '/r/a', value: 'a', expiresAt: Date.parse('2030-01-01T00:00:00.001Z') }, { key: '/r/b/x', value: 'bx' }]);
  t.throws(() => leavesOf({ key: '/x', value: '', expiration: 'soon' }), /expiration "soon" is not an RFC 3339 time/);
  t.equal(encodeKeyPath('/a b/c%d/ü?#'), '/a%20b/c%25d/%C3%BC%3F%23');
});

t.test('target limits: errors classified, the request budget leaves room', async (t) => {
  t.equal(classifyLimit(new Error('3 INVALID_ARGUMENT: etcdserver: too many operations in txn request'))?.limit, 'ops');
  t.equal(classifyLimit(new Error('3 INVALID_ARGUMENT: etcdserver: request is too large'))?.limit, 'bytes');
  t.equal(classifyLimit(new Error('8 RESOURCE_EXHAUSTED: grpc: received message larger than max (2000000 vs. 1572864)'))?.limit, 'bytes');
  t.equal(classifyLimit(new Error('14 UNAVAILABLE: connection refused')), undefined);
  t.ok(putBudget(1.5 * 1024 * 1024) < 1.5 * 1024 * 1024);
});

/** One tar header block (ustar), checksum filled in. */
function tarHeader(name: string, size: number, type = '0', prefix = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000600\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.write(prefix, 345, 155, 'utf8');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}
const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
const entry = (name: string, data: Buffer | string, type = '0', prefix = '') => {
  const body = Buffer.from(data);
  return Buffer.concat([tarHeader(name, body.length, type, prefix), pad(body)]);
};
const paxRecord = (key: string, value: string) => {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
};
const tgz = (...entries: Buffer[]) => gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));

t.test('tar.gz: kOps\' layout, ustar prefixes, PAX and GNU long names extract', async (t) => {
  const dir = tempDir(t, 'tar-');
  const long = `member/wal/${'x'.repeat(150)}.wal`;
  const archive = tgz(
    entry('member/', '', '5'),
    entry('member/snap/db', 'bolt'),
    entry('0000000000000000-0000000000000000.wal', 'wal-bytes', '0', 'member/wal'),
    entry('PaxHeaders/x', paxRecord('path', long), 'x'),
    entry('ignored-name', 'pax named'),
    entry('././@LongLink', long.replace('.wal', '.snap') + '\0', 'L'),
    entry('truncated-name', 'gnu named'),
    entry('./member/empty', ''),
  );
  const result = await extractTarGz(Readable.from([archive.subarray(0, 37), archive.subarray(37)]), join(dir, 'out'), 1 << 20);
  t.same(result, { files: 5, bytes: 4 + 9 + 9 + 9 + 0 });
  t.equal(readFileSync(join(dir, 'out/member/snap/db'), 'utf8'), 'bolt');
  t.equal(readFileSync(join(dir, 'out/member/wal/0000000000000000-0000000000000000.wal'), 'utf8'), 'wal-bytes');
  t.equal(readFileSync(join(dir, 'out', long), 'utf8'), 'pax named');
  t.equal(readFileSync(join(dir, 'out', long.replace('.wal', '.snap')), 'utf8'), 'gnu named');
  t.equal(readFileSync(join(dir, 'out/member/empty'), 'utf8'), '');

  // What GNU tar writes (directories, ./ prefixes) reads too.
  const src = join(dir, 'src');
  mkdirSync(join(src, 'member/wal'), { recursive: true });
  writeFileSync(join(src, 'member/wal/0.wal'), Buffer.alloc(70_000, 7));
  execFileSync('tar', ['-czf', join(dir, 'gnu.tgz'), '-C', src, '.']);
  await extractTarGz(Readable.from([readFileSync(join(dir, 'gnu.tgz'))]), join(dir, 'gnu'), 1 << 20);
  t.same(readFileSync(join(dir, 'gnu/member/wal/0.wal')), Buffer.alloc(70_000, 7));
});

t.test('tar.gz: hostile or broken archives are refused, nothing written outside', async (t) => {
  const dir = tempDir(t, 'tar-bad-');
  const cases: Array<[string, Buffer, RegExp]> = [
    ['parent escape', tgz(entry('../evil', 'x')), /leaves the directory/],
    ['nested escape', tgz(entry('member/../../evil', 'x')), /leaves the directory/],
    ['absolute', tgz(entry('/etc/evil', 'x')), /absolute path/],
    ['symlink', tgz(entry('member/link', '', '2')), /type "2" .* is not part of an etcd backup/],
    ['hard link', tgz(entry('member/hard', '', '1')), /type "1"/],
    ['device', tgz(entry('member/dev', '', '3')), /type "3"/],
    ['PAX path escape', tgz(entry('p', paxRecord('path', '../../evil'), 'x'), entry('ok', 'x')), /leaves the directory/],
    ['bad checksum', (() => { const e = entry('member/a', 'x'); e[0] ^= 1; return tgz(e); })(), /checksum mismatch/],
    ['truncated', gzipSync(entry('member/a', 'x'.repeat(2000)).subarray(0, 1024)), /ends in the middle of a file/],
    ['not gzip', Buffer.from('plain text, not a backup'), /not a readable tar\.gz/],
    ['too big', tgz(entry('member/a', 'x'.repeat(5000))), /expands to more than 4096 bytes/],
  ];
  for (const [name, archive, message] of cases) {
    const out = join(dir, name.replace(/ /g, '-'));
    await t.rejects(extractTarGz(Readable.from([archive]), out, 4096), { name: 'Error', message }, name);
  }
  t.same(readdirSync(dir).filter((n) => n === 'evil'), [], 'nothing escaped');
  t.equal(safeMemberPath('./a//b/'), 'a/b');
  t.equal(safeMemberPath('./'), undefined);
});

t.test('the progress line: keys done, keys/s, ETA', async (t) => {
  t.equal(progressLine({ phase: 'copy', done: 12_000, written: 12_000, skipped: 0, verified: 0, elapsedMs: 2000 }), 'copying: 12,000 keys, 6,000 keys/s, ETA ? (still reading the source)');
  t.equal(progressLine({ phase: 'copy', done: 12_000, total: 50_000, written: 2_000, skipped: 10_000, verified: 0, elapsedMs: 2000 }), 'copying: 12,000 of 50,000 keys (24%) (10,000 done by an earlier run), 6,000 keys/s, ETA 6s');
  t.equal(progressLine({ phase: 'copy', done: 1, total: 1_000_000, written: 1, skipped: 0, verified: 0, elapsedMs: 1000 }), 'copying: 1 of 1,000,000 keys (0%), 1 keys/s, ETA 277h46m');
  t.equal(progressLine({ phase: 'verify', done: 50_000, total: 50_000, written: 50_000, skipped: 0, verified: 20_000, elapsedMs: 9000 }), 'verifying: 20,000 of ~50,000 keys read back from the target');
});

t.test('the summary at the end: keys, rate, leases, transactions, verification', async (t) => {
  const summary: MigrationSummary = {
    source: 'https://10.0.0.1:2379', target: ['https://10.0.0.2:2379'], migrationId: 'abc', runs: 2, resumed: true, alreadyDone: false,
    keys: { source: 50_000, written: 30_000, skippedDone: 20_000, expiredBeforeCopy: 3, withTTL: 4_997 },
    leases: { used: 421, granted: 100, bound: 461, absoluteBound: 1941, rule: 'r' },
    verify: { equal: true, sourceKeys: 49_990, sourceHash: 'ab'.repeat(32), targetKeys: 49_990, targetHash: 'ab'.repeat(32), expiringNotCompared: { source: 10, target: 9 }, differences: [] },
    transactions: { count: 237, largest: 127, maxTxnOps: 128, maxPutBytes: 1_000_000 },
    durationMs: 12_500, keysPerSecond: 4_000,
  };
  t.equal(textSummary(summary), [
    'migrated 50,000 keys from https://10.0.0.1:2379 to https://10.0.0.2:2379 in 13s (4,000 keys/s), resumed (run 2)',
    '  with a TTL: 4,997 keys on 421 leases (at most 461 for these TTLs, 1,941 for any)',
    '  written:    30,000 by this run in 237 transactions of up to 127 puts, 20,000 by earlier runs; 3 had expired before the copy',
    `  verified:   49,990 keys, content hash ${'ab'.repeat(8)}…, equal on both sides (keys expiring within seconds left out: 10 source, 9 target)`,
    '',
  ].join('\n'));
  const failed = textSummary({ ...summary, verify: { ...summary.verify, equal: false, targetKeys: 49_989, targetHash: 'cd'.repeat(32) } });
  t.match(failed, /  verify:     FAILED: source 49,990 keys abab.*, target 49,989 keys cdcd/);
  t.equal(textSummary({ ...summary, alreadyDone: true }), 'already migrated: 50,000 keys from https://10.0.0.1:2379 (migration abc); nothing was written\n');
});

t.test('migrate-v2 usage: one clear line, exit 2, before anything is touched', async (t) => {
  const h = cliHarness();
  const run = async (...args: string[]) => {
    const r = await h.run(['migrate-v2', ...args]);
    return { code: r.code, out: r.stdout, err: r.stderr };
  };
  const cases: Array<[string[], RegExp]> = [
    [['--to', 'http://127.0.0.1:1'], /^etcd-manager: migrate-v2: --from is required/],
    [['--from', 'http://127.0.0.1:1'], /^etcd-manager: migrate-v2: --to is required/],
    [['--from', 'http://127.0.0.1:1', '--to', 'ftp://x:1'], /--to: "ftp:\/\/x:1": want http:\/\/ or https:\/\//],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x'], /the port is missing/],
    [['--from', 'http://127.0.0.1:1/v2/keys', '--to', 'http://x:1'], /--from: .*want scheme:\/\/host:port and nothing else/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', '--concurrency', '0'], /--concurrency: "0" is out of range: want 1 to 64/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', '--max-txn-ops', '1'], /--max-txn-ops.*want 2 to 100000/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', '--concurrency', 'many'], /--concurrency: "many" is not a whole number/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', '-o', 'yaml'], /-o\/--output: unknown format "yaml" \(want table or json\)/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', '--to-cert', '/c'], /--to-cert and --to-key go together/],
    [['--from', '/backup.tgz', '--to', 'http://x:1', '--from-cacert', '/ca'], /are for a live source/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', '--bogus'], /unknown flag --bogus/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', '--backup-store=memfs://x/y'], /migrate-v2: --backup-store is not a flag of this command/],
    [['--from', 'http://127.0.0.1:1', '--to', 'http://x:1', 'extra'], /migrate-v2 takes no arguments \(got "extra"\)/],
  ];
  for (const [args, message] of cases) {
    const r = await run(...args);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.err, message);
    t.equal(r.err.trim().split('\n').length, 1, 'one line');
    t.equal(r.out, '');
  }
  const help = await run('--help');
  t.equal(help.code, 0);
  t.match(help.out, /^Usage: etcd-manager migrate-v2 \[flags\]\n\nCopy etcd2/);
  t.match(help.out, /--from and --to are required/);
  for (const flag of ['from', 'to', 'to-cacert', 'max-txn-ops', 'max-request-bytes', 'output', 'page-depth', 'etcd-binary-dir']) t.match(help.out, `--${flag}=`);
  t.match(help.out, /Exit codes of this command: 0 migrated/);
  const missing = await run('--from', '/nonexistent/backup.tar.gz', '--to', 'http://127.0.0.1:1');
  t.equal(missing.code, 4, 'a missing backup: not found, said before the target is asked');
  t.match(missing.err, /--from \/nonexistent\/backup\.tar\.gz: no such file or directory/);
  t.equal(checkEndpoint('to', 'https://10.0.0.1:2379/'), 'https://10.0.0.1:2379');
  // The flag table's defaults are the library's, so --help cannot say one thing and the writer do another.
  const dflt = (name: string) => (FLAGS as readonly { name: string; default?: string }[]).find((f) => f.name === name)?.default;
  t.equal(dflt('max-txn-ops'), String(DEFAULT_MAX_TXN_OPS));
  t.equal(dflt('max-request-bytes'), String(DEFAULT_MAX_REQUEST_BYTES));
});
