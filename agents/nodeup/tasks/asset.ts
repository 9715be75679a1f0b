// Asset: a hash-verified file installed at a path (a binary), or a tarball
// extracted into a folder. Planning only looks at what is installed; nothing
// is downloaded until apply. Independent assets are separate tasks, so the
// engine downloads them in parallel (kOps downloads one at a time).
import { constants } from 'node:fs';
import { copyFile, chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { fetchToCache, sha256File, type AssetRef } from '../host/assets.js';
import { formatMode, lstatIfExists, tempPathFor } from '../host/fs.js';
import { planFrom, TaskError, type FieldChange, type Plan, type Task, type TaskContext } from '../engine/task.js';

export type AssetInstall =
  | { kind: 'file'; path: string; mode?: number }
  /** Extracted as a whole into dir; a marker file records which tarball it came from. */
  | { kind: 'extract'; dir: string; stripComponents?: number };

const MARKER = '.nodeup-asset-sha256';

export class AssetTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  readonly paths: readonly string[];
  constructor(readonly asset: AssetRef, readonly install: AssetInstall) {
    this.id = `Asset:${install.kind === 'file' ? install.path : install.dir}`;
    // An extracted folder is swapped in whole by a rename, like a file.
    this.paths = [this.installedPath];
  }

  /** Where the installed asset lives on the node. */
  get installedPath(): string {
    return this.install.kind === 'file' ? this.install.path : this.install.dir;
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const want = this.asset.sha256;
    if (this.install.kind === 'file') {
      const path = await ctx.fs.entry(this.install.path);
      const st = await lstatIfExists(path);
      const mode = this.install.mode ?? 0o755;
      if (!st) return planFrom(false, [{ field: 'sha256', new: want }, { field: 'source', new: this.asset.urls[0] }]);
      const changes: FieldChange[] = [];
      const have = st.isFile() ? await sha256File(path) : `(not a file)`;
      if (have !== want) changes.push({ field: 'sha256', old: have, new: want });
      else if ((st.mode & 0o7777) !== mode) changes.push({ field: 'mode', old: formatMode(st.mode), new: formatMode(mode) });
      return planFrom(true, changes);
    }
    // Anything but a folder there (a link too) is not an installed asset: the swap below replaces it.
    const installed = (await ctx.fs.lstat(this.install.dir))?.isDirectory() ?? false;
    const marker = installed ? (await ctx.fs.readCurrent(`${this.install.dir}/${MARKER}`))?.toString('utf8').trim() : undefined;
    if (marker === undefined) return planFrom(false, [{ field: 'sha256', new: want }, { field: 'source', new: this.asset.urls[0] }]);
    return planFrom(true, marker === want ? [] : [{ field: 'sha256', old: marker, new: want }]);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    if (this.install.kind === 'file' && plan.changes.every((c) => c.field === 'mode')) {
      await ctx.fs.setOwnership(this.install.path, this.install.mode ?? 0o755);
      return;
    }
    let cached: string;
    try {
      cached = await fetchToCache(await ctx.fs.mkdirs(ctx.cache), this.asset, ctx.signal, ctx.assetStallTimeoutMs);
    } catch (err) {
      throw new TaskError(this.id, (err as Error).message, { cause: err });
    }
    if (this.install.kind === 'file') await this.installFile(ctx, cached, this.install.path, this.install.mode ?? 0o755);
    else await this.extract(ctx, cached, this.install.dir, this.install.stripComponents ?? 0);
  }

  private async installFile(ctx: TaskContext, cached: string, nodePath: string, mode: number): Promise<void> {
    const path = await ctx.fs.placeFor(nodePath);
    const temp = tempPathFor(path);
    try {
      await copyFile(cached, temp, constants.COPYFILE_EXCL);
      await chmod(temp, mode);
      await rename(temp, path); // a running binary keeps its old inode
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** Extracts into a sibling temp folder, then swaps it in: never a half-extracted folder at `dir`. */
  private async extract(ctx: TaskContext, cached: string, nodeDir: string, strip: number): Promise<void> {
    const dir = await ctx.fs.placeFor(nodeDir);
    const temp = tempPathFor(dir);
    const old = tempPathFor(dir);
    let movedAway = false;
    try {
      await mkdir(temp, { mode: 0o755 });
      await execa('tar', ['-xf', cached, '-C', temp, '--no-same-owner', `--strip-components=${strip}`], { cancelSignal: ctx.signal });
      await writeFile(join(temp, MARKER), `${this.asset.sha256}\n`);
      if (await lstatIfExists(dir)) {
        await rename(dir, old);
        movedAway = true;
      }
      await rename(temp, dir);
      movedAway = false;
      await rm(old, { recursive: true, force: true });
    } catch (err) {
      // Put back what was installed: a failed upgrade leaves the old version working.
      if (movedAway) await rename(old, dir);
      await rm(temp, { recursive: true, force: true });
      throw new TaskError(this.id, `extract ${cached}: ${(err as Error).message}`, { cause: err });
    }
  }
}
