// /etc/hosts: nodeup owns one marked block and leaves every other line alone
// (the distro's localhost lines, protokube's etcd names, the operator's).
import { contentDiff } from './file.js';
import { planFrom, type Plan, type Task, type TaskContext } from '../engine/task.js';

const BEGIN = '# Begin host entries managed by nodeup';
const END = '# End host entries managed by nodeup';

export function withManagedBlock(current: string, entries: Array<[ip: string, names: string[]]>): string {
  const lines = current === '' ? [] : current.replace(/\n$/, '').split('\n');
  const start = lines.indexOf(BEGIN);
  const end = lines.indexOf(END);
  const block = entries.length === 0 ? [] : [BEGIN, ...entries.map(([ip, names]) => `${ip}\t${names.join(' ')}`), END];
  // In place when the block is there (etcd-manager's blocks after it stay where they are, so no writer
  // sees its block moved at every run); appended when it is not.
  const result = start >= 0 && end > start ? [...lines.slice(0, start), ...block, ...lines.slice(end + 1)] : [...lines, ...block];
  return result.length === 0 ? '' : `${result.join('\n')}\n`;
}

export class HostsTask implements Task {
  readonly id = 'Hosts:/etc/hosts';
  readonly deps: readonly string[] = [];
  readonly paths: readonly string[] = ['/etc/hosts'];
  constructor(readonly entries: Array<[ip: string, names: string[]]>) {}

  private async render(ctx: TaskContext): Promise<{ old: Buffer | undefined; want: Buffer }> {
    const old = await ctx.fs.readCurrent('/etc/hosts');
    return { old, want: Buffer.from(withManagedBlock(old?.toString('utf8') ?? '', this.entries)) };
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const { old, want } = await this.render(ctx);
    if (old && old.equals(want)) return planFrom(true, []);
    return planFrom(old !== undefined, [{ field: 'entries', new: this.entries.map(([ip, n]) => `${ip} ${n.join(' ')}`).join('; ') }], contentDiff('/etc/hosts', old, want));
  }

  async apply(ctx: TaskContext): Promise<void> {
    // Rendered again from what is on disk now, so a line added since planning is kept.
    const { want } = await this.render(ctx);
    await ctx.fs.writeFileAtomic('/etc/hosts', want, { mode: 0o644, uid: 0, gid: 0 });
  }
}
