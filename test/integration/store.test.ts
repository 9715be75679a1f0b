// The state store contract, run against every backend (file://, memfs://, s3:// on
// s3rver), then what only one backend can show: file modes, temp files and crash
// atomicity on file://, multipart, missing buckets and unreachable endpoints on s3://.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { ExitCode, UserError } from '../../shared/errors.js';
import {
  StoreError,
  openStore,
  storeURLFromEnv,
  type StateStore,
  type StoreErrorKind,
} from '../../shared/store/index.js';
import { startS3 } from '../harness/s3.js';
import { PART_SIZE } from '../../shared/store/s3-parts.js';
import { snapshotStore, snapshotTree, tempDir } from '../harness/tmp.js';

const MiB = 1024 * 1024;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Resolves to the rejection of p (fails the test if p resolves). */
async function rejection(t: Test, p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      t.fail('expected a rejection');
      return undefined;
    },
    (err: unknown) => err,
  );
}

async function rejectsStoreError(t: Test, p: Promise<unknown>, kind: StoreErrorKind, url: string): Promise<StoreError | undefined> {
  const err = await rejection(t, p);
  if (!(err instanceof StoreError)) {
    t.fail(`expected a StoreError, got ${String(err)}`);
    return undefined;
  }
  t.equal(err.kind, kind, `${err.message}: kind`);
  t.equal(err.url, url, 'names the URL');
  t.ok(err.message.startsWith(`${url}: `), `message starts with the URL: ${err.message}`);
  return err;
}

/** A stream of random bytes, hashed as it is produced. */
function randomStream(size: number, failAfter?: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  async function* chunks() {
    for (let sent = 0; sent < size; sent += MiB) {
      if (failAfter !== undefined && sent >= failAfter) throw new Error('source broke on purpose');
      const chunk = randomBytes(Math.min(MiB, size - sent));
      hash.update(chunk);
      yield chunk;
    }
  }
  return { stream: Readable.from(chunks()), digest: () => hash.digest('hex') };
}

async function streamDigest(stream: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

/** Writer alternates two large contents while readers read: every read is one of them, whole. */
async function checkReadersSeeWholeObjects(t: Test, store: StateStore, size: number, durationMs: number): Promise<void> {
  const versions = [randomBytes(size), randomBytes(size)];
  const known = new Set(versions.map(sha256));
  await store.write('hot', versions[0]);
  let writing = true;
  let writes = 0;
  let reads = 0;
  let torn = 0;
  const writer = (async () => {
    const until = Date.now() + durationMs;
    while (Date.now() < until) await store.write('hot', versions[++writes % 2]);
    writing = false;
  })();
  const reader = async () => {
    while (writing) {
      reads++;
      if (!known.has(sha256(await store.read('hot')))) torn++;
    }
  };
  await Promise.all([writer, reader(), reader(), reader()]);
  t.equal(torn, 0, `${reads} reads during ${writes} writes saw only whole objects`);
  t.ok(writes > 2 && reads > 2, 'reads and writes did overlap');
}

/** Asserts that fn throws (or rejects with) a StoreError of this kind. */
async function failsWithKind(t: Test, fn: () => unknown, kind: StoreErrorKind, label: string): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof StoreError && err.kind === kind, `${label}: ${kind} (${String(err)})`);
}

/**
 * Node running an ES module body that can use FileStore. process.execArgv carries
 * tap's TypeScript loader, so the child runs the real file.ts. tap's process
 * tracking is left out: it writes to .tap/, which an unprivileged child cannot,
 * and it re-adds itself to NODE_OPTIONS on spawn, hence `env -u`.
 */
function spawnWithFileStore(body: string, options: SpawnOptions): ChildProcess {
  const fileStore = new URL('../../shared/store/file.ts', import.meta.url).href;
  const script = `import { FileStore } from ${JSON.stringify(fileStore)};\n${body}`;
  const loaders = process.execArgv.filter((arg) => !arg.includes('processinfo'));
  return spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ...loaders, '--input-type=module', '-e', script], options);
}

