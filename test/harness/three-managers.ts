// Three etcd-manager processes on 127.0.x.1-3 with volumes a, b, c, for the
// membership scenarios: the scenario harness (etcd-scenario.ts) plus helpers
// that find managers by the member they hold. The volumes are loop-device
// images where the kernel allows them, else directories: these scenarios are
// about membership, leadership and the etcd fence, which a directory volume
// proves the same way (the block-device path itself is proven by
// etcd-manager-volumes, etcd-manager-aws-volumes and the one-member test).
import type { StateStore } from '../../shared/store/types.js';
import { checkEtcd, type EtcdHealth } from '../../agents/etcd-manager/etcd/client.js';
import type { EtcdTLSFiles } from '../../agents/etcd-manager/etcd/process.js';
import { scenario } from './etcd-scenario.js';
import { loopSkipReason, type LoopArea } from './loop.js';
import { startManager, type ManagerProcess } from './manager.js';
import { waitFor } from './net.js';
import type { S3Server } from './s3.js';
import type { Teardown } from './tmp.js';
import { existsSync } from 'node:fs';

export interface ThreeManagers {
  area: LoopArea;
  /** What the volumes are: loop-device images, or directories where loop devices are refused. */
  volumeKind: 'image' | 'directory';
  ips: string[];
  backups: StateStore;
  /** The s3rver the store lives on (store 's3'). */
  s3?: S3Server;
  endpoint(i: number): string;
  quarantineEndpoint(i: number): string;
  tls: EtcdTLSFiles;
  start(i: number, extraArgs?: string[], env?: Record<string, string>): ManagerProcess;
  /** etcd's view through member i's client port. */
  view(i: number): Promise<EtcdHealth>;
  /** etcd's view through the client port of the member a manager runs. */
  viewOf(m: ManagerProcess): Promise<EtcdHealth>;
  /** Client endpoint of the manager's member. */
  endpointOf(m: ManagerProcess): string;
  mountPoint(m: ManagerProcess): string;
  /** The member name a manager took (from its volume), once it has logged it. */
  memberOf(m: ManagerProcess): string | undefined;
  /** Managers ordered by the member they hold: [a, b, c] (waits until each has its volume). */
  byMember(ms: ManagerProcess[]): Promise<ManagerProcess[]>;
  /**
   * Starts managers 0, 1, 2 with member a's registered before the others start, so a (the lowest name)
   * leads, as the scenarios that name their victims by leader assume; returns them as [a, b, c].
   */
  startAll(extraArgs?: string[], env?: Record<string, string>): Promise<ManagerProcess[]>;
  logsOf(ms: ManagerProcess[]): Array<Record<string, unknown>>;
}

/** Loop-device images when this machine allows them, else directories. */
export async function membershipVolumeKind(): Promise<'image' | 'directory'> {
  return (await loopSkipReason()) ? 'directory' : 'image';
}

export async function threeManagers(t: Teardown, spec: { memberCount: number; store?: 'file' | 's3' }, hosts = 3): Promise<ThreeManagers> {
  const volumeKind = await membershipVolumeKind();
  const s = await scenario(t, { hosts, memberCount: spec.memberCount, volumeKind, ...(spec.store ? { store: spec.store } : {}) });
  for (const m of ['a', 'b', 'c']) await s.volume(`vol-${m}`, m);
  const memberOf = (m: ManagerProcess) => {
    const id = m.logs.find((l) => l.event === 'member.identity');
    return id ? String(id.member) : undefined;
  };
  const endpointOf = (m: ManagerProcess) => `https://${String(m.child.spawnargs.find((a) => a.startsWith('--address='))?.slice('--address='.length))}:${s.client}`;
  const viewAt = async (endpoint: string): Promise<EtcdHealth> => (existsSync(s.tls.certFile) ? checkEtcd([endpoint], s.tls) : { healthy: false, error: 'no client certificate yet' });
  const start = (i: number, extraArgs: string[] = [], env: Record<string, string> = {}) => startManager(t, ['run', ...s.args(i), ...extraArgs], { ...s.env, ...env });
  const byMember = async (ms: ManagerProcess[]) => {
    await waitFor('every manager has its volume', async () => ms.every((m) => memberOf(m) !== undefined), 60_000, 100);
    return [...ms].sort((x, y) => memberOf(x)!.localeCompare(memberOf(y)!));
  };
  return {
    area: s.area,
    volumeKind,
    ips: s.ips,
    backups: s.backups,
    ...(s.s3 ? { s3: s.s3 } : {}),
    endpoint: s.endpoint,
    quarantineEndpoint: (i) => `https://${s.ips[i]}:${s.quarantine}`,
    tls: s.tls,
    start,
    viewOf: (m) => viewAt(endpointOf(m)),
    endpointOf,
    view: (i) => viewAt(s.endpoint(i)),
    mountPoint: (m) => String(m.logs.find((l) => l.event === 'member.identity')?.mountPoint),
    memberOf,
    byMember,
    logsOf: (ms) => ms.flatMap((m) => m.logs),
    startAll: async (extraArgs = [], env = {}) => {
      const first = start(0, extraArgs, env);
      await waitFor('member a registered', () => s.backups.exists('discovery/a.json'), 60_000, 100);
      return byMember([first, start(1, extraArgs, env), start(2, extraArgs, env)]);
    },
  };
}

/** Every listed member healthy, agreeing on exactly these voting member names. */
export async function votingMembers(h: ThreeManagers, via: ManagerProcess[], names: string[], managers: ManagerProcess[]): Promise<EtcdHealth[] | undefined> {
  for (const m of managers) if (m.child.exitCode !== null) throw new Error(`a manager exited: ${JSON.stringify(m.logs.slice(-5))}`);
  const vs = await Promise.all(via.map((m) => h.viewOf(m)));
  const ok = vs.every((v) => v.healthy && v.members?.length === names.length && v.members.every((m) => !m.isLearner && names.includes(m.name)));
  return ok ? vs : undefined;
}
