// PKI: certificates checked by the openssl CLI, kOps keyset files, cluster CAs
// created once and reused, renewal decisions.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { StorePaths } from '../../shared/api/types.js';
import { clusterKeysetNames, ensureClusterPKI, planClusterPKI } from '../../shared/pki/cluster-pki.js';
import { loadKeyset, parseKeyset, primaryKeypair, serializeKeyset, writeKeyset, type Keyset } from '../../shared/pki/keyset.js';
import { needsRenewal } from '../../shared/pki/renewal.js';
import { inspectCertificate, parseSubjectAltName } from '../../shared/pki/inspect.js';
import { createCA, issueCertificate, parseCertificate, toPKCS8PEM, verifyIssuedBy, type CertificateAndKey } from '../../shared/pki/x509.js';
import { FileStore } from '../../shared/store/file.js';
import { MemfsStore, clearMemfs } from '../../shared/store/memfs.js';

const DAY_MS = 24 * 60 * 60 * 1000;

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'mooring-pki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function keysetFor(name: string, ca: CertificateAndKey): Keyset {
  const id = parseCertificate(ca.certPEM).serialDecimal;
  return { name, type: 'Keypair', primaryId: id, keys: [{ id, publicMaterial: ca.certPEM, privateMaterial: ca.keyPEM }] };
}

// One CA for the whole file: RSA key generation is the slow part.
const caPromise = createCA('kubernetes-ca', 3650);
/** ECDSA keys where the key type does not matter: ~1 ms each instead of ~300 ms. */
const FAST = { keyAlgorithm: 'ECDSA-P256' } as const;

