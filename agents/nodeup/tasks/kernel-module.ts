// KernelModule: listed in /etc/modules-load.d so it loads at every boot, and
// on a live machine loaded now with modprobe when /sys/module lacks it.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { kernelIsOurs } from '../host/kernel.js';
import { planFrom, type FieldChange, type Plan, type Task, type TaskContext } from '../engine/task.js';

export class KernelModuleTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  readonly paths: readonly string[];
  constructor(readonly name: string) {
    this.id = `KernelModule:${name}`;
    this.paths = [this.confPath];
  }

  private get confPath(): string {
    return `/etc/modules-load.d/${this.name}.conf`;
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const want = `${this.name}\n`;
    const old = (await ctx.fs.readCurrent(this.confPath))?.toString('utf8');
    const changes: FieldChange[] = [];
    if (old !== want) changes.push({ field: this.confPath, ...(old !== undefined ? { old: JSON.stringify(old) } : {}), new: JSON.stringify(want) });
    if (kernelIsOurs(ctx.root) && !existsSync(`/sys/module/${this.name}`)) changes.push({ field: 'loaded', old: 'no', new: 'yes' });
    return planFrom(old !== undefined, changes);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    if (plan.changes.some((c) => c.field === this.confPath)) {
      await ctx.fs.writeFileAtomic(this.confPath, `${this.name}\n`, { mode: 0o644, uid: 0, gid: 0 });
    }
    if (plan.changes.some((c) => c.field === 'loaded')) await execa('modprobe', [this.name], { cancelSignal: ctx.signal });
  }
}
