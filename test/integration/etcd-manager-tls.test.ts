// Member certificates from the state store's CAs: names, modes, reuse,
// renewal before expiry, reissue after a CA rotation, and a real mutual-TLS
// handshake with the managers' certificates.
import t from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { logger } from '../../shared/log.js';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { loadKeyset, writeKeyset } from '../../shared/pki/keyset.js';
import { createCA, parseCertificate, verifyIssuedBy } from '../../shared/pki/x509.js';
import { openStore } from '../../shared/store/index.js';
import { ensureManagerTLS } from '../../agents/etcd-manager/tls.js';
import { tempDir, type Teardown } from '../harness/tmp.js';

const log = logger('test');
const CAS = ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'];

async function setup(t: Teardown) {
  const dir = tempDir(t);
  const store = openStore(`file://${dir}/state/c.example.com`);
  await ensureClusterPKI(store, CAS, { keyAlgorithm: 'ECDSA-P256' });
  return { dir, store };
}

const identity = (member: string, ip: string) => ({ memberName: member, dnsNames: [`etcd-${member}.internal.c.example.com`], ipAddresses: [ip] });

t.test('issued from the right CAs with CN = member, SANs = names, IP and 127.0.0.1; keys 0600', async (t) => {
  const { dir, store } = await setup(t);
  const pkiDir = join(dir, 'pki');
  const { files, issued } = await ensureManagerTLS({ store, etcdName: 'main', identity: identity('a', '127.0.1.1'), pkiDir, log, keyAlgorithm: 'ECDSA-P256' });
  t.same(issued.sort(), ['etcdClient', 'manager', 'peer', 'server']);
  t.equal(statSync(pkiDir).mode & 0o777, 0o700);
  for (const [kind, ca] of [['peer', 'etcd-peers-ca-main'], ['server', 'etcd-clients-ca'], ['manager', 'etcd-manager-ca-main']] as const) {
    const cert = readFileSync(files[kind].certFile, 'utf8');
    const info = parseCertificate(cert);
    t.equal(info.subjectCN, 'a', `${kind} CN`);
    t.same(info.dnsNames.sort(), ['etcd-a.internal.c.example.com', 'localhost'], `${kind} DNS SANs`);
    t.same(info.ipAddresses.sort(), ['127.0.0.1', '127.0.1.1'], `${kind} IP SANs`);
    t.equal(info.issuerCN, ca);
    t.ok(await verifyIssuedBy(cert, readFileSync(files[kind].caFile, 'utf8')), `${kind} verifies against ${ca}`);
    t.equal(statSync(files[kind].keyFile).mode & 0o777, 0o600, `${kind} key is 0600`);
  }
  t.equal(parseCertificate(readFileSync(files.etcdClient.certFile, 'utf8')).subjectCN, 'etcd-manager-a');
  const lifetimeDays = (d: ReturnType<typeof parseCertificate>) => (d.notAfter.getTime() - Date.now()) / 86_400_000;
  t.ok(lifetimeDays(parseCertificate(readFileSync(files.peer.certFile, 'utf8'))) > 700, 'two-year certificates');

  const before = readFileSync(files.peer.certFile, 'utf8');
  const again = await ensureManagerTLS({ store, etcdName: 'main', identity: identity('a', '127.0.1.1'), pkiDir, log, keyAlgorithm: 'ECDSA-P256' });
  t.same(again.issued, [], 'valid certificates are reused');
  t.equal(readFileSync(files.peer.certFile, 'utf8'), before);

  const later = await ensureManagerTLS({ store, etcdName: 'main', identity: identity('a', '127.0.1.1'), pkiDir, log, keyAlgorithm: 'ECDSA-P256', now: new Date(Date.now() + 500 * 86_400_000) });
  t.same(later.issued.sort(), ['etcdClient', 'manager', 'peer', 'server'], 'renewed with a third of the lifetime left, before expiry');

  const moved = await ensureManagerTLS({ store, etcdName: 'main', identity: identity('a', '127.0.1.7'), pkiDir, log, keyAlgorithm: 'ECDSA-P256' });
  t.same(moved.issued.sort(), ['manager', 'peer', 'server'], 'a new IP reissues the certificates that name it');

  // CA rotation: a new primary peers CA → the peer certificate is reissued from it.
  const keyset = (await loadKeyset(store, 'etcd-peers-ca-main'))!;
  const ca = await createCA('etcd-peers-ca-main', 3650, { keyAlgorithm: 'ECDSA-P256' });
  const id = parseCertificate(ca.certPEM).serialDecimal;
  await writeKeyset(store, { ...keyset, primaryId: id, keys: [...keyset.keys, { id, publicMaterial: ca.certPEM, privateMaterial: ca.keyPEM }] });
  const rotated = await ensureManagerTLS({ store, etcdName: 'main', identity: identity('a', '127.0.1.7'), pkiDir, log, keyAlgorithm: 'ECDSA-P256' });
  t.same(rotated.issued, ['peer']);
  t.ok(await verifyIssuedBy(readFileSync(files.peer.certFile, 'utf8'), ca.certPEM));
});

