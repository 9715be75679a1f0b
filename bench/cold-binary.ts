// The built binary as the benches that measure memory run it: a fresh copy, on
// disk and out of the page cache, as after a reboot. The RSS of a program's
// own file pages depends on how the file came into the page cache: the build
// writes the binary in one go, and the kernel then maps it in large folios,
// ~18 MiB (up to ~30 MiB in a manager) more RSS from the same binary than from a copy.
import { chmodSync, closeSync, copyFileSync, fsyncSync, mkdtempSync, openSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Cleanup } from './cleanup.js';

/** A copy of `source` at `target`, on disk and out of the page cache. */
export async function coldCopy(source: string, target: string): Promise<void> {
  copyFileSync(source, target);
  chmodSync(target, 0o755);
  const fd = openSync(target, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  await execa('dd', [`if=${target}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** A temp folder holding a cold copy of the mooring binary as `mooring`, with `links` (etcd-manager, …) to it; removed at cleanup. */
export async function coldBinaryDir(cleanup: Cleanup, binary: string, links: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mooring-bench-bin-'));
  cleanup.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await coldCopy(binary, join(dir, 'mooring'));
  for (const link of links) symlinkSync('mooring', join(dir, link));
  return dir;
}
