// File, Directory and Symlink: content, mode and owner, each compared with
// what is on disk; only what differs is changed (a mode change is a chmod,
// not a rewrite), so a rerun keeps every mtime.
import { chmod, chown, mkdir, rename, rm, symlink, readlink } from 'node:fs/promises';
import { createTwoFilesPatch } from 'diff';
import { formatMode, lookupGid, lookupUid, lstatIfExists, readIfExists, tempPathFor, under, writeFileAtomic } from '../host/fs.js';
import { planFrom, TaskError, type FieldChange, type Plan, type Task, type TaskContext } from '../engine/task.js';

export interface Owned {
  mode?: number;
  owner?: string;
  group?: string;
}

async function resolveOwner(ctx: TaskContext, id: string, o: Owned): Promise<{ uid: number; gid: number }> {
  const uid = await lookupUid(ctx.root, o.owner ?? 'root');
  const gid = await lookupGid(ctx.root, o.group ?? 'root');
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
async function ownershipChanges(ctx: TaskContext, id: string, path: string, o: Owned, defaultMode: number): Promise<FieldChange[]> {
  const st = await lstatIfExists(path);
  const want = await resolveOwner(ctx, id, o);
  const mode = o.mode ?? defaultMode;
  const changes: FieldChange[] = [];
  if (!st) return changes;
  if ((st.mode & 0o7777) !== mode) changes.push({ field: 'mode', old: formatMode(st.mode), new: formatMode(mode) });
  if (st.uid !== want.uid) changes.push({ field: 'owner', old: String(st.uid), new: o.owner ?? 'root' });
  if (st.gid !== want.gid) changes.push({ field: 'group', old: String(st.gid), new: o.group ?? 'root' });
  return changes;
}

async function applyOwnership(ctx: TaskContext, id: string, path: string, o: Owned, defaultMode: number): Promise<void> {
  const own = await resolveOwner(ctx, id, o);
  await chmod(path, o.mode ?? defaultMode);
  await chown(path, own.uid, own.gid);
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
  private readonly content: Buffer;
  constructor(readonly spec: FileSpec) {
    this.id = `File:${spec.path}`;
    this.deps = spec.deps ?? [];
    this.secret = spec.secret ?? false;
    this.content = Buffer.isBuffer(spec.content) ? spec.content : Buffer.from(spec.content, 'utf8');
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const path = under(ctx.root, this.spec.path);
    const st = await lstatIfExists(path);
    if (st && !st.isFile()) throw new TaskError(this.id, `${path} exists and is not a regular file`);
    const old = st ? await readIfExists(path) : undefined;
    const changes: FieldChange[] = [];
    let diff: string | undefined;
    if (!old || !old.equals(this.content)) {
      changes.push({ field: 'content', ...(old ? { old: describe(old, this.secret) } : {}), new: describe(this.content, this.secret) });
      if (!this.secret) diff = contentDiff(this.spec.path, old, this.content);
    }
    changes.push(...(await ownershipChanges(ctx, this.id, path, this.spec, 0o644)));
    if (!st) changes.push({ field: 'mode', new: formatMode(this.spec.mode ?? 0o644) });
    return planFrom(st !== undefined, changes, diff);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    const path = under(ctx.root, this.spec.path);
    if (plan.changes.some((c) => c.field === 'content')) {
      const own = await resolveOwner(ctx, this.id, this.spec);
      await writeFileAtomic(path, this.content, { mode: this.spec.mode ?? 0o644, ...own });
    } else {
      await applyOwnership(ctx, this.id, path, this.spec, 0o644);
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
  constructor(readonly spec: DirectorySpec) {
    this.id = `Directory:${spec.path}`;
    this.deps = spec.deps ?? [];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const path = under(ctx.root, this.spec.path);
    const st = await lstatIfExists(path);
    if (st && !st.isDirectory()) throw new TaskError(this.id, `${path} exists and is not a directory`);
    if (!st) return planFrom(false, [{ field: 'mode', new: formatMode(this.spec.mode ?? 0o755) }]);
    return planFrom(true, await ownershipChanges(ctx, this.id, path, this.spec, 0o755));
  }

  async apply(ctx: TaskContext): Promise<void> {
    const path = under(ctx.root, this.spec.path);
    await mkdir(path, { recursive: true, mode: this.spec.mode ?? 0o755 });
    await applyOwnership(ctx, this.id, path, this.spec, 0o755);
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
  constructor(readonly spec: SymlinkSpec) {
    this.id = `Symlink:${spec.path}`;
    this.deps = spec.deps ?? [];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const path = under(ctx.root, this.spec.path);
    const st = await lstatIfExists(path);
    if (!st) return planFrom(false, [{ field: 'target', new: this.spec.target }]);
    if (!st.isSymbolicLink()) throw new TaskError(this.id, `${path} exists and is not a symlink; refusing to replace it`);
    const current = await readlink(path);
    return planFrom(true, current === this.spec.target ? [] : [{ field: 'target', old: current, new: this.spec.target }]);
  }

  async apply(ctx: TaskContext): Promise<void> {
    const path = under(ctx.root, this.spec.path);
    await mkdir(under(ctx.root, this.spec.path.replace(/\/[^/]*$/, '') || '/'), { recursive: true });
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
