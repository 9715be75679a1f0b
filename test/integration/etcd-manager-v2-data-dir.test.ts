// A v2 data directory read in process (migrate/v2-data-dir.ts, v2-store.ts)
// against the real etcd 3.4.23 that wrote it. etcd serves the v2 API
// (--enable-v2) and is driven through a seeded random sequence of every kind
// of v2 write (set, create, update, compare-and-swap and compare-and-delete by
// value and by index, in-order POST keys, directories, recursive deletes, TTLs
// set, refreshed and removed, keys expiring and removed by etcd's SYNC,
// hidden keys, values that are not UTF-8), then stopped. The directory read
// in process must give what etcd served just before it stopped: every leaf,
// value and expiry, and the store's index (X-Etcd-Index). Twice per layout
// (before and after a restart, which adds etcd's own membership writes), for
// a directory with a snapshot and a WAL after it (--snapshot-count=40) and one
// with no snapshot yet (the whole history in the WAL, from the bootstrap's
// membership change on). The directory is never written.
import t from 'tap';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CannotReadDirectly, readV2DataDir } from '../../agents/etcd-manager/migrate/v2-data-dir.js';
import { V2Source, walkV2, type V2Leaf, type V2Reader } from '../../agents/etcd-manager/migrate/v2-source.js';
import { execa } from 'execa';
import type { MigrationSummary } from '../../agents/etcd-manager/migrate/migrate.js';
import { managerCommand } from '../harness/manager.js';
import { loopbackNet } from '../harness/net.js';
import { snapshotTree, tempDir } from '../harness/tmp.js';
import { etcdSkipReason, makeTestPKI, startTestEtcd, V2Client, type TestPKI } from '../harness/v2-etcd.js';

/** mulberry32: the same sequence on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = (key: string) => `/v2/keys${key.split('/').map(encodeURIComponent).join('/')}`;

/** Runs `count` random v2 writes; returns how many etcd accepted (the rest failed as etcd decided, which the read must follow too). */
async function randomWrites(c: V2Client, random: () => number, count: number): Promise<{ ok: number; failed: number }> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const keys = ['/t/a', '/t/b', '/t/c', '/t/d/x', '/t/d/y', '/t/e/f/g', '/t/_hidden', '/t/h/_hid/i', '/top'];
  const dirs = ['/t/d', '/t/e', '/t/e/f', '/t/q', '/t/ttl-dir'];
  const modified = new Map<string, number>();
  let ok = 0;
  let failed = 0;
  const value = () => pick(['v1', 'v2', 'value with spaces & = +', 'ünïcødé 😀', '']);
  const ttl = () => pick(['', '', '&ttl=600', '&ttl=1200']);
  for (let i = 0; i < count; i++) {
    const key = pick(keys);
    const dir = pick(dirs);
    const known = modified.get(key);
    const ops: [string, string, string?][] = [
      ['PUT', enc(key), `value=${encodeURIComponent(value())}${ttl()}`],
      ['PUT', `${enc(key)}?prevExist=false`, `value=${encodeURIComponent(value())}${ttl()}`],
      ['PUT', `${enc(key)}?prevExist=true`, `value=${encodeURIComponent(value())}${ttl()}`],
      ['PUT', `${enc(key)}?prevValue=${encodeURIComponent(pick(['v1', 'v2']))}`, `value=${encodeURIComponent(value())}`],
      ['PUT', `${enc(key)}?prevIndex=${(known ?? 1) + pick([0, 0, 1])}`, `value=${encodeURIComponent(value())}`],
      ['PUT', `${enc(key)}?prevExist=true&refresh=true`, 'ttl=900'],
      ['PUT', `${enc(key)}?prevExist=true`, `value=${encodeURIComponent(value())}&ttl=`],
      ['PUT', enc(key), 'value=short-lived&ttl=1'],
      ['PUT', enc(key), 'value=%FF%FEnot-utf8%C3'],
      ['DELETE', enc(key)],
      ['DELETE', `${enc(key)}?prevValue=${encodeURIComponent(pick(['v1', 'v2']))}`],
      ['DELETE', `${enc(key)}?prevIndex=${(known ?? 1) + pick([0, 0, 1])}`],
      ['PUT', enc(dir), `dir=true${pick(['', '&ttl=600', '&ttl=1'])}`],
      ['DELETE', `${enc(dir)}?dir=true`],
      ['DELETE', `${enc(dir)}?recursive=true`],
      ['POST', enc('/t/q'), `value=${encodeURIComponent(value())}`],
      ['PUT', enc(`${dir}/leaf${Math.floor(random() * 3)}`), `value=${encodeURIComponent(value())}${ttl()}`],
    ];
    const [method, path, body] = pick(ops);
    const res = await c.request(method, path, body);
    if (res.status < 300) {
      ok++;
      const node = (JSON.parse(res.text) as { node?: { key?: string; modifiedIndex?: number } }).node;
      if (node?.key && node.modifiedIndex !== undefined) modified.set(node.key, node.modifiedIndex);
    } else {
      failed++;
    }
  }
  return { ok, failed };
}

