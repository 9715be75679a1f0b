// One instance: launch (namespace, veth, overlay, AMI layer, supervisor),
// supervise (systemd-nspawn, booted again when it exits 133 = the instance
// rebooted itself, as systemd-nspawn@.service does) and terminate (release
// everything it had, in an order that also works after a crash half way).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, open, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Logger } from '../../../../shared/log.js';
import { detachLoopDevice, findLoopDevice, mountedAt } from '../../../../shared/volumes/blockdev.js';
import { listLocalVolumes, localPaths, releaseClaimsOf } from '../../../../shared/volumes/local-images.js';
import { writeLayer } from './image-layer.js';
import { connectInstance, deleteNetns } from './net.js';
import { CloudLayout, INSTANCE_VOLUME_DIR, instanceAddress, instancePaths, vethName } from './plan.js';
import { childOf, isAlive, recordOf, signalRecorded, spawnDetached, stopRecorded, waitGone, type ProcessRecord } from './procs.js';
import { readJSON, readProcesses, writeJSON, type InstanceProcesses, type InstanceRecord } from './records.js';

export type InstanceState = 'pending' | 'running' | 'stopped';

export function newInstanceId(): string {
  return `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
}

/** Reserves the lowest free instance address (an O_EXCL file per address, so two launches never share one). */
async function reserveAddress(layout: CloudLayout, id: string): Promise<string> {
  const dir = join(layout.runDir, 'addresses');
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < 60_000; i++) {
    const address = instanceAddress(i);
    try {
      const handle = await open(join(dir, address), 'wx', 0o600);
      await handle.writeFile(`${id}\n`);
      await handle.close();
      return address;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error('the local cloud has no free instance address left');
}

async function releaseAddress(layout: CloudLayout, address: string): Promise<void> {
  await unlink(join(layout.runDir, 'addresses', address)).catch(() => undefined);
}

async function run(cmd: string, args: string[]): Promise<void> {
  const result = await execa(cmd, args, { reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${String(result.stderr).trim() || `exit ${result.exitCode}`}`);
}

