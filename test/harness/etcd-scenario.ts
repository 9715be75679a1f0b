// Shared set-up for the etcd-manager scenario tests and the benchmark: a state
// store (file:// or s3rver) with the etcd CAs and a cluster spec, local volumes
// (loop-device images or directories), manager arguments on 127.0.x.y, and
// etcd's own view of the result: each endpoint's health, cluster ID and member
// list, as that endpoint reports them. Whether those views agree (one cluster)
// is for the test to assert (clusterOf): a wait that only ended once they agree
// would turn a split into a timeout. Everything it starts hangs its cleanup on `t`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureClusterPKI } from '../../shared/pki/cluster-pki.js';
import { openStore, type StateStore } from '../../shared/store/index.js';
import { openEtcdClient, type EtcdHealth } from '../../agents/etcd-manager/etcd/client.js';
import type { EtcdTLSFiles } from '../../agents/etcd-manager/etcd/process.js';
import { createLocalVolume } from '../../agents/etcd-manager/volumes/local.js';
import { loopArea, type LoopArea } from './loop.js';
import { startManager, type ManagerProcess } from './manager.js';
import { freePort, loopbackNet } from './net.js';
import { startS3, type S3Server } from './s3.js';
import type { Teardown } from './tmp.js';

export interface ScenarioOptions {
  /** Addresses 127.0.x.1..hosts. */
  hosts: number;
  memberCount: number;
  volumeKind: 'image' | 'directory';
  store?: 'file' | 's3';
  reconcileInterval?: string;
  discoveryInterval?: string;
  /** Extra manager flags (every manager). */
  extraArgs?: string[];
}

export interface Scenario {
  area: LoopArea;
  ips: string[];
  client: number;
  quarantine: number;
  /** etcd's peer port and the managers' peer API port (the same on every host). */
  peer: number;
  grpc: number;
  backupURL: string;
  backups: StateStore;
  s3?: S3Server;
  env: Record<string, string>;
  /** A local volume of member `member` (tagged k8s.io/etcd/main=<member>/a,b,c, plus `tags`). */
  volume(id: string, member: string, tags?: Record<string, string>): Promise<void>;
  args(i: number): string[];
  start(i: number): ManagerProcess;
  /** start with extra flags for this one manager. */
  startWith(i: number, extra: string[]): ManagerProcess;
  endpoint(i: number): string;
  tls: { certFile: string; keyFile: string; caFile: string };
  setSpec(memberCount: number): Promise<void>;
  /**
   * Once every listed endpoint is healthy and lists `voting` named voting members, every endpoint's own
   * view, unfiltered (whether they agree is the caller's to assert, with clusterOf); else it throws,
   * naming what each endpoint said (so a waitFor that times out tells why).
   */
  view(hosts: number[], voting: number, managers?: ManagerProcess[]): Promise<EndpointView[]>;
  put(host: number, key: string, value: string): Promise<void>;
  get(host: number, key: string): Promise<string | null>;
}

/** One endpoint's answer: etcd's health and member list there, and the cluster ID in its response header. */
export interface EndpointView extends EtcdHealth {
  endpoint: string;
  clusterId?: string;
}

/** What two endpoints of one cluster report alike: the cluster ID and the member IDs. */
export const clusterOf = (v: EndpointView): string => `cluster ${v.clusterId ?? '?'} members ${(v.members ?? []).map((m) => m.ID).sort().join(',')}`;

/** The distinct clusters these views name, in order of first appearance: one entry when they agree. */
export const clustersSeen = (views: EndpointView[]): string[] => [...new Set(views.map(clusterOf))];

/**
 * The etcd leader every view names, or undefined while they differ or name none. The views are
 * read one endpoint after another, so one read can straddle a leadership change (on a busy machine
 * etcd re-elects now and then): callers wait for agreement, and fail only when it never comes.
 */
export const agreedLeader = (views: EndpointView[]): string | undefined => {
  const ids = new Set(views.map((v) => String(v.leaderId ?? '0')));
  const [only] = ids;
  return ids.size === 1 && only !== '0' ? only : undefined;
};

/** Status (with the cluster ID) and a linearizable member list from this one endpoint. */
async function endpointView(endpoint: string, tls: EtcdTLSFiles): Promise<EndpointView> {
  const client = await openEtcdClient([endpoint], tls);
  try {
    const status = await client.maintenance.status();
    const list = await client.cluster.memberList({ linearizable: true });
    return { endpoint, healthy: true, clusterId: status.header.cluster_id, version: status.version, leaderId: status.leader, members: list.members };
  } finally {
    client.close();
  }
}

