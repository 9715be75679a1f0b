// etcd-manager's flags: kOps' names, the env-file and environment forms, their
// precedence, and the settings derived from them.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chmodSync } from 'node:fs';
import { envName, FLAGS, helpText, parseAge, parseDuration, parseEnvFile, parseFlags, type FlagDef } from '../../agents/etcd-manager/flags.js';
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

t.test('every duration flag has a range inside Node\'s timer limit, holding its default, shown in --help', async (t) => {
  const help = helpText('etcd-manager');
  const durations = (FLAGS as readonly FlagDef[]).filter((f) => f.kind === 'duration');
  t.ok(durations.length >= 5, 'backup, reconcile, unhealthy, discovery, store timeout');
  for (const f of durations) {
    const range = f.range;
    t.ok(range, `--${f.name} has a range`);
    if (!range) continue;
    const [min, max] = range.map((d) => parseDuration(d) as number);
    t.ok(min > 0 && max <= 2 ** 31 - 1, `--${f.name}: ${range.join(' to ')} is within 1 ms and 2^31-1 ms`);
    const dflt = parseDuration(f.default ?? '') as number;
    t.ok(dflt >= min && dflt <= max, `--${f.name}: default ${f.default} in range`);
    // The manager's flags are in its --help on their own line; the operator commands' in each command's help (etcd-manager-cli.test.ts).
    if (!f.operator) t.match(help, new RegExp(`--${f.name}=<duration> .*${range[0]} to ${range[1]}\\)`), `--${f.name}: range in --help`);
    t.throws(() => parseFlags([`--${f.name}=${max + 1}ms`], {}), { message: `--${f.name}: "${max + 1}ms" is out of range: want ${range[0]} to ${range[1]}`, exitCode: 2 });
    if (f.commandLineOnly) {
      t.throws(() => parseFlags([], { [envName(f.name)]: '1m' }), { message: `environment: ${envName(f.name)} is not an etcd-manager setting (see --help)`, exitCode: 2 }, `--${f.name} has no environment form`);
    } else {
      t.throws(() => parseFlags([], { [envName(f.name)]: '600h' }), { message: `${envName(f.name)} (env): "600h" is out of range: want ${range[0]} to ${range[1]}`, exitCode: 2 });
    }
    for (const end of range) t.doesNotThrow(() => parseFlags([`--${f.name}=${end}`], {}), `--${f.name}=${end} (an end of its range) is accepted`);
  }
  const c = resolveConfig(parseFlags(['--cluster-name=etcd', `--backup-store=${BACKUP}`, '--reconcile-interval=100ms', '--store-timeout=5s'], {}));
  t.equal(c.reconcileIntervalMs, 100);
  t.equal(c.storeTimeoutMs, 5000);
});

