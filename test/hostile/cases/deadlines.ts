// Places an instance cannot reach, timers that overflow, settings etcd-manager
// took on trust, and slow failures (issue 7, items 5, 7, 8 and 9).
import { createServer, type Server, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { mooring } from '../../harness/cli.js';
import type { HostileCase, Invocation, World } from '../case.js';

const AWS = 'aws.example.com';
const HTTPS_AGENT = ['--agent-url', 'https://mirror.example.com/mooring/mooring', '--agent-sha256', 'b'.repeat(64)];

async function ok(args: string[]): Promise<string> {
  const r = await mooring(args, {});
  if (r.code !== 0) throw new Error(`preparing: mooring ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** An aws cluster in the world's file:// store, its Cluster spec edited by `edit`. */
async function awsCluster(w: World, edit?: (spec: Record<string, unknown>) => void): Promise<string[]> {
  const state = ['--state', w.storeURL];
  await ok([...state, 'create', 'cluster', AWS, '--cloud', 'aws', '--zones', 'us-east-1a', '--control-plane-count', '1', '--node-count', '1']);
  if (edit) {
    const cluster = YAML.parse(await ok([...state, 'get', 'cluster', AWS, '-o', 'yaml'])) as { spec: Record<string, unknown> };
    edit(cluster.spec);
    await ok([...state, 'replace', '-f', w.file('edited.yaml', YAML.stringify(cluster))]);
  }
  return state;
}

const s3ConfigBase = (spec: Record<string, unknown>) => void (spec.configBase = `s3://state-bucket/${AWS}`);

/**
 * etcd-manager flags that keep everything it could touch inside the world, and
 * make sure no etcd is ever started (the control spec asks for a version that
 * does not exist), so that a build which wrongly starts is merely killed.
 */
function etcdManager(w: World, overrides: Record<string, string | null>, env: Record<string, string> = {}): Invocation {
  const backups = `${w.storeDir}/${w.cluster}/backups/etcd/main`;
  writeFileSync(join(backups, 'control/etcd-cluster-spec'), JSON.stringify({ memberCount: 1, etcdVersion: '9.9.9' }));
  const flags: Record<string, string | null> = {
    'cluster-name': 'etcd', 'backup-store': `file://${backups}`, 'volume-provider': 'static', 'data-dir': `${w.root}/a/b/volume`,
    'instance-id': 'hostile-1', address: '127.0.0.1', insecure: 'true', 'peer-urls': 'http://__address__:32380',
    'client-urls': 'http://__address__:32379', 'quarantine-client-urls': 'http://__address__:32378', 'pki-dir': `${w.root}/pki`,
    'hosts-file': `${w.root}/hosts`, 'etcd-binary-dir': `${w.root}/no-etcd`, 'local-volume-dir': `${w.root}/volumes`, 'mount-root': `${w.root}/mnt`,
    ...overrides,
  };
  const args = Object.entries(flags).filter((e): e is [string, string] => e[1] !== null).map(([k, v]) => `--${k}=${v}`);
  return { args, env };
}

/** A TCP server on 127.0.0.1 that accepts connections and never answers; it lives as long as the test process. */
let silent: Promise<string> | undefined;
function silentEndpoint(): Promise<string> {
  return (silent ??= new Promise((resolve) => {
    const sockets: Socket[] = [];
    const server: Server = createServer((socket) => {
      socket.on('error', () => undefined);
      sockets.push(socket);
    });
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      const { port } = server.address() as { port: number };
      resolve(`http://127.0.0.1:${port}`);
    });
  }));
}

async function silentS3Env(): Promise<Record<string, string>> {
  return {
    AWS_ENDPOINT_URL_S3: await silentEndpoint(),
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'HOSTILE',
    AWS_SECRET_ACCESS_KEY: 'HOSTILE',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

export const cases: HostileCase[] = [
  // Item 5: user-data for a cloud cluster must name places an instance can reach.
  {
    name: 'update --yes of an aws cluster whose state store is file://',
    program: 'mooring',
    prepare: async (w) => ({ args: [...(await awsCluster(w)), 'update', 'cluster', AWS, '--yes', ...HTTPS_AGENT] }),
    exit: 2,
    message: /^error: instances on aws cannot read .*file:\/\/.*--state or MOORING_STATE_STORE.*spec\.configBase/m,
  },
  {
    name: 'update (dry run) of an aws cluster whose state store is file://',
    program: 'mooring',
    prepare: async (w) => ({ args: [...(await awsCluster(w)), 'update', 'cluster', AWS, ...HTTPS_AGENT] }),
    exit: 2,
    message: /^error: instances on aws cannot read .*file:\/\/.*--state or MOORING_STATE_STORE/m,
  },
  {
    name: 'update --yes of an aws cluster whose spec.configBase is memfs://',
    program: 'mooring',
    prepare: async (w) => ({ args: [...(await awsCluster(w, (s) => void (s.configBase = 'memfs://somewhere'))), 'update', 'cluster', AWS, '--yes', ...HTTPS_AGENT] }),
    exit: 3,
    message: /^error: spec\.configBase memfs:\/\/somewhere: instances on aws cannot read a memfs:\/\/ store; set it to an s3:\/\/ URL/m,
  },
  {
    name: 'update --yes of an aws cluster whose spec.configBase is file://',
    program: 'mooring',
    prepare: async (w) => ({ args: [...(await awsCluster(w, (s) => void (s.configBase = `file://${w.storeDir}/${AWS}`))), 'update', 'cluster', AWS, '--yes', ...HTTPS_AGENT] }),
    exit: 3,
    message: /^error: spec\.configBase file:\/\/.*: instances on aws cannot read a file:\/\/ store/m,
  },
  {
    name: 'update --yes of an aws cluster whose etcd backup store is file://',
    program: 'mooring',
    prepare: async (w) => ({
      args: [...(await awsCluster(w, (s) => {
        s3ConfigBase(s);
        const etcd = (s.etcdClusters as Array<Record<string, unknown>>)[0];
        etcd.backups = { backupStore: 'file:///var/backups/etcd/main' };
      })), 'update', 'cluster', AWS, '--yes', ...HTTPS_AGENT],
    }),
    exit: 3,
    message: /^error: spec\.etcdClusters\[0\]\.backups\.backupStore file:\/\/\/var\/backups\/etcd\/main: instances on aws cannot read a file:\/\/ store/m,
  },
  {
    name: 'update --yes of an aws cluster with a file:// --agent-url',
    program: 'mooring',
    prepare: async (w) => ({
      args: [...(await awsCluster(w, s3ConfigBase)), 'update', 'cluster', AWS, '--yes', '--agent-url', 'file:///opt/mooring/mooring', '--agent-sha256', 'c'.repeat(64)],
    }),
    exit: 2,
    message: /^error: --agent-url file:\/\/\/opt\/mooring\/mooring: instances on aws cannot download from file:\/\/; pass --agent-url https:\/\//m,
  },
  {
    name: 'update --yes of an aws cluster with MOORING_AGENT_URLS=file://',
    program: 'mooring',
    prepare: async (w) => ({
      args: [...(await awsCluster(w, s3ConfigBase)), 'update', 'cluster', AWS, '--yes'],
      env: { MOORING_AGENT_URLS: 'https://mirror.example.com/mooring,file:///opt/mooring/mooring', MOORING_AGENT_SHA256: 'c'.repeat(64) },
    }),
    exit: 2,
    message: /^error: MOORING_AGENT_URLS file:\/\/\/opt\/mooring\/mooring: instances on aws cannot download from file:\/\/; set MOORING_AGENT_URLS/m,
  },
  {
    name: 'update --yes of an aws cluster with no agent URL (the binary itself, a file:// path)',
    program: 'mooring',
    prepare: async (w) => ({ args: [...(await awsCluster(w, s3ConfigBase)), 'update', 'cluster', AWS, '--yes'] }),
    exit: 2,
    message: /^error: no --agent-url: the default, this binary at file:\/\/.*, cannot be downloaded by instances on aws; pass --agent-url https:\/\/.* and --agent-sha256/m,
  },

  // Item 7: durations above Node's timer limit (2^31-1 ms) overflow; every duration flag has a range.
  {
    name: 'etcd-manager --reconcile-interval=600h (above the timer limit)',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'reconcile-interval': '600h' }),
    exit: 2,
    message: /^etcd-manager: --reconcile-interval: "600h" is out of range: want 100ms to 1h$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --reconcile-interval=0s (a loop that spins)',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'reconcile-interval': '0s' }),
    exit: 2,
    message: /^etcd-manager: --reconcile-interval: "0s" is out of range: want 100ms to 1h$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'ETCD_MANAGER_DISCOVERY_POLL_INTERVAL=1000h in the environment',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, {}, { ETCD_MANAGER_DISCOVERY_POLL_INTERVAL: '1000h' }),
    exit: 2,
    message: /^etcd-manager: ETCD_MANAGER_DISCOVERY_POLL_INTERVAL \(env\): "1000h" is out of range: want 100ms to 1h$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --unhealthy-member-timeout=100000h',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'unhealthy-member-timeout': '100000h' }),
    exit: 2,
    message: /^etcd-manager: --unhealthy-member-timeout: "100000h" is out of range: want 1s to 24h$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --backup-interval=9999h',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'backup-interval': '9999h' }),
    exit: 2,
    message: /^etcd-manager: --backup-interval: "9999h" is out of range: want 1s to 24h$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --store-timeout=2h',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'store-timeout': '2h' }),
    exit: 2,
    message: /^etcd-manager: --store-timeout: "2h" is out of range: want 1s to 10m$/m,
    timeoutMs: 8_000,
  },

  // Item 8: etcd-manager refuses at start what it used to take on trust.
  {
    name: 'etcd-manager with a misspelt ETCD_MANAGER_* name in the process environment',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, {}, { ETCD_MANAGER_RECONCILE_INTERVL: '1s', ETCD_DATA_DIR: '/elsewhere', ETCD_UNSUPPORTED_ARCH: 'arm64' }),
    exit: 2,
    message: /^etcd-manager: environment: ETCD_MANAGER_RECONCILE_INTERVL is not an etcd-manager setting \(see --help\)$/m,
    never: [/ETCD_DATA_DIR/, /ETCD_UNSUPPORTED_ARCH/],
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager with kOps\' ETCD_MANAGER_CERT_DURATION in the process environment',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, {}, { ETCD_MANAGER_CERT_DURATION: '8760h' }),
    exit: 2,
    message: /^etcd-manager: environment: ETCD_MANAGER_CERT_DURATION is a setting of kOps' etcd-manager that this one does not have \(see --help\)$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --cluster-name=../../x',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'cluster-name': '../../x' }),
    exit: 2,
    message: /^etcd-manager: --cluster-name: "\.\.\/\.\.\/x" is not a name/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --peer-urls whose port is not a number',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'peer-urls': 'http://__address__:peer' }),
    exit: 2,
    message: /^etcd-manager: --peer-urls: "http:\/\/__address__:peer" is not a URL/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --client-urls with no scheme separator',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'client-urls': 'http//__address__:32379' }),
    exit: 2,
    message: /^etcd-manager: --client-urls: "http\/\/__address__:32379" is not a URL/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --quarantine-client-urls with an ftp:// URL and no port',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'quarantine-client-urls': 'ftp://__address__' }),
    exit: 2,
    message: /^etcd-manager: --quarantine-client-urls: "ftp:\/\/__address__" .*http:\/\/ or https:\/\//m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --peer-urls with a path',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'peer-urls': 'http://__address__:32380/etcd' }),
    exit: 2,
    message: /^etcd-manager: --peer-urls: "http:\/\/__address__:32380\/etcd" .*no path/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --backup-store with an unknown scheme',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'backup-store': 'ftp://host/c.example.com/backups/etcd/main' }),
    exit: 2,
    message: /^etcd-manager: --backup-store: ftp:\/\/host\/c\.example\.com\/backups\/etcd\/main: unsupported state store scheme "ftp"/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --backup-store=s3:// with no bucket',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'backup-store': 's3:///c.example.com/backups/etcd/main' }),
    exit: 2,
    message: /^etcd-manager: --backup-store: s3:\/\/\/c\.example\.com\/backups\/etcd\/main: want s3:\/\/<bucket>/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager ETCD_MANAGER_BACKUP_STORE with a host in a file:// URL',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'backup-store': null }, { ETCD_MANAGER_BACKUP_STORE: 'file://otherhost/srv/c.example.com/backups/etcd/main' }),
    exit: 2,
    message: /^etcd-manager: ETCD_MANAGER_BACKUP_STORE \(env\): file:\/\/otherhost/m,
    timeoutMs: 8_000,
  },

  // Item 9: store calls and downloads have deadlines, and their flags have ranges.
  {
    name: 'mooring against an S3 endpoint that accepts and never answers (MOORING_STORE_TIMEOUT=2)',
    program: 'mooring',
    prepare: async () => ({ args: ['--state', 's3://state-bucket/prefix', 'get', 'clusters'], env: { ...(await silentS3Env()), MOORING_STORE_TIMEOUT: '2' } }),
    exit: 5,
    message: /^error: s3:\/\/state-bucket\/prefix: cannot reach http:\/\/127\.0\.0\.1:\d+: .*timed out/m,
    timeoutMs: 15_000,
  },
  {
    name: 'nodeup whose state store accepts and never answers (--store-timeout 2)',
    program: 'nodeup',
    prepare: async (w) => {
      const conf = await w.bootConfig('nodes-local-a');
      const boot = YAML.parse(readFileSync(conf, 'utf8')) as Record<string, unknown>;
      boot.configBase = `s3://state-bucket/${w.cluster}`;
      return { args: ['--conf', w.file('conf/silent.yaml', YAML.stringify(boot)), '--dry-run', '--store-timeout', '2'], env: await silentS3Env() };
    },
    exit: 5,
    message: /^nodeup: error: s3:\/\/state-bucket\/hostile\.example\.com\/.*: cannot reach http:\/\/127\.0\.0\.1:\d+: .*timed out/m,
    timeoutMs: 15_000,
  },
  {
    name: 'mooring --store-timeout=0',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, '--store-timeout', '0', 'get', 'clusters'] }),
    exit: 2,
    message: /^error: --store-timeout: "0" is out of range: want 1 to 600 seconds$/m,
  },
  {
    name: 'mooring with MOORING_STORE_TIMEOUT=99999999999',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'get', 'clusters'], env: { MOORING_STORE_TIMEOUT: '99999999999' } }),
    exit: 2,
    message: /^error: MOORING_STORE_TIMEOUT: "99999999999" is out of range: want 1 to 600 seconds$/m,
  },
  {
    name: 'nodeup --store-timeout=abc',
    program: 'nodeup',
    prepare: async (w) => ({ args: ['--conf', await w.bootConfig('nodes-local-a'), '--dry-run', '--store-timeout', 'abc'] }),
    exit: 2,
    message: /^nodeup: error: --store-timeout: "abc" is not a whole number of seconds \(1 to 600\)$/m,
  },
  {
    name: 'nodeup --asset-stall-timeout=100000',
    program: 'nodeup',
    prepare: async (w) => ({ args: ['--conf', await w.bootConfig('nodes-local-a'), '--dry-run', '--asset-stall-timeout', '100000'] }),
    exit: 2,
    message: /^nodeup: error: --asset-stall-timeout: "100000" is out of range: want 1 to 600 seconds$/m,
  },
];