export async function scenario(t: Teardown, o: ScenarioOptions): Promise<Scenario> {
  const area = loopArea(t);
  const net = loopbackNet();
  const ips = Array.from({ length: o.hosts }, (_, i) => net(i + 1));
  const [peer, client, quarantine, grpc] = [await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0]), await freePort(ips[0])];
  let s3: S3Server | undefined;
  let stateURL = `file://${area.root}/state/c.example.com`;
  let env: Record<string, string> = {};
  if (o.store === 's3') {
    s3 = await startS3(t);
    stateURL = `${s3.url}/state/c.example.com`;
    env = s3.env;
  }
  const state = openStore(stateURL, { env });
  await ensureClusterPKI(state, ['etcd-clients-ca', 'etcd-peers-ca-main', 'etcd-manager-ca-main'], { keyAlgorithm: 'ECDSA-P256' });
  const backupURL = `${stateURL}/backups/etcd/main`;
  const backups = openStore(backupURL, { env });
  const setSpec = (memberCount: number) => backups.write('control/etcd-cluster-spec', JSON.stringify({ memberCount, etcdVersion: '3.4.23' }));
  await setSpec(o.memberCount);
  const args = (i: number) => [
    '--cluster-name=etcd', `--backup-store=${backupURL}`, `--address=${ips[i]}`,
    `--peer-urls=https://__address__:${peer}`, `--client-urls=https://__address__:${client}`, `--quarantine-client-urls=https://__address__:${quarantine}`,
    `--grpc-port=${grpc}`, '--volume-provider=local', `--local-volume-dir=${area.volumeDir}`, `--mount-root=${area.mountRoot}`, `--instance-id=node-${i}`,
    `--pki-dir=${join(area.root, `pki-${i}`)}`, `--hosts-file=${join(area.root, `hosts-${i}`)}`,
    `--reconcile-interval=${o.reconcileInterval ?? '300ms'}`, `--discovery-poll-interval=${o.discoveryInterval ?? '300ms'}`,
    ...(o.extraArgs ?? []),
  ];
  // Any manager's client certificate will do: they come from the same CA.
  const tls = { certFile: join(area.root, 'pki-0/etcdClient.crt'), keyFile: join(area.root, 'pki-0/etcdClient.key'), caFile: join(area.root, 'pki-0/etcd-clients-ca.crt') };
  const endpoint = (i: number) => `https://${ips[i]}:${client}`;
  const clientFor = () => {
    if (existsSync(tls.certFile)) return tls;
    for (let i = 0; i < ips.length; i++) {
      const alt = { certFile: join(area.root, `pki-${i}/etcdClient.crt`), keyFile: join(area.root, `pki-${i}/etcdClient.key`), caFile: join(area.root, `pki-${i}/etcd-clients-ca.crt`) };
      if (existsSync(alt.certFile)) return alt;
    }
    return undefined;
  };
  return {
    area, ips, client, quarantine, peer, grpc, backupURL, backups, s3, env, tls, endpoint, setSpec, args,
    volume: async (id, member, tags = {}) => {
      await createLocalVolume({ volumeDir: area.volumeDir, id, tags: { 'k8s.io/etcd/main': `${member}/a,b,c`, ...tags }, kind: o.volumeKind });
    },
    start: (i) => startManager(t, args(i), env),
    startWith: (i, extra) => startManager(t, [...args(i), ...extra], env),
    view: async (hosts, voting, managers = []) => {
      for (const m of managers) if (m.child.exitCode !== null) throw new Error(`a manager exited: ${JSON.stringify(m.logs.slice(-5))}`);
      const creds = clientFor();
      if (!creds) throw new Error('no client certificate yet');
      const vs = await Promise.all(hosts.map((i) => withTimeout(`etcd on ${endpoint(i)}`, endpointView(endpoint(i), creds)).catch((err: unknown): EndpointView => ({ endpoint: endpoint(i), healthy: false, error: (err as Error).message }))));
      const ready = (v: EndpointView) => v.healthy && v.members?.length === voting && v.members.every((m) => m.name !== '' && !m.isLearner);
      if (!vs.every(ready)) {
        throw new Error(vs.map((v) => `${v.endpoint}: ${v.healthy ? (v.members ?? []).map((m) => `${m.name || '(unnamed)'}${m.isLearner ? ' (learner)' : ''}`).join(',') : v.error}`).join('; '));
      }
      return vs;
    },
    put: async (host, key, value) => {
      const c = await openEtcdClient([endpoint(host)], clientFor());
      try { await withTimeout(`put ${key}`, c.put(key).value(value).exec(), 15_000); } finally { c.close(); }
    },
    get: async (host, key) => {
      const c = await openEtcdClient([endpoint(host)], clientFor());
      try { return await withTimeout(`get ${key}`, c.get(key).string(), 15_000); } finally { c.close(); }
    },
  };
}

/**
 * A bound on one step of a test: openEtcdClient gives each etcd call a deadline,
 * but a test should fail with a clear message rather than wait on a retrying client.
 */
export function withTimeout<T>(what: string, p: Promise<T>, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Log lines of these managers with this structured event (the README's table of events). */
export const logged = (managers: ManagerProcess[], event: string) => managers.flatMap((m) => m.logs.filter((l) => l.event === event));

/**
 * Leadership as the managers' logs tell it: every `became leader` with its term.
 * Two managers never won the same term, and terms only grow in time order.
 */
export function leadershipHistory(managers: ManagerProcess[]): Array<{ manager: number; term: number; time: string }> {
  return managers
    .flatMap((m, manager) => m.logs.filter((l) => l.event === 'leader.elected').map((l) => ({ manager, term: Number(l.term), time: String(l.time) })))
    .sort((a, b) => a.time.localeCompare(b.time) || a.term - b.term);
}
