// A local cloud for end-to-end tests: the built single binary (`mooring
// local-cloud up` in a folder of the test's own), the environment that reaches
// its store, helpers to run `mooring` and commands inside instances, and the
// list of every kernel object the cloud holds (processes, mounts, loop devices,
// namespaces, nspawn leftovers) for the cleanup checks.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Result } from 'execa';
import { CloudLayout } from '../../agents/mooring/cloud/local/plan.js';
import { isAlive, recordOf, signalRecorded, type ProcessRecord } from '../../agents/mooring/cloud/local/procs.js';
import { loopDevicesRefused } from '../../shared/volumes/blockdev.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const BINARY = join(repo, 'dist/bin/mooring');
export const IMAGE = process.env.MOORING_IMAGE_DIR ?? '/var/cache/mooring/debian12-rootfs';

/** Why the local cloud cannot run here, or false. */
export async function localCloudSkipReason(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, overlay mounts, systemd-nspawn)';
  for (const tool of ['systemd-nspawn', 'nsenter', 'ip', 'losetup', 'mount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (make setup, make image)`;
    }
  }
  if (!existsSync(join(IMAGE, '.mooring-image'))) return `no rootfs at ${IMAGE} (run make image)`;
  const stamp = readFileSync(join(IMAGE, '.mooring-image'), 'utf8');
  if (!/\bcurl\b/.test(stamp)) return `the image at ${IMAGE} has no curl (user-data needs it): run make image again`;
  if (!existsSync(BINARY)) return 'dist/bin/mooring is not built (make build)';
  const loops = await loopDevicesRefused();
  if (loops) return `loop devices are refused here: ${loops}`;
  return false;
}

// Watches the test process (PID and start time) and, once it is gone, takes the cloud down if it is still
// there. The cloud's daemons and instances are detached processes that outlive the test process: when tap
// kills a file that ran over its time (SIGALRM, SIGKILL a second later) no teardown runs, and this is what
// still releases every process, mount, loop device and namespace. Bounded: `timeout` on the cleanup.
const REAPER = `
pid=$1 start=$2 bin=$3 dir=$4
alive() { local s; s=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1; s=\${s##*) }; set -- $s; [[ \${20} == "$start" ]]; }
while alive; do sleep 2; done
if [[ -e $dir ]]; then timeout 300 "$bin" local-cloud down --purge --local-cloud "$dir" && rm -rf "$dir"; fi
`;

function startReaper(dir: string): ProcessRecord | undefined {
  const self = recordOf(process.pid);
  if (!self) return undefined;
  const child = spawn('bash', ['-c', REAPER, 'local-cloud-reaper', String(self.pid), self.startTime, BINARY, dir], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  child.unref();
  return child.pid === undefined ? undefined : recordOf(child.pid);
}

/**
 * Takes the cloud in `dir` down and deletes the folder (its overlays are mounted inside it, so only after),
 * then stops the reaper. Returns the failure to report, if any; the reaper is then left to try again.
 */
export async function stopCloud(dir: string, reaper: ProcessRecord | undefined): Promise<string | undefined> {
  const down = await execa(BINARY, ['local-cloud', 'down', '--purge', '--local-cloud', dir], { reject: false, timeout: 5 * 60_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false });
  if (down.exitCode !== 0) return `local-cloud down (${down.exitCode ?? down.signal}): ${String(down.stderr)}`;
  rmSync(dir, { recursive: true, force: true });
  signalRecorded(reaper, 'SIGTERM');
  return undefined;
}

export interface CloudHandle {
  dir: string;
  /** The watcher that takes the cloud down if this process dies first (see startReaper). */
  reaper?: ProcessRecord;
  layout: CloudLayout;
  env: Record<string, string>;
  /** `mooring ARGS` with the cloud's environment; never throws. */
  mooring(...args: string[]): Promise<Result>;
  /** A command inside an instance (`mooring ssh CLUSTER ID -- ...`). */
  inside(cluster: string, id: string, script: string): Promise<Result>;
}

export async function startCloud(dir: string): Promise<CloudHandle> {
  const reaper = startReaper(dir);
  const base = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: dir, MOORING_LOCAL_CLOUD: dir, MOORING_IMAGE_DIR: IMAGE };
  const up = await execa(BINARY, ['local-cloud', 'up'], { reject: false, extendEnv: false, env: base });
  if (up.exitCode !== 0) {
    await stopCloud(dir, reaper);
    throw new Error(`mooring local-cloud up failed (${up.exitCode}): ${up.stderr}`);
  }
  const env: Record<string, string> = { ...base };
  for (const m of String(up.stdout).matchAll(/^export ([A-Z0-9_]+)=(.*)$/gm)) env[m[1]] = m[2];
  const mooring = (...args: string[]) => execa(BINARY, args, { reject: false, extendEnv: false, env, timeout: 15 * 60_000 });
  return {
    dir,
    reaper,
    layout: new CloudLayout(dir),
    env,
    mooring,
    inside: (cluster, id, script) => mooring('ssh', cluster, id, '--', 'bash', '-c', script),
  };
}

export interface InstanceJSON {
  id: string;
  instanceGroup: string;
  zone: string;
  address: string;
  state: string;
  boots: number;
  netns: string;
  pid?: number;
}

