// The operator commands load only what they need: listing backups or reading
// the store never loads the etcd client or gRPC (etcd3), the manager, its
// controller, peer API, volumes or TLS, nor the AWS SDK for a file:// store;
// --help loads no command but the one asked about. Each run is a fresh Node
// process whose module resolutions are recorded (test/fixtures/record-imports.mjs).
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBackup } from '../harness/em-cli.js';
import { tempDir } from '../harness/tmp.js';
import { openStore } from '../../shared/store/index.js';
import { writeClusterSpecFile } from '../../agents/etcd-manager/control/cluster-spec.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/** Runs etcd-manager from source and returns its exit code and every module URL it resolved. */
function loaded(t: Test, args: string[]): { code: number | null; stderr: string; modules: string[] } {
  const record = join(tempDir(t, 'em-cli-loading-'), 'imports.txt');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', join(repo, 'test/fixtures/record-imports.mjs'), join(repo, 'scripts/multicall-entry.ts'), 'etcd-manager', ...args], {
    cwd: repo, env: { PATH: process.env.PATH, HOME: process.env.HOME, RECORD_IMPORTS_FILE: record }, encoding: 'utf8', timeout: 120_000,
  });
  let modules: string[] = [];
  try {
    modules = readFileSync(record, 'utf8').split('\n').filter((l) => l !== '');
  } catch {
    modules = [];
  }
  return { code: r.status, stderr: r.stderr, modules };
}

const HEAVY = [/\/node_modules\/etcd3\//, /@grpc/, /\/node_modules\/@aws-sdk\//, /\/node_modules\/prom-client\//, /\/node_modules\/@peculiar\//,
  /\/agents\/etcd-manager\/(manager|tls|metrics|hosts)\.ts$/, /\/agents\/etcd-manager\/(etcd|peer|controller|volumes)\//, /\/agents\/etcd-manager\/cli\/run\.ts$/];

t.test('list-backups, list-commands and get on a file:// store load no etcd client, gRPC, manager or AWS SDK', async (t) => {
  const dir = tempDir(t, 'em-cli-loading-store-');
  const url = `file://${dir}/c.example.com/backups/etcd/main`;
  const store = openStore(url);
  await makeBackup(store, '2026-11-30T08:00:00Z-000001');
  await writeClusterSpecFile(store, { memberCount: 1, etcdVersion: '3.4.23' });
  for (const args of [['list-backups', '--details'], ['list-commands'], ['get', '-o', 'json']]) {
    const r = loaded(t, [...args, `--backup-store=${url}`]);
    t.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
    t.ok(r.modules.some((m) => m.endsWith(`/agents/etcd-manager/cli/${args[0]}.ts`)), `${args[0]}: the recording works (its module is there)`);
    for (const heavy of HEAVY) t.notOk(r.modules.find((m) => heavy.test(m)), `${args[0]} does not load ${heavy}`);
    t.notOk(r.modules.find((m) => /\/node_modules\/execa\//.test(m)), `${args[0]} does not load execa`);
    const otherCommands = r.modules.filter((m) => /\/agents\/etcd-manager\/cli\/(backup|verify-backup|restore-backup|delete-command|configure-cluster|migrate-v2)\.ts$/.test(m));
    t.same(otherCommands, [], `${args[0]} loads no other command`);
  }
  const verify = loaded(t, ['verify-backup', '2026-11-30T08:00:00Z-000001', `--backup-store=${url}`, '--etcdctl=/usr/bin/true']);
  t.not(verify.modules.length, 0);
  for (const heavy of HEAVY) t.notOk(verify.modules.find((m) => heavy.test(m)), `verify-backup does not load ${heavy}`);
  t.ok(verify.modules.find((m) => /\/node_modules\/execa\//.test(m)), 'verify-backup loads execa to run etcdctl (the recording sees packages)');
  for (const command of ['list-backups', 'restore-backup', 'migrate-v2']) {
    const help = loaded(t, [command, '--help']);
    t.equal(help.code, 0);
    for (const heavy of HEAVY) t.notOk(help.modules.find((m) => heavy.test(m)), `${command} --help does not load ${heavy}`);
    t.notOk(help.modules.find((m) => /\/shared\/store\/(file|s3|memfs)\.ts$/.test(m) || /\/node_modules\/execa\//.test(m)), `${command} --help loads no store backend, nor execa`);
  }
});
