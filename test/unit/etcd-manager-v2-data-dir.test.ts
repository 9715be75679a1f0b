// The pure pieces under the in-process v2 data directory reader: CRC-32C (etcd's
// snapshot and WAL checksum), Go's way of turning bytes that are not UTF-8 into a
// JSON string (how etcd serves such a value), Go's RFC 3339 times and path.Clean.
// The reader itself is checked against etcd in
// test/integration/etcd-manager-v2-data-dir.test.ts.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '../../agents/etcd-manager/migrate/crc32c.js';
import { CannotReadDirectly, readV2DataDir } from '../../agents/etcd-manager/migrate/v2-data-dir.js';
import { cleanPath, formatTimeNs, goString, parseTimeNs } from '../../agents/etcd-manager/migrate/v2-store.js';
import { tempDir } from '../harness/tmp.js';

t.test('CRC-32C: the standard check value, and continuing from a previous CRC as Go\'s crc32.Update does', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.equal(crc32c(Buffer.alloc(0)), 0);
  const whole = Buffer.from('the quick brown fox jumps over the lazy dog, twice over for the 8-byte steps');
  for (const cut of [0, 1, 7, 8, 9, 40, whole.length]) t.equal(crc32c(whole.subarray(cut), crc32c(whole.subarray(0, cut))), crc32c(whole), `split at ${cut}`);
});

t.test('bytes that are not UTF-8: one U+FFFD per byte of an invalid sequence, as Go\'s encoder writes them', async (t) => {
  const cases: [number[], string][] = [
    [[0x61, 0x62], 'ab'],
    [[0xff], '\ufffd'],
    [[0xe2, 0x82], '\ufffd\ufffd'], // a truncated 3-byte sequence: Buffer would give one
    [[0xe2, 0x82, 0xac], '€'],
    [[0xed, 0xa0, 0x80], '\ufffd\ufffd\ufffd'], // a surrogate
    [[0xc0, 0xaf], '\ufffd\ufffd'], // overlong
    [[0xf4, 0x90, 0x80, 0x80], '\ufffd\ufffd\ufffd\ufffd'], // above U+10FFFF
    [[0xf0, 0x9f, 0x98, 0x80, 0xff, 0x61], '😀\ufffda'],
  ];
  for (const [bytes, want] of cases) t.equal(goString(Buffer.from(bytes)), want, Buffer.from(bytes).toString('hex'));
});

t.test('Go RFC 3339 times: nanoseconds kept, offsets honoured, the zero time is no expiry', async (t) => {
  t.equal(parseTimeNs('0001-01-01T00:00:00Z'), undefined);
  t.equal(parseTimeNs('2026-12-02T08:31:58.829295265Z'), 1_796_200_318_829_295_265n);
  t.equal(parseTimeNs('2026-12-02T09:31:58.829295265+01:00'), 1_796_200_318_829_295_265n);
  t.equal(parseTimeNs('2026-12-02T08:31:58Z'), 1_796_200_318_000_000_000n);
  t.equal(parseTimeNs('yesterday'), undefined);
  t.equal(formatTimeNs(1_796_200_318_000_000_123n), '2026-12-02T08:31:58.000000123Z');
  t.equal(parseTimeNs(formatTimeNs(1_796_200_318_829_295_265n)), 1_796_200_318_829_295_265n);
});

t.test('paths cleaned as Go\'s path.Clean(path.Join("/", p))', async (t) => {
  t.equal(cleanPath(''), '/');
  t.equal(cleanPath('/1/a//b/'), '/1/a/b');
  t.equal(cleanPath('1/./a/../b'), '/1/b');
  t.equal(cleanPath('/../..'), '/');
});

t.test('a WAL whose frame claims more bytes than the file holds is refused, not allocated for', async (t) => {
  const dir = tempDir(t, 'v2-wal-');
  mkdirSync(join(dir, 'member', 'wal'), { recursive: true });
  const frame = Buffer.alloc(64);
  frame.writeUInt32LE(0, 0);
  frame.writeUInt32LE(0x100, 4); // 2^40 bytes
  frame.fill(0x5a, 8);
  for (const files of [['0000000000000000-0000000000000000.wal'], ['0000000000000000-0000000000000000.wal', '0000000000000001-0000000000000010.wal']]) {
    for (const name of files) writeFileSync(join(dir, 'member', 'wal', name), frame);
    await t.rejects(readV2DataDir(dir, { maxSnapshotBytes: 1 << 20 }), { constructor: CannotReadDirectly, message: /WAL|raft state/ }, `${files.length} file(s)`);
  }
  await t.rejects(readV2DataDir(join(dir, 'nowhere'), { maxSnapshotBytes: 1 << 20 }), { constructor: CannotReadDirectly, message: /no .*member\/wal/ }, 'no WAL at all');
});