async function mountOverlay(imageDir: string, paths: ReturnType<typeof instancePaths>): Promise<void> {
  for (const dir of [paths.upper, paths.work, paths.root]) await mkdir(dir, { recursive: true });
  if (await mountedAt(paths.root)) return;
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${imageDir},upperdir=${paths.upper},workdir=${paths.work}`, paths.root]);
}

export interface LaunchSpec {
  cluster: string;
  instanceGroup: string;
  role: string;
  zone: string;
  /** What the metadata service hands out as /latest/user-data, byte for byte. */
  userData: Buffer;
}

export async function launchInstance(layout: CloudLayout, spec: LaunchSpec, options: { imageDir: string; binary: string; log: Logger }): Promise<InstanceRecord> {
  const id = newInstanceId();
  const dir = layout.instanceDir(spec.cluster, id);
  const paths = instancePaths(dir);
  const address = await reserveAddress(layout, id);
  const record: InstanceRecord = {
    id,
    cluster: spec.cluster,
    instanceGroup: spec.instanceGroup,
    role: spec.role,
    zone: spec.zone,
    address,
    netns: layout.instanceNetns(id),
    veth: vethName(id),
    imageDir: options.imageDir,
    createdAt: new Date().toISOString(),
  };
  // Intent first: from here on, cleanup can find everything this launch makes.
  await writeJSON(paths.record, record);
  await writeFile(paths.userData, spec.userData, { mode: 0o600 });
  await connectInstance(layout.bridgeNetns, record.netns, record.veth, address);
  await mountOverlay(options.imageDir, paths);
  await writeLayer(paths.root, id);
  const rootStat = await stat(paths.root);
  record.nspawnLock = `/run/systemd/nspawn/locks/inode-${rootStat.dev}:${rootStat.ino}`;
  await writeJSON(paths.record, record);
  await mkdir(layout.volumeDir(spec.cluster), { recursive: true });
  const supervisor = spawnDetached(options.binary, ['local-cloud', '_instance', '--local-cloud', layout.dir, spec.cluster, id], {
    logFile: join(dir, 'supervisor.log'),
    env: { ...process.env, MOORING_LOG_FORMAT: 'json' },
  });
  // The supervisor records itself (and nspawn, and the instance's PID 1) in processes.json.
  for (let i = 0; !(await readProcesses(dir)).supervisor; i++) {
    if (i >= 100 || !isAlive(supervisor)) {
      signalRecorded(supervisor, 'SIGKILL');
      throw new Error(`instance ${id}: its supervisor did not start (see ${join(dir, 'supervisor.log')})`);
    }
    await sleep(50);
  }
  options.log.info('instance launched', { event: 'instance-launched', instance: id, cluster: spec.cluster, instanceGroup: spec.instanceGroup, address });
  return record;
}

export async function instanceState(dir: string): Promise<{ state: InstanceState; processes: InstanceProcesses }> {
  const processes = await readProcesses(dir);
  const state: InstanceState = isAlive(processes.leader) ? 'running' : isAlive(processes.supervisor) ? 'pending' : 'stopped';
  return { state, processes };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The supervisor's body: boots the instance with systemd-nspawn and boots it
 * again whenever it exits with 133 (a reboot from inside). SIGTERM shuts the
 * instance down cleanly (nspawn turns it into a poweroff), SIGKILL to its
 * PID 1 after the grace period.
 */
export async function superviseInstance(layout: CloudLayout, cluster: string, id: string, log: Logger): Promise<number> {
  const dir = layout.instanceDir(cluster, id);
  const paths = instancePaths(dir);
  const record = await readJSON<InstanceRecord>(paths.record);
  if (!record) throw new Error(`no instance ${id} in cluster ${cluster} (${paths.record})`);
  let processes: InstanceProcesses = { ...(await readProcesses(dir)), supervisor: recordOf(process.pid) };
  const save = () => writeJSON(paths.processes, processes);
  let stopping = false;
  let current: ReturnType<typeof spawn> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info('instance shutting down', { event: 'instance-stopping', instance: id, signal });
    current?.kill('SIGTERM');
    const leader = processes.leader;
    setTimeout(() => signalRecorded(leader, 'SIGKILL'), 30_000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  let exit: { code: number | null; signal: string | null } = { code: null, signal: null };
  while (!stopping) {
    const consoleFd = openSync(paths.console, 'a', 0o600);
    const child = spawn('systemd-nspawn', [
      '--quiet', '--register=no', '--keep-unit', '-b', '-D', paths.root,
      `--network-namespace-path=/run/netns/${record.netns}`, `--machine=${id}`,
      `--bind=${layout.volumeDir(cluster)}:${INSTANCE_VOLUME_DIR}`,
      '--link-journal=no', '--console=pipe',
    ], { stdio: ['ignore', consoleFd, consoleFd] });
    closeSync(consoleFd);
    current = child;
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.on('error', (err) => log.error('systemd-nspawn did not start', { event: 'instance-error', instance: id, err }));
    processes = { ...processes, nspawn: child.pid === undefined ? undefined : recordOf(child.pid), leader: undefined, boots: processes.boots + 1 };
    await save();
    log.info('instance booting', { event: 'instance-booting', instance: id, boot: processes.boots });
    // nspawn's child is the instance's PID 1: recorded, since killing nspawn alone does not stop it.
    let done = false;
    void exited.then(() => (done = true));
    for (let i = 0; i < 1200 && !done && child.pid !== undefined && !processes.leader; i++) {
      const leader = childOf(child.pid, 'systemd-nspawn');
      if (leader) {
        processes = { ...processes, leader };
        await save();
      } else {
        await sleep(50);
      }
    }
    exit = await exited;
    current = undefined;
    log.info('instance exited', { event: 'instance-exited', instance: id, code: exit.code, signal: exit.signal, boot: processes.boots });
    if (exit.code !== 133) break;
  }
  processes = { ...processes, exited: { ...exit, at: new Date().toISOString() } };
  await save();
  return exit.code === 0 || stopping ? 0 : 1;
}

/** Detaches every loop device still backed by one of these images. */
async function detachImages(images: string[], log: Logger): Promise<void> {
  for (const image of images) {
    if (!existsSync(image)) continue;
    for (let attempt = 0; attempt < 3; attempt++) {
      const device = await findLoopDevice(image);
      if (!device) break;
      await detachLoopDevice(device).catch((err: Error) => log.warn('loop device detach failed', { event: 'cleanup-warning', device, image, err }));
      log.info('loop device detached', { event: 'loop-detached', device, image });
    }
  }
}

async function unmountRoot(root: string): Promise<void> {
  for (let attempt = 1; (await mountedAt(root)) !== undefined; attempt++) {
    const result = await execa('umount', [root], { reject: false });
    if (result.exitCode === 0) continue;
    if (attempt >= 20) throw new Error(`umount ${root}: ${String(result.stderr).trim()}`);
    await sleep(250);
  }
}

/**
 * Stops the instance and releases all it had: processes (recorded PIDs only),
 * its volume claims and their loop devices, the overlay, nspawn's leftovers,
 * its namespace, its address and its folder. Safe to run again after a crash.
 */
export async function terminateInstance(layout: CloudLayout, record: InstanceRecord, options: { force: boolean; log: Logger }): Promise<void> {
  const dir = layout.instanceDir(record.cluster, record.id);
  const paths = instancePaths(dir);
  const processes = await readProcesses(dir);
  // The supervisor first, so it boots nothing again.
  signalRecorded(processes.supervisor, 'SIGKILL');
  // The PID 1 as it is now (a supervisor killed at the wrong moment may not have recorded it).
  if (isAlive(processes.nspawn) && processes.nspawn) processes.leader = childOf(processes.nspawn.pid, 'systemd-nspawn') ?? processes.leader;
  if (!options.force && isAlive(processes.leader)) {
    signalRecorded(processes.nspawn, 'SIGTERM');
    await waitGone(processes.leader, 30_000);
  }
  signalRecorded(processes.leader, 'SIGKILL');
  await waitGone(processes.leader, 10_000);
  await stopRecorded(processes.nspawn, 5_000);
  await waitGone(processes.supervisor, 5_000);

  const volumeDir = layout.volumeDir(record.cluster);
  const released = await releaseClaimsOf(volumeDir, record.id);
  await detachImages(released.map((v) => localPaths(volumeDir, v).image), options.log);
  await unmountRoot(paths.root);
  await rm(`/run/systemd/nspawn/propagate/${record.id}`, { recursive: true, force: true });
  if (record.nspawnLock) await rm(record.nspawnLock, { force: true });
  await deleteNetns(record.netns);
  await releaseAddress(layout, record.address);
  await rm(dir, { recursive: true, force: true });
  options.log.info('instance terminated', { event: 'instance-terminated', instance: record.id, cluster: record.cluster, volumesReleased: released });
}

/** Every image of a cluster's volumes (for the final loop-device sweep). */
export async function clusterImages(layout: CloudLayout, cluster: string): Promise<string[]> {
  const dir = layout.volumeDir(cluster);
  return (await listLocalVolumes(dir)).filter((v) => v.kind === 'image').map((v) => localPaths(dir, v.id).image);
}

export { detachImages, type ProcessRecord };