interface Backend {
  /** A fresh, empty store. */
  open(t: Test): Promise<StateStore>;
  /** Where the server under a backend falls short of the real thing: the skip reasons. */
  gaps?: { atomicReaders?: string; nestedOnlyFolders?: string };
}

const backends: Record<string, Backend> = {
  'file://': { open: async (t) => openStore(pathToFileURL(tempDir(t, 'mooring-store-')).href) },
  'memfs://': { open: async () => openStore(`memfs://contract-${randomBytes(4).toString('hex')}`) },
  's3://': {
    open: async (t) => {
      const s3 = await startS3(t);
      return openStore(`${s3.url}/state`, { env: s3.env });
    },
    gaps: {
      atomicReaders: 's3rver rewrites objects in place (real S3 replaces them whole)',
      nestedOnlyFolders: 's3rver omits common prefixes of folders that hold only folders (real S3 lists them)',
    },
  },
};

for (const [scheme, backend] of Object.entries(backends)) {
  t.test(`contract on ${scheme}`, async (t) => {
    const root = await backend.open(t);
    let cases = 0;
    const fresh = () => root.sub(`case-${++cases}`);

    t.test('write, read, readIfExists, exists', async (t) => {
      const store = fresh();
      const data = Buffer.from('hello\n');
      await store.write('config', data);
      data.write('HELLO'); // the store must have kept its own copy
      t.same(await store.read('config'), Buffer.from('hello\n'));
      t.ok(Buffer.isBuffer(await store.read('config')));
      await store.write('config', 'replaced');
      t.equal((await store.read('config')).toString(), 'replaced');
      await store.write('empty', '');
      t.equal((await store.read('empty')).length, 0, 'empty objects exist');
      t.equal(await store.readIfExists('missing'), undefined);
      t.equal((await store.readIfExists('config'))?.toString(), 'replaced');
      t.equal(await store.exists('config'), true);
      t.equal(await store.exists('missing'), false);
      t.equal(await store.exists('pki'), false, 'a folder is not an object');
    });

    t.test('missing objects are NotFound naming the URL', async (t) => {
      const store = fresh();
      await store.write('pki/private/ca/key', 'k');
      await rejectsStoreError(t, store.read('nope/config'), 'NotFound', store.urlOf('nope/config'));
      await rejectsStoreError(t, store.openReadStream('nope'), 'NotFound', store.urlOf('nope'));
      await rejectsStoreError(t, store.read('pki/private'), 'NotFound', store.urlOf('pki/private'));
      t.equal(store.urlOf('nope/config'), `${store.baseURL}/nope/config`);
    });

    t.test('list: recursive, sorted, by folder prefix', async (t) => {
      const store = fresh();
      const paths = ['config', 'instancegroup/nodes', 'instancegroup/control-plane', 'pki/issued/ca/1.crt', 'pki/private/ca/1.key', 'pki-old/x', 'a'];
      for (const path of paths) await store.write(path, path);
      t.same(await store.list(), [...paths].sort());
      t.same(await store.list(''), [...paths].sort());
      t.same(await store.list('pki'), ['pki/issued/ca/1.crt', 'pki/private/ca/1.key'], 'a prefix is a folder: pki-old is not in pki');
      t.same(await store.list('pki/'), ['pki/issued/ca/1.crt', 'pki/private/ca/1.key'], 'trailing slash is fine');
      t.same(await store.list('pki/issued/ca'), ['pki/issued/ca/1.crt']);
      t.same(await store.list('config'), [], 'an object is not a folder');
      t.same(await store.list('nothing/here'), []);
      t.same(await store.listChildren('instancegroup/'), ['control-plane', 'nodes']);
      t.same(await store.listChildren('pki-old'), ['x']);
      t.same(await store.listChildren('nothing'), []);
    });

    t.test('listChildren: folders holding only folders', { skip: backend.gaps?.nestedOnlyFolders }, async (t) => {
      const store = fresh();
      for (const path of ['config', 'pki/issued/ca/1.crt', 'pki/private/ca/1.key', 'pki-old/x']) await store.write(path, path);
      t.same(await store.listChildren(), ['config', 'pki', 'pki-old']);
      t.same(await store.listChildren('pki'), ['issued', 'private']);
    });

    t.test('list pages through more than 1000 objects', async (t) => {
      const store = fresh();
      const paths = Array.from({ length: 1100 }, (_, i) => `many/obj-${String(i).padStart(4, '0')}`);
      await inParallel(paths, 16, (path) => store.write(path, path));
      t.same(await store.list('many'), paths);
      t.same(await store.listChildren('many'), paths.map((p) => p.slice('many/'.length)));
    });

    t.test('delete', async (t) => {
      const store = fresh();
      await store.write('a/b/c', '1');
      await store.write('a/d', '2');
      await store.delete('a/b/c');
      t.equal(await store.exists('a/b/c'), false);
      t.same(await store.list(), ['a/d']);
      t.same(await store.listChildren('a'), ['d'], 'the emptied folder is gone');
      await store.delete('a/b/c');
      await store.delete('never/was');
      t.pass('deleting a missing object is fine');
    });

    t.test('sub stores', async (t) => {
      const store = fresh();
      const cluster = store.sub('dev.example.com');
      t.equal(cluster.baseURL, `${store.baseURL}/dev.example.com`);
      t.equal(store.sub('dev.example.com/').baseURL, cluster.baseURL, 'trailing slash normalised');
      await cluster.write('config', 'spec');
      t.equal((await store.read('dev.example.com/config')).toString(), 'spec');
      t.same(await cluster.list(), ['config'], 'paths are relative to the sub store');
      const pki = cluster.sub('pki').sub('issued');
      t.equal(pki.baseURL, `${store.baseURL}/dev.example.com/pki/issued`);
      await pki.write('ca/1.crt', 'cert');
      t.same(await store.list(), ['dev.example.com/config', 'dev.example.com/pki/issued/ca/1.crt']);
      t.equal(pki.urlOf('ca/1.crt'), `${store.baseURL}/dev.example.com/pki/issued/ca/1.crt`);
    });

    t.test('bad paths are InvalidURL and change nothing', async (t) => {
      const store = fresh();
      await store.write('config', 'x');
      const before = await snapshotStore(store);
      for (const bad of ['', '/abs', '../escape', 'a/../b', 'a//b', 'a/./b', 'folder/', '.config.tmp-1-0123abcd']) {
        const err = await rejection(t, store.write(bad, 'evil'));
        t.ok(err instanceof StoreError && err.kind === 'InvalidURL', `write ${JSON.stringify(bad)}: ${String(err)}`);
      }
      for (const bad of ['../x', '/x']) {
        await failsWithKind(t, () => store.sub(bad), 'InvalidURL', `sub ${bad}`);
        await failsWithKind(t, () => store.list(bad), 'InvalidURL', `list ${bad}`);
      }
      t.same(await snapshotStore(store), before);
    });

    t.test('streams: 20 MiB in and out', async (t) => {
      const store = fresh();
      const { stream, digest } = randomStream(20 * MiB);
      t.equal(await store.writeStream('backups/etcd/main/etcd.backup.gz', stream), 20 * MiB, 'returns bytes written');
      const want = digest();
      t.same(await streamDigest(await store.openReadStream('backups/etcd/main/etcd.backup.gz')), { sha256: want, size: 20 * MiB });
      t.equal(sha256(await store.read('backups/etcd/main/etcd.backup.gz')), want);
      t.equal(await store.writeStream('small', Readable.from([Buffer.from('ab'), Buffer.from('c')])), 3);
      t.equal((await store.read('small')).toString(), 'abc');
    });

    t.test('a failing source leaves the old object in place', async (t) => {
      const store = fresh();
      await store.write('backup', 'old');
      const before = await snapshotStore(store);
      const { stream } = randomStream(20 * MiB, 10 * MiB);
      const err = await rejection(t, store.writeStream('backup', stream));
      t.ok(err instanceof StoreError, String(err));
      t.match(String(err), store.urlOf('backup'));
      t.same(await snapshotStore(store), before);
    });

    t.test('concurrent readers see whole objects', { skip: backend.gaps?.atomicReaders }, async (t) => {
      await checkReadersSeeWholeObjects(t, fresh(), 4 * MiB, 1500);
    });
  });
}

