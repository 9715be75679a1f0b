// Sysctl: the settings file in /etc/sysctl.d (applied at every boot by
// systemd-sysctl), and on a live machine the running kernel values too. With
// --root only the file is written: the kernel belongs to the host.
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { kernelIsOurs } from '../host/kernel.js';
import { contentDiff } from './file.js';
import { planFrom, type FieldChange, type Plan, type Task, type TaskContext } from '../engine/task.js';

/**
 * sysctl.d has no quoting: a key is a sysctl name and a value ends at the line's
 * end, so a key with '=' or blanks, or a value with a line break, would set
 * something else. Such entries are refused, not written.
 */
export function renderSysctlConf(values: Record<string, string>): string {
  for (const [key, value] of Object.entries(values)) {
    if (!/^[A-Za-z0-9_.\/-]+$/.test(key) || /\p{Cc}/u.test(value)) {
      throw new Error(`sysctl ${JSON.stringify(`${key}=${value}`)} cannot be written to sysctl.d (a key of letters, digits, '_', '.', '/', '-' and a value on one line)`);
    }
  }
  const lines = Object.keys(values).sort().map((key) => `${key} = ${values[key]}`);
  return `# Written by nodeup from the cluster spec; edits are overwritten.\n${lines.join('\n')}\n`;
}

async function liveValue(key: string): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8')).trim().replace(/\s+/g, ' ');
  } catch {
    return undefined;
  }
}

export class SysctlTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  readonly paths: readonly string[];
  constructor(readonly path: string, readonly values: Record<string, string>) {
    this.id = `Sysctl:${path}`;
    this.paths = [path];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const want = Buffer.from(renderSysctlConf(this.values));
    const old = await ctx.fs.readCurrent(this.path);
    const changes: FieldChange[] = [];
    let diff: string | undefined;
    if (!old || !old.equals(want)) {
      changes.push({ field: 'file', ...(old ? { old: `${old.length} bytes` } : {}), new: `${want.length} bytes` });
      diff = contentDiff(this.path, old, want);
    }
    if (kernelIsOurs(ctx.root)) {
      for (const [key, value] of Object.entries(this.values)) {
        const have = await liveValue(key);
        if (have !== undefined && have !== value.replace(/\s+/g, ' ')) changes.push({ field: key, old: have, new: value });
      }
    }
    return planFrom(old !== undefined, changes, diff);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    if (plan.changes.some((c) => c.field === 'file')) {
      await ctx.fs.writeFileAtomic(this.path, renderSysctlConf(this.values), { mode: 0o644, uid: 0, gid: 0 });
    }
    if (kernelIsOurs(ctx.root)) await execa('sysctl', ['-p', this.path], { cancelSignal: ctx.signal });
  }
}
