// What every nodeup task is: find the actual state and diff it against the
// wanted one (plan, no side effect), then make it so (apply, only the difference).
import type { Logger } from '../../../shared/log.js';
import type { NodeRoot } from '../host/fs.js';
import type { HostInfo } from '../host/os-release.js';

export type Action = 'create' | 'modify' | 'unchanged';

export interface FieldChange {
  field: string;
  /** Absent when the thing does not exist yet. */
  old?: string;
  new: string;
}

export interface Plan {
  action: Action;
  changes: FieldChange[];
  /** Unified diff of a file's content (never for secrets). */
  diff?: string;
}

export interface TaskContext {
  /** Absolute root prefix; '/' on a real machine. Only for tools that take a root of their own (systemctl --root, useradd --root). */
  root: string;
  /** Every path a task touches goes through this: resolved inside the root. */
  fs: NodeRoot;
  dryRun: boolean;
  host: HostInfo;
  /** Node path of the asset cache (resolved under root when used). */
  cache: string;
  log: Logger;
  /** Whether a dependency changed (or, in a dry run, would change) in this run. */
  changed(taskId: string): boolean;
  /** Aborted when the task's timeout fires. */
  signal: AbortSignal;
  /** A download that gets no byte for this long moves on to the next mirror (default in host/assets.ts). */
  assetStallTimeoutMs?: number;
}

export interface Task {
  /** `Kind:name`, unique in a run, e.g. `File:/etc/hosts`. */
  readonly id: string;
  readonly deps: readonly string[];
  /** Content is secret: never shown in a plan. */
  readonly secret?: boolean;
  /**
   * Node paths the task creates or replaces, checked inside the root before
   * anything runs; a path ending in '/' is a folder (a final link is followed).
   */
  readonly paths?: readonly string[];
  plan(ctx: TaskContext): Promise<Plan>;
  apply(ctx: TaskContext, plan: Plan): Promise<void>;
}

export const unchanged = (): Plan => ({ action: 'unchanged', changes: [] });

/** A plan from field changes: create when `exists` is false, else modify when anything differs. */
export function planFrom(exists: boolean, changes: FieldChange[], diff?: string): Plan {
  if (!exists) return { action: 'create', changes, ...(diff ? { diff } : {}) };
  if (changes.length === 0) return unchanged();
  return { action: 'modify', changes, ...(diff ? { diff } : {}) };
}

/** A failure that names the task: every error reaching the report goes through this. */
export class TaskError extends Error {
  /** True when retrying cannot help (bad input, unknown distro): the engine fails it at once. */
  readonly permanent: boolean;
  constructor(readonly taskId: string, message: string, options?: { cause?: unknown; permanent?: boolean }) {
    super(`${taskId}: ${message}`, options);
    this.name = 'TaskError';
    this.permanent = options?.permanent ?? false;
  }
}

/**
 * The task does not apply on this node (e.g. the mirror leaves its asset out on
 * purpose): reported as skipped with the reason, never as passed, and it fails
 * nothing. Tasks depending on it are skipped the same way.
 */
export class TaskSkipped extends Error {
  constructor(readonly taskId: string, readonly reason: string) {
    super(`${taskId}: skipped: ${reason}`);
    this.name = 'TaskSkipped';
  }
}
