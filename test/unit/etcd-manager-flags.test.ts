// etcd-manager's flags: kOps' names, the env-file and environment forms, their
// precedence, and the settings derived from them.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envName, FLAGS, helpText, parseDuration, parseEnvFile, parseFlags } from '../../agents/etcd-manager/flags.js';
import { expandURLs, resolveConfig, splitBackupStore } from '../../agents/etcd-manager/config.js';
import { tempDir } from '../harness/tmp.js';

const KOPS_FLAGS = ['cluster-name', 'backup-store', 'data-dir', 'address', 'peer-urls', 'client-urls', 'quarantine-client-urls', 'grpc-port',
  'volume-provider', 'volume-tag', 'volume-name-tag', 'pki-dir', 'backup-interval', 'discovery-poll-interval', 'etcd-binary-dir', 'hosts-file',
  'insecure', 'metrics-port', 'env-file'];
const BACKUP = 'file:///srv/state/dev.example.com/backups/etcd/main';

t.test('every flag is in --help with its environment name documented', async (t) => {
  const help = helpText('etcd-manager');
  t.match(help, /^Usage: etcd-manager \[run\] \[flags\]/);
  for (const name of KOPS_FLAGS) t.match(help, `--${name}`, `--${name} in help`);
  t.match(help, 'ETCD_MANAGER_CLUSTER_NAME');
  t.equal(envName('quarantine-client-urls'), 'ETCD_MANAGER_QUARANTINE_CLIENT_URLS');
  t.equal(new Set(FLAGS.map((f) => f.name)).size, FLAGS.length, 'no flag twice');
});

t.test('kOps argument forms: --flag=value, --flag value, repeated --volume-tag, bare bool', async (t) => {
  const f = parseFlags(['run', '--cluster-name=etcd', '--backup-store', BACKUP, '--volume-tag=k8s.io/etcd/main', '--volume-tag=k8s.io/role/control-plane=1', '--insecure', '-v=6'], {});
  t.same(f.positional, ['run']);
  t.equal(f.values.get('cluster-name'), 'etcd');
  t.same(f.values.get('volume-tag'), ['k8s.io/etcd/main', 'k8s.io/role/control-plane=1']);
  t.equal(f.values.get('insecure'), 'true');
  const c = resolveConfig(f);
  t.equal(c.etcdName, 'main');
  t.equal(c.stateStore, 'file:///srv/state/dev.example.com');
  t.equal(c.dnsSuffix, 'dev.example.com');
  t.equal(c.grpcPort, 3996);
  t.equal(c.backupIntervalMs, 15 * 60_000);
  t.equal(c.insecure, true);
  t.equal(c.verbosity, 6);
});

t.test('precedence: command line, then environment, then env file, then default', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'etcd-manager.env');
  writeFileSync(file, [
    '# settings for etcd-manager',
    'ETCD_MANAGER_CLUSTER_NAME=from-file',
    'export ETCD_MANAGER_ADDRESS="127.0.1.9"',
    "ETCD_MANAGER_GRPC_PORT='4000'",
    'ETCD_MANAGER_VOLUME_TAG=a=1, b',
    `ETCD_MANAGER_BACKUP_STORE=${BACKUP}`,
    'UNRELATED=ignored',
    '',
  ].join('\n'));
  const f = parseFlags(['--env-file', file, '--grpc-port=4100'], { ETCD_MANAGER_ADDRESS: '127.0.2.2' });
  t.equal(f.values.get('cluster-name'), 'from-file');
  t.equal(f.sources.get('cluster-name'), 'env-file');
  t.equal(f.values.get('address'), '127.0.2.2', 'environment beats env file');
  t.equal(f.values.get('grpc-port'), '4100', 'command line beats both');
  t.same(f.values.get('volume-tag'), ['a=1', 'b'], 'lists are comma-separated in env form');
  t.equal(f.sources.get('hosts-file'), 'default');
  const viaEnv = parseFlags([], { ETCD_MANAGER_ENV_FILE: file });
  t.equal(viaEnv.values.get('cluster-name'), 'from-file', 'the env file itself can be named in the environment');

  writeFileSync(file, 'ETCD_MANAGER_CLUSTR_NAME=typo\n');
  t.throws(() => parseFlags(['--env-file', file], {}), /ETCD_MANAGER_CLUSTR_NAME is not an etcd-manager setting/);
  writeFileSync(file, 'not a setting\n');
  t.throws(() => parseFlags(['--env-file', file], {}), /etcd-manager.env:1: not a KEY=VALUE line/);
  t.throws(() => parseFlags(['--env-file', join(dir, 'missing')], {}), /ENOENT/);
});

t.test('bad values are usage errors naming where they came from', async (t) => {
  t.throws(() => parseFlags(['--grpc-port=abc'], {}), { message: /--grpc-port: "abc" is not a whole number/, exitCode: 2 });
  t.throws(() => parseFlags([], { ETCD_MANAGER_BACKUP_INTERVAL: '15 minutes' }), /ETCD_MANAGER_BACKUP_INTERVAL \(env\): "15 minutes" is not a duration/);
  t.throws(() => parseFlags(['--nope'], {}), /unknown flag --nope/);
  t.throws(() => parseFlags(['--cluster-name'], {}), /needs a value/);
  t.throws(() => resolveConfig(parseFlags([], {})), /--cluster-name is required/);
  t.throws(() => resolveConfig(parseFlags(['--cluster-name=etcd', '--backup-store=s3://b/x'], {})), /want <state-store>\/<cluster>\/backups\/etcd/);
  t.throws(() => resolveConfig(parseFlags(['--cluster-name=etcd', `--backup-store=${BACKUP}`, '--volume-provider=static'], {})), /needs --data-dir/);
  t.throws(() => resolveConfig(parseFlags(['--cluster-name=etcd', `--backup-store=${BACKUP}`, '--volume-provider=gce'], {})), /--volume-provider "gce": want local, static or aws/);
  t.throws(() => resolveConfig(parseFlags(['--cluster-name=etcd', `--backup-store=${BACKUP}`, '--address=node-1'], {})), /not an IP address/);
});

t.test('durations, backup store split, URL templates', async (t) => {
  t.equal(parseDuration('1h30m'), 90 * 60_000);
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('10'), undefined);
  t.same(splitBackupStore('s3://bucket/prefix/c.example.com/backups/etcd/events/'), { stateStore: 's3://bucket/prefix/c.example.com', cluster: 'c.example.com', etcdName: 'events' });
  t.same(expandURLs('https://__name__:2380,http://__address__:2381', 'etcd-a.internal.c', '10.0.0.5'), ['https://etcd-a.internal.c:2380', 'http://10.0.0.5:2381']);
  t.same(parseEnvFile('A=1\r\n#x\nB = "two words"\n', 'f'), new Map([['A', '1'], ['B', 'two words']]));
});
