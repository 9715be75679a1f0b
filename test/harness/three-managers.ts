// Three etcd-manager processes on 127.0.x.1-3 with loop-device volumes a, b, c
// (created here), sharing ports, for the membership scenarios: start them,
// read etcd's own view through any member, find a manager's mount point.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { openStore } from '../../shared/store/index.js';
import type { StateStore } from '../../shared/store/types.js';
import { checkEtcd, type EtcdHealth } from '../../agents/etcd-manager/etcd/client.js';
import type { EtcdTLSFiles } from '../../agents/etcd-manager/etcd/process.js';
import { createLocalVolume } from '../../agents/etcd-manager/volumes/local.js';
import { loopArea, type LoopArea } from './loop.js';
import { startManager, type ManagerProcess } from './manager.js';
import { freePort, loopbackNet, waitFor } from './net.js';
import type { Teardown } from './tmp.js';

export interface ThreeManagers {
  area: LoopArea;
  ips: string[];
  backups: StateStore;
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
  logsOf(ms: ManagerProcess[]): Array<Record<string, unknown>>;
}

export async function threeManagers(t: Teardown, spec: { memberCount: number }, hosts = 3): Promise<ThreeManagers> {
  const area = loopArea(t);
  const net = loopbackNet();
  const ips = Array.from({ length: hosts }, (_, i) => net(i + 1));
  const [peer, client, quarantine, grpc] = [await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0])];
  const stateURL = `file://${area.root}/state/c.example.com`;
  await ensureClusterPKI(openStore(stateURL), ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
  const backupURL = `${stateURL}/backups/etcd/main`;
  const backups = openStore(backupURL);
  await backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount: spec.memberCount, etcdVersion: '3.4.23' }));
  for (const m of ['a', 'b', 'c']) {
    await createLocalVolume({ volumeDir: area.volumeDir, id: `vol-${m}`, tags: { 'k8s.io/etcd/main': `${m}/a,b,c` }, kind: 'image' });
  }
  const tls = { certFile: join(area.root, 'pki-0/etcdClient.crt'), keyFile: join(area.root, 'pki-0/etcdClient.key'), caFile: join(area.root, 'pki-0/etcd-clients-ca.crt') };
  const start = (i: number, extraArgs: string[] = [], env: Record<string, string> = {}) => {
    const hostsFile = join(area.root, `hosts-${i}`);
    if (!existsSync(hostsFile)) writeFileSync(hostsFile, '');
    return startManager(t, [
      'run', '--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ips[i]}`,
      `--peer-urls=https://__address__:${peer}`, `--client-urls=https://__address__:${client}`, `--quarantine-client-urls=https://__address__:${quarantine}`,
      `--grpc-port=${grpc}`, `--local-volume-dir=${area.volumeDir}`, `--mount-root=${area.mountRoot}`, `--instance-id=node-${i}`,
      `--pki-dir=${join(area.root, `pki-${i}`)}`, `--hosts-file=${hostsFile}`, '--reconcile-interval=300ms', '--discovery-poll-interval=300ms',
      ...extraArgs,
    ], env);
  };
  const memberOf = (m: ManagerProcess) => {
    const id = m.logs.find((l) => l.msg === 'member identity');
    return id ? String(id.member) : undefined;
  };
  return {
    area,
    ips,
    backups,
    endpoint: (i) => `https://${ips[i]}:${client}`,
    quarantineEndpoint: (i) => `https://${ips[i]}:${quarantine}`,
    tls,
    start,
    viewOf: (m) => {
      const addr = String(m.child.spawnargs.find((a) => a.startsWith('--address='))?.slice('--address='.length));
      return existsSync(tls.certFile) ? checkEtcd([`https://${addr}:${client}`], tls) : Promise.resolve({ healthy: false, error: 'no client certificate yet' });
    },
    endpointOf: (m) => `https://${String(m.child.spawnargs.find((a) => a.startsWith('--address='))?.slice('--address='.length))}:${client}`,
    view: async (i) => (existsSync(tls.certFile) ? checkEtcd([`https://${ips[i]}:${client}`], tls) : { healthy: false, error: 'no client certificate yet' }),
    mountPoint: (m) => String(m.logs.find((l) => l.msg === 'member identity')?.mountPoint),
    memberOf,
    byMember: async (ms) => {
      await waitFor('every manager has its volume', async () => ms.every((m) => memberOf(m) !== undefined), 60_000, 100);
      return [...ms].sort((x, y) => memberOf(x)!.localeCompare(memberOf(y)!));
    },
    logsOf: (ms) => ms.flatMap((m) => m.logs),
  };
}

/** Every listed member healthy, agreeing on exactly these voting member names. */
export async function votingMembers(h: ThreeManagers, via: ManagerProcess[], names: string[], managers: ManagerProcess[]): Promise<EtcdHealth[] | undefined> {
  for (const m of managers) if (m.child.exitCode !== null) throw new Error(`a manager exited: ${JSON.stringify(m.logs.slice(-5))}`);
  const vs = await Promise.all(via.map((m) => h.viewOf(m)));
  const ok = vs.every((v) => v.healthy && v.members?.length === names.length && v.members.every((m) => !m.isLearner && names.includes(m.name)));
  return ok ? vs : undefined;
}
