// The single executable, copied where no node_modules can help it: each of
// its programs answers --version and --help under its own name, and etcd3
// (whose .proto files the build embeds) talks gRPC to a real etcd on 127.0.0.1.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { VERSION } from '../../shared/version.js';
import { issueInChild } from '../../shared/pki/issue-batch.js';
import { inspectCertificate, verifyIssuedBy } from '../../shared/pki/inspect.js';
import { createCA } from '../../shared/pki/x509.js';
import { freePort } from '../harness/net.js';
import { tempDir } from '../harness/tmp.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const builtBinary = join(repo, 'dist/bin/mooring');
const PROGRAMS = ['mooring', 'nodeup', 'etcd-manager', 'protokube'] as const;
const ETCD = '/usr/bin/etcd';

/** Builds dist/bin/mooring when it is missing; the build's output when that fails. */
async function buildFailure(): Promise<string | undefined> {
  if (existsSync(builtBinary)) return undefined;
  console.log('# dist/bin/mooring is missing: running node scripts/build-binaries.mjs');
  const build = await execa(process.execPath, [join(repo, 'scripts/build-binaries.mjs')], { cwd: repo, reject: false, all: true });
  if (build.exitCode === 0 && existsSync(builtBinary)) return undefined;
  return `exit code ${String(build.exitCode)}${existsSync(builtBinary) ? '' : ', no dist/bin/mooring'}:\n${build.all ?? ''}`;
}

function hasNodeModulesAbove(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules'))) return true;
    if (dirname(d) === d) return false;
  }
}

// A failed build is a failure of this file, never a skip: nothing below can run without the binary.
const failedBuild = await buildFailure();
if (failedBuild !== undefined) throw new Error(`cannot build dist/bin/mooring (node scripts/build-binaries.mjs), ${failedBuild}`);

interface RunResult {
  exitCode?: number;
  stdout: string;
  stderr: string;
}

/** The binary alone in a fresh temp dir, with a link per program and one for the dispatcher. */
function isolatedBinary(t: Test): { dir: string; run: (name: string, args: string[]) => Promise<RunResult> } {
  const dir = tempDir(t, 'mooring-bin-');
  mkdirSync(join(dir, 'bin'));
  copyFileSync(builtBinary, join(dir, 'bin/mooring'));
  for (const name of [...PROGRAMS.filter((p) => p !== 'mooring'), 'mooring-agents']) symlinkSync('mooring', join(dir, 'bin', name));
  const run = (name: string, args: string[]) =>
    execa(join(dir, 'bin', name), args, { cwd: dir, reject: false, extendEnv: false, env: { PATH: '/usr/bin:/bin', HOME: dir } });
  return { dir, run };
}

t.test('every program answers --version and --help as itself, with no node_modules around', async (t) => {
  const { dir, run } = isolatedBinary(t);
  t.notOk(hasNodeModulesAbove(dir), `no node_modules above ${dir}`);
  for (const name of PROGRAMS) {
    const version = await run(name, ['--version']);
    t.equal(version.exitCode, 0, `${name} --version exits 0`, { stderr: version.stderr });
    t.match(version.stdout, VERSION, `${name} --version prints ${VERSION}`);
    const help = await run(name, ['--help']);
    t.equal(help.exitCode, 0, `${name} --help exits 0`, { stderr: help.stderr });
    t.match(help.stdout, new RegExp(`^Usage: ${name} `, 'm'), `${name} --help names ${name}`);
    for (const other of PROGRAMS.filter((p) => p !== name)) t.notMatch(help.stdout, `Usage: ${other} `, `${name} help is not ${other}'s`);
  }
  // A missing boot config is a usage error that names the file.
  const nodeup = await run('nodeup', ['--conf=/nonexistent/mooring/boot.yaml', '--dry-run']);
  t.equal(nodeup.exitCode, 2, 'nodeup without a readable boot config exits 2');
  t.match(nodeup.stderr, /^nodeup: error: read boot config \/nonexistent\/mooring\/boot\.yaml: ENOENT/);
});

t.test('the dispatcher name takes the program as first argument', async (t) => {
  const { run } = isolatedBinary(t);
  const help = await run('mooring-agents', ['etcd-manager', '--help']);
  t.equal(help.exitCode, 0);
  t.match(help.stdout, /^Usage: etcd-manager /m);
  const unknown = await run('mooring-agents', ['kubelet']);
  t.equal(unknown.exitCode, 2);
  t.match(unknown.stderr, 'unknown program "kubelet"');
});

