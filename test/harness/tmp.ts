// Temp directories that clean themselves up, and content snapshots to assert
// that something was left exactly as it was.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StateStore } from '../../shared/store/index.js';

/** What the harness needs of a tap test: a place to hang cleanup. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh directory under the OS temp dir, removed when the test ends (pass or fail). */
export function tempDir(t: Teardown, prefix = 'mooring-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function filesBelow(dir: string, folder = ''): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(dir, folder), { withFileTypes: true })) {
    const path = folder === '' ? entry.name : `${folder}/${entry.name}`;
    if (entry.isDirectory()) files.push(...(await filesBelow(dir, path)));
    else if (entry.isFile()) files.push(path);
  }
  return files;
}

/** Every file below dir (hidden ones too) as relative path → sha256, in sorted order. */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const snapshot: Record<string, string> = {};
  for (const file of (await filesBelow(dir)).sort()) snapshot[file] = sha256(await readFile(join(dir, file)));
  return snapshot;
}

/** Every object of a store as path → sha256, in list order. */
export async function snapshotStore(store: StateStore): Promise<Record<string, string>> {
  const snapshot: Record<string, string> = {};
  for (const path of await store.list()) snapshot[path] = sha256(await store.read(path));
  return snapshot;
}