t.test('file:// specifics', async (t) => {
  t.test('URL forms', async (t) => {
    const dir = tempDir(t, 'mooring-file-');
    t.equal(openStore(dir).baseURL, pathToFileURL(dir).href, 'a plain absolute path is a file store');
    t.equal(openStore(`${pathToFileURL(dir).href}/`).baseURL, pathToFileURL(dir).href, 'no trailing slash');
    await failsWithKind(t, () => openStore('file://otherhost/x'), 'InvalidURL', 'file URL with a host');
    await failsWithKind(t, () => openStore('relative/dir'), 'InvalidURL', 'relative path');
  });

  t.test('modes: private keys 0600, kept on rewrite, 0644 by default', async (t) => {
    const dir = tempDir(t, 'mooring-file-');
    const store = openStore(dir);
    const modeOf = (path: string) => statSync(join(dir, path)).mode & 0o777;
    await store.write('pki/private/ca/key', 'secret', { mode: 0o600 });
    t.equal(modeOf('pki/private/ca/key'), 0o600);
    await store.write('pki/private/ca/key', 'new secret');
    t.equal(modeOf('pki/private/ca/key'), 0o600, 'rewriting without a mode keeps it private');
    await store.writeStream('secrets/admin', Readable.from([Buffer.from('x')]), { mode: 0o600 });
    t.equal(modeOf('secrets/admin'), 0o600);
    await store.write('config', 'public');
    t.equal(modeOf('config'), 0o644);
  });

  t.test('temp files are never listed, and folders of them are not children', async (t) => {
    const dir = tempDir(t, 'mooring-file-');
    const store = openStore(dir);
    await store.write('config', 'x');
    writeFileSync(join(dir, `.config.tmp-4242-${randomBytes(8).toString('hex')}`), 'half');
    mkdirSync(join(dir, 'crashed'));
    writeFileSync(join(dir, 'crashed', `.key.tmp-4242-${randomBytes(8).toString('hex')}`), 'half');
    t.same(await store.list(), ['config']);
    t.same(await store.listChildren(), ['config']);
    t.equal(await store.exists('crashed'), false);
  });

  t.test('a failed stream leaves no temp file behind', async (t) => {
    const dir = tempDir(t, 'mooring-file-');
    const store = openStore(dir);
    await store.write('backup', 'old');
    const before = await snapshotTree(dir);
    await failsWithKind(t, () => store.writeStream('backup', randomStream(4 * MiB, 2 * MiB).stream), 'Other', 'broken source');
    t.same(await snapshotTree(dir), before);
  });

  t.test('delete prunes empty folders up to the store root', async (t) => {
    const dir = tempDir(t, 'mooring-file-');
    const store = openStore(dir);
    await store.write('a/b/c/d', '1');
    await store.write('a/keep', '2');
    await store.delete('a/b/c/d');
    t.same(readdirSync(join(dir, 'a')), ['keep']);
    const sub = store.sub('cluster');
    await sub.write('x/y', '1');
    await sub.delete('x/y');
    t.same(readdirSync(dir).sort(), ['a'], 'the sub store folder went too, the root stayed');
    await store.delete('a/keep');
    t.same(readdirSync(dir), [], 'root kept even when empty');
  });

  t.test('errors: AccessDenied and Other name the file URL', async (t) => {
    const dir = tempDir(t, 'mooring-file-');
    chmodSync(dir, 0o755);
    const store = openStore(dir);
    await store.write('config', 'x', { mode: 0o600 });
    await rejectsStoreError(t, store.write('config/under-a-file', 'x'), 'Other', store.urlOf('config/under-a-file'));
    if (process.getuid?.() !== 0) {
      chmodSync(join(dir, 'config'), 0o000);
      t.teardown(() => chmodSync(join(dir, 'config'), 0o600));
      await rejectsStoreError(t, store.read('config'), 'AccessDenied', store.urlOf('config'));
      return;
    }
    // Root may read anything: ask an unprivileged child instead.
    const child = spawnWithFileStore(
      `const store = new FileStore(${JSON.stringify(dir)});
      const outcome = {};
      for (const [op, run] of [['read', () => store.read('config')], ['write', () => store.write('new', 'x')]]) {
        try { await run(); outcome[op] = 'succeeded'; } catch (e) { outcome[op] = { kind: e.kind, url: e.url }; }
      }
      process.stdout.write(JSON.stringify(outcome));`,
      { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    // The child runs the sources as uid 65534: every folder above the checkout must let it in.
    if (code !== 0) t.fail(`the unprivileged child exited ${code} (is the checkout readable by uid 65534?): ${err.trim().split('\n').slice(-3).join(' | ')}`);
    t.same(JSON.parse(out || 'null'), {
      read: { kind: 'AccessDenied', url: store.urlOf('config') },
      write: { kind: 'AccessDenied', url: store.urlOf('new') },
    });
  });

  t.test('SIGKILL in the middle of writes leaves a whole version', async (t) => {
    const dir = tempDir(t, 'mooring-atomic-');
    const versions = 4;
    const size = 8 * MiB;
    // Version i is `size` bytes of 0x41 + i; the child builds the same ones.
    const known = new Map(Array.from({ length: versions }, (_, i) => [sha256(Buffer.alloc(size, 0x41 + i)), i]));
    const script = `
      const store = new FileStore(${JSON.stringify(dir)});
      const versions = Array.from({ length: ${versions} }, (_, i) => Buffer.alloc(${size}, 0x41 + i));
      process.stdin.on('end', () => process.exit(0)).resume(); // never outlive the test
      for (let n = 0; ; n++) {
        await store.write('obj', versions[n % versions.length]);
        if (n === 0) process.stdout.write('ready\\n');
      }`;
    const seen = new Set<number>();
    for (let round = 0; round < 6; round++) {
      const child = spawnWithFileStore(script, { stdio: ['pipe', 'pipe', 'inherit'] });
      t.teardown(() => void child.kill('SIGKILL'));
      const exited = once(child, 'exit');
      await once(child.stdout!, 'data');
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 120));
      child.kill('SIGKILL');
      const [, signal] = await exited;
      t.equal(signal, 'SIGKILL', `round ${round}: killed mid-loop`);
      const version = known.get(sha256(await openStore(dir).read('obj')));
      t.not(version, undefined, `round ${round}: a whole version (${version})`);
      if (version !== undefined) seen.add(version);
    }
    const leftovers = readdirSync(dir).filter((name) => name !== 'obj');
    t.comment(`versions seen: ${[...seen].join(',')}; temp files left by kills: ${leftovers.length}`);
    t.same(await openStore(dir).list(), ['obj'], 'temp files of killed writers are not listed');
  });
});

