// The user-data script, rendered and then run for real by bash against a temp
// root (MOORING_ROOT), with file:// mirrors and a local HTTP mirror on
// 127.0.0.1, and a fake `systemctl` that records its arguments.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { encodeUserData, renderUserData, USER_DATA_LIMIT_BYTES, type UserDataInput } from '../../bootstrap/render-userdata.js';
import { readEmbeddedText } from '../../bootstrap/embedded-text.js';
import { tempDir } from '../harness/tmp.js';

const BOOT_CONFIG = [
  'cloud: aws',
  'clusterName: demo.example.com',
  'configBase: s3://state/demo.example.com',
  'instanceGroupName: nodes-eu-west-1a',
  'instanceGroupRole: Node',
  `nodeupConfigHash: ${'ab'.repeat(32)}`,
  '# shell-looking text must come through untouched: $HOME `id` $(id) \'q\' "dq" \\n',
  'MOORING_BOOT_CONFIG_EOF',
  '',
].join('\n');

const AGENT_CONTENT = Buffer.from('#!/bin/sh\necho fake mooring agent\n');
const AGENT_SHA256 = createHash('sha256').update(AGENT_CONTENT).digest('hex');
const FAST_RETRIES = { maxAttempts: 3, backoffBaseMs: 10, backoffCapMs: 40 };

/** A temp machine root, a fake systemctl and a mirror directory (its name needs quoting). */
function sandbox(t: Test) {
  const dir = tempDir(t, 'mooring-userdata-');
  const root = join(dir, 'root');
  const fakeBin = join(dir, 'fakebin');
  const mirror = join(dir, "mirror's $(touch PWNED) dir");
  mkdirSync(root);
  mkdirSync(fakeBin);
  mkdirSync(mirror);
  const systemctlLog = join(dir, 'systemctl.log');
  writeFileSync(join(fakeBin, 'systemctl'), '#!/bin/sh\nprintf "%s\\n" "$*" >> "$SYSTEMCTL_LOG"\n');
  chmodSync(join(fakeBin, 'systemctl'), 0o755);
  const agentPath = join(mirror, 'mooring');
  writeFileSync(agentPath, AGENT_CONTENT);
  return {
    dir,
    root,
    agentURL: pathToFileURL(agentPath).href,
    missingURL: pathToFileURL(join(mirror, 'missing')).href,
    systemctlCalls: () => (existsSync(systemctlLog) ? readFileSync(systemctlLog, 'utf8').trim().split('\n') : []),
    async run(script: string) {
      const scriptPath = join(dir, 'userdata.sh');
      writeFileSync(scriptPath, script);
      return execa('bash', [scriptPath], {
        cwd: dir,
        reject: false,
        env: { MOORING_ROOT: root, SYSTEMCTL_LOG: systemctlLog, PATH: `${fakeBin}:${process.env.PATH ?? '/usr/bin:/bin'}` },
        extendEnv: false,
      });
    },
  };
}

function render(overrides: Partial<UserDataInput>): string {
  return renderUserData({ bootConfigYAML: BOOT_CONFIG, agentURLs: ['file:///nonexistent'], agentSHA256: AGENT_SHA256, ...FAST_RETRIES, ...overrides });
}

async function missingTool(command: string): Promise<string | false> {
  const probe = await execa(command, ['--version'], { reject: false });
  return probe.exitCode === 0 ? false : `${command} is not installed`;
}
const SCRIPTS_TO_LINT = [
  ['template', readEmbeddedText('bootstrap/userdata.sh.tmpl')],
  ['rendered', render({ proxy: { http: 'http://proxy.internal:3128', noProxy: '169.254.169.254,.internal,10.0.0.0/8' } })],
] as const;

const noShellcheck = await missingTool('shellcheck');
const noSystemdAnalyze = await missingTool('systemd-analyze');

t.test('template and rendered script pass bash -n', async (t) => {
  for (const [name, text] of SCRIPTS_TO_LINT) {
    const syntax = await execa('bash', ['-n'], { input: text, reject: false });
    t.equal(syntax.exitCode, 0, `${name}: bash -n`, { stderr: syntax.stderr });
  }
  t.notMatch(SCRIPTS_TO_LINT[1][1], /@@[A-Z0-9_]+@@/, 'no placeholder left');
});

t.test('template and rendered script pass shellcheck', { skip: noShellcheck }, async (t) => {
  for (const [name, text] of SCRIPTS_TO_LINT) {
    const lint = await execa('shellcheck', ['--shell=bash', '-'], { input: text, reject: false });
    t.equal(lint.exitCode, 0, `${name}: shellcheck`, { findings: lint.stdout });
  }
});

