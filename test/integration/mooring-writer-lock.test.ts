// The cluster writer lock as an operator meets it: every writing command
// waits for (and then gives up on) a lock another writer holds, writing
// nothing; read-only commands ignore it; an expired lock is taken over and its
// old owner named; s3rver (which ignores conditional writes) is refused unless
// --allow-unserialized-writes, and the CLI says why; and a keyset pair left
// mismatched by a crash between its two writes is repaired by the next update.
import t, { type Test } from 'tap';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { mooring, TEST_AGENT_ARGS } from '../harness/cli.js';
import { startS3 } from '../harness/s3.js';
import { snapshotStore, snapshotTree, tempDir } from '../harness/tmp.js';
import { openStore } from '../../shared/store/index.js';
import { findPrimaryItem, parseKeyset, serializeKeyset, type Keyset } from '../../shared/pki/keyset.js';
import { createCA, parseCertificate, verifyIssuedBy } from '../../shared/pki/x509.js';
import { UserError } from '../../shared/errors.js';
import { EventEmitter } from 'node:events';
import { InterruptedError, withWriterLock } from '../../agents/mooring/writer-lock.js';
import { runMooringProcess } from '../harness/mooring-process.js';

const CLUSTER = 'lock.example.com';
const LOCKED = 7;

async function freshCluster(t: Test): Promise<{ dir: string; url: string; state: string[] }> {
  const dir = tempDir(t, 'mooring-lock-cli-');
  const url = `file://${dir}`;
  const state = ['--state', url];
  const create = await mooring([...state, 'create', 'cluster', CLUSTER, '--cloud', 'local', '--control-plane-count', '1', '--node-count', '1']);
  t.equal(create.code, 0, create.stderr);
  const update = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.equal(update.code, 0, update.stderr);
  return { dir, url, state };
}

/** A lock record as another mooring, elsewhere, would have written it. */
function plantLock(dir: string, cluster: string, expiresInMs: number): void {
  const now = Date.now();
  const record = {
    kind: 'MooringWriterLock',
    apiVersion: 1,
    owner: { id: 'b'.repeat(32), host: 'other-host', pid: 4242, command: 'mooring update cluster lock.example.com --yes' },
    acquiredAt: new Date(now - 5000).toISOString(),
    renewedAt: new Date(now - 1000).toISOString(),
    expiresAt: new Date(now + expiresInMs).toISOString(),
  };
  mkdirSync(join(dir, cluster), { recursive: true });
  writeFileSync(join(dir, cluster, 'mooring.lock'), JSON.stringify(record));
}

const nonEmpty = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

