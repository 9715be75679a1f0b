// Three managers racing at start form exactly one cluster, round after round.
// Each round uses directory volumes (the race is about leadership and formation,
// not mounting; the loop-device race is covered by etcd-manager-three-members)
// and short intervals, and two rounds run side by side on separate
// 127.0.x.0/24 nets and stores. All 20 rounds the issue asks for run in the
// normal suite: about 6 s a round on an idle 2-core machine with the built
// binary (twice that from source), more when other etcd work shares the
// machine, so this file raises its own tap timeout. MOORING_ETCD_RACE_ROUNDS
// and MOORING_ETCD_RACE_PARALLEL change how many rounds run, and how many at once.
// Each round checks etcd's own view: once each endpoint is healthy and lists
// three named voting members, every endpoint reports the same cluster ID and the
// same member IDs (one cluster; asserted on the raw views, so a split fails the
// round rather than timing out), a key
// written on one member read back on the others; and the managers' logs: one
// formation, one `became leader` per term.
import t from 'tap';
import { existsSync } from 'node:fs';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { clustersSeen, leadershipHistory, logged, scenario } from '../harness/etcd-scenario.js';
import { waitFor } from '../harness/net.js';
import { describeManagers, managerCommand } from '../harness/manager.js';
import type { Teardown } from '../harness/tmp.js';

const etcdSkip = existsSync(SYSTEM_ETCD) ? false : `${SYSTEM_ETCD} is not installed`;
const ROUNDS = Number(process.env.MOORING_ETCD_RACE_ROUNDS ?? 20);
const PARALLEL = Number(process.env.MOORING_ETCD_RACE_PARALLEL ?? 2);

interface Outcome { round: number; clusters: string[]; formations: number; sameTermTwice: boolean; readBack: Array<string | null> }

async function round(t: Teardown & { teardown(fn: () => unknown): void }, n: number): Promise<Outcome> {
  const s = await scenario(t, { hosts: 3, memberCount: 3, volumeKind: 'directory', reconcileInterval: '200ms', discoveryInterval: '200ms' });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m);
  const managers = [0, 1, 2].map((i) => s.start(i));
  try {
    const views = await waitFor(`round ${n}: three healthy members`, () => s.view([0, 1, 2], 3, managers), 90_000, 250).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${describeManagers(managers)}`);
    });
    await s.put(n % 3, `/race/${n}`, `round-${n}`);
    const readBack = await Promise.all([0, 1, 2].map((i) => s.get(i, `/race/${n}`)));
    const terms = leadershipHistory(managers).map((h) => h.term);
    return {
      round: n,
      clusters: clustersSeen(views),
      formations: logged(managers, 'cluster.forming').length,
      sameTermTwice: new Set(terms).size !== terms.length,
      readBack,
    };
  } finally {
    await Promise.all(managers.map((m) => m.kill()));
    await s.area.cleanup();
  }
}

// Every round is bounded (90 s to form); the file as a whole may take longer than tap's default.
t.setTimeout(120_000 + ROUNDS * 45_000);
t.comment(`managers run as: ${managerCommand().join(' ')}`);

t.test(`three managers racing at start: exactly one cluster, ${ROUNDS} rounds (${PARALLEL} at a time, directory volumes)`, { skip: etcdSkip, timeout: 120_000 + ROUNDS * 40_000 }, async (t) => {
  const outcomes: Outcome[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < ROUNDS) {
      const n = next++;
      outcomes.push(await round(t, n));
    }
  }));
  for (const o of outcomes.sort((a, b) => a.round - b.round)) {
    t.equal(o.clusters.length, 1, `round ${o.round}: one cluster (same cluster ID and member IDs on every endpoint)`, { clusters: o.clusters });
    t.equal(o.formations, 1, `round ${o.round}: exactly one formation`);
    t.notOk(o.sameTermTwice, `round ${o.round}: no term won twice`);
    t.same(o.readBack, [`round-${o.round}`, `round-${o.round}`, `round-${o.round}`], `round ${o.round}: key read back on every member`);
  }
  t.equal(outcomes.length, ROUNDS);
});
