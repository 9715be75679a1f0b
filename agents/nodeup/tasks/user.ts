// User and Group: system accounts, found in <root>/etc/passwd and
// <root>/etc/group, created with shadow's useradd/groupadd (which take --root).
import { execa } from 'execa';
import type { NodeRoot } from '../host/fs.js';
import { planFrom, type Plan, type Task, type TaskContext } from '../engine/task.js';

async function entry(fs: NodeRoot, file: string, name: string): Promise<string[] | undefined> {
  const text = (await fs.read(file))?.toString('utf8') ?? '';
  return text.split('\n').map((line) => line.split(':')).find((fields) => fields[0] === name);
}

const rootArgs = (root: string): string[] => (root === '/' ? [] : ['--root', root]);

export class GroupTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  constructor(readonly name: string) {
    this.id = `Group:${name}`;
  }
  async plan(ctx: TaskContext): Promise<Plan> {
    const found = await entry(ctx.fs, '/etc/group', this.name);
    return planFrom(found !== undefined, found ? [] : [{ field: 'group', new: this.name }]);
  }
  async apply(ctx: TaskContext): Promise<void> {
    await execa('groupadd', [...rootArgs(ctx.root), '--system', this.name], { cancelSignal: ctx.signal });
  }
}

export interface UserSpec {
  name: string;
  group?: string;
  home?: string;
  shell?: string;
}

export class UserTask implements Task {
  readonly id: string;
  readonly deps: readonly string[];
  constructor(readonly spec: UserSpec) {
    this.id = `User:${spec.name}`;
    this.deps = spec.group ? [`Group:${spec.group}`] : [];
  }
  async plan(ctx: TaskContext): Promise<Plan> {
    const found = await entry(ctx.fs, '/etc/passwd', this.spec.name);
    const shell = this.spec.shell ?? '/usr/sbin/nologin';
    const home = this.spec.home ?? '/nonexistent';
    if (!found) return planFrom(false, [{ field: 'user', new: this.spec.name }, { field: 'shell', new: shell }, { field: 'home', new: home }]);
    const changes = [];
    if (found[6] !== shell) changes.push({ field: 'shell', old: found[6], new: shell });
    if (found[5] !== home) changes.push({ field: 'home', old: found[5], new: home });
    return planFrom(true, changes);
  }
  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    const shell = this.spec.shell ?? '/usr/sbin/nologin';
    const home = this.spec.home ?? '/nonexistent';
    if (plan.action === 'create') {
      const group = this.spec.group ? ['--gid', this.spec.group] : ['--user-group'];
      await execa('useradd', [...rootArgs(ctx.root), '--system', '--no-create-home', '--home-dir', home, '--shell', shell, ...group, this.spec.name], { cancelSignal: ctx.signal });
    } else {
      await execa('usermod', [...rootArgs(ctx.root), '--home', home, '--shell', shell, this.spec.name], { cancelSignal: ctx.signal });
    }
  }
}
