// Node client credentials in the state store (keysets kubelet, kube-proxy): issued
// from kubernetes-ca when missing, kept while valid, re-issued inside the renewal
// window or when the CA changed. Real file store, real x509.
import t from 'tap';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { loadKeyset, primaryKeypair } from '../../shared/pki/keyset.js';
import { ensureNodeCredentials, NODE_CREDENTIAL_VALIDITY_DAYS, planNodeCredentials } from '../../shared/pki/node-credentials.js';
import { parseCertificate, verifyIssuedBy } from '../../shared/pki/x509.js';
import { openStore } from '../../shared/store/index.js';
import { tempDir } from '../harness/tmp.js';

const DAY_MS = 24 * 3600 * 1000;

t.test('created when missing, then kept as they are', async (t) => {
  const store = openStore(`file://${tempDir(t, 'node-creds-')}`);
  await t.rejects(ensureNodeCredentials(store, { keyAlgorithm: 'ECDSA-P256' }), /kubernetes-ca.*does not exist/, 'no CA, no credentials');
  t.same(await planNodeCredentials(store), { toCreate: ['kubelet', 'kube-proxy'], toReissue: [] });
  await ensureClusterPKI(store, ['kubernetes-ca'], { keyAlgorithm: 'ECDSA-P256' });
  const ids = await ensureNodeCredentials(store, { keyAlgorithm: 'ECDSA-P256' });
  t.same(Object.keys(ids).sort(), ['kube-proxy', 'kubelet']);
  const ca = primaryKeypair((await loadKeyset(store, 'kubernetes-ca'))!);
  for (const name of ['kubelet', 'kube-proxy']) {
    const pair = primaryKeypair((await loadKeyset(store, name))!);
    t.equal(pair.id, ids[name]);
    t.ok(await verifyIssuedBy(pair.certPEM, ca.certPEM), `${name} signed by kubernetes-ca`);
    const cert = parseCertificate(pair.certPEM);
    const days = (cert.notAfter.getTime() - Date.now()) / DAY_MS;
    t.ok(days > NODE_CREDENTIAL_VALIDITY_DAYS - 1 && days <= NODE_CREDENTIAL_VALIDITY_DAYS, `${name}: valid for ${NODE_CREDENTIAL_VALIDITY_DAYS} days`);
  }
  t.same(await planNodeCredentials(store), { toCreate: [], toReissue: [] }, 'nothing to do');
  const bytes = (await store.read('pki/private/kubelet/keyset.yaml')).toString();
  t.same(await ensureNodeCredentials(store, { keyAlgorithm: 'ECDSA-P256' }), ids, 'same ids the second time');
  t.equal((await store.read('pki/private/kubelet/keyset.yaml')).toString(), bytes, 'keyset not rewritten');
});

t.test('re-issued inside the renewal window and after a CA change', async (t) => {
  const store = openStore(`file://${tempDir(t, 'node-creds-')}`);
  await ensureClusterPKI(store, ['kubernetes-ca'], { keyAlgorithm: 'ECDSA-P256' });
  const first = await ensureNodeCredentials(store, { keyAlgorithm: 'ECDSA-P256' });

  const later = new Date(Date.now() + 300 * DAY_MS); // past two thirds of 365 days
  const plan = await planNodeCredentials(store, { now: later });
  t.same(plan.toCreate, []);
  t.same(plan.toReissue.map((r) => r.name), ['kubelet', 'kube-proxy'], 'both due');
  t.match(plan.toReissue[0].reason, /expire|renew|lifetime/i, 'the reason says why');
  t.same(await planNodeCredentials(store, { now: new Date(Date.now() + 100 * DAY_MS) }), { toCreate: [], toReissue: [] }, 'not due a third of the way in');
  const renewed = await ensureNodeCredentials(store, { keyAlgorithm: 'ECDSA-P256', now: later });
  for (const name of ['kubelet', 'kube-proxy']) t.not(renewed[name], first[name], `${name}: new keypair id`);

  // A new kubernetes-ca (the old one deleted): the credentials no longer verify and are re-issued.
  await store.delete('pki/private/kubernetes-ca/keyset.yaml');
  await store.delete('pki/issued/kubernetes-ca/keyset.yaml');
  await ensureClusterPKI(store, ['kubernetes-ca'], { keyAlgorithm: 'ECDSA-P256' });
  const afterCA = await planNodeCredentials(store);
  t.same(afterCA.toReissue.map((r) => r.name), ['kubelet', 'kube-proxy']);
  t.match(afterCA.toReissue[0].reason, /not issued by the current kubernetes-ca/);
  await ensureNodeCredentials(store, { keyAlgorithm: 'ECDSA-P256' });
  const ca = primaryKeypair((await loadKeyset(store, 'kubernetes-ca'))!);
  t.ok(await verifyIssuedBy(primaryKeypair((await loadKeyset(store, 'kubelet'))!).certPEM, ca.certPEM), 'kubelet now signed by the new CA');
});