t.test('CA and leaf certificates pass openssl', async (t) => {
  const ca = await caPromise;
  const dir = tempDir(t);
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, ca.certPEM);

  const caText = openssl(['x509', '-noout', '-text', '-in', caFile]);
  t.match(caText, /Subject: CN ?= ?kubernetes-ca/);
  t.match(caText, /Basic Constraints: critical\s+CA:TRUE/);
  t.match(caText, /Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
  t.match(caText, /Subject Key Identifier/);
  t.match(caText, /Public-Key: \(2048 bit\)/);
  t.match(caText, /Signature Algorithm: sha256WithRSAEncryption/);
  const caInfo = parseCertificate(ca.certPEM);
  t.equal(caInfo.isCA, true);
  t.equal(caInfo.subjectCN, 'kubernetes-ca');
  t.equal(caInfo.issuerCN, 'kubernetes-ca');
  t.ok(caInfo.notAfter.getTime() - Date.now() > 3649 * DAY_MS, 'CA lives ten years');
  t.ok(BigInt(`0x${caInfo.serialHex}`) > 0n, 'serial is positive');
  t.equal(caInfo.serialHex.length, 32, 'serial is 128 bits');

  const leaf = await issueCertificate(ca, {
    commonName: 'etcd-a',
    organization: ['system:masters'],
    dnsNames: ['etcd-a.internal.example.com', 'localhost'],
    ipAddresses: ['127.0.0.1', '10.0.0.5', '2001:db8::1'],
    usage: 'peer',
    validityDays: 365,
  });
  t.match(leaf.keyPEM, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 key');
  const leafFile = join(dir, 'leaf.crt');
  writeFileSync(leafFile, leaf.certPEM);
  t.equal(openssl(['verify', '-CAfile', caFile, leafFile]).trim(), `${leafFile}: OK`);

  const text = openssl(['x509', '-noout', '-text', '-in', leafFile]);
  t.match(text, /Subject: O ?= ?system:masters, CN ?= ?etcd-a/);
  t.match(text, /DNS:etcd-a\.internal\.example\.com, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:10\.0\.0\.5, IP Address:2001:DB8:0:0:0:0:0:1/);
  t.match(text, /Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
  t.match(text, /Key Usage: critical\s+Digital Signature, Key Encipherment/);
  t.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  t.match(text, /Authority Key Identifier/);
  // The key matches the certificate.
  const keyFile = join(dir, 'leaf.key');
  writeFileSync(keyFile, leaf.keyPEM);
  t.equal(openssl(['pkey', '-in', keyFile, '-pubout']), openssl(['x509', '-in', leafFile, '-noout', '-pubkey']));

  const info = parseCertificate(leaf.certPEM);
  t.same(info.dnsNames, ['etcd-a.internal.example.com', 'localhost']);
  t.equal(info.ipAddresses.length, 3);
  t.equal(info.isCA, false);
  t.equal(info.issuerCN, 'kubernetes-ca');
  t.equal(await verifyIssuedBy(leaf.certPEM, ca.certPEM), true);
  t.equal(await verifyIssuedBy(leaf.certPEM, (await createCA('kubernetes-ca', 1, FAST)).certPEM), false, 'same name, other key');

  const server = await issueCertificate(ca, { commonName: 'api', dnsNames: ['api.internal'], usage: 'server', validityDays: 30, ...FAST });
  const client = await issueCertificate(ca, { commonName: 'kubelet', usage: 'client', validityDays: 30, ...FAST });
  writeFileSync(leafFile, server.certPEM);
  t.match(openssl(['x509', '-noout', '-ext', 'extendedKeyUsage', '-in', leafFile]), /TLS Web Server Authentication\s*$/);
  writeFileSync(leafFile, client.certPEM);
  const clientText = openssl(['x509', '-noout', '-text', '-in', leafFile]);
  t.match(clientText, /Extended Key Usage:\s+TLS Web Client Authentication\n/);
  t.notMatch(clientText, /Subject Alternative Name/, 'no empty SAN extension');

  await t.rejects(issueCertificate(ca, { commonName: 'x', ipAddresses: ['10.0.0.300'], usage: 'server', validityDays: 1 }), /not an IP address/);
  await t.rejects(createCA('x', 0), /positive number of days/);
});

t.test('ECDSA CA and leaf pass openssl too', async (t) => {
  const dir = tempDir(t);
  const ca = await createCA('etcd-peers-ca-main', 3650, FAST);
  const leaf = await issueCertificate(ca, { commonName: 'etcd-a', ipAddresses: ['127.0.0.1'], usage: 'peer', validityDays: 365, ...FAST });
  writeFileSync(join(dir, 'ca.crt'), ca.certPEM);
  writeFileSync(join(dir, 'leaf.crt'), leaf.certPEM);
  t.match(openssl(['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'leaf.crt')]), /: OK\n$/);
  const text = openssl(['x509', '-noout', '-text', '-in', join(dir, 'leaf.crt')]);
  t.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  t.match(text, /Key Usage: critical\s+Digital Signature\n/, 'no Key Encipherment on an EC key');
  t.equal(await verifyIssuedBy(leaf.certPEM, ca.certPEM), true);
});

t.test('a leaf never outlives its CA', async (t) => {
  const shortCA = await createCA('short', 10, FAST);
  const leaf = await issueCertificate(shortCA, { commonName: 'x', usage: 'client', validityDays: 365, ...FAST });
  t.equal(parseCertificate(leaf.certPEM).notAfter.getTime(), parseCertificate(shortCA.certPEM).notAfter.getTime());
});

t.test('keyset YAML round trip in kOps format', async (t) => {
  const ca = await caPromise;
  const ks: Keyset = { ...keysetFor('kubernetes-ca', ca), creationTimestamp: '2024-05-01T10:00:00Z' };
  const text = serializeKeyset(ks, { includePrivate: true });
  t.match(text, /^apiVersion: kops\.k8s\.io\/v1alpha2\nkind: Keyset\nmetadata:\n  creationTimestamp: "2024-05-01T10:00:00Z"\n  name: kubernetes-ca\nspec:\n  keys:\n  - id: "\d+"\n/);
  t.match(text, new RegExp(`\\n  primaryId: "${ks.primaryId}"\\n  type: Keypair\\n$`), 'id quoted, field order as kOps');
  t.match(text, /publicMaterial: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t[A-Za-z0-9+/=]+\n/, 'base64 PEM on one line');
  t.same(parseKeyset(text, 'test'), ks);

  const publicOnly = serializeKeyset(ks, { includePrivate: false });
  t.notMatch(publicOnly, /privateMaterial/);
  t.same(parseKeyset(publicOnly, 'test').keys[0].privateMaterial, undefined);

  const pair = primaryKeypair(parseKeyset(text, 'test'));
  t.same(pair, { id: ks.primaryId, certPEM: ca.certPEM, keyPEM: ca.keyPEM });
});

t.test('reads a keyset as kOps writes it', async (t) => {
  const ca = await caPromise;
  // kOps writes PKCS#1 keys, no creationTimestamp (or null), and may leave ids unquoted when hand-edited.
  const pkcs1 = execFileSync('openssl', ['pkey', '-traditional'], { input: ca.keyPEM, encoding: 'utf8' });
  t.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
  const id = parseCertificate(ca.certPEM).serialDecimal;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const text = [
    'apiVersion: kops.k8s.io/v1alpha2',
    'kind: Keyset',
    'metadata:',
    '  creationTimestamp: null',
    '  name: kubernetes-ca',
    'spec:',
    '  keys:',
    `  - id: ${id}`,
    `    privateMaterial: ${b64(pkcs1)}`,
    `    publicMaterial: ${b64(ca.certPEM)}`,
    `  primaryId: ${id}`,
    '  type: Keypair',
    '',
  ].join('\n');
  const ks = parseKeyset(text, 'kops.yaml');
  t.equal(ks.keys[0].id, id, 'unquoted 128-bit id keeps every digit');
  t.equal(ks.creationTimestamp, undefined);
  const pair = primaryKeypair(ks);
  t.equal(pair.keyPEM, toPKCS8PEM(pkcs1));
  t.match(pair.keyPEM, /BEGIN PRIVATE KEY/);
  // A kOps CA with a PKCS#1 key still signs.
  const leaf = await issueCertificate({ certPEM: pair.certPEM, keyPEM: pkcs1 }, { commonName: 'x', usage: 'server', validityDays: 1, ...FAST });
  t.equal(await verifyIssuedBy(leaf.certPEM, ca.certPEM), true);
});

t.test('primary selection follows kOps', async (t) => {
  const ca = await caPromise;
  const newer = await createCA('kubernetes-ca', 3650, FAST);
  const oldId = parseCertificate(ca.certPEM).serialDecimal;
  const newId = parseCertificate(newer.certPEM).serialDecimal;
  t.ok(BigInt(newId) > BigInt(oldId), 'later serials compare higher (time-prefixed)');
  const both: Keyset = {
    name: 'kubernetes-ca',
    type: 'Keypair',
    primaryId: oldId,
    keys: [
      { id: newId, publicMaterial: newer.certPEM, privateMaterial: newer.keyPEM },
      { id: oldId, publicMaterial: ca.certPEM, privateMaterial: ca.keyPEM },
    ],
  };
  t.equal(primaryKeypair(both).id, oldId, 'primaryId wins');
  t.equal(primaryKeypair({ ...both, primaryId: '' }).id, newId, 'else the newest');
  t.equal(primaryKeypair({ ...both, keys: [{ ...both.keys[0] }, { ...both.keys[1], distrustTimestamp: '2024-01-01T00:00:00Z' }] }).id, newId, 'never a distrusted one');
  t.throws(() => primaryKeypair({ ...both, keys: [{ id: oldId, publicMaterial: ca.certPEM }] }), /no private key/);
  const text = serializeKeyset(both, { includePrivate: true });
  t.ok(text.indexOf(oldId) < text.indexOf(newId), 'keys written oldest first');
});

t.test('writeKeyset: private copy 0600 with keys, issued copy public only', async (t) => {
  const ca = await caPromise;
  const dir = tempDir(t);
  const store = new FileStore(pathToFileURL(dir).href);
  await writeKeyset(store, keysetFor('kubernetes-ca', ca));

  const privateFile = join(dir, StorePaths.keyset('kubernetes-ca'));
  const issuedFile = join(dir, StorePaths.issued('kubernetes-ca'));
  t.equal(statSync(privateFile).mode & 0o777, 0o600);
  const privateText = (await store.read(StorePaths.keyset('kubernetes-ca'))).toString();
  t.match(Buffer.from(/privateMaterial: (\S+)/.exec(privateText)?.[1] ?? '', 'base64').toString(), /PRIVATE KEY/);
  const issuedText = (await store.read(StorePaths.issued('kubernetes-ca'))).toString();
  t.notMatch(issuedText, /privateMaterial/);
  for (const match of issuedText.matchAll(/Material: (\S+)/g)) {
    t.notMatch(Buffer.from(match[1], 'base64').toString(), /PRIVATE KEY/);
  }
  t.ok(statSync(issuedFile).isFile());

  const loaded = await loadKeyset(store, 'kubernetes-ca');
  t.equal(loaded?.primaryId, parseCertificate(ca.certPEM).serialDecimal);
  t.equal(await loadKeyset(store, 'missing-ca'), undefined);
  await t.rejects(loadKeyset(store, '../escape'), /invalid keyset name/);
  await t.rejects(writeKeyset(store, { ...keysetFor('x', ca), keys: [{ id: '1', publicMaterial: ca.certPEM }], primaryId: '1' }), /no private key/);
});

t.test('cluster keyset names', async (t) => {
  t.same(clusterKeysetNames(['main', 'events']), [
    'etcd-clients-ca',
    'etcd-manager-ca-events',
    'etcd-manager-ca-main',
    'etcd-peers-ca-events',
    'etcd-peers-ca-main',
    'kubernetes-ca',
    'service-account',
  ]);
  t.same(clusterKeysetNames(['events', 'main', 'main']), clusterKeysetNames(['main', 'events']), 'deterministic');
  t.throws(() => clusterKeysetNames(['a/b']), /invalid keyset name/);
});

t.test('ensureClusterPKI creates once, then reuses', async (t) => {
  clearMemfs('pki-ensure');
  const store = new MemfsStore('memfs://pki-ensure/cluster.example.com');
  const names = clusterKeysetNames(['main', 'events']);
  t.same(await planClusterPKI(store, names), { toCreate: names, existing: [] });

  const first = await ensureClusterPKI(store, names, FAST);
  t.same(Object.keys(first), names);
  for (const name of names) {
    const ks = await loadKeyset(store, name);
    t.equal(ks?.primaryId, first[name], `${name} stored with its id`);
    const info = parseCertificate(primaryKeypair(ks as Keyset).certPEM);
    t.equal(info.subjectCN, name);
    t.equal(info.isCA, true);
    t.ok(info.notAfter.getTime() - Date.now() > 3649 * DAY_MS, `${name}: ten years`);
  }
  const before = await Promise.all(names.map((n) => store.read(StorePaths.keyset(n))));

  t.same(await planClusterPKI(store, names), { toCreate: [], existing: names });
  const second = await ensureClusterPKI(store, names, FAST);
  t.same(second, first, 'ids unchanged');
  const after = await Promise.all(names.map((n) => store.read(StorePaths.keyset(n))));
  t.same(after, before, 'nothing rewritten');

  // A new etcd cluster adds only its own CAs.
  const withLeases = clusterKeysetNames(['main', 'events', 'leases']);
  t.same((await planClusterPKI(store, withLeases)).toCreate, ['etcd-manager-ca-leases', 'etcd-peers-ca-leases']);
  const third = await ensureClusterPKI(store, withLeases, FAST);
  for (const name of names) t.equal(third[name], first[name]);
});

t.test('a corrupted keyset is an error naming its path, and is left alone', async (t) => {
  clearMemfs('pki-corrupt');
  const store = new MemfsStore('memfs://pki-corrupt/c');
  const path = StorePaths.keyset('kubernetes-ca');
  const corrupt = 'apiVersion: kops.k8s.io/v1alpha2\nkind: Keyset\nspec:\n  keys:\n  - id: "1"\n    publicMaterial: bm90IGEgY2VydA==\n';
  await store.write(path, corrupt);
  const names = clusterKeysetNames(['main']);
  await t.rejects(planClusterPKI(store, names), { message: /memfs:\/\/pki-corrupt\/c\/pki\/private\/kubernetes-ca\/keyset\.yaml: invalid keyset: .*not a PEM certificate/ });
  await t.rejects(ensureClusterPKI(store, names, FAST), /pki\/private\/kubernetes-ca\/keyset\.yaml/);
  t.equal((await store.read(path)).toString(), corrupt, 'not overwritten');

  await store.write(path, 'kind: [unclosed');
  await t.rejects(loadKeyset(store, 'kubernetes-ca'), /kubernetes-ca\/keyset\.yaml: invalid keyset: not YAML/);
  await store.write(path, 'apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\n');
  await t.rejects(loadKeyset(store, 'kubernetes-ca'), /kind is "Cluster", want "Keyset"/);
  await store.write(path, 'apiVersion: kops.k8s.io/v1alpha2\nkind: Keyset\nspec:\n  keys: []\n');
  await t.rejects(ensureClusterPKI(store, names, FAST), /kubernetes-ca\/keyset\.yaml: keyset kubernetes-ca: no trusted primary keypair; refusing to replace it/);

  // A private key that does not parse is reported without echoing it.
  const ca = await caPromise;
  const text = serializeKeyset(keysetFor('kubernetes-ca', ca), { includePrivate: true }).replace(/privateMaterial: \S+/, `privateMaterial: ${Buffer.from('-----BEGIN PRIVATE KEY-----\nSECRETBYTES\n-----END PRIVATE KEY-----\n').toString('base64')}`);
  t.throws(() => parseKeyset(text, 'x'), /privateMaterial \(id \d+\) is not a PEM private key$/);
  try {
    parseKeyset(text, 'x');
  } catch (e) {
    t.notMatch((e as Error).message, /SECRETBYTES/);
  }
});

// The renewal checks read certificates with Node's X.509 (inspect.ts), the issuer with @peculiar/x509: both must read the same facts.
t.test('inspectCertificate reads what parseCertificate reads', async (t) => {
  const ca = await caPromise;
  const leaves = [
    await issueCertificate(ca, { commonName: 'etcd-a', dnsNames: ['etcd-a.internal', 'localhost', 'trailing.dot.'], ipAddresses: ['127.0.0.1', '2001:db8::1', 'fe80::1:2'], usage: 'peer', validityDays: 30, ...FAST }),
    await issueCertificate(ca, { commonName: 'system:node:ip-10-0-0-1', organization: ['system:nodes'], usage: 'client', validityDays: 1, ...FAST }),
    ca,
  ];
  for (const [i, leaf] of leaves.entries()) {
    const theirs = parseCertificate(leaf.certPEM);
    const ours = inspectCertificate(leaf.certPEM);
    t.same(ours, { subjectCN: theirs.subjectCN, dnsNames: theirs.dnsNames, ipAddresses: theirs.ipAddresses, notBefore: theirs.notBefore, notAfter: theirs.notAfter }, `certificate ${i}`);
  }
  t.throws(() => inspectCertificate('garbage'));
});

t.test('parseSubjectAltName: Node quotes a value holding a comma or a quote', async (t) => {
  t.same(parseSubjectAltName(''), []);
  t.same(parseSubjectAltName('DNS:a.example, IP Address:127.0.0.1'), [{ type: 'DNS', value: 'a.example' }, { type: 'IP Address', value: '127.0.0.1' }]);
  t.same(parseSubjectAltName('DNS:"a,b", DNS:"say \\"hi\\"", DNS:c'), [{ type: 'DNS', value: 'a,b' }, { type: 'DNS', value: 'say "hi"' }, { type: 'DNS', value: 'c' }]);
  t.throws(() => parseSubjectAltName('DNS:"open'), /unterminated/);
  t.throws(() => parseSubjectAltName('no type here'), /no type/);
});

t.test('needsRenewal', async (t) => {
  const ca = await caPromise;
  const leaf = await issueCertificate(ca, {
    commonName: 'etcd-a',
    dnsNames: ['etcd-a.internal'],
    ipAddresses: ['127.0.0.1', '2001:db8::1'],
    usage: 'peer',
    validityDays: 90,
    ...FAST,
  });
  const info = parseCertificate(leaf.certPEM);
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  const want = { wantCN: 'etcd-a', wantDNS: ['ETCD-A.internal'], wantIPs: ['2001:0db8:0:0::1', '127.0.0.1'] };

  t.same(needsRenewal(leaf.certPEM, want), { renew: false }, 'fresh and matching');
  t.same(needsRenewal(leaf.certPEM, { ...want, now: new Date(info.notAfter.getTime() - lifetime / 2) }), { renew: false });

  const late = needsRenewal(leaf.certPEM, { now: new Date(info.notAfter.getTime() - lifetime / 4) });
  t.equal(late.renew, true);
  t.match(late.reason, /less than 1\/3 of its lifetime left/);
  t.equal(needsRenewal(leaf.certPEM, { now: new Date(info.notAfter.getTime() - lifetime / 4), renewBeforeFraction: 0.2 }).renew, false);
  t.match(needsRenewal(leaf.certPEM, { now: new Date(info.notAfter.getTime() + 1) }).reason, /^expired at /);
  t.match(needsRenewal(leaf.certPEM, { now: new Date(info.notBefore.getTime() - 1) }).reason, /^not valid until /);

  t.match(needsRenewal(leaf.certPEM, { wantCN: 'etcd-b' }).reason, /common name is "etcd-a", want "etcd-b"/);
  t.match(needsRenewal(leaf.certPEM, { wantDNS: ['etcd-a.internal', 'etcd-a.example.com'] }).reason, /DNS names differ \(missing etcd-a\.example\.com\)/);
  t.match(needsRenewal(leaf.certPEM, { wantIPs: ['127.0.0.1'] }).reason, /IP addresses differ \(unexpected 2001:db8::1\)/);
  t.match(needsRenewal(leaf.certPEM, { wantIPs: ['127.0.0.1', '2001:db8::1', '10.0.0.9'] }).reason, /missing 10\.0\.0\.9/);
  t.match(needsRenewal('garbage').reason, /cannot be parsed/);
});
