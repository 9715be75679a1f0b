// A short-lived etcd3 client for the manager's own checks (health, member
// list), with the manager's client certificate when TLS is on. etcd3 is
// imported lazily: loading it parses its .proto files, which costs startup time.
//
// Every unary call carries a gRPC deadline. etcd3 1.x ignores its own
// `dialTimeout`, and an etcd that has not joined its cluster yet accepts TCP
// connections but never answers them, so without a deadline one call can stall
// a reconcile pass for good.
import { readFile } from 'node:fs/promises';
import type { Etcd3, IMember } from 'etcd3';
import type { EtcdTLSFiles } from './process.js';

/** The default deadline of one etcd call (each of etcd3's retries gets its own). */
export const ETCD_CALL_TIMEOUT_MS = 5_000;

/**
 * HTTP/2 receive window of a client that reads a snapshot. gRPC's default (64 KiB)
 * lets etcd send one window and then wait a round trip through our event loop for
 * the next: a 1.2 GB snapshot drained in 8.3 s with it, 6.2 s with 8 MiB (etcdctl
 * snapshot save: 10.9 s). It is also what the connection buffers while gzip, the
 * slower end of a backup, holds the stream back: 8 MiB made a backup's RSS peak
 * ~29 MiB higher than 1 MiB (a 615 MiB snapshot, 3 runs each: +38 to +48 MiB over
 * the process's start against +17 to +18, the buffers handed on faster than V8
 * collected them) for no speed (drained in 3.8-3.9 s with either, backed up in
 * 12.7-15.5 s against 13.6-14.0 s). 1 MiB keeps the drain as fast.
 */
export const SNAPSHOT_RECEIVE_WINDOW = 1024 * 1024;

export interface EtcdClientOptions {
  /** The HTTP/2 receive window each call's stream announces (SETTINGS_INITIAL_WINDOW_SIZE); gRPC's 64 KiB when absent. */
  receiveWindowBytes?: number;
}

export async function openEtcdClient(endpoints: string[], tls?: EtcdTLSFiles, callTimeoutMs = ETCD_CALL_TIMEOUT_MS, options: EtcdClientOptions = {}): Promise<Etcd3> {
  const { Etcd3: Client } = await import('etcd3');
  const credentials = tls
    ? { rootCertificate: await readFile(tls.caFile), privateKey: await readFile(tls.keyFile), certChain: await readFile(tls.certFile) }
    : undefined;
  return new Client({
    hosts: endpoints,
    credentials,
    dialTimeout: callTimeoutMs,
    ...(options.receiveWindowBytes ? { grpcOptions: { 'grpc-node.flow_control_window': options.receiveWindowBytes } } : {}),
    // Watches and lease keep-alives are streams and must not time out.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  });
}

/** A client on one member for reading its snapshot: SNAPSHOT_RECEIVE_WINDOW, the default call deadline. */
export function openSnapshotClient(endpoint: string, tls?: EtcdTLSFiles): Promise<Etcd3> {
  return openEtcdClient([endpoint], tls, ETCD_CALL_TIMEOUT_MS, { receiveWindowBytes: SNAPSHOT_RECEIVE_WINDOW });
}

export interface EtcdHealth {
  healthy: boolean;
  version?: string;
  leaderId?: string;
  members?: IMember[];
  error?: string;
}

/** One status call and one member list; healthy when both answer, each within `callTimeoutMs`. */
export async function checkEtcd(endpoints: string[], tls?: EtcdTLSFiles, callTimeoutMs?: number): Promise<EtcdHealth> {
  const client = await openEtcdClient(endpoints, tls, callTimeoutMs);
  try {
    const status = await client.maintenance.status();
    const list = await client.cluster.memberList({ linearizable: true });
    return { healthy: true, version: status.version, leaderId: status.leader, members: list.members };
  } catch (err) {
    return { healthy: false, error: (err as Error).message };
  } finally {
    client.close();
  }
}

/** One member's own raft view (its maintenance status), for a version change's checks. */
export interface MemberRaftStatus {
  /** The responding member's ID (decimal string, as the member list gives it). */
  memberId: string;
  /** The member ID it believes leads. */
  leader: string;
  /** Its committed raft index. */
  raftIndex: number;
  /** Its applied raft index. */
  raftAppliedIndex: number;
}

/** The status of the member behind `endpoints` (one member's client URLs); undefined when it does not answer in time. */
export async function memberRaftStatus(endpoints: string[], tls?: EtcdTLSFiles, callTimeoutMs?: number): Promise<MemberRaftStatus | undefined> {
  const client = await openEtcdClient(endpoints, tls, callTimeoutMs);
  try {
    const s = await client.maintenance.status();
    return { memberId: s.header.member_id, leader: s.leader, raftIndex: Number(s.raftIndex), raftAppliedIndex: Number(s.raftAppliedIndex) };
  } catch {
    return undefined;
  } finally {
    client.close();
  }
}

/** etcd's MoveLeader: asked of the leading member (`leaderEndpoints`), which hands leadership to `targetId`. */
export async function moveEtcdLeader(leaderEndpoints: string[], targetId: string, tls?: EtcdTLSFiles): Promise<void> {
  const client = await openEtcdClient(leaderEndpoints, tls);
  try {
    await client.maintenance.moveLeader({ targetID: targetId });
  } finally {
    client.close();
  }
}
