// A v2 backup converted into a v3 backup, for the manager's etcd2 → etcd3
// change (versions/plan.ts): the v2 backup is served by a throwaway etcd that
// speaks the v2 API (v2-backup.ts), migrated (migrate.ts: every leaf under its
// path, TTLs as leases, verified by count and content hash) into a throwaway,
// empty etcd of the new version, and that etcd's snapshot is stored as a new
// backup in the same store (backup/take.ts: kOps' layout, the meta naming the
// new version, encrypted when a key is given). The live cluster is not touched;
// the change then restores the new backup into every member.
// Both etcds run on 127.0.0.1 with their own throwaway TLS, in a working
// directory named like migrate-v2's (so a run killed half way is cleaned up by
// the next one), and are stopped by PID however this ends.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { BackupKey } from '../backup/encryption.js';
import { dataPath, metaPath } from '../backup/layout.js';
import type { ClusterSpec } from '../backup/meta.js';
import { etcdSnapshotSource } from '../backup/snapshot-stream.js';
import { takeBackup, type TakenBackup } from '../backup/take.js';
import { openEtcdClient, openSnapshotClient } from '../etcd/client.js';
import type { EtcdBinaries } from '../versions/binaries.js';
import { migrateV2, type MigrationSummary } from './migrate.js';
import { makeThrowawayPKI, startThrowawayEtcd, type ThrowawayEtcd } from './throwaway-etcd.js';
import { openLocatedBackup, removeStaleWorkDirs, WORK_PREFIX, type BackupSource } from './v2-backup.js';

export interface ConvertV2Options {
  /** The backup store: it holds the v2 backup and receives the new one. */
  store: StateStore;
  /** The v2 backup's name in it. */
  from: string;
  /** A fresh name for the new backup. */
  name: string;
  /** The new version's tools: its etcd is the migration's target. */
  to: EtcdBinaries;
  /** Where a v2-capable etcd is found to serve the v2 backup. */
  binaryDir?: string;
  /** Written into the new backup's meta (the new version, the member count). */
  clusterSpec: ClusterSpec;
  key?: BackupKey;
  reason: string;
  log: Logger;
  workRoot?: string;
  now?: () => number;
}

export interface ConvertedBackup {
  taken: TakenBackup;
  migration: MigrationSummary;
}

export class ConvertError extends Error {}

const PROGRESS_EVERY_MS = 5_000;

export async function convertV2Backup(o: ConvertV2Options): Promise<ConvertedBackup> {
  const where = o.store.urlOf(o.from);
  const workRoot = o.workRoot ?? tmpdir();
  await removeStaleWorkDirs(workRoot, o.log);
  const work = await mkdtemp(join(workRoot, `${WORK_PREFIX}${process.pid}-`));
  let lastProgressMs = 0;
  let target: ThrowawayEtcd | undefined;
  let source: BackupSource | undefined;
  try {
    const pki = await makeThrowawayPKI(join(work, 'pki'), 'migrate-v2-target');
    target = await startThrowawayEtcd({
      etcd: o.to.etcd, version: o.to.version, name: 'migrate-v2-target', dataDir: join(work, 'target'), pki, extraArgs: [],
      serving: `the migration of ${where}`, log: o.log,
      probe: async (url) => {
        const client = await openEtcdClient([url], pki.client, 5_000);
        try {
          await client.maintenance.status();
        } finally {
          client.close();
        }
      },
    });
    const targetURL = target.url;
    const migration = await migrateV2({
      source: {
        description: where,
        open: async () => {
          source = await openLocatedBackup(
            { kind: 'tar', where, open: () => o.store.openReadStream(dataPath(o.from)), meta: () => o.store.readIfExists(metaPath(o.from)) },
            { log: o.log, binaryDir: o.binaryDir, workRoot },
          );
          return source.reader;
        },
      },
      target: { endpoints: [targetURL], tls: pki.client },
      log: o.log,
      onProgress: (p) => {
        // A log line every few seconds, for whoever watches a long conversion (the CLI draws a bar instead).
        if (p.elapsedMs - lastProgressMs < PROGRESS_EVERY_MS) return;
        lastProgressMs = p.elapsedMs;
        o.log.info('v2 backup conversion progress', { event: 'version-change.convert-progress', phase: p.phase, done: p.done, ...(p.total !== undefined ? { total: p.total } : {}), written: p.written, verified: p.verified, elapsedMs: p.elapsedMs });
      },
    });
    o.log.info('v2 backup converted', { event: 'version-change.converted', from: o.from, leaves: migration.keys.source, written: migration.keys.written, leases: migration.leases.used, verified: migration.verify.equal });
    if (!migration.verify.equal) {
      throw new ConvertError(`the migration of ${where} into etcd ${o.to.version} did not verify: ${migration.verify.differences.join('; ')}`);
    }
    await source?.close();
    source = undefined;
    const client = await openSnapshotClient(targetURL, pki.client);
    try {
      const taken = await takeBackup({
        store: o.store, name: o.name, snapshot: etcdSnapshotSource(client, targetURL), clusterSpec: o.clusterSpec, reason: o.reason,
        ...(o.key ? { key: o.key } : {}), ...(o.now ? { now: o.now } : {}),
      });
      return { taken, migration };
    } finally {
      client.close();
    }
  } finally {
    await source?.close();
    await target?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