/** Writes under `fixed` (/fixed/<round>), which the random ones never touch, so what the checks look for is there at the end. */
async function fixedWrites(c: V2Client, fixed: string): Promise<void> {
  const must = async (method: string, path: string, body?: string) => {
    const res = await c.request(method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status}: ${res.text}`);
    return JSON.parse(res.text) as { node: { modifiedIndex: number } };
  };
  await must('PUT', enc(`${fixed}/bytes`), 'value=%FF%FEnot-utf8%C3');
  for (let i = 0; i < 3; i++) await must('POST', enc(`${fixed}/q`), `value=job-${i}`);
  await must('PUT', enc(`${fixed}/ttl`), 'value=x&ttl=900');
  const first = await must('PUT', enc(`${fixed}/cas`), 'value=1');
  await must('PUT', `${enc(`${fixed}/cas`)}?prevIndex=${first.node.modifiedIndex}`, 'value=2');
  await must('PUT', enc(`${fixed}/ttl-dir`), 'dir=true&ttl=900');
  await must('PUT', enc(`${fixed}/ttl-dir/leaf`), 'value=in-a-dir-with-a-ttl');
  await must('PUT', enc(`${fixed}/_hidden`), 'value=h');
}

async function leavesOf(reader: V2Reader): Promise<Map<string, V2Leaf>> {
  const out = new Map<string, V2Leaf>();
  for await (const page of walkV2(reader, 2)) for (const leaf of page.leaves) out.set(leaf.key, leaf);
  return out;
}

t.test('a v2 data directory read in process equals what etcd 3.4.23 served from it', { skip: etcdSkipReason, timeout: 240_000 }, async (t) => {
  const dir = tempDir(t, 'v2-data-dir-');
  const ip = loopbackNet();
  const pki: TestPKI = await makeTestPKI(join(dir, 'pki'), [ip(1), ip(2), ip(3), ip(4)]);
  let host = 1;
  for (const [layout, snapshotCount, seed] of [['a snapshot and the WAL after it', 40, 7], ['no snapshot yet: the whole history in the WAL', 100_000, 11]] as const) {
    await t.test(layout, async (t) => {
      const dataDir = join(dir, `data-${snapshotCount}`);
      const address = ip(host++);
      const random = prng(seed);
      for (const [n, round] of ['first start', 'after a restart'].entries()) {
        const fixed = `/fixed/${n}`;
        const etcd = await startTestEtcd(t, { name: 'v2', ip: address, dataDir, pki, enableV2: true, extraArgs: [`--snapshot-count=${snapshotCount}`] });
        const client = new V2Client(etcd.endpoint, pki.client, 4);
        const writes = await randomWrites(client, random, 400);
        t.ok(writes.ok > 100 && writes.failed > 20, `${round}: ${writes.ok} writes accepted, ${writes.failed} refused by etcd`);
        await fixedWrites(client, fixed);
        // The 1 s TTLs run out and etcd's leader removes them (its SYNC entries, which the read applies too).
        await new Promise((r) => setTimeout(r, 2_500));
        const live = await V2Source.open(etcd.endpoint, pki.client);
        const expected = await leavesOf(live);
        const index = (await client.request('GET', '/v2/keys/')).etcdIndex;
        live.close();
        client.close();
        await etcd.stop();

        const before = await snapshotTree(dataDir);
        const read = await readV2DataDir(dataDir, { maxSnapshotBytes: 1 << 30 });
        const got = await leavesOf(read.store);
        t.same(await snapshotTree(dataDir), before, `${round}: the data directory is unchanged by reading it`);
        if (snapshotCount === 40) t.ok(read.snapshotFile !== undefined && read.entriesApplied < 60, `${round}: read snapshot ${read.snapshotFile} and ${read.entriesApplied} entries after it`);
        else t.equal(read.snapshotFile, undefined, `${round}: no snapshot; ${read.entriesApplied} entries applied`);
        t.equal(read.store.currentIndex, index, `${round}: the store's index is etcd's X-Etcd-Index (${index})`);
        t.same([...got.keys()], [...expected.keys()], `${round}: the same ${expected.size} leaves, in the same order`);
        const differ = [...expected].filter(([key, leaf]) => JSON.stringify(got.get(key)) !== JSON.stringify(leaf)).map(([key]) => key);
        t.same(differ, [], `${round}: every value and expiry equal`);
        t.ok([...expected.values()].some((l) => l.expiresAt !== undefined), `${round}: some leaves have a TTL`);
        t.ok([...expected.values()].some((l) => l.value.includes('\ufffd')), `${round}: a value that was not UTF-8 reads as etcd serves it`);
        t.ok([...expected.keys()].filter((k) => k.startsWith(`${fixed}/q/`) && /\/\d{20}$/.test(k)).length >= 3, `${round}: in-order keys (POST) are there, named by the store's index`);
        t.equal(got.get(`${fixed}/cas`)?.value, '2', `${round}: a compare-and-swap by index took effect`);
        t.notOk([...got.keys()].some((k) => k.includes('/_')), `${round}: hidden keys are left out`);
      }

      // Damage, on copies: the reader refuses (and migrate-v2 then serves the data with etcd), or, for a
      // last record torn by a crash (a disk sector of zeros), stops before it as etcd does.
      const full = await readV2DataDir(dataDir, { maxSnapshotBytes: 1 << 30 });
      const damaged = (what: string, change: (dir: string) => void): string => {
        const copy = join(dir, `damaged-${snapshotCount}-${what}`);
        cpSync(dataDir, copy, { recursive: true });
        change(copy);
        return copy;
      };
      const lastWal = (d: string) => join(d, 'member', 'wal', readdirSync(join(d, 'member', 'wal')).filter((n) => n.endsWith('.wal')).sort().at(-1)!);
      const lastWritten = (file: Buffer) => {
        let end = file.length;
        while (end > 0 && file[end - 1] === 0) end--;
        return end;
      };
      if (full.snapshotFile) {
        const bad = damaged('snapshot', (d) => {
          const path = join(d, 'member', 'snap', full.snapshotFile!);
          const file = readFileSync(path);
          file[Math.floor(file.length / 2)] ^= 0x01;
          writeFileSync(path, file);
        });
        await t.rejects(readV2DataDir(bad, { maxSnapshotBytes: 1 << 30 }), { constructor: CannotReadDirectly, message: /checksum does not match/ }, 'one bit flipped in the snapshot: refused');
        await t.rejects(readV2DataDir(dataDir, { maxSnapshotBytes: 1024 }), { constructor: CannotReadDirectly, message: /more than this process reads in memory/ }, 'a snapshot over the size limit: refused');
      }
      const flipped = damaged('wal', (d) => {
        const path = lastWal(d);
        const file = readFileSync(path);
        const at = lastWritten(file) - 300;
        for (let i = at; i < at + 8; i++) file[i] ^= 0xff;
        writeFileSync(path, file);
      });
      await t.rejects(readV2DataDir(flipped, { maxSnapshotBytes: 1 << 30 }), { constructor: CannotReadDirectly, message: /WAL/ }, 'eight bytes inverted in a recent WAL record: refused');
      const torn = damaged('torn', (d) => {
        const path = lastWal(d);
        const file = readFileSync(path);
        const end = lastWritten(file);
        // From a disk sector's start: the record there then holds a chunk of zeros between sector boundaries.
        file.fill(0, Math.floor((end - 600) / 512) * 512, end);
        writeFileSync(path, file);
      });
      const tornRead = await readV2DataDir(torn, { maxSnapshotBytes: 1 << 30 });
      t.ok(tornRead.entriesApplied < full.entriesApplied, `a torn last record: read up to it (${tornRead.entriesApplied} of ${full.entriesApplied} entries)`);

      if (!full.snapshotFile) return;
      // migrate-v2 given the directory with the damaged snapshot: it says why it cannot read it itself,
      // has a throwaway etcd serve it (which falls back to an older snapshot, as etcd does), and migrates all of it.
      const target = await startTestEtcd(t, { name: 'target', ip: ip(host++), dataDir: join(dir, `target-${snapshotCount}`), pki });
      const tls = (side: string) => [`--${side}-cacert=${pki.client.caFile}`, `--${side}-cert=${pki.client.certFile}`, `--${side}-key=${pki.client.keyFile}`];
      const [command, ...args] = managerCommand();
      const run = await execa(command, [...args, 'migrate-v2', '--from', join(dir, `damaged-${snapshotCount}-snapshot`), '--to', target.endpoint, ...tls('to'), '-o', 'json', '--v=3'], {
        env: { MOORING_LOG_FORMAT: 'json' }, reject: false, timeout: 120_000,
      });
      const events = run.stderr.split('\n').flatMap((l) => {
        try {
          return [(JSON.parse(l) as { event?: string }).event ?? ''];
        } catch {
          return [];
        }
      });
      t.equal(run.exitCode, 0, `exit 0: ${run.stderr.split('\n').slice(-3).join(' | ')}`);
      t.same(events.filter((e) => e === 'migrate-v2.read-fallback' || e === 'migrate-v2.backup-served' || e === 'migrate-v2.backup-read'), ['migrate-v2.read-fallback', 'migrate-v2.backup-served'], 'refused to read it, served it with etcd');
      const summary = JSON.parse(run.stdout) as MigrationSummary;
      const expected = [...(await leavesOf(full.store)).values()].filter((l) => l.expiresAt === undefined || l.expiresAt > Date.now() + 60_000).length;
      t.ok(summary.verify.equal && summary.keys.source >= expected, `verified, ${summary.keys.source} keys (${expected} without an expiry due)`);
    });
  }
});
