// protokube's status board (a change of state is logged once), its /metrics
// text, and its settings (every bad flag is one line naming it).
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { resolveConfig } from '../../agents/protokube/config.js';
import { parseFlags } from '../../agents/protokube/flags.js';
import { Metrics } from '../../agents/protokube/metrics.js';
import { formatStatus, StatusBoard } from '../../agents/protokube/status.js';

t.test('a failure is logged once per change of state, and once when it recovers', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  configureLogging({ format: 'json', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  t.teardown(() => configureLogging({ format: 'text', write: (line) => process.stderr.write(line + '\n') }));
  const board = new StatusBoard(logger('test'), { mode: 'control-plane', cluster: 'c.example.com' });
  const events = { failed: 'addon-failed', recovered: 'addon-recovered' };
  board.set('addon a', true, 'up to date', events);
  for (let pass = 0; pass < 5; pass++) board.set('addon a', false, 'hash mismatch', events);
  board.set('addon a', false, 'API says no', events);
  board.set('addon a', false, 'API says no', events);
  board.set('addon a', true, 'applied', events);
  board.set('addon a', true, 'up to date', events);
  t.same(lines.map((l) => [l.event, l.reason ?? l.previousReason]), [['addon-failed', 'hash mismatch'], ['addon-failed', 'API says no'], ['addon-recovered', 'API says no']]);
  board.set('names', false, 'store unreachable', { failed: 'names-failed', recovered: 'names-recovered' });
  t.same(board.failing(), [{ check: 'names', reason: 'store unreachable' }]);
  const doc = board.document();
  t.equal(doc.ready, false);
  t.match(formatStatus(doc), /NOT READY[^]*\n {2}FAIL names +store unreachable[^]*\n {2}ok {3}addon a +up to date/, 'failing checks first');
});

t.test('/metrics text', async (t) => {
  const m = new Metrics();
  m.declare('protokube_hosts_writes_total', 'writes', 'counter');
  m.inc('protokube_addon_applies_total', 'applies', { addon: 'a"b\\c' });
  m.inc('protokube_addon_applies_total', 'applies', { addon: 'a"b\\c' });
  m.set('protokube_ready', 'ready', 1);
  t.equal(m.render(), [
    '# HELP protokube_addon_applies_total applies', '# TYPE protokube_addon_applies_total counter', 'protokube_addon_applies_total{addon="a\\"b\\\\c"} 2',
    '# HELP protokube_hosts_writes_total writes', '# TYPE protokube_hosts_writes_total counter', 'protokube_hosts_writes_total 0',
    '# HELP protokube_ready ready', '# TYPE protokube_ready gauge', 'protokube_ready 1', '',
  ].join('\n'));
});

t.test('settings: defaults, and one line naming each bad one', async (t) => {
  const base = { PROTOKUBE_CLUSTER: 'c.example.com', PROTOKUBE_CONFIG_BASE: 's3://bucket/c.example.com' };
  const config = resolveConfig(parseFlags(['--instance-name=cp-a'], base));
  t.equal(config.masterInternalName, 'api.internal.c.example.com');
  t.same(config.channels, ['s3://bucket/c.example.com/addons/bootstrap-channel.yaml']);
  t.equal(config.pollIntervalMs, 10_000);
  t.equal(config.registrationTTLms, 90_000);
  t.equal(config.syncIntervalMs, 60_000);
  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [[], { PROTOKUBE_CONFIG_BASE: 's3://b/c' }, /^--cluster is required/],
    [['--cluster=c.example.com'], {}, /^--config-base is required/],
    [['--address=10.0.0.300'], base, /^--address: "10\.0\.0\.300" is not an IP address$/],
    [[], { ...base, PROTOKUBE_SEED_ADDRESS: '10.0.0.1,nope' }, /^PROTOKUBE_SEED_ADDRESS \(env\): "nope" is not an IP address$/],
    [['--poll-interval=10s', '--registration-ttl=5s'], base, /--registration-ttl \(5s\) must be longer than --poll-interval \(10s\)/],
    [['--node-taint=a:Sometimes'], base, /^--node-taint: "a:Sometimes": unknown effect "Sometimes"/],
    [['--instance-name=a@b'], base, /^--instance-name: "a@b": want letters, digits/],
    [['--channel=ftp://x/y'], base, /^--channel: "ftp:\/\/x\/y": want an s3:\/\/, file:\/\/, memfs:\/\/, http\(s\):\/\/ URL or an absolute path$/],
    [['--config-base=relative/dir'], { PROTOKUBE_CLUSTER: 'c.example.com' }, /^--config-base: "relative\/dir": /],
    [['--master-internal-name=API.internal'], base, /^--master-internal-name: "API\.internal" is not a lowercase DNS name$/],
  ];
  for (const [args, env, message] of bad) {
    t.throws(() => resolveConfig(parseFlags(['--instance-name=cp-a', ...args], env)), { message, exitCode: 2 }, `${args.join(' ')} ${JSON.stringify(env)}`);
  }
  t.throws(() => parseFlags(['--poll-interval=0s'], base), /--poll-interval: "0s" is out of range: want 100ms to 1h/);
});
