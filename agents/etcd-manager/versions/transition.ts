// How a cluster gets from one etcd version to another, decided from the two
// versions alone (kOps' rules, which follow etcd's own upgrade guarantees):
//
//   same version                      → nothing
//   same major.minor, other patch     → in place, one member at a time
//   3.m → 3.(m+1)                     → in place, one member at a time
//   3.m → 3.n, n < m (downgrade)      → backup, then snapshot restore into n
//   3.m → 3.n, n > m+1 (skips minors) → backup, then snapshot restore into n
//   2.x → 3.y (major change)          → v2 backup, then the v2 → v3 migration into a new 3.y cluster
//   3.x → 2.y                         → refused: etcd 2 cannot read v3 data
//   2.m → 2.n, m ≠ n                  → refused: move to etcd 3 instead
//
// etcd only supports rolling a cluster forward one minor at a time (every member of
// 3.m must be able to talk to the first member on the new minor); everything else
// goes through a backup, which is also the only way back down.
import { compareVersions, isV2, parseEtcdVersion, VersionError, type EtcdVersion } from './version.js';

export type Transition =
  | { kind: 'none'; version: string }
  | { kind: 'in-place'; from: string; to: string; change: 'patch' | 'next-minor' }
  | { kind: 'restore'; from: string; to: string; reason: 'downgrade' | 'skipped-minor' }
  | { kind: 'migrate-v2'; from: string; to: string; reason: 'major-change' };

/**
 * The transition from `current` to `wanted`. Throws VersionError ('invalid' or
 * 'unsupported') with one line naming both versions when there is none.
 */
export function decideTransition(current: string, wanted: string): Transition {
  const from = parseEtcdVersion(current, 'the current etcd version');
  const to = parseEtcdVersion(wanted, 'the wanted etcd version');
  return transitionBetween(from, to);
}

export function transitionBetween(from: EtcdVersion, to: EtcdVersion): Transition {
  if (compareVersions(from, to) === 0) return { kind: 'none', version: to.text };
  const pair = { from: from.text, to: to.text };
  if (isV2(from) && !isV2(to)) return { kind: 'migrate-v2', ...pair, reason: 'major-change' };
  if (!isV2(from) && isV2(to)) {
    throw new VersionError('unsupported', `etcd ${from.text} → ${to.text}: etcd 2 cannot read etcd 3 data; choose a 3.x version`);
  }
  if (from.minor === to.minor) return { kind: 'in-place', ...pair, change: 'patch' };
  if (isV2(from)) {
    throw new VersionError('unsupported', `etcd ${from.text} → ${to.text}: moving between etcd 2 minors is not supported; move to etcd 3 (the v2 → v3 migration)`);
  }
  if (to.minor === from.minor + 1) return { kind: 'in-place', ...pair, change: 'next-minor' };
  return { kind: 'restore', ...pair, reason: to.minor < from.minor ? 'downgrade' : 'skipped-minor' };
}

/** One line for logs and `get`: "in place (next minor)", "backup + restore (downgrade)". */
export function describeTransition(t: Transition): string {
  switch (t.kind) {
    case 'none': return `none (already ${t.version})`;
    case 'in-place': return `${t.from} → ${t.to}: in place, one member at a time (${t.change === 'patch' ? 'patch release' : 'next minor'})`;
    case 'restore': return `${t.from} → ${t.to}: backup, then restore into ${t.to} (${t.reason === 'downgrade' ? 'a downgrade' : 'skips a minor'})`;
    case 'migrate-v2': return `${t.from} → ${t.to}: v2 backup, then the v2 → v3 migration into a new ${t.to} cluster`;
  }
}
