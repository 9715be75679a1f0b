// The executor: tasks form a dependency graph and each starts as soon as its
// own dependencies are done (kOps runs barrier waves). Each attempt has a
// timeout, failures are retried with capped jittered backoff, a failure only
// stops the tasks that depend on it, and the report lists every outcome.
import type { Logger } from '../../../shared/log.js';
import { NodeRoot, RootPathError } from '../host/fs.js';
import type { HostInfo } from '../host/os-release.js';
import { backoffDelay, DEFAULT_RETRY, sleep, type RetryPolicy } from './retry.js';
import { TaskError, TaskSkipped, type Plan, type Task, type TaskContext } from './task.js';

export type TaskStatus = 'unchanged' | 'changed' | 'failed' | 'skipped';

export interface TaskResult {
  id: string;
  status: TaskStatus;
  /** The plan found by the last attempt (absent when planning itself failed). */
  plan?: Plan;
  error?: string;
  /** Why a task was skipped on purpose (it does not apply here); such a skip fails nothing. */
  reason?: string;
  attempts: number;
  ms: number;
}

export interface RunOptions {
  root: string;
  dryRun: boolean;
  host: HostInfo;
  /** Node path of the asset cache. */
  cache: string;
  log: Logger;
  retry?: RetryPolicy;
  /** Per attempt. Default 10 minutes (kOps' per-task limit). */
  timeoutMs?: number;
  /** Tasks running at once; 1 gives a sequential run. */
  concurrency?: number;
  /** A download that gets no byte for this long moves on to the next mirror. */
  assetStallTimeoutMs?: number;
  /** One line per finished task. */
  progress?: (result: TaskResult, done: number, total: number) => void;
}

export interface RunReport {
  results: TaskResult[];
  failed: TaskResult[];
  ms: number;
}

/** Checks ids are unique, deps exist and there is no cycle; returns the tasks in a valid order. */
export function checkGraph(tasks: readonly Task[]): Task[] {
  const byId = new Map<string, Task>();
  for (const task of tasks) {
    if (byId.has(task.id)) throw new Error(`task graph: duplicate task ${task.id}`);
    byId.set(task.id, task);
  }
  for (const task of tasks) {
    for (const dep of task.deps) if (!byId.has(dep)) throw new Error(`task graph: ${task.id} depends on unknown task ${dep}`);
  }
  const order: Task[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (task: Task, path: string[]): void => {
    const s = state.get(task.id);
    if (s === 'done') return;
    if (s === 'visiting') throw new Error(`task graph: dependency cycle ${[...path, task.id].join(' -> ')}`);
    state.set(task.id, 'visiting');
    for (const dep of task.deps) visit(byId.get(dep) as Task, [...path, task.id]);
    state.set(task.id, 'done');
    order.push(task);
  };
  for (const task of tasks) visit(task, []);
  return order;
}

class TimeoutError extends Error {}

async function withTimeout<T>(ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TimeoutError(`timed out after ${ms} ms`);
      controller.abort(err);
      reject(err);
    }, ms);
  });
  try {
    return await Promise.race([run(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runTasks(tasks: readonly Task[], options: RunOptions): Promise<RunReport> {
  const started = Date.now();
  const ordered = checkGraph(tasks);
  const fs = new NodeRoot(options.root);
  const retry = options.retry ?? DEFAULT_RETRY;
  const timeoutMs = options.timeoutMs ?? 10 * 60_000;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const results = new Map<string, TaskResult>();
  const finished = new Map<string, Promise<TaskResult>>();
  const changed = (id: string): boolean => results.get(id)?.status === 'changed';
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async (): Promise<void> => {
    if (running < concurrency) {
      running++;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };

  const attemptOnce = async (task: Task, signal: AbortSignal): Promise<{ plan: Plan; acted: boolean }> => {
    const ctx: TaskContext = { ...options, fs, changed, signal };
    const plan = await task.plan(ctx);
    if (plan.action === 'unchanged') return { plan, acted: false };
    if (!options.dryRun) await task.apply(ctx, plan);
    return { plan, acted: true };
  };

  const runOne = async (task: Task): Promise<TaskResult> => {
    const depResults = await Promise.all(task.deps.map((dep) => finished.get(dep) as Promise<TaskResult>));
    const blocked = depResults.filter((r) => r.status === 'failed' || (r.status === 'skipped' && r.reason === undefined));
    if (blocked.length > 0) {
      return { id: task.id, status: 'skipped', error: `dependency failed: ${blocked.map((r) => r.id).join(', ')}`, attempts: 0, ms: 0 };
    }
    const notApplicable = depResults.filter((r) => r.status === 'skipped');
    if (notApplicable.length > 0) {
      return { id: task.id, status: 'skipped', reason: `dependency skipped: ${notApplicable.map((r) => `${r.id} (${r.reason})`).join(', ')}`, attempts: 0, ms: 0 };
    }
    await slot();
    const t0 = Date.now();
    let attempts = 0;
    let lastPlan: Plan | undefined;
    try {
      // A dry run never retries: planning has no side effect to wait for.
      const maxAttempts = options.dryRun ? 1 : retry.retries + 1;
      for (;;) {
        attempts++;
        try {
          const { plan, acted } = await withTimeout(timeoutMs, (signal) => attemptOnce(task, signal));
          lastPlan = plan;
          return { id: task.id, status: acted ? 'changed' : 'unchanged', plan, attempts, ms: Date.now() - t0 };
        } catch (err) {
          if (err instanceof TaskSkipped) return { id: task.id, status: 'skipped', reason: err.reason, attempts, ms: Date.now() - t0 };
          const raw = err instanceof Error ? err.message : String(err);
          // The report names the task once: drop a TaskError's own "<id>: " prefix.
          const message = raw.startsWith(`${task.id}: `) ? raw.slice(task.id.length + 2) : raw;
          // A path out of the root stays out however often it is tried.
          const permanent = (err instanceof TaskError && err.permanent) || err instanceof RootPathError || (err as { cause?: unknown }).cause instanceof RootPathError;
          if (attempts >= maxAttempts || permanent) {
            return { id: task.id, status: 'failed', ...(lastPlan ? { plan: lastPlan } : {}), error: message, attempts, ms: Date.now() - t0 };
          }
          const delay = backoffDelay(retry, attempts);
          options.log.warn('task failed, retrying', { task: task.id, attempt: attempts, retryInMs: delay, error: message });
          await sleep(delay);
        }
      }
    } finally {
      release();
    }
  };

  let done = 0;
  for (const task of ordered) {
    // Dependencies come first in `ordered`, so their promises exist already.
    const promise = runOne(task).then((result) => {
      results.set(task.id, result);
      options.progress?.(result, ++done, ordered.length);
      return result;
    });
    finished.set(task.id, promise);
  }
  const all = await Promise.all(ordered.map((task) => finished.get(task.id) as Promise<TaskResult>));
  // A skip on purpose (reason, no error) is not a failure.
  return { results: all, failed: all.filter((r) => r.status === 'failed' || (r.status === 'skipped' && r.reason === undefined)), ms: Date.now() - started };
}
