// Device names for EBS attachments and where the kernel shows them.
//
// kOps attaches etcd volumes on /dev/xvdu–/dev/xvdz. EC2 treats /dev/sdX and
// /dev/xvdX as the same attachment point (Xen renames sdX to xvdX), so a slot
// is taken when either spelling is in the instance's block device mappings.
// On Nitro instances the device is NVMe and its name is unrelated to the one
// asked for; udev links /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volid
// without the dash> to it, which is the only reliable way to find it.
import { realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const ATTACH_DEVICES = ['u', 'v', 'w', 'x', 'y', 'z'].map((l) => `/dev/xvd${l}`);

/** The attachment point a device name occupies: /dev/sdu, sdu, /dev/xvdu → "u". */
export function deviceSlot(name: string): string {
  const base = name.replace(/^\/dev\//, '');
  const m = /^(?:xv|s)d([a-z]+)$/.exec(base);
  return m ? m[1] : base;
}

/** The first of /dev/xvdu–xvdz whose slot none of `used` occupies (plus `skip`), or undefined. */
export function firstFreeDevice(used: Iterable<string>, skip: Iterable<string> = []): string | undefined {
  const taken = new Set<string>();
  for (const name of used) taken.add(deviceSlot(name));
  for (const name of skip) taken.add(deviceSlot(name));
  return ATTACH_DEVICES.find((d) => !taken.has(deviceSlot(d)));
}

/** /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123… (under another root in tests). */
export function nvmeByIdPath(deviceRoot: string, volumeId: string): string {
  return join(deviceRoot, 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${volumeId.replace(/-/g, '')}`);
}

/** Where an attachment on `device` may show up, best first. */
export function devicePaths(deviceRoot: string, volumeId: string, device: string): string[] {
  const base = device.replace(/^\/dev\//, '');
  const paths = [nvmeByIdPath(deviceRoot, volumeId), join(deviceRoot, base)];
  const slot = deviceSlot(device);
  // Attached as sdX, Xen shows xvdX (and the other way round on old kernels).
  if (/^(xv|s)d/.test(base)) {
    for (const alias of [`xvd${slot}`, `sd${slot}`]) if (alias !== base) paths.push(join(deviceRoot, alias));
  }
  return paths;
}

async function isBlockDevice(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isBlockDevice();
  } catch {
    return false;
  }
}

/**
 * The real block device (symlinks resolved) behind an attachment, waiting for
 * the kernel and udev to show it; throws naming every path looked at.
 */
export async function waitForDevice(options: {
  deviceRoot: string;
  volumeId: string;
  device: string;
  timeoutMs: number;
  pollMs?: number;
}): Promise<{ path: string; device: string }> {
  const paths = devicePaths(options.deviceRoot, options.volumeId, options.device);
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    for (const path of paths) {
      if (await isBlockDevice(path)) return { path, device: await realpath(path) };
    }
    if (Date.now() >= deadline) {
      throw new Error(`volume ${options.volumeId} is attached on ${options.device} but no block device showed up within ${options.timeoutMs} ms (looked at ${paths.join(', ')})`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
  }
}
