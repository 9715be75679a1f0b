// The content hash both sides of a migration compute: the sum, modulo 2^256, of
// sha256(uint32 key length ‖ key ‖ value) over every key. A sum does not depend
// on the order keys are read in (the v2 walk and the v3 range scan order keys
// differently), and adds up across pages and runs; a missing, extra or changed
// key changes it. It guards against mistakes, not against an adversary.
//
// Kept per lease bucket (0: no TTL), so the verification can leave out exactly
// the buckets whose keys may expire while it runs, and so a key written with the
// wrong lease shows up as a difference too.
import { createHash } from 'node:crypto';

const MOD = 1n << 256n;

export function keyDigest(key: Buffer, value: Buffer): bigint {
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(key.length, 0);
  return BigInt('0x' + createHash('sha256').update(len).update(key).update(value).digest('hex'));
}

export interface BucketSum {
  count: number;
  sum: bigint;
}

export class ContentSums {
  readonly buckets = new Map<number, BucketSum>();

  add(bucket: number, key: Buffer, value: Buffer): void {
    this.addDigest(bucket, keyDigest(key, value));
  }

  addDigest(bucket: number, digest: bigint): void {
    const b = this.buckets.get(bucket) ?? { count: 0, sum: 0n };
    b.count++;
    b.sum = (b.sum + digest) % MOD;
    this.buckets.set(bucket, b);
  }

  /** Count and hash over the buckets `include` accepts. */
  total(include: (bucket: number) => boolean = () => true): { count: number; hash: string } {
    let count = 0;
    let sum = 0n;
    for (const [bucket, b] of this.buckets) {
      if (!include(bucket)) continue;
      count += b.count;
      sum = (sum + b.sum) % MOD;
    }
    return { count, hash: sum.toString(16).padStart(64, '0') };
  }
}
