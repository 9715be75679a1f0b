// The content hash both sides of a migration compute: over every key, the
// digest sha256(uint32 key length ‖ key ‖ value) is added in, as eight 32-bit
// words each summed modulo 2^32. A sum does not depend on the order keys are
// read in (the v2 walk and the v3 range scan order keys differently), and adds
// up across pages and runs; a missing, extra or changed key changes it. It
// guards against mistakes, not against an adversary. (Word sums in plain
// numbers rather than one 256-bit BigInt sum: the same guarantee for this
// purpose, without a BigInt and a hex string per key.)
//
// Kept per lease bucket (0: no TTL), so the verification can leave out exactly
// the buckets whose keys may expire while it runs, and so a key written with the
// wrong lease shows up as a difference too.
import { hash } from 'node:crypto';

const WORDS = 8;
const WORD = 2 ** 32;
/** uint32 key length ‖ key ‖ value, laid out for one-shot hashing (reused: one allocation, not one per key). */
const scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * sha256(uint32 key length ‖ key ‖ value), 32 bytes. One `crypto.hash` call
 * over a reused buffer: a Hash object and three updates per key cost about a
 * third more on the binary's Node 24 (the same on Node 20); a migration hashes
 * every key twice.
 */
export function keyDigest(key: Buffer, value: Buffer): Buffer {
  const size = 4 + key.length + value.length;
  // A rare large value gets a buffer of its own, so the process does not keep one that size.
  const into = size <= scratch.length ? scratch : Buffer.allocUnsafe(size);
  into.writeUInt32BE(key.length, 0);
  key.copy(into, 4);
  value.copy(into, 4 + key.length);
  return hash('sha256', into.subarray(0, size), 'buffer');
}

export interface BucketSum {
  count: number;
  /** Eight word sums, each modulo 2^32. */
  sum: number[];
}

function addWords(into: number[], from: ArrayLike<number>): void {
  for (let i = 0; i < WORDS; i++) into[i] = (into[i] + from[i]) % WORD;
}

export function sumHex(sum: number[]): string {
  return sum.map((w) => w.toString(16).padStart(8, '0')).join('');
}

export class ContentSums {
  readonly buckets = new Map<number, BucketSum>();

  add(bucket: number, key: Buffer, value: Buffer): void {
    this.addDigest(bucket, keyDigest(key, value));
  }

  addDigest(bucket: number, digest: Buffer): void {
    let b = this.buckets.get(bucket);
    if (!b) {
      b = { count: 0, sum: new Array<number>(WORDS).fill(0) };
      this.buckets.set(bucket, b);
    }
    b.count++;
    for (let i = 0; i < WORDS; i++) b.sum[i] = (b.sum[i] + digest.readUInt32BE(i * 4)) % WORD;
  }

  /** Count and hash over the buckets `include` accepts. */
  total(include: (bucket: number) => boolean = () => true): { count: number; hash: string } {
    let count = 0;
    const sum = new Array<number>(WORDS).fill(0);
    for (const [bucket, b] of this.buckets) {
      if (!include(bucket)) continue;
      count += b.count;
      addWords(sum, b.sum);
    }
    return { count, hash: sumHex(sum) };
  }
}
