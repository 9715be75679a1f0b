// The order the migration walks v2 leaves in, and the record of what is done.
//
// Leaves are visited depth first with siblings sorted, which is the same as
// comparing paths component by component. Any consistent total order would do:
// it only has to be the same in every run, because a resumed run skips the
// leaves that lie inside a range an earlier run wrote (`DoneRanges`). Each
// write transaction carries a record of its own range [first, last] in this
// order, written atomically with its keys, so after a kill -9 the target holds
// exactly the ranges its records name.

/**
 * Compares two v2 key paths ("/a/b") component by component, without splitting
 * them: at the first character where they differ, a path whose component ends
 * there ('/') comes first; otherwise the characters decide. A path that is a
 * prefix of the other comes first.
 */
export function compareLeafOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    if (ca === 0x2f) return -1;
    if (cb === 0x2f) return 1;
    return ca < cb ? -1 : 1;
  }
  return a.length - b.length;
}

export interface LeafRange {
  first: string;
  last: string;
}

/** A set of ranges (merged where they overlap) answering "is this leaf inside one?". */
export class DoneRanges {
  private readonly ranges: LeafRange[] = [];

  constructor(ranges: LeafRange[] = []) {
    const sorted = [...ranges].sort((x, y) => compareLeafOrder(x.first, y.first));
    for (const r of sorted) {
      const prev = this.ranges.at(-1);
      if (prev && compareLeafOrder(r.first, prev.last) <= 0) {
        if (compareLeafOrder(r.last, prev.last) > 0) prev.last = r.last;
      } else {
        this.ranges.push({ ...r });
      }
    }
  }

  get size(): number {
    return this.ranges.length;
  }

  has(key: string): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid];
      if (compareLeafOrder(key, r.first) < 0) hi = mid - 1;
      else if (compareLeafOrder(key, r.last) > 0) lo = mid + 1;
      else return true;
    }
    return false;
  }
}
