// The migration's hand-written etcd wire forms (kv-wire.ts) against protobufjs
// reading etcd3's own rpc.proto/kv.proto (the definitions etcd3 itself sends
// with): what we encode decodes to the same fields there, and what protobufjs
// encodes we read back the same; truncated input is refused, never misread.
import t from 'tap';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { decodeRangeResponse, encodePutTxn, encodeRange, int64Varint } from '../../agents/etcd-manager/migrate/kv-wire.js';

const etcd3Proto = join(dirname(createRequire(import.meta.url).resolve('etcd3/package.json')), 'proto/rpc.proto');
const root = new protobuf.Root().loadSync(etcd3Proto, { keepCase: true });
const TxnRequest = root.lookupType('etcdserverpb.TxnRequest');
const RangeRequest = root.lookupType('etcdserverpb.RangeRequest');
const RangeResponse = root.lookupType('etcdserverpb.RangeResponse');
const asPlain = (type: protobuf.Type, message: protobuf.Message) => type.toObject(message, { longs: String, bytes: Buffer, defaults: true }) as Record<string, unknown>;

const MAX_INT64 = '9223372036854775807';
const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) % 256));

t.test('a transaction of puts: protobufjs reads every key, value and lease back', async (t) => {
  const puts = [
    { key: Buffer.from('/registry/pods/default/a'), value: Buffer.from('{"kind":"Pod"}'), lease: undefined },
    { key: Buffer.from('/k-empty-value'), value: Buffer.alloc(0), lease: '7' },
    { key: bytes(300, 1), value: bytes(70_000, 2), lease: MAX_INT64 }, // multi-byte lengths, the largest lease ID
    { key: Buffer.from([0, 255, 128]), value: bytes(127, 3), lease: '128' }, // varint edges: 127, 128
    { key: Buffer.from('/x'), value: bytes(16_384, 4), lease: '7587880000000000001' },
  ];
  const encoded = encodePutTxn(puts.map((p) => ({ key: p.key, value: p.value, lease: p.lease === undefined ? undefined : int64Varint(p.lease) })));
  const decoded = asPlain(TxnRequest, TxnRequest.decode(encoded)) as { compare: unknown[]; success: Array<{ request_put: { key: Buffer; value: Buffer; lease: string } }>; failure: unknown[] };
  t.equal(decoded.compare.length, 0, 'no compares');
  t.equal(decoded.failure.length, 0, 'no failure ops');
  t.equal(decoded.success.length, puts.length, 'one op per put');
  puts.forEach((p, i) => {
    const put = decoded.success[i].request_put;
    t.ok(put, `op ${i} is a put`);
    t.ok(put.key.equals(p.key), `op ${i}: key`);
    t.ok(put.value.equals(p.value), `op ${i}: value`);
    t.equal(put.lease, p.lease ?? '0', `op ${i}: lease`);
  });
  t.ok(encodePutTxn([]).equals(Buffer.alloc(0)), 'no puts: an empty TxnRequest');
});

t.test('a range request: key, range end, limit and a revision past 2^53', async (t) => {
  const cases = [
    { key: Buffer.from('/registry/'), rangeEnd: Buffer.from('/registry0'), limit: 2000, revision: '9007199254740993' },
    { key: Buffer.from([0]), rangeEnd: Buffer.from([0]), limit: 0, revision: undefined },
    { key: bytes(200, 5), rangeEnd: bytes(201, 5), limit: 1, revision: '1' },
  ];
  for (const c of cases) {
    const decoded = asPlain(RangeRequest, RangeRequest.decode(encodeRange(c)));
    t.ok((decoded.key as Buffer).equals(c.key), 'key');
    t.ok((decoded.range_end as Buffer).equals(c.rangeEnd), 'range_end');
    t.equal(decoded.limit, String(c.limit), 'limit');
    t.equal(decoded.revision, c.revision ?? '0', 'revision');
    t.equal(decoded.keys_only, false, 'values are asked for');
  }
});

t.test('a range response written by protobufjs: revision, keys, values, leases and more read back', async (t) => {
  const kvs = [
    { key: Buffer.from('/a'), create_revision: 5, mod_revision: 9, version: 2, value: Buffer.from('one'), lease: 0 },
    { key: bytes(130, 6), create_revision: '9007199254740993', mod_revision: '9007199254740995', version: 1, value: bytes(100_000, 7), lease: MAX_INT64 },
    { key: Buffer.from('/empty'), create_revision: 1, mod_revision: 1, version: 1, value: Buffer.alloc(0), lease: '7587880000000000001' },
  ];
  const message = RangeResponse.fromObject({
    header: { cluster_id: '18446744073709551615', member_id: '12345678901234567890', revision: '9007199254740995', raft_term: 7 },
    kvs,
    more: true,
    count: 1_000_000,
  });
  const encoded = Buffer.from(RangeResponse.encode(message).finish());
  const read = decodeRangeResponse(encoded);
  t.equal(read.revision, '9007199254740995', 'header.revision, exactly');
  t.equal(read.more, true, 'more');
  t.equal(read.kvs.length, kvs.length, 'every key-value');
  kvs.forEach((kv, i) => {
    t.ok(read.kvs[i].key.equals(kv.key), `kv ${i}: key`);
    t.ok(read.kvs[i].value.equals(kv.value), `kv ${i}: value`);
    t.equal(read.kvs[i].lease, String(kv.lease), `kv ${i}: lease`);
  });
  t.equal(decodeRangeResponse(Buffer.from(RangeResponse.encode(RangeResponse.fromObject({ header: { revision: 3 } })).finish())).more, false, 'more: false when absent');

  // A field this reader does not know (a newer etcd's) is skipped, whatever its wire type.
  const unknown = Buffer.concat([encoded, Buffer.from([(12 << 3) | 0, 0x96, 0x01, (13 << 3) | 2, 2, 0xaa, 0xbb, (14 << 3) | 5, 1, 2, 3, 4, (15 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8])]);
  t.same(decodeRangeResponse(unknown).kvs.map((kv) => kv.key.toString('hex')), read.kvs.map((kv) => kv.key.toString('hex')), 'unknown fields skipped');
});

t.test('truncated or malformed answers are refused, not misread', async (t) => {
  const encoded = Buffer.from(RangeResponse.encode(RangeResponse.fromObject({ header: { revision: 3 }, kvs: [{ key: Buffer.from('/a'), value: bytes(300, 8), lease: 5 }] })).finish());
  for (const cut of [1, 5, encoded.length - 1]) {
    t.throws(() => decodeRangeResponse(encoded.subarray(0, cut)), { name: 'WireError' }, `cut at ${cut} of ${encoded.length} bytes`);
  }
  t.throws(() => decodeRangeResponse(Buffer.from([(2 << 3) | 3])), { name: 'WireError' }, 'a group wire type etcd never sends');
  t.throws(() => int64Varint('-1'), { name: 'RangeError' }, 'a negative lease ID');
  t.throws(() => int64Varint('9223372036854775808'), { name: 'RangeError' }, 'past int64');
  t.same([...int64Varint('300')], [0xac, 0x02], '300 is ac 02, as protobuf writes it');
});
