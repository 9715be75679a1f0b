// Five `mooring update cluster --yes` at once, each its own process, on a fresh
// file:// cluster: every one exits 0 (or loses the cluster lock cleanly), and
// afterwards every keyset pair (pki/private + pki/issued) holds the same keys,
// the kubelet and kube-proxy credentials verify against the stored
// kubernetes-ca, the node configs name the stored keypairs, and another update
// finds nothing to change.
import t from 'tap';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readdirSync } from 'node:fs';
import YAML from 'yaml';
import { TEST_AGENT_ARGS } from '../harness/cli.js';
import { mooringCommand, runMooringProcess } from '../harness/mooring-process.js';
import { tempDir } from '../harness/tmp.js';
import { openStore } from '../../shared/store/index.js';
import { parseKeyset, findPrimaryItem } from '../../shared/pki/keyset.js';
import { verifyIssuedBy } from '../../shared/pki/x509.js';
import type { StateStore } from '../../shared/store/types.js';

const CLUSTER = 'race.example.com';
const WRITERS = 5;
/** The documented exit code of a writer that gave up waiting for the cluster lock. */
const LOCKED_EXIT = 7;

console.log(`# running mooring as: ${mooringCommand().join(' ')}`);

async function keysetPair(cs: StateStore, name: string) {
  const priv = parseKeyset((await cs.read(`pki/private/${name}/keyset.yaml`)).toString(), `private/${name}`);
  const issuedText = await cs.readIfExists(`pki/issued/${name}/keyset.yaml`);
  const issued = issuedText === undefined ? undefined : parseKeyset(issuedText.toString(), `issued/${name}`);
  return { priv, issued };
}

t.test(`${WRITERS} concurrent update --yes on a fresh file:// cluster leave a consistent store`, async (t) => {
  const dir = tempDir(t, 'mooring-race-');
  const url = `file://${dir}`;
  const env = { ...process.env, MOORING_STATE_STORE: url };
  const create = await runMooringProcess(['create', 'cluster', CLUSTER, '--cloud', 'local', '--control-plane-count', '1', '--node-count', '1'], { env });
  t.equal(create.code, 0, `create: ${create.stderr}`);

  const results = await Promise.all(
    Array.from({ length: WRITERS }, () => runMooringProcess(['update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS], { env, timeoutMs: 240_000 })),
  );
  for (const [i, r] of results.entries()) {
    t.notOk(r.timedOut, `writer ${i} finished`);
    t.ok(r.code === 0 || r.code === LOCKED_EXIT, `writer ${i}: exit 0, or ${LOCKED_EXIT} for a clean loss (got ${r.code}; stderr: ${r.stderr.trim().slice(0, 600)})`);
    if (r.code === LOCKED_EXIT) t.match(r.stderr, /lock/, `writer ${i} says it lost the lock`);
  }
  t.ok(results.some((r) => r.code === 0), 'at least one writer succeeded');
  // Serialized, the first writer creates everything and every later one finds nothing left to do.
  const ok = results.filter((r) => r.code === 0);
  t.equal(ok.filter((r) => /Cluster "race\.example\.com" updated/.test(r.stdout)).length, 1, 'exactly one writer wrote the cluster');
  t.equal(ok.filter((r) => /No changes needed/.test(r.stdout)).length, ok.length - 1, 'every other one found it done');
  const leftovers = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /mooring\.lock|\.cas-guard$|\.tmp-\d+-/.test(e.name))
    .map((e) => e.name);
  t.same(leftovers, [], 'no lock, guard or temp file left behind');

  const cs = openStore(url).sub(CLUSTER);
  const names = (await cs.listChildren('pki/private')).sort();
  t.ok(names.includes('kubernetes-ca') && names.includes('kubelet') && names.includes('kube-proxy'), `keysets written: ${names.join(', ')}`);
  const primaryIds = new Map<string, string>();
  for (const name of names) {
    const { priv, issued } = await keysetPair(cs, name);
    t.ok(issued, `pki/issued/${name} exists`);
    const privItem = findPrimaryItem(priv);
    t.ok(privItem?.publicMaterial && privItem.privateMaterial, `${name}: private keyset has a primary keypair`);
    primaryIds.set(name, privItem?.id ?? '');
    if (!issued || !privItem?.publicMaterial || !privItem.privateMaterial) continue;
    t.equal(issued.primaryId, priv.primaryId, `${name}: the same primary id in private and issued`);
    t.same(
      issued.keys.map((k) => [k.id, k.publicMaterial]),
      priv.keys.map((k) => [k.id, k.publicMaterial]),
      `${name}: pki/issued holds the certificates of pki/private`,
    );
    t.ok(new X509Certificate(privItem.publicMaterial).checkPrivateKey(createPrivateKey(privItem.privateMaterial)), `${name}: private key matches its certificate`);
  }

  const { issued: caIssued } = await keysetPair(cs, 'kubernetes-ca');
  const caCert = caIssued && findPrimaryItem(caIssued)?.publicMaterial;
  t.ok(caCert, 'kubernetes-ca certificate in pki/issued');
  for (const name of ['kubelet', 'kube-proxy']) {
    const { priv } = await keysetPair(cs, name);
    const cert = findPrimaryItem(priv)?.publicMaterial;
    t.ok(cert && caCert && (await verifyIssuedBy(cert, caCert)), `${name} verifies against the stored kubernetes-ca`);
  }

  for (const path of await cs.list('igconfig')) {
    const ids = (YAML.parse((await cs.read(path)).toString()) as { keypairIDs?: Record<string, string> }).keypairIDs ?? {};
    for (const [name, id] of Object.entries(ids)) t.equal(id, primaryIds.get(name), `${path}: keypairIDs.${name} is the stored keyset's primary id`);
  }

  const again = await runMooringProcess(['update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS], { env });
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /No changes needed/, 'another update finds nothing to change');
});