t.test('installs from the second mirror when the first is missing', async (t) => {
  const box = sandbox(t);
  const result = await box.run(render({ agentURLs: [box.missingURL, box.agentURL] }));
  t.equal(result.exitCode, 0, 'script succeeds', { stderr: result.stderr });
  const bin = join(box.root, 'opt/mooring/bin');
  t.same(readFileSync(join(bin, 'mooring')), AGENT_CONTENT, 'verified binary installed');
  t.equal(readFileSync(join(box.root, 'opt/mooring/conf/boot.yaml'), 'utf8'), BOOT_CONFIG, 'boot config byte-exact');
  t.equal(
    readFileSync(join(box.root, 'etc/systemd/system/mooring-nodeup.service'), 'utf8'),
    readEmbeddedText('systemd/mooring-nodeup.service'),
    'unit installed as shipped',
  );
  for (const name of ['nodeup', 'etcd-manager', 'protokube']) t.equal(readlinkSync(join(bin, name)), 'mooring', `${name} link`);
  t.same(box.systemctlCalls(), ['daemon-reload', 'enable mooring-nodeup.service', 'start --no-block mooring-nodeup.service']);
  t.match(result.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ mooring-userdata: /m, 'timestamped log lines on stderr');
  t.match(result.stderr, /download failed: file:.*missing/);
  t.notOk(existsSync(join(box.dir, 'PWNED')), 'mirror path was not evaluated by the shell');
  t.notOk(existsSync(join(bin, 'mooring.partial')), 'no partial download left');
});

t.test('boot config without a final newline is written byte-exact', async (t) => {
  const box = sandbox(t);
  for (const bootConfigYAML of ['cloud: aws\nclusterName: x', '']) {
    const result = await box.run(render({ bootConfigYAML, agentURLs: [box.agentURL] }));
    t.equal(result.exitCode, 0, 'script succeeds', { stderr: result.stderr });
    t.equal(readFileSync(join(box.root, 'opt/mooring/conf/boot.yaml'), 'utf8'), bootConfigYAML);
  }
});

t.test('wrong sha256: exits non-zero naming the mirrors, installs nothing', async (t) => {
  const box = sandbox(t);
  const wrong = 'f'.repeat(64);
  const result = await box.run(render({ agentURLs: [box.missingURL, box.agentURL], agentSHA256: wrong, maxAttempts: 2 }));
  t.not(result.exitCode, 0);
  t.match(result.stderr, `sha256 mismatch: ${box.agentURL} has ${AGENT_SHA256}, want ${wrong}`);
  t.match(result.stderr, 'giving up');
  t.match(result.stderr, `mirrors: ${box.missingURL} ${box.agentURL}`);
  t.match(result.stderr, 'round 1/2 over all mirrors failed');
  t.notOk(existsSync(join(box.root, 'opt/mooring/bin/mooring')), 'no binary');
  t.notOk(existsSync(join(box.root, 'opt/mooring/bin/mooring.partial')), 'no partial download');
  t.notOk(existsSync(join(box.root, 'etc/systemd/system/mooring-nodeup.service')), 'no unit');
  t.same(box.systemctlCalls(), [], 'systemctl not called');
});

t.test('a cached binary with the right hash is reused without any download', async (t) => {
  const box = sandbox(t);
  mkdirSync(join(box.root, 'opt/mooring/bin'), { recursive: true });
  writeFileSync(join(box.root, 'opt/mooring/bin/mooring'), AGENT_CONTENT, { mode: 0o755 });
  const result = await box.run(render({ agentURLs: [box.missingURL, 'http://127.0.0.1:1/mooring'] }));
  t.equal(result.exitCode, 0, 'script succeeds', { stderr: result.stderr });
  t.match(result.stderr, 'reusing cached');
  t.notMatch(result.stderr, 'download', 'no download attempted');
  t.equal(box.systemctlCalls().length, 3);
});

t.test('a cached binary with the wrong hash is replaced', async (t) => {
  const box = sandbox(t);
  mkdirSync(join(box.root, 'opt/mooring/bin'), { recursive: true });
  writeFileSync(join(box.root, 'opt/mooring/bin/mooring'), 'stale');
  const result = await box.run(render({ agentURLs: [box.agentURL] }));
  t.equal(result.exitCode, 0, 'script succeeds', { stderr: result.stderr });
  t.same(readFileSync(join(box.root, 'opt/mooring/bin/mooring')), AGENT_CONTENT);
});

