// Service: a systemd unit. The unit file is written (and daemon-reload run)
// only when it changed; it is enabled only when its enabled state differs
// (kops#11370: re-enable loops); it is restarted only when its unit, an
// environment/config file or its binary changed in this run — those are the
// tasks named in `restartOn` — or, on a live machine, started when not running.
import { systemctl, systemctlOrThrow, systemdIsLive, unitFileState } from '../host/systemd.js';
import { contentDiff } from './file.js';
import { planFrom, type FieldChange, type Plan, type Task, type TaskContext } from '../engine/task.js';

export interface ServiceSpec {
  /** Unit name, e.g. kubelet.service or etcd-manager@main.service. */
  name: string;
  /** Unit file content; absent for an instance of a template written by another task. */
  unit?: string;
  enabled?: boolean;
  /** Whether nodeup should (re)start it on a live machine. Default true. */
  running?: boolean;
  /** Task ids whose change means a restart (binary, env file, config). */
  restartOn?: string[];
  deps?: string[];
  /** Start without waiting (the nodeup unit itself runs nodeup for minutes). */
  noBlock?: boolean;
}

export function unitPath(name: string): string {
  return `/etc/systemd/system/${name}`;
}

export class ServiceTask implements Task {
  readonly id: string;
  readonly deps: readonly string[];
  readonly paths: readonly string[];
  constructor(readonly spec: ServiceSpec) {
    this.id = `Service:${spec.name}`;
    this.deps = [...new Set([...(spec.deps ?? []), ...(spec.restartOn ?? [])])];
    this.paths = spec.unit === undefined ? [] : [unitPath(spec.name)];
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const changes: FieldChange[] = [];
    let diff: string | undefined;
    let exists = true;
    if (this.spec.unit !== undefined) {
      const path = unitPath(this.spec.name);
      const old = await ctx.fs.readCurrent(path);
      exists = old !== undefined;
      const want = Buffer.from(this.spec.unit, 'utf8');
      if (!old || !old.equals(want)) {
        changes.push({ field: 'unit', ...(old ? { old: `${old.length} bytes` } : {}), new: `${want.length} bytes` });
        diff = contentDiff(path, old, want);
      }
    }
    const unitChanged = changes.length > 0;
    const wantEnabled = this.spec.enabled ?? true;
    // A dry run must not ask systemd about a unit that is not written yet.
    const state = unitChanged && !exists ? 'not-found' : await unitFileState(ctx.root, this.spec.name);
    const isEnabled = state === 'enabled' || state === 'enabled-runtime';
    if (isEnabled !== wantEnabled) changes.push({ field: 'enabled', old: state, new: wantEnabled ? 'enabled' : 'disabled' });

    if (systemdIsLive(ctx.root)) {
      if (unitChanged) changes.push({ field: 'daemon-reload', new: 'yes' });
      if (this.spec.running ?? true) {
        const changedDeps = (this.spec.restartOn ?? []).filter((dep) => ctx.changed(dep));
        const active = (await systemctl(ctx.root, ['is-active', this.spec.name])).stdout === 'active';
        if (!active) changes.push({ field: 'running', old: 'inactive', new: 'started' });
        else if (unitChanged || changedDeps.length > 0) {
          changes.push({ field: 'restart', new: `because ${[...(unitChanged ? ['unit'] : []), ...changedDeps].join(', ')} changed` });
        }
      }
    }
    return planFrom(exists, changes, diff);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    const has = (field: string): boolean => plan.changes.some((c) => c.field === field);
    if (has('unit') && this.spec.unit !== undefined) {
      await ctx.fs.writeFileAtomic(unitPath(this.spec.name), this.spec.unit, { mode: 0o644, uid: 0, gid: 0 });
    }
    if (has('daemon-reload')) await systemctlOrThrow(ctx.root, ['daemon-reload'], ctx.signal);
    if (has('enabled')) await systemctlOrThrow(ctx.root, [(this.spec.enabled ?? true) ? 'enable' : 'disable', this.spec.name], ctx.signal);
    const noBlock = this.spec.noBlock ? ['--no-block'] : [];
    if (has('running')) await systemctlOrThrow(ctx.root, ['start', ...noBlock, this.spec.name], ctx.signal);
    else if (has('restart')) await systemctlOrThrow(ctx.root, ['restart', ...noBlock, this.spec.name], ctx.signal);
  }
}