t.test('the process environment: ETCD_MANAGER_* names must be settings; ETCD_* is etcd\'s and left alone', async (t) => {
  const env = { ETCD_DATA_DIR: '/var/etcd', ETCD_UNSUPPORTED_ARCH: 'arm64', ETCD_MANAGER_CLUSTER_NAME: 'etcd', ETCD_MANAGER_BACKUP_STORE: BACKUP, ETCDCTL_API: '3' };
  t.equal(resolveConfig(parseFlags([], env)).clusterName, 'etcd', 'etcd\'s own names do not trip the check');
  t.throws(() => parseFlags([], { ...env, ETCD_MANAGER_CLUSTR_NAME: 'x' }), { message: 'environment: ETCD_MANAGER_CLUSTR_NAME is not an etcd-manager setting (see --help)', exitCode: 2 });
  t.throws(() => parseFlags([], { ETCD_MANAGER_CERT_DURATION: '8760h' }), { message: /ETCD_MANAGER_CERT_DURATION is a setting of kOps' etcd-manager/, exitCode: 2 });
  t.equal(resolveConfig(parseFlags([], { ...env, ETCD_MANAGER_DAILY_BACKUPS_RETENTION: '1y' })).retention.dailyForMs, 365 * 86_400_000, 'kOps\' retention variables are ours too, with its d and y units');
  t.equal(parseFlags(['--help'], { ETCD_MANAGER_BOGUS: '1' }).help, true, '--help answers whatever the environment holds');
  t.equal(parseFlags(['--version'], { ETCD_MANAGER_RECONCILE_INTERVAL: '999h' }).version, true, '--version too');
});

t.test('cluster names, URL templates and the backup store are checked at start', async (t) => {
  const base = ['--cluster-name=etcd', `--backup-store=${BACKUP}`];
  const resolve = (args: string[], env: NodeJS.ProcessEnv = {}) => resolveConfig(parseFlags([...base, ...args], env));
  for (const good of ['etcd', 'etcd-events', 'etcd-cilium', 'a', 'etcd_x.1']) t.equal(resolve([`--cluster-name=${good}`]).clusterName, good, `${good} is a name`);
  for (const bad of ['../../x', '..', '.', 'a/b', '-etcd', 'etcd-', 'a b', 'x'.repeat(64), 'etcd\nevil']) {
    t.throws(() => resolve([`--cluster-name=${bad}`]), { message: /^--cluster-name: ".*" is not a name/, exitCode: 2 }, JSON.stringify(bad));
  }
  for (const good of ['https://__name__:2380', 'http://__address__:2380,https://__name__:2381', 'https://[::1]:2380', 'https://__name__:443', 'https://__name__:2380/']) {
    t.doesNotThrow(() => resolve([`--peer-urls=${good}`]), good);
  }
  const urlCases: Array<[string, string, RegExp]> = [
    ['peer-urls', 'https://__name__:peer', /is not a URL like https:\/\/__name__:2380/],
    ['client-urls', 'https//__name__:4001', /is not a URL like https:\/\/__name__:4001/],
    ['client-urls', 'https://__name__:99999', /is not a URL/],
    ['quarantine-client-urls', 'unix://__name__:3994', /must be http:\/\/ or https:\/\//],
    ['peer-urls', 'https://__name__', /needs a port/],
    ['peer-urls', 'https://__name__:2380/path', /must have no path, query or user/],
    ['peer-urls', 'https://__name__:2380?x=1', /must have no path, query or user/],
    ['peer-urls', 'https://user@__name__:2380', /must have no path, query or user/],
    ['peer-urls', ' , ', /no URL given/],
  ];
  for (const [flag, value, want] of urlCases) {
    t.throws(() => resolve([`--${flag}=${value}`]), { message: want, exitCode: 2 }, `--${flag}=${value}`);
  }
  t.throws(() => resolve([], { ETCD_MANAGER_PEER_URLS: 'https://__name__' }), { message: /^ETCD_MANAGER_PEER_URLS \(env\): "https:\/\/__name__" needs a port/ }, 'names the env var it came from');
  for (const [store, want] of [
    ['ftp://h/c.example.com/backups/etcd/main', /^--backup-store: ftp:\/\/h\/c\.example\.com\/backups\/etcd\/main: unsupported state store scheme "ftp"/],
    ['s3:///c.example.com/backups/etcd/main', /^--backup-store: s3:\/\/\/c\.example\.com\/backups\/etcd\/main: want s3:\/\/<bucket>/],
    ['file://otherhost/c.example.com/backups/etcd/main', /^--backup-store: file:\/\/otherhost\/.*not a file state store URL \(want file:\/\/\/absolute\/dir/],
    ['relative/c.example.com/backups/etcd/main', /^--backup-store: relative\/c\.example\.com\/backups\/etcd\/main: not a state store URL/],
  ] as const) {
    t.throws(() => resolveConfig(parseFlags(['--cluster-name=etcd', `--backup-store=${store}`], {})), { message: want, exitCode: 2 }, store);
  }
});

t.test('backup settings: retention ages (kOps\' defaults, d and y), their order, the trash, the encryption key file', async (t) => {
  const base = ['--cluster-name=etcd', `--backup-store=${BACKUP}`];
  const resolve = (args: string[]) => resolveConfig(parseFlags([...base, ...args], {}));
  const day = 86_400_000;
  t.same(resolve([]).retention, { keepAllForMs: 3_600_000, hourlyForMs: 7 * day, dailyForMs: 90 * day }, 'kOps\' rules by default');
  t.equal(resolve([]).trashRetentionMs, 3 * day);
  t.equal(parseAge('2d12h'), 2.5 * day);
  t.equal(parseAge('1y'), 365 * day);
  t.equal(parseAge('7'), undefined);
  t.equal(parseDuration('7d'), undefined, 'a timer duration takes no days');
  t.same(resolve(['--all-backups-retention=0s', '--hourly-backups-retention=2d', '--daily-backups-retention=1y']).retention, { keepAllForMs: 0, hourlyForMs: 2 * day, dailyForMs: 365 * day });
  t.throws(() => resolve(['--hourly-backups-retention=30m']), { message: /^--hourly-backups-retention \(30m\) is shorter than --all-backups-retention \(1h\)/, exitCode: 2 });
  t.throws(() => resolve(['--daily-backups-retention=1d']), { message: /^--daily-backups-retention \(1d\) is shorter than --hourly-backups-retention \(7d\)/, exitCode: 2 });
  t.throws(() => resolve(['--trash-retention=3 days']), { message: /^--trash-retention: "3 days" is not a duration like 12h, 7d or 1y/, exitCode: 2 });
  t.throws(() => resolve(['--trash-retention=101y']), { message: /out of range: want 0s to 100y/, exitCode: 2 });
  t.match(helpText('etcd-manager'), '--daily-backups-retention=<duration>');

  const dir = tempDir(t);
  const key = join(dir, 'backup.key');
  writeFileSync(key, 'ab'.repeat(32) + '\n', { mode: 0o600 });
  t.equal(resolve([`--backup-encryption-key-file=${key}`]).backupEncryptionKeyFile, key, 'a 0600 file of 64 hex digits');
  chmodSync(key, 0o644);
  t.throws(() => resolve([`--backup-encryption-key-file=${key}`]), { message: /^--backup-encryption-key-file: .*readable by group or others \(mode 644\); chmod 600 it/, exitCode: 2 });
  chmodSync(key, 0o600);
  writeFileSync(key, 'not a key');
  t.throws(() => resolve([`--backup-encryption-key-file=${key}`]), { message: /^--backup-encryption-key-file: .*not an AES-256 key \(9 bytes; want exactly 32 raw bytes/, exitCode: 2 });
  t.throws(() => resolve([`--backup-encryption-key-file=${join(dir, 'missing')}`]), { message: /^--backup-encryption-key-file: .*missing: cannot read the backup encryption key file: ENOENT/, exitCode: 2 });
});
