// The reconcile loop without a process: steps run in order, leader-only steps
// only while leading, and the next pass is event-driven. The interval here is
// an hour, so any second pass seen is caused by the mechanism under test
// (progress, a condition poll, a wake), never by the interval.
import t from 'tap';
import { configureLogging, logger } from '../../shared/log.js';
import { Controller } from '../../agents/etcd-manager/controller/reconcile.js';
import type { Step, StepResult } from '../../agents/etcd-manager/controller/types.js';
import { waitFor } from '../harness/net.js';

configureLogging({ level: 'error' });
const HOUR = 3_600_000;
const clock = { now: () => performance.now(), wallNow: () => Date.now() };

function loop(t: { teardown(fn: () => unknown): void }, steps: Step[]) {
  const c = new Controller({ steps, reconcileIntervalMs: HOUR, clock, log: logger('test') });
  t.teardown(() => c.stop());
  return c;
}

t.test('one pass: steps in order, leader-only ones only while leading, stop ends the pass', async (t) => {
  const ran: string[] = [];
  const step = (name: Step['name'], result?: StepResult, leaderOnly = false, lead = false): Step => ({
    name, leaderOnly, run: async (pass) => { ran.push(name); if (lead) pass.leading = true; return result; },
  });
  const c = loop(t, [step('discovery'), step('membership', undefined, true), step('election', { did: 'x' }), step('newcluster', { waitFor: 'y' }, true)]);
  t.same(await c.reconcile(), { did: ['x'], progress: true, waitingFor: [] });
  t.same(ran, ['discovery', 'election'], 'not leading: leader-only steps skipped');
  ran.length = 0;
  const d = loop(t, [step('election', undefined, false, true), step('newcluster', { waitFor: 'etcd healthy', stop: true }, true), step('local-health')]);
  t.same(await d.reconcile(), { did: [], progress: false, waitingFor: ['etcd healthy'] });
  t.same(ran, ['election', 'newcluster'], 'leading: leader-only steps run; stop ends the pass');
});

t.test('a pass that made progress runs the next one at once', async (t) => {
  let passes = 0;
  const c = loop(t, [{ name: 'membership', run: async () => (++passes === 1 ? { did: 'added c' } : undefined) }]);
  await c.start();
  await waitFor('a second pass', async () => passes >= 2, 5_000, 10);
  t.equal(passes, 2, 'exactly one more: no progress, no further pass within the hour');
});

t.test('a step waiting on a condition polls, not the interval', async (t) => {
  let passes = 0;
  const c = loop(t, [{ name: 'local-health', run: async () => (++passes < 3 ? { waitFor: 'etcd healthy' } : undefined) }]);
  await c.start();
  await waitFor('the condition polled until it held', async () => passes >= 3, 10_000, 20);
  t.equal(passes, 3);
});

t.test('a wake runs a pass now, or right after the running one', async (t) => {
  let passes = 0;
  let release: () => void = () => undefined;
  const c = loop(t, [{ name: 'election', run: async () => { passes++; if (passes === 2) await new Promise<void>((r) => (release = r)); return undefined; } }]);
  await c.start();
  t.equal(passes, 1);
  c.wake('peer b: registered');
  await waitFor('the woken pass', async () => passes >= 2, 5_000, 10);
  c.wake('during the pass'); // pass 2 is still running: remembered
  release();
  await waitFor('the pass after the running one', async () => passes >= 3, 5_000, 10);
  t.equal(passes, 3);
});

t.test('a failed pass is logged and retried sooner than the interval', async (t) => {
  let passes = 0;
  const errors: string[] = [];
  const c = new Controller({
    steps: [{ name: 'discovery', run: async () => { if (++passes === 1) throw new Error('store hiccup'); return undefined; } }],
    reconcileIntervalMs: HOUR, clock, log: logger('test'), onPassEnd: ({ error, step }) => { if (error) errors.push(`${step}: ${error.message}`); },
  });
  t.teardown(() => c.stop());
  await c.start();
  await waitFor('the retry', async () => passes >= 2, 10_000, 20);
  t.same(errors, ['discovery: store hiccup']);
});

t.test('a pass running longer than the stuck threshold makes the loop not alive', async (t) => {
  let now = 1_000; // monotonic: never 0 once running
  let release: () => void = () => undefined;
  const c = new Controller({
    steps: [{ name: 'membership', run: () => new Promise<undefined>((r) => (release = () => r(undefined))) }],
    reconcileIntervalMs: 1_000, clock: { now: () => now, wallNow: () => now }, log: logger('test'),
  });
  const started = c.start();
  t.ok(c.loopAlive());
  now += c.stuckAfterMs + 1;
  t.notOk(c.loopAlive(), 'stuck: peers stop waiting for it, its lease is not renewed');
  release();
  await started;
  t.ok(c.loopAlive(), 'alive again once the pass ends');
  await c.stop();
});
