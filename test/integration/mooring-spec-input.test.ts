// `mooring create/replace -f`: a real kOps spec loads without a word, a typo is
// a warning naming file, line and field (and is kept), --strict refuses it and
// writes nothing, and a file that never ends is refused at the size limit.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { openStore } from '../../shared/store/index.js';
import { mooring } from '../harness/cli.js';
import { snapshotStore, tempDir } from '../harness/tmp.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/kops-aws-cluster.yaml', import.meta.url));
const CLUSTER = 'prod.k8s.example.com';

t.test("kOps' own spec: no warning, even with --strict, and it round-trips", async (t) => {
  const dir = tempDir(t);
  const state = ['--state', `file://${dir}/state`];
  const create = await mooring([...state, 'create', '-f', FIXTURE, '--strict']);
  t.equal(create.code, 0, create.stderr);
  t.equal(create.stderr, '', 'nothing on stderr');
  const all = await mooring([...state, 'get', 'all', CLUSTER, '-o', 'yaml']);
  writeFileSync(join(dir, 'all.yaml'), all.stdout);
  const replace = await mooring([...state, 'replace', '-f', join(dir, 'all.yaml'), '--strict']);
  t.equal(replace.code, 0, replace.stderr);
  t.equal(replace.stderr, '');
});

t.test('unknown fields: a warning each, kept; --strict refuses them and writes nothing', async (t) => {
  const dir = tempDir(t);
  const state = ['--state', `file://${dir}/state`];
  t.equal((await mooring([...state, 'create', '-f', FIXTURE])).code, 0);
  const store = openStore(`file://${dir}/state`);
  const doc = parseDocument(readFileSync(join(dir, 'state', CLUSTER, 'config'), 'utf8'));
  doc.setIn(['spec', 'kubeAPIServer', 'auditLogMaxAgee'], 10);
  doc.setIn(['spec', 'typo_cidr'], '10.0.0.0/8');
  const file = join(dir, 'typo.yaml');
  writeFileSync(file, String(doc));
  const lineOf = (key: string) => String(doc).split('\n').findIndex((l) => l.trimStart().startsWith(`${key}:`)) + 1;

  const before = await snapshotStore(store);
  const strict = await mooring([...state, 'replace', '-f', file, '--strict']);
  t.equal(strict.code, 3, 'exit 3: invalid spec');
  t.same(strict.stderr.trim().split('\n'), [
    `error: ${file}:${lineOf('auditLogMaxAgee')}: spec.kubeAPIServer.auditLogMaxAgee: unknown field (refused by --strict)`,
    `${file}:${lineOf('typo_cidr')}: spec.typo_cidr: unknown field (refused by --strict)`,
  ]);
  t.same(await snapshotStore(store), before, 'nothing written');

  const lenient = await mooring([...state, 'replace', '-f', file]);
  t.equal(lenient.code, 0, lenient.stderr);
  t.same(lenient.stderr.trim().split('\n'), [
    `warning: ${file}:${lineOf('auditLogMaxAgee')}: spec.kubeAPIServer.auditLogMaxAgee: unknown field (kept as written; --strict refuses it)`,
    `warning: ${file}:${lineOf('typo_cidr')}: spec.typo_cidr: unknown field (kept as written; --strict refuses it)`,
  ]);
  const stored = readFileSync(join(dir, 'state', CLUSTER, 'config'), 'utf8');
  t.match(stored, /typo_cidr: 10\.0\.0\.0\/8/, 'kept as written');
  t.match(stored, /auditLogMaxAgee: 10/);
});

t.test('a file that never ends is refused at 4 MiB', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const r = await mooring(['--state', `file://${dir}/state`, 'create', '-f', '/dev/zero']);
  t.equal(r.code, 3);
  t.equal(r.stderr, 'error: /dev/zero: larger than 4 MiB; refused before parsing\n');
});
