// IPv4 CIDR helpers used by validation and completion.
import t from 'tap';
import { cidrContains, cidrsOverlap, formatCIDR, formatIPv4, nthAddress, parseCIDR, parseIPv4, subdivide } from '../../shared/api/cidr.js';

t.test('parseCIDR', async (t) => {
  t.same(parseCIDR('10.0.0.0/8'), { network: 10 * 2 ** 24, prefix: 8, size: 2 ** 24, hostBitsSet: false });
  t.same(parseCIDR('0.0.0.0/0'), { network: 0, prefix: 0, size: 2 ** 32, hostBitsSet: false });
  t.same(parseCIDR('255.255.255.255/32'), { network: 2 ** 32 - 1, prefix: 32, size: 1, hostBitsSet: false });
  t.equal(parseCIDR('10.1.2.3/8').hostBitsSet, true);
  t.equal(formatCIDR(parseCIDR('10.1.2.3/8')), '10.0.0.0/8');
  const wantCIDR = (text: string) => `invalid CIDR ${JSON.stringify(text)} (want IPv4 a.b.c.d/n)`;
  const cases: Array<[string, string]> = [
    ['10.0.0.0/33', wantCIDR('10.0.0.0/33')],
    ['10.0.0.0/08', wantCIDR('10.0.0.0/08')],
    ['10.0.0.0/-1', wantCIDR('10.0.0.0/-1')],
    ['fd00::/8', wantCIDR('fd00::/8')],
    ['', wantCIDR('')],
    ['256.0.0.0/8', 'invalid IPv4 address "256.0.0.0"'],
    ['10.0.0.01/8', 'invalid IPv4 address "10.0.0.01"'],
  ];
  for (const [text, message] of cases) t.throws(() => parseCIDR(text), { message }, text);
  t.throws(() => parseCIDR('10.0.0.0'), { message: 'invalid CIDR "10.0.0.0" (want IPv4 a.b.c.d/n)' });
});

t.test('parseIPv4 and formatIPv4', async (t) => {
  t.equal(parseIPv4('100.64.0.10'), 100 * 2 ** 24 + 64 * 2 ** 16 + 10);
  t.equal(formatIPv4(parseIPv4('172.20.255.1')), '172.20.255.1');
  t.throws(() => parseIPv4('1.2.3.4.5'));
});

t.test('overlap and containment', async (t) => {
  // kOps defaults: nonMasqueradeCIDR holds both pod and service ranges, which stay apart.
  t.ok(cidrContains('100.64.0.0/10', '100.96.0.0/11'));
  t.ok(cidrContains('100.64.0.0/10', '100.64.0.0/13'));
  t.notOk(cidrsOverlap('100.96.0.0/11', '100.64.0.0/13'));
  t.ok(cidrsOverlap('100.64.0.0/10', '100.96.0.0/11'));
  t.ok(cidrsOverlap('10.0.0.0/8', '10.255.255.255/32'));
  t.notOk(cidrsOverlap('10.0.0.0/9', '10.128.0.0/9'));
  t.ok(cidrContains('10.0.0.0/8', '10.0.0.0/8'), 'a range contains itself');
  t.notOk(cidrContains('10.0.0.0/9', '10.0.0.0/8'));
  t.notOk(cidrContains('172.20.0.0/16', '172.21.0.0/19'));
  t.ok(cidrsOverlap(parseCIDR('0.0.0.0/0'), '1.2.3.4/32'), 'parsed values work too');
});

t.test('nthAddress and subdivide', async (t) => {
  t.equal(nthAddress('100.64.0.0/13', 10), '100.64.0.10');
  t.throws(() => nthAddress('10.0.0.0/30', 4));
  t.same(subdivide('172.20.0.0/16', 19).map(formatCIDR), [
    '172.20.0.0/19', '172.20.32.0/19', '172.20.64.0/19', '172.20.96.0/19',
    '172.20.128.0/19', '172.20.160.0/19', '172.20.192.0/19', '172.20.224.0/19',
  ]);
  t.throws(() => subdivide('10.0.0.0/16', 8));
});
