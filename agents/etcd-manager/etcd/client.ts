// A short-lived etcd3 client for the manager's own checks (health, member
// list), with the manager's client certificate when TLS is on. etcd3 is
// imported lazily: loading it parses its .proto files, which costs startup time.
import { readFile } from 'node:fs/promises';
import type { Etcd3, IMember } from 'etcd3';
import type { EtcdTLSFiles } from './process.js';

export async function openEtcdClient(endpoints: string[], tls?: EtcdTLSFiles, dialTimeoutMs = 3_000): Promise<Etcd3> {
  const { Etcd3: Client } = await import('etcd3');
  const credentials = tls
    ? { rootCertificate: await readFile(tls.caFile), privateKey: await readFile(tls.keyFile), certChain: await readFile(tls.certFile) }
    : undefined;
  return new Client({ hosts: endpoints, credentials, dialTimeout: dialTimeoutMs });
}

export interface EtcdHealth {
  healthy: boolean;
  version?: string;
  leaderId?: string;
  members?: IMember[];
  error?: string;
}

/** One status call and one member list; healthy when both answer. */
export async function checkEtcd(endpoints: string[], tls?: EtcdTLSFiles, dialTimeoutMs?: number): Promise<EtcdHealth> {
  const client = await openEtcdClient(endpoints, tls, dialTimeoutMs);
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
