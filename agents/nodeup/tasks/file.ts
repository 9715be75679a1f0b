// File, Directory and Symlink: content, mode and owner, each compared with
// what is on disk; only what differs is changed (a mode change is a chmod,
// not a rewrite), so a rerun keeps every mtime.
import { readlink, rename, rm, symlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { createTwoFilesPatch } from 'diff';
import { formatMode, lookupGid, lookupUid, lstatIfExists, tempPathFor } from '../host/fs.js';
import { planFrom, TaskError, type FieldChange, type Plan, type Task, type TaskContext } from '../engine/task.js';

export interface Owned {
  mode?: number;
  owner?: string;
  group?: string;
}

async function resolveOwner(ctx: TaskContext, id: string, o: Owned): Promise<{ uid: number; gid: number }> {
  const uid = await lookupUid(ctx.fs, o.owner ?? 'root');
  const gid = await lookupGid(ctx.fs, o.group ?? 'root');
  // In a dry run the user may be created by an earlier task: plan as if it will exist.
  if (uid === undefined && !ctx.dryRun) throw new TaskError(id, `unknown user ${o.owner}`);
  if (gid === undefined && !ctx.dryRun) throw new TaskError(id, `unknown group ${o.group}`);
  return { uid: uid ?? -1, gid: gid ?? -1 };
}

function isText(data: Buffer): boolean {
  return !data.includes(0) && Buffer.from(data.toString('utf8'), 'utf8').equals(data);
}

export function contentDiff(path: string, old: Buffer | undefined, next: Buffer): string | undefined {
  if ((old && !isText(old)) || !isText(next)) return undefined;
  return createTwoFilesPatch(path, path, old?.toString('utf8') ?? '', next.toString('utf8'), old ? 'current' : '(none)', 'wanted');
}

/** Mode and owner changes of an existing inode. */
async function ownershipChanges(ctx: TaskContext, id: string, st: Stats | undefined, o: Owned, defaultMode: number): Promise<FieldChange[]> {
  const want = await resolveOwner(ctx, id, o);
  const mode = o.mode ?? defaultMode;
  const changes: FieldChange[] = [];
  if (!st) return changes;
  if ((st.mode & 0o7777) !== mode) changes.push({ field: 'mode', old: formatMode(st.mode), new: formatMode(mode) });
  if (st.uid !== want.uid) changes.push({ field: 'owner', old: String(st.uid), new: o.owner ?? 'root' });
  if (st.gid !== want.gid) changes.push({ field: 'group', old: String(st.gid), new: o.group ?? 'root' });
  return changes;
}

/** `follow`: a folder, whose final link (inside the root) is followed; a file's own inode otherwise. */
async function applyOwnership(ctx: TaskContext, id: string, nodePath: string, o: Owned, defaultMode: number, follow: boolean): Promise<void> {
  const own = await resolveOwner(ctx, id, o);
  await ctx.fs.setOwnership(nodePath, o.mode ?? defaultMode, own, follow);
}

export interface FileSpec extends Owned {
  path: string;
  content: string | Buffer;
  secret?: boolean;
  deps?: string[];
}

export class FileTask implements Task {
  readonly id: string;
  readonly deps: readonly string[];
  readonly secret: boolean;
  readonly paths: readonly string[];
  private readonly content: Buffer;
  constructor(readonly spec: FileSpec) {
    this.id = `File:${spec.path}`;
    this.deps = spec.deps ?? [];
    this.secret = spec.secret ?? false;
    this.paths = [spec.path];
    this.content = Buffer.isBuffer(spec.content) ? spec.content : Buffer.from(spec.content, 'utf8');
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const path = await ctx.fs.entry(this.spec.path);
    const st = await ctx.fs.lstat(this.spec.path);
    if (st?.isSymbolicLink()) {
      // The file's mode and owner are its own inode's: a link there is replaced by the file, never read through.
      const changes = [{ field: 'content', old: `symlink to ${await readlink(path)}`, new: describe(this.content, this.secret) }, { field: 'mode', new: formatMode(this.spec.mode ?? 0o644) }];
      return planFrom(true, changes, this.secret ? undefined : contentDiff(this.spec.path, undefined, this.content));
    }
    if (st && !st.isFile()) throw new TaskError(this.id, `${path} exists and is not a regular file`);
    const old = st ? await ctx.fs.readCurrent(this.spec.path) : undefined;
    const changes: FieldChange[] = [];
    let diff: string | undefined;
    if (!old || !old.equals(this.content)) {
      changes.push({ field: 'content', ...(old ? { old: describe(old, this.secret) } : {}), new: describe(this.content, this.secret) });
      if (!this.secret) diff = contentDiff(this.spec.path, old, this.content);
    }
    changes.push(...(await ownershipChanges(ctx, this.id, st, this.spec, 0o644)));
    if (!st) changes.push({ field: 'mode', new: formatMode(this.spec.mode ?? 0o644) });
    return planFrom(st !== undefined, changes, diff);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    if (plan.changes.some((c) => c.field === 'content')) {
      const own = await resolveOwner(ctx, this.id, this.spec);
      await ctx.fs.writeFileAtomic(this.spec.path, this.content, { mode: this.spec.mode ?? 0o644, ...own });
    } else {
      await applyOwnership(ctx, this.id, this.spec.path, this.spec, 0o644, false);
    }
  }
}

function describe(data: Buffer, secret: boolean): string {
  if (secret) return `(secret, ${data.length} bytes)`;
  return `${data.length} bytes`;
}

export interface DirectorySpec extends Owned {
  path: string;
  deps?: string[];
}

export class DirectoryTask implements Task {
  readonly id: string;
  readonly deps: readonly string[];
  readonly paths: readonly string[];
  constructor(readonly spec: DirectorySpec) {
    this.id = `Directory:${spec.path}`;
    this.deps = spec.deps ?? [];
    this.paths = [`${spec.path}/`];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    // A link to a folder inside the root is a folder (e.g. /var/lib/kubelet on another disk's mount point).
    const path = await ctx.fs.resolve(this.spec.path);
    const st = await lstatIfExists(path);
    if (st && !st.isDirectory()) throw new TaskError(this.id, `${path} exists and is not a directory`);
    if (!st) return planFrom(false, [{ field: 'mode', new: formatMode(this.spec.mode ?? 0o755) }]);
    return planFrom(true, await ownershipChanges(ctx, this.id, st, this.spec, 0o755));
  }

  async apply(ctx: TaskContext): Promise<void> {
    await ctx.fs.mkdirs(this.spec.path, this.spec.mode ?? 0o755);
    await applyOwnership(ctx, this.id, this.spec.path, this.spec, 0o755, true);
  }
}

export interface SymlinkSpec {
  path: string;
  target: string;
  deps?: string[];
}

export class SymlinkTask implements Task {
  readonly id: string;
  readonly deps: readonly string[];
  readonly paths: readonly string[];
  constructor(readonly spec: SymlinkSpec) {
    this.id = `Symlink:${spec.path}`;
    this.deps = spec.deps ?? [];
    this.paths = [spec.path];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const path = await ctx.fs.entry(this.spec.path);
    const st = await ctx.fs.lstat(this.spec.path);
    if (!st) return planFrom(false, [{ field: 'target', new: this.spec.target }]);
    if (!st.isSymbolicLink()) throw new TaskError(this.id, `${path} exists and is not a symlink; refusing to replace it`);
    const current = await readlink(path);
    return planFrom(true, current === this.spec.target ? [] : [{ field: 'target', old: current, new: this.spec.target }]);
  }

  async apply(ctx: TaskContext): Promise<void> {
    const path = await ctx.fs.placeFor(this.spec.path);
    // A new link under a temp name, renamed over the old one: never a moment without a link.
    const temp = tempPathFor(path);
    await symlink(this.spec.target, temp);
    try {
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
}
