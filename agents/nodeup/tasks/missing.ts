// A task whose input is missing (e.g. no asset for kubelet in the node config):
// it fails with a clear message, and only the tasks that depend on it are skipped.
import { TaskError, TaskSkipped, type Plan, type Task } from '../engine/task.js';

export class UnsatisfiableTask implements Task {
  readonly deps: readonly string[] = [];
  constructor(readonly id: string, readonly reason: string) {}
  async plan(): Promise<Plan> {
    throw new TaskError(this.id, this.reason, { permanent: true });
  }
  async apply(): Promise<void> {
    throw new TaskError(this.id, this.reason, { permanent: true });
  }
}

/** A task whose input is left out on purpose (an asset the mirror does not carry): skipped with the reason. */
export class LeftOutTask implements Task {
  readonly deps: readonly string[] = [];
  constructor(readonly id: string, readonly reason: string) {}
  async plan(): Promise<Plan> {
    throw new TaskSkipped(this.id, this.reason);
  }
  async apply(): Promise<void> {
    throw new TaskSkipped(this.id, this.reason);
  }
}
