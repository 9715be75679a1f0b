// nodeup's command lines and environment files, as systemd itself reads them.
// A Debian 12 instance (make image) is booted with systemd-nspawn (root file
// system as a throwaway overlay, private network with loopback only), and
// systemd starts units nodeup wrote whose programs are a recorder: it keeps the
// argv and environment systemd gave it. Every value must arrive exactly as it
// was, as one argument or one variable: hostile node labels, names and URLs
// that slipped past validation, and a corpus of strings that mean something to
// systemd's parsers ($, %, quotes, backslashes, ';', newlines, control bytes).
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import type { NodeConfig } from '../../shared/api/nodeconfig.js';
import type { Cluster } from '../../shared/api/types.js';
import type { ModelInput } from '../../agents/nodeup/model/context.js';
import { containerdTasks } from '../../agents/nodeup/model/containerd.js';
import { etcdTasks } from '../../agents/nodeup/model/etcd.js';
import { kubeletTasks } from '../../agents/nodeup/model/kubelet.js';
import { protokubeTasks } from '../../agents/nodeup/model/protokube.js';
import { environmentFile, envRef, execCommand } from '../../agents/nodeup/model/systemd-syntax.js';
import type { Task } from '../../agents/nodeup/engine/task.js';
import { FileTask } from '../../agents/nodeup/tasks/file.js';
import { ServiceTask, unitPath } from '../../agents/nodeup/tasks/service.js';
import { tempDir } from '../harness/tmp.js';