t.test('a lock held by another live writer: every writing command waits, gives up with exit 7, writes nothing', async (t) => {
  const { dir, state } = await freshCluster(t);
  plantLock(dir, CLUSTER, 3600_000);
  plantLock(dir, 'new.example.com', 3600_000);
  const work = tempDir(t, 'mooring-lock-files-');
  const allYAML = join(work, 'all.yaml');
  writeFileSync(allYAML, (await mooring([...state, 'get', 'all', CLUSTER, '-o', 'yaml'])).stdout);
  const newYAML = join(work, 'new.yaml');
  writeFileSync(newYAML, (await mooring([...state, 'get', 'all', CLUSTER, '-o', 'yaml'])).stdout.replaceAll(CLUSTER, 'new.example.com'));

  const writers: Array<[string, string[]]> = [
    ['update cluster --yes', ['update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]],
    ['delete cluster --yes', ['delete', 'cluster', CLUSTER, '--yes']],
    ['replace -f', ['replace', '-f', allYAML]],
    ['create cluster (the new cluster is locked)', ['create', 'cluster', 'new.example.com', '--cloud', 'local']],
    ['create -f', ['create', '-f', newYAML]],
  ];
  for (const [what, args] of writers) {
    const before = await snapshotTree(dir);
    const r = await mooring([...state, ...args, '--lock-timeout', '2s']);
    t.equal(r.code, LOCKED, `${what}: exit ${LOCKED} (${r.stderr.trim()})`);
    const lines = nonEmpty(r.stderr);
    t.match(lines[0], /^waiting for the lock of cluster "[^"]+": held by pid 4242 on other-host \(mooring update cluster lock\.example\.com --yes\) since \S+, lease expires \S+ unless renewed; waiting up to 2s \(--lock-timeout\)$/, `${what}: a progress line naming the holder`);
    t.match(lines.at(-1), /^error: cluster "[^"]+" is locked by pid 4242 on other-host .* gave up after 2s \(--lock-timeout\), nothing was written$/, `${what}: one clear error`);
    t.equal(lines.length, 2, `${what}: the progress line and the error, nothing else`);
    t.same(await snapshotTree(dir), before, `${what}: the store is byte for byte unchanged`);
  }

  const now = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', '--lock-timeout', '0', ...TEST_AGENT_ARGS]);
  t.equal(now.code, LOCKED, '--lock-timeout 0 fails at once');
  t.equal(nonEmpty(now.stderr).length, 1, 'with just the error line');

  for (const args of [
    ['get', 'clusters'],
    ['get', 'all', CLUSTER, '-o', 'yaml'],
    ['get', 'userdata', CLUSTER, '--instance-group', 'nodes-local-a'],
    ['update', 'cluster', CLUSTER, '--lock-timeout', '0', ...TEST_AGENT_ARGS],
    ['delete', 'cluster', CLUSTER, '--lock-timeout', '0'],
  ]) {
    const r = await mooring([...state, ...args]);
    t.equal(r.code, 0, `read-only "${args.slice(0, 2).join(' ')}" ignores the lock (${r.stderr.trim()})`);
    t.notMatch(r.stderr, /lock/, 'and says nothing about it');
  }
  const dry = await mooring([...state, 'delete', 'cluster', CLUSTER]);
  t.notMatch(dry.stdout, /mooring\.lock/, 'the lock is not listed as a cluster object to delete');
});

t.test('an expired lock (its writer crashed) is taken over, naming the old owner, and released at the end', async (t) => {
  const { dir, url, state } = await freshCluster(t);
  plantLock(dir, CLUSTER, -1000);
  const r = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /warning: took over the expired lock of cluster "lock\.example\.com" from pid 4242 on other-host \(mooring update cluster lock\.example\.com --yes\) \(held since \S+, expired \S+\)/);
  t.match(r.stdout, /No changes needed/);
  t.notOk((await openStore(url).sub(CLUSTER).list('')).includes('mooring.lock'), 'released: no lock object left');
});

t.test('a lock object that is not a lock is refused with one line naming it', async (t) => {
  const { dir, state } = await freshCluster(t);
  writeFileSync(join(dir, CLUSTER, 'mooring.lock'), 'garbage');
  const before = await snapshotTree(dir);
  const r = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.equal(r.code, 1);
  t.match(r.stderr, /^error: file:\/\/\S+\/lock\.example\.com\/mooring\.lock is not a mooring lock \(not JSON\); if no mooring command is writing cluster "lock\.example\.com", delete that object\n$/);
  t.same(await snapshotTree(dir), before, 'unchanged');
});

t.test('delete cluster --yes under the lock removes the cluster and its lock', async (t) => {
  const { url, state } = await freshCluster(t);
  const r = await mooring([...state, 'delete', 'cluster', CLUSTER, '--yes']);
  t.equal(r.code, 0, r.stderr);
  const left = await openStore(url).list();
  t.ok(left.length > 0 && left.every((p) => p.startsWith(`${CLUSTER}/backups/`)), `only the kept backups/ are left, no lock: ${left.join(', ')}`);
});

t.test('on s3rver (ignores conditional writes) writers are refused unless --allow-unserialized-writes, and the CLI says why', async (t) => {
  const s3 = await startS3(t);
  const env = { ...process.env, ...s3.env };
  const url = `${s3.url}/state`;
  const store = openStore(url, { env: s3.env });
  const state = ['--state', url];

  const refused = await mooring([...state, 'create', 'cluster', CLUSTER, '--cloud', 'local'], env);
  t.equal(refused.code, 1, 'refused');
  const lines = nonEmpty(refused.stderr);
  t.equal(lines.length, 1, `one line: ${refused.stderr}`);
  t.match(lines[0], /^error: s3:\/\/mooring-test\/state cannot serialize writers: its server ignores conditional writes \(it overwrote an existing object on a create with If-None-Match: \*/, 'says plainly that this store cannot serialize writers, and the evidence');
  t.match(lines[0], /two writers at once can interleave and leave mismatched keysets/, 'says what that risks');
  t.match(lines[0], /--allow-unserialized-writes/, 'and how to proceed anyway');
  t.same(await store.list(), [], 'nothing written (the probe object is gone too)');

  const allowed = await mooring([...state, 'create', 'cluster', CLUSTER, '--cloud', 'local', '--allow-unserialized-writes'], env);
  t.equal(allowed.code, 0, allowed.stderr);
  t.match(allowed.stderr, /^warning: s3:\/\/mooring-test\/state cannot serialize writers: .* writing without a lock \(--allow-unserialized-writes\)$/m, 'proceeds with the warning');
  const update = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', '--allow-unserialized-writes', ...TEST_AGENT_ARGS], env);
  t.equal(update.code, 0, update.stderr);
  t.notOk((await store.list()).some((p) => /mooring\.lock/.test(p)), 'no lock or probe object left behind');

  for (const args of [['get', 'clusters'], ['update', 'cluster', CLUSTER, ...TEST_AGENT_ARGS]]) {
    const r = await mooring([...state, ...args], env);
    t.equal(r.code, 0, `read-only ${args.slice(0, 2).join(' ')} needs no lock`);
    t.notMatch(r.stderr, /serialize/, 'and no warning');
  }
  const probes = (await s3.requests()).filter((r) => r.url.includes('mooring.lock.probe-'));
  t.ok(probes.length > 0, 'the detection really probed the server');
});

async function keysetAt(store: ReturnType<typeof openStore>, path: string): Promise<Keyset> {
  return parseKeyset((await store.read(path)).toString(), path);
}

t.test('a keyset pair left mismatched by a crash between its two writes is found and repaired by the next update', async (t) => {
  const { url, state } = await freshCluster(t);
  const cs = openStore(url).sub(CLUSTER);
  const issuedPath = 'pki/issued/kubernetes-ca/keyset.yaml';
  const good = (await cs.read(issuedPath)).toString();

  // What an interleaved (or interrupted) writer leaves: pki/issued holding another CA than pki/private.
  const other = await createCA('kubernetes-ca', 10, { keyAlgorithm: 'ECDSA-P256' });
  const otherId = parseCertificate(other.certPEM).serialDecimal;
  await cs.write(issuedPath, serializeKeyset({ name: 'kubernetes-ca', type: 'Keypair', primaryId: otherId, keys: [{ id: otherId, publicMaterial: other.certPEM }] }, { includePrivate: false }));
  await cs.delete('pki/issued/kube-proxy/keyset.yaml'); // and a crash right after a private write

  const dry = await mooring([...state, 'update', 'cluster', CLUSTER, ...TEST_AGENT_ARGS]);
  t.equal(dry.code, 0, dry.stderr);
  t.notMatch(dry.stdout, /No changes needed/, 'a mismatch is a change (it used to say "No changes needed")');
  t.match(dry.stdout, /Will modify in [^\n]*:\n(  .*\n)*  pki\/issued\/kubernetes-ca\/keyset\.yaml\n/, 'the plan rewrites the issued CA');
  t.match(dry.stdout, /Will create in [^\n]*:\n(  .*\n)*  pki\/issued\/kube-proxy\/keyset\.yaml\n/, 'and the missing issued keyset');
  t.match(dry.stderr, /pki\/issued\/kubernetes-ca\/keyset\.yaml does not match pki\/private\/kubernetes-ca \(primary id is \d+, pki\/private says \d+\); will rewrite it from pki\/private/);
  t.match(dry.stderr, /pki\/issued\/kube-proxy\/keyset\.yaml does not match pki\/private\/kube-proxy \(missing\)/);

  const fix = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.equal(fix.code, 0, fix.stderr);
  t.match(fix.stderr, /rewrote it from pki\/private/);
  t.equal((await cs.read(issuedPath)).toString(), good, 'pki/issued/kubernetes-ca is the private CA again');
  const ca = findPrimaryItem(await keysetAt(cs, issuedPath))!.publicMaterial!;
  for (const name of ['kubelet', 'kube-proxy']) {
    const cert = findPrimaryItem(await keysetAt(cs, `pki/private/${name}/keyset.yaml`))!.publicMaterial!;
    t.ok(await verifyIssuedBy(cert, ca), `${name} verifies against pki/issued/kubernetes-ca`);
    const issued = await keysetAt(cs, `pki/issued/${name}/keyset.yaml`);
    t.equal(findPrimaryItem(issued)?.publicMaterial, cert, `pki/issued/${name} matches pki/private/${name}`);
  }
  const again = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.match(again.stdout, /No changes needed/, 'then nothing is left to change');
});

t.test('a private keyset whose key does not belong to its certificate is refused, naming the file', async (t) => {
  const { url, state } = await freshCluster(t);
  const cs = openStore(url).sub(CLUSTER);
  const path = 'pki/private/kubernetes-ca/keyset.yaml';
  const doc = YAML.parse((await cs.read(path)).toString()) as { spec: { keys: Array<{ privateMaterial: string }> } };
  const stranger = await createCA('stranger', 10, { keyAlgorithm: 'ECDSA-P256' });
  doc.spec.keys[0]!.privateMaterial = Buffer.from(stranger.keyPEM).toString('base64');
  await cs.write(path, YAML.stringify(doc));
  const before = await snapshotStore(openStore(url));
  const r = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.equal(r.code, 1, r.stderr);
  t.match(r.stderr, /^error: file:\/\/\S+\/pki\/private\/kubernetes-ca\/keyset\.yaml: invalid keyset: spec\.keys\[0\] \(id \d+\): the private key does not belong to the certificate\n$/);
  t.notMatch(r.stderr, /PRIVATE KEY|BEGIN/, 'no key material in the message');
  t.same(await snapshotStore(openStore(url)), before, 'nothing written');
});

/** Sinks for withWriterLock's messages. */
function captureIO() {
  const err: string[] = [];
  return { io: { out: () => undefined, err: (s: string) => void err.push(s), env: process.env }, err };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a writer that runs longer than the lease keeps it by renewing', async (t) => {
  const dir = tempDir(t, 'mooring-lock-renew-');
  const root = openStore(`file://${dir}`);
  const { io } = captureIO();
  const ttlMs = 4000;
  const seen: string[] = [];
  await withWriterLock(root, ['c.example.com'], io, { timeoutMs: 0, allowUnserialized: false, command: 'test', ttlMs }, async (store) => {
    // Well past two leases; without renewals the fence would refuse the later writes.
    for (let i = 0; i < 5; i++) {
      await pause(ttlMs / 2);
      await store.write(`c.example.com/step-${i}`, String(i));
      const record = JSON.parse((await root.read('c.example.com/mooring.lock')).toString()) as { renewedAt: string };
      seen.push(record.renewedAt);
    }
  });
  t.ok(new Set(seen).size >= 3, `the lease was renewed while the writer ran (${[...new Set(seen)].join(', ')})`);
  t.same(await root.list(), [0, 1, 2, 3, 4].map((i) => `c.example.com/step-${i}`), 'every write went through, and the lock is released');
});

t.test('a writer whose lock was taken over stops writing at its next write', async (t) => {
  const dir = tempDir(t, 'mooring-lock-fence-');
  const root = openStore(`file://${dir}`);
  const { io } = captureIO();
  const ttlMs = 3000;
  const err = await withWriterLock(root, ['c.example.com'], io, { timeoutMs: 0, allowUnserialized: false, command: 'test', ttlMs }, async (store) => {
    await store.write('c.example.com/before', 'ok');
    // Someone else now holds it (as if our lease had run out while we were stopped).
    plantLock(dir, 'c.example.com', 3600_000);
    await pause(ttlMs / 3 + ttlMs / 2); // at least one renewal attempt, which finds the lock gone
    await store.write('c.example.com/after', 'must not be written');
  }).then(() => undefined, (e: unknown) => e as Error);
  t.ok(err instanceof UserError && err.exitCode === 1, `fails (${String(err)})`);
  t.match(err?.message ?? '', /^lost the cluster lock while writing \(file:\/\/\S+\/c\.example\.com\/mooring\.lock: lost: now held by pid 4242 on other-host .*\); the cluster may be partly updated: run the command again$/);
  t.same(await root.list(), ['c.example.com/before', 'c.example.com/mooring.lock'], 'the write after the loss never happened, and the new holder keeps its lock');
  t.match((await root.read('c.example.com/mooring.lock')).toString(), /other-host/, "the other writer's lock is untouched");
});

t.test('Ctrl-C part way through the writes: the write under way ends, the next is refused, the lock is given up marked interrupted', async (t) => {
  const dir = tempDir(t, 'mooring-lock-sigint-');
  const root = openStore(`file://${dir}`);
  const { io, err } = captureIO();
  const signals = new EventEmitter();
  const settings = { timeoutMs: 0, allowUnserialized: false, command: 'test' };
  const failed = await withWriterLock(root, ['c.example.com'], io, settings, async (store) => {
    await store.write('c.example.com/first', 'written');
    signals.emit('SIGINT');
    await store.write('c.example.com/second', 'must not be written');
  }, signals).then(() => undefined, (e: unknown) => e as Error);
  t.ok(failed instanceof InterruptedError && failed.exitCode === 130, `exit 130 (${String(failed)})`);
  t.match(failed?.message ?? '', /^interrupted \(SIGINT\) part way through its writes; the cluster may be partly updated/);
  t.match(err.join(''), /SIGINT: stopping before the next write to the state store, then freeing the cluster lock/, 'says what it does at once');
  t.same(await root.list(), ['c.example.com/first', 'c.example.com/mooring.lock'], 'the second write never happened');
  const record = JSON.parse((await root.read('c.example.com/mooring.lock')).toString()) as { interruptedAt?: string; expiresAt: string };
  t.ok(record.interruptedAt !== undefined && record.expiresAt === record.interruptedAt, 'the lock record is marked interrupted and expired');
  t.equal(signals.listenerCount('SIGINT') + signals.listenerCount('SIGTERM'), 0, 'no signal listener left behind');

  // The next writer starts at once (no lock timeout) and is told.
  const next = captureIO();
  await withWriterLock(root, ['c.example.com'], next.io, settings, async (store) => store.write('c.example.com/second', 'completed'), new EventEmitter());
  t.match(next.err.join(''), /the last writer of cluster "c\.example\.com", pid \d+ on \S+ \(test\), was interrupted at \S+ part way through its writes and may have left the cluster partly updated/);
  t.same(await root.list(), ['c.example.com/first', 'c.example.com/second'], 'the next writer completed it and released the lock');
});

t.test('a signal that comes after the last write changes nothing: the command completes and releases the lock', async (t) => {
  const dir = tempDir(t, 'mooring-lock-sigterm-');
  const root = openStore(`file://${dir}`);
  const { io } = captureIO();
  const signals = new EventEmitter();
  const result = await withWriterLock(root, ['c.example.com'], io, { timeoutMs: 0, allowUnserialized: false, command: 'test' }, async (store) => {
    await store.write('c.example.com/only', 'written');
    signals.emit('SIGTERM');
    return 'done';
  }, signals);
  t.equal(result, 'done');
  t.same(await root.list(), ['c.example.com/only'], 'the lock was released');
});

t.test('SIGINT to a real mooring process waiting for the lock: exit 130 at once, nothing written, the holder\'s lock untouched', async (t) => {
  const { dir, url } = await freshCluster(t);
  plantLock(dir, CLUSTER, 3600_000);
  const before = await snapshotTree(dir);
  const run = await runMooringProcess(['--state', url, 'update', 'cluster', CLUSTER, '--yes', '--lock-timeout', '10m', ...TEST_AGENT_ARGS], {
    timeoutMs: 60_000,
    signalOn: { when: /waiting for the lock of cluster/, signal: 'SIGINT' },
  });
  t.notOk(run.timedOut, 'it did not wait out its lock timeout');
  t.equal(run.code, 130, `exit 130 (${run.signal ?? ''} ${run.stderr})`);
  t.match(run.stderr, /^error: interrupted while waiting for the lock of cluster "lock\.example\.com"; nothing was written$/m);
  t.same(await snapshotTree(dir), before, 'nothing written, the planted lock untouched');
});
