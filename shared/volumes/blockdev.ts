// Loop devices, filesystems and mounts through the standard tools (losetup,
// blkid, mkfs.ext4, mount, umount): they know the kernel's corner cases
// (loop-control races, partial signatures) better than code here would.
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

async function run(cmd: string, args: string[]): Promise<string> {
  const result = await execa(cmd, args, { reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) {
    throw new Error(`${cmd} ${args.join(' ')}: exit ${result.exitCode ?? result.signal}: ${String(result.stderr).trim()}`);
  }
  return String(result.stdout).trim();
}

/** The loop device already backed by this image, if any (so a restart reuses it). */
export async function findLoopDevice(image: string): Promise<string | undefined> {
  const out = await run('losetup', ['--associated', image, '--noheadings', '--output', 'NAME']);
  return out.split('\n').map((l) => l.trim()).find((l) => l !== '');
}

export async function attachLoopDevice(image: string): Promise<string> {
  return (await findLoopDevice(image)) ?? run('losetup', ['--find', '--show', image]);
}

export async function detachLoopDevice(device: string): Promise<void> {
  await run('losetup', ['--detach', device]);
}

/** The filesystem type on a device, or undefined when blkid finds no signature at all (a blank disk). */
export async function filesystemType(device: string): Promise<string | undefined> {
  // -p probes the device itself (no cache); exit 2 means "nothing found".
  const result = await execa('blkid', ['-p', '-o', 'value', '-s', 'TYPE', device], { reject: false, stdin: 'ignore' });
  if (result.exitCode === 2) return undefined;
  if (result.exitCode !== 0) throw new Error(`blkid ${device}: exit ${result.exitCode}: ${String(result.stderr).trim()}`);
  const type = String(result.stdout).trim();
  // A signature without a TYPE (a partition table, say) is not blank either.
  return type === '' ? 'unknown' : type;
}

export async function makeExt4(device: string, label: string): Promise<void> {
  await run('mkfs.ext4', ['-q', '-L', label.slice(0, 16), device]);
}

interface MountEntry {
  source: string;
  mountPoint: string;
  fsType: string;
}

/** /proc/self/mountinfo, with octal escapes (\040 for a space) decoded. */
export async function mounts(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').filter((l) => l !== '').map((line) => {
    const [left, right = ''] = line.split(' - ');
    const fields = left.split(' ');
    const [fsType = '', source = ''] = right.split(' ');
    return { mountPoint: unescape(fields[4] ?? ''), fsType, source: unescape(source) };
  });
}

export async function mountedAt(mountPoint: string): Promise<MountEntry | undefined> {
  return (await mounts()).filter((m) => m.mountPoint === mountPoint).pop();
}

export async function mount(device: string, mountPoint: string): Promise<void> {
  await run('mount', ['-t', 'ext4', device, mountPoint]);
}

export async function unmount(mountPoint: string): Promise<void> {
  await run('umount', [mountPoint]);
}

let loopSupport: Promise<string | undefined> | undefined;

/** undefined when loop devices can be used here, else why not (for logs and skipped tests). */
export function loopDevicesRefused(): Promise<string | undefined> {
  return (loopSupport ??= (async () => {
    const result = await execa('losetup', ['--find'], { reject: false, stdin: 'ignore' });
    if (result.exitCode !== 0) return `losetup --find: ${String(result.stderr).trim() || `exit ${result.exitCode}`}`;
    return undefined;
  })());
}
