// The two store operations protokube polls with, on every backend and on
// s3rver's real S3 wire protocol: listObjects (one level, with modification
// times and sizes, from one listing: no object read) and readIfChanged (a
// conditional GET: an unchanged object is a 304 without a body).
import t, { type Test } from 'tap';
import { openStore, type StateStore } from '../../shared/store/index.js';
import { clearMemfs } from '../../shared/store/memfs.js';
import { startS3, type S3Server } from '../harness/s3.js';
import { tempDir } from '../harness/tmp.js';

const backends: Record<string, (t: Test) => Promise<{ store: StateStore; s3?: S3Server }>> = {
  'file://': async (t) => ({ store: openStore(`file://${tempDir(t, 'mooring-poll-')}`) }),
  'memfs://': async (t) => {
    const name = `poll-${Math.random().toString(16).slice(2)}`;
    t.teardown(() => clearMemfs(name));
    return { store: openStore(`memfs://${name}`) };
  },
  's3:// (s3rver)': async (t) => {
    const s3 = await startS3(t);
    return { store: openStore(`${s3.url}/prefix`, { env: s3.env }), s3 };
  },
};

for (const [name, open] of Object.entries(backends)) {
  t.test(name, async (t) => {
    const { store, s3 } = await open(t);
    const before = new Date(Date.now() - 60_000);
    await store.write('reg/b@10.0.0.2@-', 'bb');
    await store.write('reg/a@10.0.0.1@-', 'a');
    await store.write('reg/deeper/not-listed', 'x');
    await store.write('regx/sibling', 'x');
    const mark = s3 ? (await s3.requests()).length : 0;
    const listed = await store.listObjects('reg');
    t.same(listed.map((o) => [o.name, o.path, o.size]), [['a@10.0.0.1@-', 'reg/a@10.0.0.1@-', 1], ['b@10.0.0.2@-', 'reg/b@10.0.0.2@-', 2]], 'one level, objects only, sorted');
    for (const o of listed) t.ok(o.modified > before && o.modified.getTime() <= Date.now() + 5000, `${o.name}: modified ${o.modified.toISOString()}`);
    if (s3) {
      const requests = (await s3.requests()).slice(mark);
      t.equal(requests.length, 1, 'one request');
      t.match(requests[0], { method: 'GET', url: /^\/mooring-test\/?\?.*list-type=2/ }, 'a ListObjectsV2');
      t.match(requests[0].url, /delimiter=%2F/);
    }
    t.same(await store.listObjects('nothing-here'), []);

    t.same(await store.readIfChanged('names.json', undefined), { status: 'missing' });
    await store.write('names.json', '{"v":1}');
    const first = await store.readIfChanged('names.json', undefined);
    if (first.status !== 'changed') throw new Error(`expected changed, got ${first.status}`);
    t.equal(first.object.data.toString(), '{"v":1}');
    const mark2 = s3 ? (await s3.requests()).length : 0;
    t.same(await store.readIfChanged('names.json', first.object.version), { status: 'unchanged' }, 'same version: unchanged');
    if (s3) {
      const requests = (await s3.requests()).slice(mark2);
      t.same(requests.map((r) => r.method), ['GET'], 'one GET, answered 304 (no body)');
    }
    await store.write('names.json', '{"v":2}');
    const second = await store.readIfChanged('names.json', first.object.version);
    t.equal(second.status === 'changed' && second.object.data.toString(), '{"v":2}', 'a new version is read');
    await store.delete('names.json');
    t.same(await store.readIfChanged('names.json', first.object.version), { status: 'missing' });
  });
}
