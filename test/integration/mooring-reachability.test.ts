// What a cloud cluster's user-data names must be reachable from its instances
// (issue 7, item 5): on aws an s3:// configBase and http(s) agent URLs are
// accepted, and the boot config then names the configBase the spec asks for;
// the `local` cloud keeps its file:// store and agent. The refusals themselves
// are hostile-input cases (test/hostile/cases/deadlines.ts).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { mooring, TEST_AGENT_ARGS, TEST_CLOUD_AGENT_ARGS } from '../harness/cli.js';
import { startS3 } from '../harness/s3.js';
import { tempDir } from '../harness/tmp.js';

const CLUSTER = 'reach.example.com';

async function ok(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = await mooring(args, env);
  if (r.code !== 0) throw new Error(`mooring ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

const bootConfigBase = async (state: string[], env: NodeJS.ProcessEnv = {}) =>
  (YAML.parse((await ok([...state, 'get', 'bootconfig', CLUSTER, '--instance-group', 'control-plane-us-east-1a'], env)).stdout) as { configBase: string }).configBase;

t.test('aws on an s3:// state store with an https agent URL: update --yes writes, boot configs name the store', async (t) => {
  const s3 = await startS3(t);
  const state = ['--state', `${s3.url}/state`];
  // s3rver ignores conditional writes, so the writer lock cannot hold there: say so explicitly.
  const unserialized = '--allow-unserialized-writes';
  await ok([...state, 'create', 'cluster', CLUSTER, '--cloud', 'aws', '--zones', 'us-east-1a', '--control-plane-count', '1', '--node-count', '1', unserialized], s3.env);
  const dry = await ok([...state, 'update', 'cluster', CLUSTER, ...TEST_CLOUD_AGENT_ARGS], s3.env);
  t.match(dry.stdout, /Must specify --yes/);
  const applied = await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_CLOUD_AGENT_ARGS, unserialized], s3.env);
  t.match(applied.stdout, /Cluster "reach\.example\.com" updated/);
  t.equal(await bootConfigBase(state, s3.env), `${s3.url}/state/${CLUSTER}`);
});

t.test('aws on a file:// store with spec.configBase s3://: accepted, and every boot config names the configBase', async (t) => {
  const storeDir = tempDir(t, 'reach-');
  const state = ['--state', `file://${storeDir}`];
  await ok([...state, 'create', 'cluster', CLUSTER, '--cloud', 'aws', '--zones', 'us-east-1a', '--control-plane-count', '1', '--node-count', '1']);
  const refused = await mooring([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_CLOUD_AGENT_ARGS], {});
  t.equal(refused.code, 2, 'without configBase, the file:// store is refused');
  const cluster = YAML.parse((await ok([...state, 'get', 'cluster', CLUSTER, '-o', 'yaml'])).stdout) as { spec: Record<string, unknown> };
  cluster.spec.configBase = `s3://state-bucket/${CLUSTER}`;
  const file = `${tempDir(t, 'reach-edit-')}/cluster.yaml`;
  writeFileSync(file, YAML.stringify(cluster));
  await ok([...state, 'replace', '-f', file]);
  const applied = await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_CLOUD_AGENT_ARGS]);
  t.match(applied.stderr, `instances will read their configuration from s3://state-bucket/${CLUSTER}`, 'the warning says where instances read');
  t.equal(await bootConfigBase(state), `s3://state-bucket/${CLUSTER}`, 'and the boot config really names it');
  const userData = (await ok([...state, 'get', 'userdata', CLUSTER, '--instance-group', 'control-plane-us-east-1a'])).stdout;
  t.match(userData, `configBase: s3://state-bucket/${CLUSTER}`, 'so does the user-data');
  t.notOk(userData.includes(storeDir), 'and never the operator\'s own store directory');
});

t.test('the local cloud keeps a file:// store and a file:// agent URL', async (t) => {
  const state = ['--state', `file://${tempDir(t, 'reach-local-')}`];
  await ok([...state, 'create', 'cluster', CLUSTER, '--cloud', 'local', '--zones', 'us-east-1a', '--control-plane-count', '1', '--node-count', '1']);
  const applied = await ok([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
  t.match(applied.stdout, /Cluster "reach\.example\.com" updated/);
  t.match(await bootConfigBase(state), /^file:\/\//);
});
