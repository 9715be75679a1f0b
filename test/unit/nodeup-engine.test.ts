// The nodeup executor: dependency order without waves, per-attempt timeouts,
// capped jittered retries, failures that only stop their dependents, dry runs
// that never apply.
import t from 'tap';
import { logger, configureLogging } from '../../shared/log.js';
import { backoffDelay } from '../../agents/nodeup/engine/retry.js';
import { checkGraph, runTasks, type RunOptions } from '../../agents/nodeup/engine/run.js';
import { TaskError, type Plan, type Task } from '../../agents/nodeup/engine/task.js';

configureLogging({ write: () => undefined });

interface Probe {
  events: string[];
}

function task(probe: Probe, id: string, deps: string[], o: { delayMs?: number; failTimes?: number; action?: Plan['action']; hangMs?: number } = {}): Task {
  let failures = 0;
  return {
    id,
    deps,
    async plan() {
      return { action: o.action ?? 'create', changes: [{ field: 'x', new: 'y' }] };
    },
    async apply() {
      probe.events.push(`start ${id}`);
      if (o.hangMs) await new Promise((r) => setTimeout(r, o.hangMs));
      if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      if (failures < (o.failTimes ?? 0)) {
        failures++;
        probe.events.push(`fail ${id}`);
        throw new Error(`${id} broke (${failures})`);
      }
      probe.events.push(`end ${id}`);
    },
  };
}

const options = (over: Partial<RunOptions> = {}): RunOptions => ({
  root: '/nonexistent-root',
  dryRun: false,
  host: { id: 'debian', versionID: '12', family: 'debian', arch: 'amd64', source: 'test' },
  cache: '/nonexistent-cache',
  log: logger('test'),
  retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 },
  ...over,
});

t.test('graph checks: unknown dependency, cycle, duplicate', async (t) => {
  const p = { events: [] };
  t.throws(() => checkGraph([task(p, 'a', ['b'])]), /a depends on unknown task b/);
  t.throws(() => checkGraph([task(p, 'a', ['b']), task(p, 'b', ['a'])]), /dependency cycle a -> b -> a/);
  t.throws(() => checkGraph([task(p, 'a', []), task(p, 'a', [])]), /duplicate task a/);
});

t.test('a task starts as soon as its own dependencies are done, not after a wave', async (t) => {
  const p: Probe = { events: [] };
  // slow has no dependents; fast -> after-fast must not wait for slow.
  const report = await runTasks([task(p, 'slow', [], { delayMs: 150 }), task(p, 'fast', []), task(p, 'after-fast', ['fast'])], options());
  t.equal(report.failed.length, 0);
  t.ok(p.events.indexOf('end after-fast') < p.events.indexOf('end slow'), `after-fast finished before slow: ${p.events.join(', ')}`);
  t.ok(p.events.indexOf('end fast') < p.events.indexOf('start after-fast'), 'dependency finished first');
});

t.test('retries are capped; a failure stops only its dependents; the report names each', async (t) => {
  const p: Probe = { events: [] };
  const report = await runTasks([
    task(p, 'flaky', [], { failTimes: 2 }),
    task(p, 'broken', [], { failTimes: 99 }),
    task(p, 'needs-broken', ['broken']),
    task(p, 'independent', []),
  ], options());
  const byId = Object.fromEntries(report.results.map((r) => [r.id, r]));
  t.equal(byId.flaky.status, 'changed', 'flaky succeeds on its third attempt');
  t.equal(byId.flaky.attempts, 3);
  t.equal(byId.broken.status, 'failed');
  t.equal(byId.broken.attempts, 3, 'retries capped at 2 (3 attempts)');
  t.equal(byId.broken.error, 'broken broke (3)');
  t.equal(byId['needs-broken'].status, 'skipped');
  t.equal(byId['needs-broken'].error, 'dependency failed: broken');
  t.equal(byId.independent.status, 'changed', 'an independent task is not stopped');
  t.same(report.failed.map((r) => r.id).sort(), ['broken', 'needs-broken']);
  t.notOk(p.events.includes('start needs-broken'), 'a dependent of a failed task never runs');
});

t.test('each attempt has a timeout', async (t) => {
  const p: Probe = { events: [] };
  const report = await runTasks([task(p, 'hangs', [], { hangMs: 2000 }), task(p, 'quick', [])], options({ timeoutMs: 50, retry: { retries: 0, baseDelayMs: 1, maxDelayMs: 1 } }));
  const hangs = report.results.find((r) => r.id === 'hangs');
  t.equal(hangs?.status, 'failed');
  t.match(hangs?.error ?? '', /timed out after 50 ms/);
  t.equal(report.results.find((r) => r.id === 'quick')?.status, 'changed');
});

t.test('a dry run plans every task and applies none', async (t) => {
  const p: Probe = { events: [] };
  const report = await runTasks([task(p, 'a', []), task(p, 'b', ['a']), task(p, 'c', [], { action: 'unchanged' })], options({ dryRun: true }));
  t.same(p.events, [], 'apply never called');
  t.same(report.results.map((r) => `${r.id}:${r.status}`), ['a:changed', 'b:changed', 'c:unchanged']);
});

t.test('concurrency 1 runs one task at a time', async (t) => {
  const p: Probe = { events: [] };
  await runTasks([task(p, 'a', [], { delayMs: 20 }), task(p, 'b', [], { delayMs: 20 })], options({ concurrency: 1 }));
  t.same(p.events, ['start a', 'end a', 'start b', 'end b']);
});

t.test('backoff is exponential, capped, and jittered between half and all of the step', async (t) => {
  const policy = { retries: 10, baseDelayMs: 1000, maxDelayMs: 30_000 };
  t.equal(backoffDelay(policy, 1, () => 0), 500);
  t.equal(backoffDelay(policy, 1, () => 1), 1000);
  t.equal(backoffDelay(policy, 3, () => 1), 4000);
  t.equal(backoffDelay(policy, 20, () => 1), 30_000, 'never above the cap');
  t.equal(backoffDelay(policy, 20, () => 0), 15_000);
});

t.test('an error no retry can fix (permanent) fails at once; others are still retried', async (t) => {
  let permanentAttempts = 0;
  const permanent: Task = {
    id: 'bad-input',
    deps: [],
    async plan() {
      permanentAttempts++;
      throw new TaskError('bad-input', 'unknown distro', { permanent: true });
    },
    async apply() {},
  };
  const p: Probe = { events: [] };
  const report = await runTasks([permanent, task(p, 'flaky', [], { failTimes: 1 })], options());
  t.equal(permanentAttempts, 1, 'permanent failure is not retried');
  t.same(report.failed.map((f) => f.id), ['bad-input']);
  t.same(p.events, ['start flaky', 'fail flaky', 'start flaky', 'end flaky'], 'a transient failure is still retried');
});