t.test('http mirror failing twice with 500 is retried with backoff, then used', async (t) => {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    if (requests <= 2) {
      res.writeHead(500).end('try later');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(AGENT_CONTENT);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const box = sandbox(t);
  const result = await box.run(render({ agentURLs: [`http://127.0.0.1:${port}/mooring`], maxAttempts: 4 }));
  t.equal(result.exitCode, 0, 'script succeeds', { stderr: result.stderr });
  t.equal(requests, 3);
  t.match(result.stderr, 'round 2/4 over all mirrors failed; retrying in');
  t.same(readFileSync(join(box.root, 'opt/mooring/bin/mooring')), AGENT_CONTENT);
});

t.test('proxy settings reach curl and a nodeup unit drop-in', async (t) => {
  const box = sandbox(t);
  const proxy = { http: 'http://proxy.internal:3128', https: 'http://proxy.internal:3129', noProxy: '169.254.169.254,.internal' };
  const result = await box.run(render({ agentURLs: [box.agentURL], proxy }));
  t.equal(result.exitCode, 0, 'script succeeds', { stderr: result.stderr });
  t.equal(
    readFileSync(join(box.root, 'etc/systemd/system/mooring-nodeup.service.d/10-proxy.conf'), 'utf8'),
    '[Service]\n' +
      'Environment="http_proxy=http://proxy.internal:3128" "HTTP_PROXY=http://proxy.internal:3128"\n' +
      'Environment="https_proxy=http://proxy.internal:3129" "HTTPS_PROXY=http://proxy.internal:3129"\n' +
      'Environment="no_proxy=169.254.169.254,.internal" "NO_PROXY=169.254.169.254,.internal"\n',
  );
});

t.test('renderer rejects bad input and secrets', async (t) => {
  const cases: [string, Partial<UserDataInput>, RegExp][] = [
    ['short sha', { agentSHA256: 'abc' }, /not 64 hex digits/],
    ['no URL', { agentURLs: [] }, /no agent binary URL/],
    ['ftp URL', { agentURLs: ['ftp://x/y'] }, /must use/],
    ['newline in URL', { agentURLs: ['http://x/\nrm -rf /'] }, /whitespace/],
    ['credentials in URL', { agentURLs: ['https://user:pw@mirror/x'] }, /credentials/],
    ['credentials in proxy', { proxy: { http: 'http://u:p@proxy:3128' } }, /credentials/],
    ['bad noProxy', { proxy: { noProxy: 'a b' } }, /noProxy/],
    ['private key', { bootConfigYAML: 'ca: |\n  -----BEGIN RSA PRIVATE KEY-----\n' }, /private key/],
    ['token field', { bootConfigYAML: 'bootstrapToken: abc\n' }, /token/],
    ['zero attempts', { maxAttempts: 0 }, /maxAttempts/],
    ['NUL', { bootConfigYAML: 'a\0b' }, /NUL/],
  ];
  for (const [name, input, message] of cases) t.throws(() => render(input), { message }, name);
});

t.test('values that look like placeholders are not substituted again', async (t) => {
  const box = sandbox(t);
  const bootConfigYAML = 'note: "@@AGENT_SHA256@@ @@NODEUP_UNIT@@"\n';
  const result = await box.run(render({ bootConfigYAML, agentURLs: [box.agentURL] }));
  t.equal(result.exitCode, 0, 'script succeeds', { stderr: result.stderr });
  t.equal(readFileSync(join(box.root, 'opt/mooring/conf/boot.yaml'), 'utf8'), bootConfigYAML);
});

t.test('size: normal user-data is plain and small; a large boot config is gzip+base64 and fits', async (t) => {
  const normal = render({ agentURLs: ['https://a.example/mooring', 'https://b.example/mooring'] });
  t.ok(Buffer.byteLength(normal) < 16 * 1024, `normal user-data is ${Buffer.byteLength(normal)} bytes`);
  t.same(encodeUserData(normal), { body: normal, encoding: 'plain' });

  const manyGroups = Array.from({ length: 600 }, (_, i) => `  - name: nodes-${i}\n    zone: eu-west-1${'abc'[i % 3]}\n`).join('');
  const large = render({ bootConfigYAML: `${BOOT_CONFIG}extraGroups:\n${manyGroups}` });
  t.ok(Buffer.byteLength(large) > USER_DATA_LIMIT_BYTES, 'large script exceeds the limit');
  const encoded = encodeUserData(large);
  t.equal(encoded.encoding, 'gzip+base64');
  t.ok(encoded.body.length <= USER_DATA_LIMIT_BYTES, `encoded is ${encoded.body.length} bytes`);
  t.equal(gunzipSync(Buffer.from(encoded.body, 'base64')).toString('utf8'), large, 'round-trips');

  const incompressible = render({ bootConfigYAML: `blob: ${randomBytes(24 * 1024).toString('base64')}\n` });
  t.throws(() => encodeUserData(incompressible), { message: /user-data is too large/ });
});

t.test('the nodeup unit passes systemd-analyze verify', { skip: noSystemdAnalyze }, async (t) => {
  // An offline root with the distro's units (for multi-user.target etc.) and an executable nodeup.
  const root = tempDir(t, 'mooring-unit-');
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  mkdirSync(join(root, 'opt/mooring/bin'), { recursive: true });
  writeFileSync(join(root, 'opt/mooring/bin/nodeup'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(join(root, 'etc/systemd/system/mooring-nodeup.service'), readEmbeddedText('systemd/mooring-nodeup.service'));
  const verify = await execa('systemd-analyze', ['verify', `--root=${root}`, 'mooring-nodeup.service'], { reject: false });
  t.equal(verify.exitCode, 0, verify.stderr);
  t.equal(verify.stderr, '', 'no warnings');
});