// The manager checks its certificates every interval for its whole life; @peculiar/x509 would stay
// resident once loaded (shared/pki/inspect.ts). reflect-metadata, which x509.ts imports first, defines
// Reflect.getMetadata: the sign that the issuing code was loaded. A fresh process, so nothing else loaded it.
t.test('checking and renewing, the manager loads no X.509 issuing code itself: it hands the requests to its issuer', async (t) => {
  const { dir } = await setup(t);
  const pkiDir = join(dir, 'pki');
  await ensureManagerTLS({ store: openStore(`file://${dir}/state/c.example.com`), etcdName: 'main', identity: identity('a', '127.0.1.1'), pkiDir, log, keyAlgorithm: 'ECDSA-P256' });
  const repo = join(fileURLToPath(import.meta.url), '../../..');
  const script = join(dir, 'check.mts'); // ESM wherever the temp dir is
  writeFileSync(script, `
    import { readFileSync } from 'node:fs';
    import { logger } from ${JSON.stringify(join(repo, 'shared/log.ts'))};
    import { openStore } from ${JSON.stringify(join(repo, 'shared/store/index.ts'))};
    import { ensureManagerTLS } from ${JSON.stringify(join(repo, 'agents/etcd-manager/tls.ts'))};
    const base = { store: openStore(${JSON.stringify(`file://${dir}/state/c.example.com`)}), etcdName: 'main', identity: ${JSON.stringify(identity('a', '127.0.1.1'))}, pkiDir: ${JSON.stringify(pkiDir)}, log: logger('check') };
    const requests: string[] = [];
    const steady = await ensureManagerTLS({ ...base, issue: async () => { throw new Error('nothing should be issued'); } });
    // 500 days on, every certificate is due: the issuer gets the four requests (answered with the current pairs).
    const kinds = ['peer', 'server', 'etcdClient', 'manager']; // the order the manager asks in
    const due = await ensureManagerTLS({ ...base, now: new Date(Date.now() + 500 * 86_400_000), issue: async (items) => items.map((item, i) => {
      requests.push(item.request.commonName + '/' + item.request.usage);
      const path = ${JSON.stringify(pkiDir)} + '/' + kinds[i];
      return { certPEM: readFileSync(path + '.crt', 'utf8'), keyPEM: readFileSync(path + '.key', 'utf8') };
    }) });
    process.stdout.write(JSON.stringify({ steady: steady.issued, due: due.issued.sort(), requests: requests.sort(), x509Loaded: typeof (Reflect as unknown as Record<string, unknown>).getMetadata === 'function' }));
  `);
  const child = await execa(process.execPath, ['--import', 'tsx', script], { cwd: repo, reject: false });
  t.equal(child.exitCode, 0, 'the check ran', { stderr: child.stderr });
  const result = JSON.parse(child.stdout) as Record<string, unknown>;
  t.same(result.steady, [], 'valid certificates: nothing issued');
  t.same(result.due, ['etcdClient', 'manager', 'peer', 'server'], 'due certificates: all four renewed');
  t.same(result.requests, ['a/peer', 'a/peer', 'a/server', 'etcd-manager-a/client'], 'through the injected issuer');
  t.equal(result.x509Loaded, false, 'the X.509 issuing code (reflect-metadata, @peculiar/x509) was never loaded');
});

t.test('a missing CA is a clear error', async (t) => {
  const dir = tempDir(t);
  const store = openStore(`file://${dir}/state/c.example.com`);
  await t.rejects(ensureManagerTLS({ store, etcdName: 'main', identity: identity('a', '127.0.1.1'), pkiDir: join(dir, 'pki'), log }), /CA etcd-peers-ca-main is missing .*mooring update cluster --yes/);
});

t.test('manager certificates authenticate both ways; a client without one is refused', async (t) => {
  const { dir, store } = await setup(t);
  const a = (await ensureManagerTLS({ store, etcdName: 'main', identity: identity('a', '127.0.1.1'), pkiDir: join(dir, 'pki-a'), log, keyAlgorithm: 'ECDSA-P256' })).files.manager;
  const b = (await ensureManagerTLS({ store, etcdName: 'main', identity: identity('b', '127.0.1.2'), pkiDir: join(dir, 'pki-b'), log, keyAlgorithm: 'ECDSA-P256' })).files.manager;
  const server = createServer({ cert: readFileSync(a.certFile), key: readFileSync(a.keyFile), ca: readFileSync(a.caFile), requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.end(`hello ${(socket.getPeerCertificate().subject as { CN?: string }).CN}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const talk = (opts: { cert?: Buffer; key?: Buffer }) =>
    new Promise<string>((resolve, reject) => {
      const socket: TLSSocket = connect({ host: '127.0.0.1', port, ca: readFileSync(b.caFile), servername: 'etcd-a.internal.c.example.com', ...opts }, () => undefined);
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
  t.equal(await talk({ cert: readFileSync(b.certFile), key: readFileSync(b.keyFile) }), 'hello b', 'b is authenticated by a, and a by b');
  await t.rejects(talk({}), 'no client certificate: refused');
});
