// An etcd v2 data directory read in this process, without an etcd: the
// newest snapshot (member/snap/*.snap: the v2 store as JSON) and the WAL's
// committed entries after it (member/wal/*.wal), applied the way etcd applies
// them (v2-store.ts). The result answers the v2 API's GET like a live member,
// so the migration walks it as it walks one (v2-source.ts: V2Reader).
//
// It replaces starting a throwaway etcd on a copy of the directory (about a
// second for 50,000 keys: etcd loads the same snapshot, replays the same WAL
// and elects itself before it answers, and then encodes every key as JSON again
// for the migration to parse): bench/migrate-v2.ts. The directory is only read.
//
// Anything it cannot read exactly (a checksum that does not match, a WAL
// without a record of the snapshot, a snapshot too large to hold in memory,
// an entry not modelled) raises CannotReadDirectly, and the caller serves
// the directory with etcd instead (v2-backup.ts); nothing is guessed.
//
// The formats, etcd 2.x's and 3.x's alike: v2-snapshot-file.ts (the snapshot),
// v2-wal.ts (the WAL), v2-entries.ts (what an entry does to the store).
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { applyEntry } from './v2-entries.js';
import { fail } from './v2-read-error.js';
import { decodeSnapshotFile, parseStoreJSON, readSnapshotFile } from './v2-snapshot-file.js';
import { V2Store } from './v2-store.js';
import { readWal } from './v2-wal.js';

export { CannotReadDirectly } from './v2-read-error.js';

export interface DataDirRead {
  store: V2Store;
  /** The cluster ID the WAL names, in hex (as etcd's X-Etcd-Cluster-Id). */
  clusterId?: string;
  snapshotFile?: string;
  snapshotIndex: bigint;
  /** Committed entries after the snapshot, applied. */
  entriesApplied: number;
}

export interface ReadDataDirOptions {
  /** A snapshot larger than this is not read in memory. */
  maxSnapshotBytes: number;
}

/** Reads `dir` (an etcd data directory: member/snap, member/wal) into a store. */
export async function readV2DataDir(dir: string, options: ReadDataDirOptions): Promise<DataDirRead> {
  const snapDir = join(dir, 'member', 'snap');
  const walDir = join(dir, 'member', 'wal');
  const snapFiles = (await readdir(snapDir).catch(() => [] as string[])).filter((n) => n.endsWith('.snap')).sort();
  const walNames = (await readdir(walDir).catch(() => fail(`no ${walDir}`))).filter((n) => n.endsWith('.wal')).sort();
  if (walNames.length === 0) fail(`no WAL file in ${walDir}`);
  let store = V2Store.empty();
  let snapshotIndex = 0n;
  let snapshotTerm = 0n;
  const newest = snapFiles.at(-1);
  if (newest !== undefined) {
    const path = join(snapDir, newest);
    const size = (await stat(path)).size;
    if (size > options.maxSnapshotBytes) fail(`its snapshot ${newest} is ${Math.round(size / 2 ** 20)} MiB, more than this process reads in memory (${Math.round(options.maxSnapshotBytes / 2 ** 20)} MiB)`);
    const snap = decodeSnapshotFile(await readSnapshotFile(path), newest);
    ({ index: snapshotIndex, term: snapshotTerm } = snap);
    store = V2Store.fromSnapshot(parseStoreJSON(snap.data, newest));
  }

  const wal = await readWal(walNames.map((name) => ({ name, path: join(walDir, name) })), snapshotIndex);
  if (snapshotIndex > 0n && wal.snapshots.get(snapshotIndex) !== snapshotTerm) fail(`the WAL holds no record of snapshot ${newest} (index ${snapshotIndex}, term ${snapshotTerm})`);
  if (wal.commit === undefined) fail('the WAL holds no raft state (commit index)');
  let applied = 0;
  for (const entry of wal.entries) {
    if (entry.index > wal.commit) break;
    applyEntry(store, entry);
    applied++;
  }
  store.clusterId = wal.clusterId;
  return { store, clusterId: wal.clusterId, snapshotFile: newest, snapshotIndex, entriesApplied: applied };
}