t.test('s3:// specifics', async (t) => {
  const s3 = await startS3(t);

  t.test(`a stream of 2.5 parts is uploaded in ${PART_SIZE / MiB} MiB parts`, async (t) => {
    const store = openStore(`${s3.url}/multipart`, { env: s3.env });
    const { stream, digest } = randomStream(2.5 * PART_SIZE);
    const before = (await s3.requests()).length;
    await store.writeStream('big', stream);
    const parts = (await s3.requests()).slice(before).filter((r) => r.method === 'PUT' && /[?&]partNumber=/.test(r.url));
    t.equal(parts.length, 3, 'three parts: two whole, one half');
    t.equal(sha256(await store.read('big')), digest());
    t.same(await store.list(), ['big'], 'no leftovers of the upload');
  });

  t.test('a missing bucket is NotFound, and says so', async (t) => {
    const store = openStore('s3://no-such-bucket/state', { env: s3.env });
    const err = await rejectsStoreError(t, store.read('config'), 'NotFound', 's3://no-such-bucket/state/config');
    t.match(err?.message, /bucket "no-such-bucket" does not exist/);
    await failsWithKind(t, () => store.readIfExists('config'), 'NotFound', 'readIfExists: not mistaken for a missing object');
    await failsWithKind(t, () => store.list(), 'NotFound', 'list');
  });

  t.test('bad credentials are AccessDenied', async (t) => {
    const store = openStore(s3.url, { env: { ...s3.env, AWS_ACCESS_KEY_ID: 'WRONG' } });
    await rejectsStoreError(t, store.read('config'), 'AccessDenied', `${s3.url}/config`);
  });

  // "Fails fast" is a bounded number of attempts, each of them refused or dropped at once; not a time
  // measured here (with 3 attempts, what is left is the SDK's back-off between them).
  t.test('an unreachable endpoint is Unreachable after 3 attempts, and no more', async (t) => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as { port: number };
    probe.close();
    await once(probe, 'close');
    const store = openStore('s3://bucket/state', { env: { ...s3.env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}` } });
    for (const [what, op] of unreachableOps(store)) {
      const err = await rejectsStoreError(t, op(), 'Unreachable', what === 'list' ? 's3://bucket/state' : 's3://bucket/state/config');
      t.match(err?.message, `cannot reach http://127.0.0.1:${port}`);
      const cause = err?.cause as { code?: string; $metadata?: { attempts?: number } } | undefined;
      t.equal(cause?.code, 'ECONNREFUSED', `${what}: the connection was refused`);
      t.equal(cause?.$metadata?.attempts, 3, `${what}: the client gave up after 3 attempts`);
    }
  });

  t.test('a server that drops every connection: 3 connections per operation, then Unreachable', async (t) => {
    let connections = 0;
    const dropper = createServer((socket) => {
      connections++;
      socket.destroy();
    }).listen(0, '127.0.0.1');
    await once(dropper, 'listening');
    t.teardown(() => new Promise((resolve) => dropper.close(resolve)));
    const { port } = dropper.address() as { port: number };
    const store = openStore('s3://bucket/state', { env: { ...s3.env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}` } });
    for (const [what, op] of unreachableOps(store)) {
      const before = connections;
      await rejectsStoreError(t, op(), 'Unreachable', what === 'list' ? 's3://bucket/state' : 's3://bucket/state/config');
      t.equal(connections - before, 3, `${what}: three connections, one per attempt, then it gave up`);
    }
  });
});

function unreachableOps(store: StateStore) {
  return [
    ['read', () => store.read('config')],
    ['list', () => store.list()],
    ['write', () => store.write('config', 'x')],
  ] as const;
}

t.test('openStore and storeURLFromEnv', async (t) => {
  const err = await rejection(t, (async () => openStore('ftp://x'))());
  t.ok(err instanceof StoreError && err.kind === 'InvalidURL');
  t.equal((err as Error).message, 'ftp://x: unsupported state store scheme "ftp" (want file://, s3:// or memfs://)');
  for (const bad of ['s3://', 's3:///prefix', 'memfs://', 'relative/path', 'mem fs://x']) {
    await failsWithKind(t, () => openStore(bad), 'InvalidURL', bad);
  }
  t.equal(openStore('s3://bucket/a/b/').baseURL, 's3://bucket/a/b');
  t.equal(openStore('memfs://x/').baseURL, 'memfs://x');

  t.equal(storeURLFromEnv('s3://flag', { MOORING_STATE_STORE: 's3://env' }), 's3://flag');
  t.equal(storeURLFromEnv(undefined, { MOORING_STATE_STORE: 's3://env' }), 's3://env');
  t.throws(() => storeURLFromEnv(undefined, {}), new UserError('no state store: pass --state or set MOORING_STATE_STORE', ExitCode.Usage));
  t.equal(storeURLFromEnv('', { MOORING_STATE_STORE: 's3://env' }), 's3://env', 'an empty flag is no flag');

  const a = openStore('memfs://shared-volume');
  const b = openStore('memfs://shared-volume');
  await a.write('x', 'seen by both');
  t.equal((await b.read('x')).toString(), 'seen by both', 'memfs stores of one name share contents');
});
