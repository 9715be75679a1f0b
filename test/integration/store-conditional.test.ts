// The state store's conditional operations (createIfAbsent, replaceIfVersion,
// deleteIfVersion, readVersioned) on the backends that guarantee them
// (file://, memfs://), including racing callers; and on s3rver, which accepts
// If-None-Match/If-Match and ignores them, the probe that says so.
import t, { type Test } from 'tap';
import { readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, type StateStore } from '../../shared/store/index.js';
import { clearMemfs } from '../../shared/store/memfs.js';
import { probeConditionalWrites } from '../../shared/store/lock.js';
import { startS3 } from '../harness/s3.js';
import { tempDir } from '../harness/tmp.js';

const atomicBackends: Record<string, (t: Test) => { store: StateStore; dir?: string }> = {
  'file://': (t) => {
    const dir = tempDir(t, 'mooring-cas-');
    return { store: openStore(`file://${dir}`), dir };
  },
  'memfs://': (t) => {
    const name = `cas-${Math.random().toString(16).slice(2)}`;
    t.teardown(() => clearMemfs(name));
    return { store: openStore(`memfs://${name}`) };
  },
};

/** Every file below dir, hidden ones too. */
function filesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

for (const [scheme, open] of Object.entries(atomicBackends)) {
  t.test(`conditional operations on ${scheme}`, async (t) => {
    t.test('create only if absent; replace and delete only at the version read', async (t) => {
      const { store } = open(t);
      t.equal(store.conditionalWrites, 'atomic');
      const v1 = await store.createIfAbsent('a/lock', 'one');
      t.type(v1, 'string', 'created');
      t.equal(await store.createIfAbsent('a/lock', 'two'), undefined, 'a second create is refused');
      t.equal((await store.read('a/lock')).toString(), 'one', 'and wrote nothing');
      const read = await store.readVersioned('a/lock');
      t.same(read, { data: Buffer.from('one'), version: v1 }, 'readVersioned gives the version create returned');

      t.equal(await store.replaceIfVersion('a/lock', 'bad', 'sha256:0000'), undefined, 'replace at a wrong version is refused');
      const v2 = await store.replaceIfVersion('a/lock', 'three', v1!);
      t.type(v2, 'string', 'replace at the current version succeeds');
      t.not(v2, v1, 'and gives a new version');
      t.equal(await store.replaceIfVersion('a/lock', 'four', v1!), undefined, 'the old version no longer works');
      t.equal(await store.deleteIfVersion('a/lock', v1!), false, 'nor deletes');
      t.equal((await store.read('a/lock')).toString(), 'three');
      t.equal(await store.deleteIfVersion('a/lock', v2!), true, 'delete at the current version');
      t.equal(await store.readVersioned('a/lock'), undefined, 'gone');
      t.equal(await store.replaceIfVersion('a/lock', 'five', v2!), undefined, 'replace of a missing object is refused');
      t.equal(await store.deleteIfVersion('a/lock', v2!), false, 'delete of a missing object is false');
      t.same(await store.list(), [], 'nothing left, not even a guard or temp file in a listing');
    });

    t.test('of 20 racing callers exactly one wins, each time', async (t) => {
      const { store, dir } = open(t);
      const creates = await Promise.all(Array.from({ length: 20 }, (_, i) => store.createIfAbsent('race', `creator ${i}`)));
      t.equal(creates.filter((v) => v !== undefined).length, 1, 'one create');
      const winner = creates.findIndex((v) => v !== undefined);
      t.equal((await store.read('race')).toString(), `creator ${winner}`, 'and its content is there, whole');

      const base = (await store.readVersioned('race'))!.version;
      const replaces = await Promise.all(Array.from({ length: 20 }, (_, i) => store.replaceIfVersion('race', `replacer ${i}`, base)));
      t.equal(replaces.filter((v) => v !== undefined).length, 1, 'one replace of the same version');
      const current = (await store.readVersioned('race'))!;
      t.equal(current.data.toString(), `replacer ${replaces.findIndex((v) => v !== undefined)}`);

      const deletes = await Promise.all(Array.from({ length: 20 }, () => store.deleteIfVersion('race', current.version)));
      t.equal(deletes.filter(Boolean).length, 1, 'one delete');
      if (dir) t.same(filesBelow(dir), [], 'no guard or temp file left behind');
    });

    t.test('replace and delete reach objects that plain writes made; modes are kept', async (t) => {
      const { store, dir } = open(t);
      await store.write('k', 'plain', { mode: 0o600 });
      const v = (await store.readVersioned('k'))!.version;
      t.type(await store.replaceIfVersion('k', 'next', v), 'string');
      if (dir) t.equal(statSync(join(dir, 'k')).mode & 0o777, 0o600, 'a replacement keeps the mode');
      const created = await store.createIfAbsent('fresh', 'x', { mode: 0o600 });
      t.type(created, 'string');
      if (dir) t.equal(statSync(join(dir, 'fresh')).mode & 0o777, 0o600, 'create takes the mode');
    });
  });
}

t.test('file://: a guard left by a crashed writer is broken once stale; a fresh one is waited for', async (t) => {
  const dir = tempDir(t, 'mooring-cas-guard-');
  const store = openStore(`file://${dir}`);
  const v = await store.createIfAbsent('lock', 'one');
  const guard = join(dir, '.lock.cas-guard');
  writeFileSync(guard, '');
  const old = new Date(Date.now() - 60_000);
  utimesSync(guard, old, old);
  t.type(await store.replaceIfVersion('lock', 'two', v!), 'string', 'a stale guard does not block');
  t.same(filesBelow(dir), ['lock'], 'and is gone');

  writeFileSync(guard, '');
  const v2 = (await store.readVersioned('lock'))!.version;
  let done = false;
  const pending = store.replaceIfVersion('lock', 'three', v2).finally(() => (done = true));
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(done, 'a fresh guard (another writer mid-operation) is waited for');
  t.equal((await store.read('lock')).toString(), 'two', 'nothing written meanwhile');
  const { rmSync } = await import('node:fs');
  rmSync(guard);
  t.type(await pending, 'string', 'and once it is gone the operation goes ahead');
  t.equal((await store.read('lock')).toString(), 'three');
});

t.test('s3rver accepts conditional headers and ignores them: the probe says so and cleans up', async (t) => {
  const s3 = await startS3(t);
  const store = openStore(`${s3.url}/state`, { env: s3.env });
  t.equal(store.conditionalWrites, 'server', 'S3 depends on its server');
  const v = await store.createIfAbsent('plain', 'x');
  t.match(v, /^".+"$/, 'an ETag comes back');
  t.equal((await store.readVersioned('plain'))?.version, v, 'readVersioned gives the same ETag');

  const support = await probeConditionalWrites(store, 'cluster/probe-object');
  t.equal(support.createIfAbsent, false, 'a second If-None-Match: * create overwrote the object');
  t.equal(support.replaceIfVersion, false, 'an If-Match PUT with a wrong ETag overwrote it');
  t.match(support.evidence.join('; '), /If-None-Match/, 'evidence says what was ignored');
  t.same(await store.list(), ['plain'], 'the probe object is gone');
  const puts = (await s3.requests()).filter((r) => r.method === 'PUT' && r.url.includes('probe-object'));
  t.ok(puts.length >= 2, `the probe really sent its conditional PUTs (${puts.length})`);
});
