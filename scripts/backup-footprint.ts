// Diagnostic of the built binary, hidden behind `mooring-agents
// __backup-footprint`, for bench/footprint.ts: takes one backup with the backup
// library (agents/etcd-manager/backup, the same takeBackup a manager runs) from
// one etcd member into a store, in this process, and prints as JSON how much
// memory the process held: RSS just before, the highest RSS sampled every
// 50 ms while the backup ran, the kernel's high-water mark (VmHWM), and V8's
// heap at the end. It runs under the long-running agents' V8 flags, as a
// manager does (shared/long-running.ts), unless --default-v8 is given.
// Usage: mooring-agents __backup-footprint [--default-v8] <store URL> <etcd endpoint> <ca> <cert> <key>
import { readFileSync } from 'node:fs';
import { tuneForLongRunning } from '../shared/long-running.js';

const MiB = 1024 * 1024;

/** A field of /proc/self/status in MiB (VmRSS, VmHWM, RssAnon, RssFile). */
function statusMiB(field: string): number {
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  return kib === undefined ? Number.NaN : Number(kib) / 1024;
}

export async function main(argv: string[]): Promise<number> {
  const defaultV8 = argv[0] === '--default-v8';
  const args = defaultV8 ? argv.slice(1) : argv;
  if (args.length !== 5) {
    process.stderr.write('usage: mooring-agents __backup-footprint [--default-v8] <store URL> <etcd endpoint> <ca> <cert> <key>\n');
    return 2;
  }
  if (!defaultV8) tuneForLongRunning();
  const [storeURL, endpoint, caFile, certFile, keyFile] = args;
  const [{ openSnapshotClient }, { BackupNamer }, { etcdSnapshotSource }, { takeBackup }, { openStore }] = await Promise.all([
    import('../agents/etcd-manager/etcd/client.js'),
    import('../agents/etcd-manager/backup/names.js'),
    import('../agents/etcd-manager/backup/snapshot-stream.js'),
    import('../agents/etcd-manager/backup/take.js'),
    import('../shared/store/index.js'),
  ]);
  // The client a manager opens for a backup (its receive window included).
  const client = await openSnapshotClient(endpoint, { caFile, certFile, keyFile });
  try {
    const store = openStore(storeURL);
    // Connected and loaded (a manager has both before its first backup): the baseline. The store's
    // client too: an s3:// store loads the AWS SDK on its first call.
    await client.maintenance.status();
    await store.exists('_etcd_backup.meta');
    const before = { rss: statusMiB('VmRSS'), anon: statusMiB('RssAnon'), file: statusMiB('RssFile') };
    let peak = before.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, statusMiB('VmRSS'))), 50);
    const name = new BackupNamer({ now: Date.now, randomInt: (n) => Math.floor(Math.random() * n) }).next();
    const taken = await takeBackup({ store, name, snapshot: etcdSnapshotSource(client, endpoint), clusterSpec: { memberCount: 1, etcdVersion: '3.4.23' }, reason: 'footprint bench' });
    clearInterval(sampler);
    peak = Math.max(peak, statusMiB('VmRSS'));
    const heap = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({
      name: taken.name,
      v8: defaultV8 ? 'default' : 'long-running',
      snapshotBytes: taken.sidecar.snapshot.bytes,
      storedBytes: taken.storedBytes,
      durationMs: taken.durationMs,
      rssBeforeMiB: before.rss,
      anonBeforeMiB: before.anon,
      fileBeforeMiB: before.file,
      peakRssMiB: peak,
      hwmMiB: statusMiB('VmHWM'),
      rssAfterMiB: statusMiB('VmRSS'),
      heapTotalAfterMiB: heap.heapTotal / MiB,
      externalAfterMiB: heap.external / MiB,
    })}\n`);
    return 0;
  } finally {
    client.close();
  }
}