export async function instances(cloud: CloudHandle, cluster: string): Promise<InstanceJSON[]> {
  const r = await cloud.mooring('get', 'instances', cluster, '-o', 'json');
  if (r.exitCode !== 0) throw new Error(`get instances: ${r.stderr}`);
  return (JSON.parse(String(r.stdout)) as { items: InstanceJSON[] }).items;
}

/** etcdctl inside an instance, over TLS with the API server's etcd client certificate, against its own member. */
export function etcdctl(port: number, args: string): string {
  return `cd /srv/kubernetes/kube-apiserver && ETCDCTL_API=3 /opt/etcd/3.4.23/etcdctl --endpoints "https://$(hostname -I | cut -d' ' -f1):${port}" --cacert etcd-ca.crt --cert etcd-client.crt --key etcd-client.key --command-timeout=10s ${args}`;
}

/** Everything of the cloud the kernel holds, as strings a test can list and compare. */
export interface Leftovers {
  processes: string[];
  mounts: string[];
  loopDevices: string[];
  namespaces: string[];
  nspawn: string[];
}

function recordedProcesses(layout: CloudLayout): Array<{ what: string; record: ProcessRecord }> {
  const out: Array<{ what: string; record: ProcessRecord }> = [];
  const read = <T>(path: string): T | undefined => (existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined);
  const cloud = read<{ servers?: ProcessRecord; forwarder?: ProcessRecord }>(layout.stateFile);
  if (cloud?.servers) out.push({ what: 'servers', record: cloud.servers });
  if (cloud?.forwarder) out.push({ what: 'forwarder', record: cloud.forwarder });
  if (!existsSync(layout.clustersDir)) return out;
  for (const cluster of readdirSync(layout.clustersDir)) {
    const dir = layout.instancesDir(cluster);
    if (!existsSync(dir)) continue;
    for (const id of readdirSync(dir)) {
      const p = read<Record<string, ProcessRecord | number>>(join(dir, id, 'processes.json')) ?? {};
      for (const key of ['supervisor', 'nspawn', 'leader']) {
        const record = p[key];
        if (typeof record === 'object') out.push({ what: `${id} ${key}`, record });
      }
    }
  }
  return out;
}

/** Files the cloud's loop devices may be backed by: every image of every cluster, by device and inode. */
export function imageInodes(layout: CloudLayout): Set<string> {
  const inodes = new Set<string>();
  if (!existsSync(layout.clustersDir)) return inodes;
  for (const cluster of readdirSync(layout.clustersDir)) {
    const dir = layout.volumeDir(cluster);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.img'))) {
      const s = statSync(join(dir, f));
      // losetup's BACK-MAJ:MIN and BACK-INO of the backing file.
      const major = Number((BigInt(s.dev) >> 8n) & 0xfffn);
      const minor = Number((BigInt(s.dev) & 0xffn) | ((BigInt(s.dev) >> 12n) & ~0xffn));
      inodes.add(`${major}:${minor} ${s.ino}`);
    }
  }
  return inodes;
}

/**
 * What is left of the cloud: recorded processes still alive (and known ones
 * passed in), mounts below its folder, loop devices backed by its images
 * (by inode: inside an instance the backing path is the instance's), its
 * namespaces, and nspawn's files for its instances.
 */
export async function leftovers(
  layout: CloudLayout,
  known: { processes: Array<{ what: string; record: ProcessRecord }>; inodes: Set<string>; instanceIds: string[] },
  options: { withDaemons: boolean } = { withDaemons: true },
): Promise<Leftovers> {
  const daemon = (what: string) => what === 'servers' || what === 'forwarder';
  const seen = new Set<number>();
  const processes = [...known.processes, ...recordedProcesses(layout)]
    .filter((p) => (options.withDaemons || !daemon(p.what)) && isAlive(p.record) && !seen.has(p.record.pid) && seen.add(p.record.pid))
    .map((p) => `${p.what} pid ${p.record.pid}`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(layout.dir)).map((l) => l.split(' ')[4] ?? '');
  const listed = (await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-MAJ:MIN,BACK-INO,BACK-FILE'], { reject: false })).stdout;
  type Loop = { name: string; 'back-maj:min'?: string; 'back-ino'?: string | number; 'back-file'?: string };
  const loops = (listed.trim() === '' ? [] : (JSON.parse(listed) as { loopdevices: Loop[] }).loopdevices)
    .filter((l) => known.inodes.has(`${String(l['back-maj:min'] ?? '').trim()} ${String(l['back-ino'] ?? '').trim()}`) || (l['back-file'] ?? '').startsWith(layout.dir))
    .map((l) => `${l.name} ${l['back-file'] ?? ''}`);
  const namespaces = (await execa('ip', ['netns', 'list'], { reject: false })).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`mlc-${layout.id}-`));
  const nspawn = known.instanceIds.filter((id) => existsSync(`/run/systemd/nspawn/propagate/${id}`)).map((id) => `/run/systemd/nspawn/propagate/${id}`);
  return { processes, mounts, loopDevices: loops, namespaces, nspawn };
}

export { recordedProcesses };
