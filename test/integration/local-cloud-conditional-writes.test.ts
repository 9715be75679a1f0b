// The local cloud's state store honours conditional writes: s3rver with the
// local cloud's layer in front of its router (as the servers daemon runs it),
// in this process on 127.0.0.1, driven through mooring's own S3 store. The
// writer lock's probe finds If-None-Match and If-Match honoured, racing
// conditional writers of one key get exactly one winner, and the lock works.
// The same s3rver without the layer is checked first: the probe must see
// through it, or the checks below would prove nothing.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { createServer } from 'node:http';
import S3rver from 's3rver';
import { conditionalWrites, preconditionProblem } from '../../agents/mooring/cloud/local/conditional-writes.js';
import { openStore, type StateStore } from '../../shared/store/index.js';
import { probeConditionalWrites, StoreLock } from '../../shared/store/lock.js';
import { tempDir } from '../harness/tmp.js';

const BUCKET = 'mooring';

async function s3Store(t: Test, withLayer: boolean): Promise<StateStore> {
  const s3 = new S3rver({ silent: true, directory: tempDir(t, 'mooring-lc-cas-'), configureBuckets: [{ name: BUCKET }] });
  if (withLayer) s3.middleware.splice(s3.middleware.length - 1, 0, conditionalWrites(s3.store));
  // What run() would do before listening, without s3rver's own listener: ours serves its callback.
  await (s3 as unknown as { configureBuckets(): Promise<void> }).configureBuckets();
  const server = createServer(s3.callback());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.unref();
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return openStore(`s3://${BUCKET}/state`, {
    env: { AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: 'local', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_EC2_METADATA_DISABLED: 'true' },
  });
}

t.test('preconditions as S3 judges them', async (t) => {
  t.equal(preconditionProblem({ ifNoneMatch: '*' }, undefined), undefined, 'create of a missing key');
  t.match(preconditionProblem({ ifNoneMatch: '*' }, '"abc"'), { status: 412, code: 'PreconditionFailed' }, 'create of an existing key');
  t.equal(preconditionProblem({ ifMatch: '"abc"' }, '"abc"'), undefined, 'the current ETag');
  t.equal(preconditionProblem({ ifMatch: 'abc' }, '"abc"'), undefined, 'an unquoted ETag is the same ETag');
  t.match(preconditionProblem({ ifMatch: '"abd"' }, '"abc"'), { status: 412, condition: 'If-Match' }, 'another ETag');
  t.match(preconditionProblem({ ifMatch: '"abc"' }, undefined), { status: 404, code: 'NoSuchKey' }, 'If-Match of a missing key');
});

t.test('plain s3rver ignores the conditions: the probe sees it (the control)', async (t) => {
  const store = await s3Store(t, false);
  const support = await probeConditionalWrites(store, 'c/probe');
  t.notOk(support.createIfAbsent && support.replaceIfVersion, `refused (${support.evidence.join('; ')})`);
});

t.test('with the local cloud layer', async (t) => {
  const store = await s3Store(t, true);

  t.test('the probe finds every conditional operation honoured', async (t) => {
    const support = await probeConditionalWrites(store, 'c/probe');
    t.same({ ...support, evidence: [] }, { createIfAbsent: true, replaceIfVersion: true, deleteIfVersion: true, evidence: [] }, support.evidence.join('; '));
    t.same(await store.list('c/'), [], 'and it cleaned up');
  });

  t.test('create, replace and delete only at the version read', async (t) => {
    const v1 = await store.createIfAbsent('a/lock', 'one');
    t.type(v1, 'string', 'created');
    t.equal(await store.createIfAbsent('a/lock', 'two'), undefined, 'a second create is refused');
    t.equal((await store.read('a/lock')).toString(), 'one', 'and wrote nothing');
    t.equal(await store.replaceIfVersion('a/lock', 'bad', '"0000"'), undefined, 'replace at a wrong version is refused');
    const v2 = await store.replaceIfVersion('a/lock', 'three', v1!);
    t.type(v2, 'string', 'replace at the current version');
    t.equal(await store.deleteIfVersion('a/lock', v1!), false, 'the old version deletes nothing');
    t.equal(await store.deleteIfVersion('a/lock', v2!), true, 'delete at the current version');
    t.equal(await store.readVersioned('a/lock'), undefined, 'gone');
    t.equal(await store.replaceIfVersion('a/lock', 'four', v2!), undefined, 'replace of a missing object is refused');
    await store.write('a/plain', 'unconditional writes still go through');
    t.equal((await store.read('a/plain')).toString(), 'unconditional writes still go through');
  });

  t.test('of 20 racing callers exactly one wins, each time', async (t) => {
    const creates = await Promise.all(Array.from({ length: 20 }, (_, i) => store.createIfAbsent('race', `creator ${i}`)));
    t.equal(creates.filter((v) => v !== undefined).length, 1, 'one create');
    const winner = creates.findIndex((v) => v !== undefined);
    t.equal((await store.read('race')).toString(), `creator ${winner}`, 'and its content is there');
    const base = (await store.readVersioned('race'))!.version;
    const replaces = await Promise.all(Array.from({ length: 20 }, (_, i) => store.replaceIfVersion('race', `replacer ${i}`, base)));
    t.equal(replaces.filter((v) => v !== undefined).length, 1, 'one replace of the same version');
    const current = (await store.readVersioned('race'))!;
    const deletes = await Promise.all(Array.from({ length: 20 }, () => store.deleteIfVersion('race', current.version)));
    t.equal(deletes.filter(Boolean).length, 1, 'one delete');
  });

  t.test('the writer lock keeps a second writer out until the first releases', async (t) => {
    const owner = (n: number) => ({ host: 'test', pid: n, command: `writer ${n}` });
    const first = new StoreLock(store, 'cluster/mooring.lock', { owner: owner(1), conditionalDelete: true });
    const second = new StoreLock(store, 'cluster/mooring.lock', { owner: owner(2), conditionalDelete: true });
    const a = await first.tryAcquire();
    t.ok(a.acquired, 'the first writer takes it');
    const b = await second.tryAcquire();
    t.notOk(b.acquired, 'the second is kept out');
    if (a.acquired) await a.lock.release();
    const c = await second.tryAcquire();
    t.ok(c.acquired, 'and takes it once released');
    if (c.acquired) await c.lock.release();
  });
});
