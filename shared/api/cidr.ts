// IPv4 CIDR arithmetic for validation and default assignment. Addresses are
// plain numbers in 0..2^32-1 (no bitwise ops on them: JS bitwise is signed).

export interface IPv4CIDR {
  /** The network address (host bits cleared). */
  network: number;
  prefix: number;
  /** Number of addresses in the range. */
  size: number;
  /** True when the text had host bits set (e.g. 10.0.0.1/8): usually a typo. */
  hostBitsSet: boolean;
}

export type CIDRLike = IPv4CIDR | string;

/** Parses dotted-quad IPv4; no leading zeros (they read as octal elsewhere). */
export function parseIPv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) throw new Error(`invalid IPv4 address ${JSON.stringify(text)}`);
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) {
      throw new Error(`invalid IPv4 address ${JSON.stringify(text)}`);
    }
    value = value * 256 + Number(part);
  }
  return value;
}

export function formatIPv4(value: number): string {
  const octets: number[] = [];
  for (let i = 3; i >= 0; i--) octets.push(Math.floor(value / 256 ** i) % 256);
  return octets.join('.');
}

/** Parses `a.b.c.d/n`. Throws an Error whose message says what is wrong. */
export function parseCIDR(text: string): IPv4CIDR {
  const match = /^([0-9.]+)\/(0|[1-9][0-9]?)$/.exec(text);
  if (!match || Number(match[2]) > 32) throw new Error(`invalid CIDR ${JSON.stringify(text)} (want IPv4 a.b.c.d/n)`);
  const address = parseIPv4(match[1]);
  const prefix = Number(match[2]);
  const size = 2 ** (32 - prefix);
  const network = address - (address % size);
  return { network, prefix, size, hostBitsSet: network !== address };
}

export function formatCIDR(cidr: IPv4CIDR): string {
  return `${formatIPv4(cidr.network)}/${cidr.prefix}`;
}

function toCIDR(value: CIDRLike): IPv4CIDR {
  return typeof value === 'string' ? parseCIDR(value) : value;
}

export function cidrsOverlap(a: CIDRLike, b: CIDRLike): boolean {
  const x = toCIDR(a);
  const y = toCIDR(b);
  return x.network < y.network + y.size && y.network < x.network + x.size;
}

/** True when inner lies wholly inside outer (equal ranges contain each other). */
export function cidrContains(outer: CIDRLike, inner: CIDRLike): boolean {
  const o = toCIDR(outer);
  const i = toCIDR(inner);
  return i.network >= o.network && i.network + i.size <= o.network + o.size;
}

/** The n-th address of the range (0 = network address). */
export function nthAddress(cidr: CIDRLike, n: number): string {
  const c = toCIDR(cidr);
  if (n < 0 || n >= c.size) throw new Error(`address #${n} is outside ${formatCIDR(c)}`);
  return formatIPv4(c.network + n);
}

/** Splits a range into equal blocks of a longer prefix, in address order. */
export function subdivide(cidr: CIDRLike, prefix: number): IPv4CIDR[] {
  const c = toCIDR(cidr);
  if (prefix < c.prefix || prefix > 32) throw new Error(`cannot split ${formatCIDR(c)} into /${prefix} blocks`);
  const size = 2 ** (32 - prefix);
  const blocks: IPv4CIDR[] = [];
  for (let network = c.network; network < c.network + c.size; network += size) {
    blocks.push({ network, prefix, size, hostBitsSet: false });
  }
  return blocks;
}

/** An IPv6 range: addresses as 128-bit bigints. */
export interface IPv6CIDR {
  network: bigint;
  prefix: number;
}

/** Parses an IPv6 address (RFC 4291 text, `::` compression, no zone, no embedded IPv4). */
export function parseIPv6(text: string): bigint {
  const bad = () => new Error(`invalid IPv6 address ${JSON.stringify(text)}`);
  const halves = text.split('::');
  if (halves.length > 2) throw bad();
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) throw bad();
  let value = 0n;
  for (const group of [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail]) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) throw bad();
    value = (value << 16n) | BigInt(`0x${group}`);
  }
  return value;
}

/** RFC 5952 text: lowercase, leading zeros dropped, the longest run (2+) of zero groups as `::`. */
export function formatIPv6(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}

export function parseIPv6CIDR(text: string): IPv6CIDR {
  const match = /^([0-9a-fA-F:]+)\/(0|[1-9][0-9]{0,2})$/.exec(text);
  if (!match || Number(match[2]) > 128) throw new Error(`invalid CIDR ${JSON.stringify(text)} (want IPv6 such as fd00::/108)`);
  const prefix = Number(match[2]);
  const address = parseIPv6(match[1]);
  const hostBits = BigInt(128 - prefix);
  return { network: (address >> hostBits) << hostBits, prefix };
}

export function isIPv6CIDR(text: string): boolean {
  return text.includes(':');
}

/** The n-th address of an IPv4 or IPv6 range, as kOps' WellKnownServiceIP (100.64.0.10, fd00:5e4f:ce::a). */
export function nthAddressOf(cidr: string, n: number): string {
  if (!isIPv6CIDR(cidr)) return nthAddress(cidr, n);
  const c = parseIPv6CIDR(cidr);
  if (BigInt(n) >= 1n << BigInt(128 - c.prefix)) throw new Error(`address #${n} is outside ${cidr}`);
  return formatIPv6(c.network + BigInt(n));
}
