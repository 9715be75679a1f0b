// Leadership safety, explored over interleavings with fast-check's scheduler:
// the real Voter and Leadership classes, three members on an in-memory
// transport (test/harness/peer-net.ts) whose every request and answer is a
// scheduled task, a shared virtual clock, and random mixes of vote, pre-vote
// and renewal rounds, leader commands (also from deposed leaders, with their
// stale term), voter restarts (loading what was durably saved), lost messages
// and clock advances. After every event:
//   - never two members that each believe they lead at the same moment (their
//     leases never overlap in time);
//   - at most one leader per term;
//   - no voter grants a vote, or admits a command, in a term below one it has
//     already answered for (a stale term's command is always refused), and no
//     voter grants one term to two candidates.
// The negative control runs the same property with vote stores that lose
// every save (what "grant before persisting" amounts to across a restart): it
// must find a counterexample, or the property could not fail.
import t from 'tap';
import fc from 'fast-check';
import { configureLogging, logger } from '../../shared/log.js';
import { Leadership, type Member } from '../../agents/etcd-manager/peer/leadership.js';
import { PeerNet } from '../harness/peer-net.js';

configureLogging({ level: 'error' });
const LEASE = 1_000;
const NAMES = ['a', 'b', 'c'] as const;
type Name = (typeof NAMES)[number];

type Action =
  | { kind: 'round'; who: Name }
  | { kind: 'command'; who: Name; to: Name }
  | { kind: 'advance'; ms: number }
  | { kind: 'restart'; who: Name };

const name = fc.constantFrom(...NAMES);
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('round' as const), who: name }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('command' as const), who: name, to: name }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 2 * LEASE }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('restart' as const), who: name }) },
);

/** Runs one scenario; returns the violations found (empty: the properties held). */
async function scenario(s: fc.Scheduler, actions: Action[], drops: boolean[], forgetful: boolean): Promise<string[]> {
  const violations: string[] = [];
  const clock = { now: 10_000 };
  let dropIndex = 0;
  // Per voter: the highest term it has answered "yes" for, and to whom it granted each term.
  const answered = new Map<string, number>();
  const grantedTo = new Map<string, string>();
  const net = new PeerNet({
    leaseMs: LEASE,
    now: () => clock.now,
    forgetful,
    // Every delivery is a scheduled task; some are lost (the caller sees an error, as a timeout).
    deliver: async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      await s.schedule(Promise.resolve(), what);
      if (drops[dropIndex++ % Math.max(1, drops.length)]) throw new Error(`${what}: lost`);
      return fn();
    },
    saveDelay: () => s.schedule(Promise.resolve(), 'save'),
    observe: ({ node, kind, who, term, granted }) => {
      if (!granted || kind === 'pre-vote') return;
      const highest = answered.get(node) ?? 0;
      if (term < highest) violations.push(`${node} said yes to ${kind} ${who}@${term} after answering for term ${highest}`);
      if (kind === 'vote') {
        const key = `${node}@${term}`;
        const before = grantedTo.get(key);
        if (before !== undefined && before !== who) violations.push(`${node} granted term ${term} to ${before} and to ${who}`);
        grantedTo.set(key, who);
      }
      answered.set(node, Math.max(highest, term));
    },
  });
  for (const n of NAMES) await net.add(n);
  const members: Member[] = NAMES.map((n) => ({ member: n, endpoint: n }));
  const log = logger('property');
  const leaders = new Map(NAMES.map((n) => [n, new Leadership({ self: n, client: () => net.transport(n), memberCount: 3, leaseMs: LEASE, log, now: () => clock.now })]));
  const termLeader = new Map<number, string>();
  const checkNow = (when: string) => {
    const now = NAMES.filter((n) => leaders.get(n)!.isLeader());
    if (now.length > 1) violations.push(`${when}: ${now.join(' and ')} both lead at t=${clock.now} (terms ${now.map((n) => leaders.get(n)!.currentTerm).join(', ')})`);
  };
  // One round at a time per candidate, as the Election module runs them.
  const busy = new Map<Name, Promise<unknown>>();
  const tasks = actions.map(async (a): Promise<void> => {
    await s.schedule(Promise.resolve(), `start ${JSON.stringify(a)}`);
    switch (a.kind) {
      case 'advance':
        clock.now += a.ms;
        checkNow(`after +${a.ms} ms`);
        return;
      case 'restart':
        await net.restart(a.who);
        return;
      case 'round': {
        const l = leaders.get(a.who)!;
        const run = (busy.get(a.who) ?? Promise.resolve()).then(async () => {
          const won = await l.round(members);
          if (!won) return;
          const before = termLeader.get(l.currentTerm);
          if (before !== undefined && before !== a.who) violations.push(`term ${l.currentTerm} led by ${before} and by ${a.who}`);
          termLeader.set(l.currentTerm, a.who);
          checkNow(`${a.who} won term ${l.currentTerm}`);
        });
        busy.set(a.who, run.catch(() => undefined));
        await run;
        return;
      }
      case 'command': {
        // Whatever term this member last led in, current or long stale.
        const term = leaders.get(a.who)!.currentTerm || termLeaderOf(termLeader, a.who);
        if (term === 0) return;
        await net.transport(a.who).command(a.to, { leader: a.who, term, action: 'quarantine' }).catch(() => undefined);
        return;
      }
    }
  });
  await s.waitIdle();
  await Promise.all(tasks);
  checkNow('at the end');
  return violations;
}

/** The highest term a member ever won (a deposed leader's stale term). */
function termLeaderOf(terms: Map<number, string>, who: string): number {
  return Math.max(0, ...[...terms].filter(([, l]) => l === who).map(([term]) => term));
}

const property = (forgetful: boolean) => fc.asyncProperty(
  fc.scheduler(),
  fc.array(action, { minLength: 4, maxLength: 30 }),
  fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }),
  async (s, actions, drops) => {
    const violations = await scenario(s, actions, drops, forgetful);
    if (violations.length > 0) throw new Error(`${violations[0]}\n${s.report().map((r) => r.label).join(' | ')}`);
  },
);

t.test('one leader at a time, one per term, stale terms refused: under any interleaving, loss, restart and clock advance', async (t) => {
  await fc.assert(property(false), { numRuns: Number(process.env.MOORING_PROPERTY_RUNS ?? 300) });
  t.pass('no counterexample');
});

t.test('negative control: voters whose promises are not durable (granted before persisting) are caught', async (t) => {
  const result = await fc.check(property(true), { numRuns: 2_000 });
  t.ok(result.failed, `the property finds the bug (after ${result.numRuns} runs)`);
  if (result.failed) t.comment(`counterexample: ${String((result.errorInstance as Error | undefined)?.message).split('\n')[0]}`);
});