const IMAGE = process.env.MOORING_IMAGE_DIR ?? '/var/cache/mooring/debian12-rootfs';

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (systemd-nspawn, nsenter)';
  for (const tool of ['systemd-nspawn', 'nsenter']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (make image installs systemd-container)`;
    }
  }
  if (!existsSync(join(IMAGE, '.mooring-image'))) return `no rootfs at ${IMAGE} (run make image)`;
  return false;
}
const skip = skipReason();
if (skip) console.log(`# skipping systemd syntax e2e: ${skip}`);

/** Strings that mean something to systemd's command-line or environment-file parser, or to a shell. */
const CORPUS = [
  'plain', 'two words', '  padded  ', '', 'a --authorization-mode=AlwaysAllow --anonymous-auth=true',
  '$HOME', '${HOME}', '$$', '$', '%n', '%%', '100%', '%', '"double"', "'single'", 'back\\slash', 'trailing\\', '\\',
  '`id`', '$(id)', ';', '; echo x', '&&', '|', '#not-a-comment', 'x=y', 'KEY=VALUE', 'line1\nline2', '\n', 'tab\there',
  'ünïcödé ✓', '\\x41', '\\n', 'a"b\'c\\d$e%f`g', '-', '--', '@x', '+x', '!x', ':x', 'ends with newline\n',
];
/** Only in arguments: an environment file cannot carry these (systemd drops such an assignment). */
const ARGV_ONLY = ['\x01bell\x07', 'carriage\rreturn', '\x1b[31mred'];

const INJECTION = 'a --authorization-mode=AlwaysAllow --anonymous-auth=true';
const HOSTILE_NAME = 'api.internal --x=1 $HOME %n';
const HOSTILE_STORE = 's3://b/x ETCD_MANAGER_INSECURE=true\nETCD_MANAGER_EVIL=1';
const HOSTILE_CONTAINERD = '1.7.24$HOME%n';

function hostileNodeConfig(): NodeConfig {
  return {
    apiVersion: 'mooring.dev/v1alpha1', kind: 'NodeConfig',
    clusterName: 'x.example.com --evil', instanceGroupName: 'control-plane-a', instanceGroupRole: 'ControlPlane', cloudProvider: 'local',
    kubernetesVersion: '1.30.5', configBase: 'file:///state $HOME "q" `id`', containerdVersion: HOSTILE_CONTAINERD,
    serviceClusterIPRange: '100.64.0.0/13', podCIDR: '100.96.0.0/11', clusterDNS: '100.64.0.10', clusterDomain: 'cluster.local',
    masterInternalName: HOSTILE_NAME, keypairIDs: {},
    etcdClusters: [{
      name: 'main', version: '3.4.23', clientPort: 4001, peerPort: 2380, grpcPort: 3996, quarantineClientPort: 3994,
      backupStore: HOSTILE_STORE, backupRetentionDays: 90, memberNames: ['a'], memberName: 'a',
    }],
    nodeLabels: { workload: INJECTION, quoting: `$HOME \${HOME} %n "d" 's' \\ \`id\` ;`, empty: '' },
    taints: [],
    // Spec values that reach kubelet flags (validation would refuse neither: a host name is free text).
    kubelet: { hostnameOverride: `${INJECTION} $HOME %n "q"` },
    assets: { amd64: [`${'0'.repeat(64)}@http://127.0.0.1/containerd-${HOSTILE_CONTAINERD}-linux-amd64.tar.gz`], arm64: [] },
    sysctls: {},
  };
}

/** nodeup's model with values validation would have refused; only unit and env file texts are used. */
function hostileModel(): Task[] {
  const refuse = async (): Promise<never> => {
    throw new Error('not used');
  };
  const input = {
    boot: {}, nodeConfig: hostileNodeConfig(), cluster: { spec: {} } as Cluster,
    host: { id: 'debian', versionID: '12', family: 'debian', arch: 'amd64', source: 'test' },
    ca: refuse, keypairs: refuse, caCerts: {},
  } as unknown as ModelInput;
  return [...kubeletTasks(input), ...protokubeTasks(input), ...etcdTasks(input), ...containerdTasks(input)];
}

const RECORDER = `#!/bin/sh
# Keeps how systemd started this process: argv (after /bin/sh) and environment, by unit name.
unit=$(sed -n 's|^0::.*/||p' /proc/self/cgroup)
cat /proc/$$/cmdline > "/srv/q/out/.$unit.argv" && mv "/srv/q/out/.$unit.argv" "/srv/q/out/$unit.argv"
cat /proc/$$/environ > "/srv/q/out/.$unit.env" && mv "/srv/q/out/.$unit.env" "/srv/q/out/$unit.env"
if [ -n "$NOTIFY_SOCKET" ]; then systemd-notify --pid=$$ --ready; fi
exec sleep infinity
`;

function stopProcess(child: ChildProcess, signal: NodeJS.Signals, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('systemd reads what nodeup writes as nodeup meant it', { skip, timeout: 240_000 }, async (t) => {
  const dir = tempDir(t, 'systemd-syntax-');
  const files = join(dir, 'files');
  const put = (path: string, content: string, mode = 0o644) => {
    const at = join(files, path);
    mkdirSync(dirname(at), { recursive: true });
    writeFileSync(at, content);
    chmodSync(at, mode);
  };
  mkdirSync(join(dir, 'out'));

  // The corpus, as arguments (argv[0] too) and as variables passed one argument each.
  const recorderDir = '/srv/q/bin dir $HOME %n';
  put(join('srv/q-bin', 'rec'), RECORDER, 0o755);
  const argvWords = [...CORPUS, ...ARGV_ONLY];
  const names = CORPUS.map((_, i) => `V${i}`);
  put('etc/systemd/system/corpus-exec.service', `[Service]\nExecStart=${execCommand([`${recorderDir}/rec`, ...argvWords])}\n`);
  put('etc/mooring-test/corpus.env', environmentFile('corpus', Object.fromEntries(CORPUS.map((v, i) => [names[i], v]))));
  put('etc/systemd/system/corpus-env.service', `[Service]\nEnvironmentFile=/etc/mooring-test/corpus.env\nExecStart=${execCommand(['/srv/q-bin/rec', ...names.map(envRef)])}\n`);

  // What nodeup writes for kubelet, protokube, etcd-manager@main and containerd, with hostile values.
  const units: string[] = [];
  for (const task of hostileModel()) {
    if (task instanceof FileTask && !task.spec.path.endsWith('.yaml') && typeof task.spec.content === 'string' && /^\/etc\/(sysconfig|mooring)\//.test(task.spec.path)) {
      put(task.spec.path.slice(1), task.spec.content);
    }
    if (task instanceof ServiceTask && task.spec.unit !== undefined) put(unitPath(task.spec.name).slice(1), task.spec.unit);
    if (task instanceof ServiceTask && (task.spec.running ?? true)) units.push(task.spec.name);
  }
  t.same(units.sort(), ['containerd.service', 'etcd-manager@main.service', 'kubelet.service'] /* protokube's unit is written but not started until protokube runs (nodeup model) */);
  for (const program of ['usr/local/bin/kubelet', 'opt/mooring/bin/protokube', 'opt/mooring/bin/etcd-manager', `opt/containerd-${HOSTILE_CONTAINERD}/bin/containerd`]) {
    put(program, RECORDER, 0o755);
  }

  const machine = `mooring-sq-${process.pid}`;
  const nspawn = spawn('systemd-nspawn', [
    '--quiet', '--register=no', '--keep-unit', '-b', '-D', IMAGE, '--volatile=overlay', '--private-network',
    `--bind=${dir}:/srv/q`, `--bind-ro=${join(files, 'srv/q-bin')}:${recorderDir}`, '--console=pipe', `--machine=${machine}`,
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  let console_ = '';
  nspawn.stdout?.on('data', (c: Buffer) => void (console_ += c.toString()));
  nspawn.stderr?.on('data', (c: Buffer) => void (console_ += c.toString()));
  t.teardown(() => stopProcess(nspawn, 'SIGTERM', 30_000));

  let leader = '';
  for (let i = 0; i < 100 && !leader; i++) {
    await sleep(200);
    if (nspawn.exitCode !== null) break;
    leader = (await execa('ps', ['--ppid', String(nspawn.pid), '-o', 'pid='], { reject: false })).stdout.trim().split('\n')[0]?.trim() ?? '';
  }
  t.ok(leader, 'the instance booted');
  if (!leader) return void t.comment(console_);
  const inside = (...args: string[]) => execa('nsenter', ['-t', leader, '-a', ...args], { reject: false });
  let state = '';
  for (let i = 0; i < 60 && !/^(running|degraded)$/.test(state); i++) {
    state = (await inside('systemctl', 'is-system-running', '--wait')).stdout.trim();
    if (!/^(running|degraded)$/.test(state)) await sleep(500);
  }
  t.match(state, /^(running|degraded)$/, `systemd is up inside (${state})`);

  const install = await inside('sh', '-c', 'cp -a /srv/q/files/. / && systemctl daemon-reload');
  t.equal(install.exitCode, 0, `units installed: ${install.stderr}`);
  const verify = await inside('systemd-analyze', 'verify', '--man=no', ...units.map((u) => `/etc/systemd/system/${u.replace('@main', '@')}`), '/etc/systemd/system/corpus-exec.service', '/etc/systemd/system/corpus-env.service');
  t.notMatch(verify.stderr, /(corpus|kubelet|protokube|etcd-manager|containerd)[^\n]*(Ignoring|Unknown|invalid|Invalid|bad|unbalanced|Failed)/, `systemd-analyze verify: no complaint about our units (${verify.stderr.trim().slice(0, 600)})`);
  const start = await inside('systemctl', 'start', '--no-block', 'corpus-exec.service', 'corpus-env.service', ...units);
  t.equal(start.exitCode, 0, `units started: ${start.stderr}`);

  const read = async (unit: string): Promise<{ argv: string[]; env: Map<string, string> } | undefined> => {
    const argvFile = join(dir, 'out', `${unit}.argv`);
    const envFile = join(dir, 'out', `${unit}.env`);
    for (let i = 0; i < 150 && !(existsSync(argvFile) && existsSync(envFile)); i++) await sleep(200);
    if (!existsSync(argvFile) || !existsSync(envFile)) return undefined;
    // cmdline: /bin/sh, the script as systemd named it, its arguments; each NUL-terminated.
    const argv = readFileSync(argvFile, 'utf8').split('\0').slice(1, -1);
    const env = new Map<string, string>();
    for (const entry of readFileSync(envFile, 'utf8').split('\0').slice(0, -1)) {
      const eq = entry.indexOf('=');
      env.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
    return { argv, env };
  };

  const exec = await read('corpus-exec.service');
  t.same(exec?.argv, [`${recorderDir}/rec`, ...argvWords], 'ExecStart: every word is one argument, byte for byte, argv[0] included');
  const env = await read('corpus-env.service');
  t.same(env?.argv, ['/srv/q-bin/rec', ...CORPUS], 'EnvironmentFile + ${NAME}: every value is one argument, byte for byte');
  t.same(names.map((n) => env?.env.get(n)), CORPUS, 'EnvironmentFile: every variable holds its value exactly');

  const labels = Object.entries(hostileNodeConfig().nodeLabels).map(([k, v]) => `${k}=${v}`).join(',');
  const kubelet = await read('kubelet.service');
  t.same(kubelet?.argv, [
    '/usr/local/bin/kubelet',
    `--hostname-override=${INJECTION} $HOME %n "q"`,
    '--kubeconfig=/var/lib/kubelet/kubeconfig',
    '--runtime-request-timeout=15m0s',
    '--config=/var/lib/kubelet/config.yaml',
    `--node-labels=${labels}`,
  ], 'kubelet: the label value that carries flags stays inside --node-labels, a spec value inside its own flag');
  t.notOk(kubelet?.argv.some((a) => a.startsWith('--authorization-mode') || a.startsWith('--anonymous-auth')), 'no injected kubelet flag');

  const protokube = await read('protokube.service');
  t.same(protokube?.argv, ['/opt/mooring/bin/protokube']);
  t.equal(protokube?.env.get('PROTOKUBE_CLUSTER'), 'x.example.com --evil');
  t.equal(protokube?.env.get('PROTOKUBE_CONFIG_BASE'), 'file:///state $HOME "q" `id`');
  t.equal(protokube?.env.get('PROTOKUBE_MASTER_INTERNAL_NAME'), HOSTILE_NAME);

  const etcd = await read('etcd-manager@main.service');
  t.same(etcd?.argv, ['/opt/mooring/bin/etcd-manager']);
  t.equal(etcd?.env.get('ETCD_MANAGER_BACKUP_STORE'), HOSTILE_STORE, 'the backup store, line break and all, is one variable');
  t.equal(etcd?.env.get('ETCD_MANAGER_DNS_SUFFIX'), 'x.example.com --evil');
  t.notOk(etcd?.env.has('ETCD_MANAGER_INSECURE') || etcd?.env.has('ETCD_MANAGER_EVIL'), 'no injected etcd-manager setting');

  const containerd = await read('containerd.service');
  t.same(containerd?.argv, [`/opt/containerd-${HOSTILE_CONTAINERD}/bin/containerd`, '-c', '/etc/containerd/config.toml', '--address=/run/containerd/containerd.sock'],
    'containerd: no $ expansion or % specifier in the program path');
  if (!exec || !env || !kubelet || !protokube || !etcd || !containerd) {
    t.comment((await inside('journalctl', '--no-pager', '-n', '80')).stdout);
  }
});