/** A one-member etcd on 127.0.0.1 with random ports, stopped by PID at teardown. */
async function startEtcd(t: Test): Promise<string> {
  // Own temp dir (not the harness's) so teardown stops etcd before deleting its data.
  const dir = mkdtempSync(join(tmpdir(), 'mooring-etcd-'));
  const [clientPort, peerPort] = [await freePort('127.0.0.1'), await freePort('127.0.0.1')];
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const etcd: ChildProcess = spawn(
    ETCD,
    [
      '--name=selftest',
      `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=selftest=${peer}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  etcd.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  t.teardown(async () => {
    if (etcd.pid !== undefined && etcd.exitCode === null) {
      const exited = new Promise((resolve) => etcd.once('exit', resolve));
      process.kill(etcd.pid, 'SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  for (let waited = 0; waited < 20_000; waited += 100) {
    if (etcd.exitCode !== null) throw new Error(`etcd exited ${etcd.exitCode}:\n${log}`);
    const healthy = await fetch(`${client}/health`).then((r) => r.ok, () => false);
    if (healthy) return client;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`etcd did not become healthy in 20 s:\n${log}`);
}

const skipEtcd = existsSync(ETCD) ? false : `${ETCD} is not installed (apt-get install etcd-server)`;

t.test('etcd3 inside the binary loads its embedded protos and round-trips a key', { skip: skipEtcd }, async (t) => {
  const { run } = isolatedBinary(t);
  const offline = await run('mooring-agents', ['__selftest-etcd3']);
  t.equal(offline.exitCode, 0, 'protos load with no endpoint', { stderr: offline.stderr });
  t.same(JSON.parse(offline.stdout), { protosLoaded: true });

  const endpoint = await startEtcd(t);
  const online = await run('mooring-agents', ['__selftest-etcd3', endpoint]);
  t.equal(online.exitCode, 0, 'put/get/delete against real etcd', { stderr: online.stderr });
  t.same(JSON.parse(online.stdout), { protosLoaded: true, endpoint, roundTrip: true });
});

t.test('the certificate helper issues in a child of the binary, as the manager asks it to', async (t) => {
  // The binary's file is named mooring (the mooring CLI's name): argv0 must still reach the helper.
  const { dir, run } = isolatedBinary(t);
  const issue = issueInChild(join(dir, 'bin/mooring'));
  const rsaCA = await createCA('helper-rsa-ca', 30);
  const ecCA = await createCA('helper-ec-ca', 30, { keyAlgorithm: 'ECDSA-P256' });
  const issued = await issue([
    { ca: rsaCA, request: { commonName: 'etcd-a', dnsNames: ['etcd-a.internal', 'localhost'], ipAddresses: ['127.0.0.1', '2001:db8::1'], usage: 'peer', validityDays: 10 } },
    { ca: ecCA, request: { commonName: 'etcd-manager-a', usage: 'client', validityDays: 10, keyAlgorithm: 'ECDSA-P256' } },
  ]);
  t.equal(issued.length, 2, 'one pair per item, in order');
  const peer = inspectCertificate(issued[0].certPEM);
  t.same({ cn: peer.subjectCN, dns: peer.dnsNames, ips: peer.ipAddresses }, { cn: 'etcd-a', dns: ['etcd-a.internal', 'localhost'], ips: ['127.0.0.1', '2001:db8::1'] });
  t.ok(await verifyIssuedBy(issued[0].certPEM, rsaCA.certPEM), 'signed by the RSA CA');
  t.equal(inspectCertificate(issued[1].certPEM).subjectCN, 'etcd-manager-a');
  t.ok(await verifyIssuedBy(issued[1].certPEM, ecCA.certPEM), 'signed by the ECDSA CA');
  t.match(issued[1].keyPEM, /^-----BEGIN PRIVATE KEY-----/, 'the key comes back as PKCS#8');
  t.same(await issue([]), [], 'nothing to issue runs no child');

  // A CA key the helper cannot read: a clear error naming the helper, no output taken as certificates.
  await t.rejects(issue([{ ca: { certPEM: rsaCA.certPEM, keyPEM: 'not a key' }, request: { commonName: 'x', usage: 'server', validityDays: 1 } }]), /^issuing 1 certificate\(s\) in a child \(.*__issue-certificates\) failed: \S/);
  // Input that is not JSON: JSON.parse's own message would quote it, CA key and all.
  const garbled = await execa(join(dir, 'bin/mooring-agents'), ['__issue-certificates'], { input: 'PRIVATE KEY SECRET', reject: false, extendEnv: false, env: { PATH: '/usr/bin:/bin' } });
  t.equal(garbled.exitCode, 1, 'input that is not JSON fails');
  t.match(garbled.stderr, /stdin is not JSON/);
  t.notMatch(garbled.stderr, /SECRET|PRIVATE KEY/, 'and the message does not quote the input');
  const withArgs = await run('mooring-agents', ['__issue-certificates', 'extra']);
  t.equal(withArgs.exitCode, 2, 'arguments are a usage error');
  t.match(withArgs.stderr, /takes no arguments/);
});
