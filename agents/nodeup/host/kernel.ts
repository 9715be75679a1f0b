// Whether nodeup may change the running kernel (sysctls, modules): only on a
// real machine. Under --root the kernel is the builder's, and in a container
// (systemd writes /run/systemd/container) it is the host's, with /proc/sys
// read-only; there only the boot-time files are written.
import { existsSync } from 'node:fs';

export function kernelIsOurs(root: string): boolean {
  return root === '/' && !existsSync('/run/systemd/container') && !existsSync('/.dockerenv');
}
