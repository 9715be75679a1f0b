// One real etcd (Debian's 3.4.23) with mutual TLS on a 127.0.x.y address, for
// tests that need a member but no manager: certificates from the repo's own
// PKI code, its own ports and data dir, killed by PID in teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkEtcd } from '../../agents/etcd-manager/etcd/client.js';
import type { EtcdTLSFiles } from '../../agents/etcd-manager/etcd/process.js';
import { createCA, issueCertificate } from '../../shared/pki/x509.js';
import { freePort, waitFor } from './net.js';
import type { Teardown } from './tmp.js';

export const ETCD_BINARY = '/usr/bin/etcd';
export const ETCDCTL_BINARY = '/usr/bin/etcdctl';
export const etcdMissing: string | false = existsSync(ETCD_BINARY) && existsSync(ETCDCTL_BINARY) ? false : `${ETCD_BINARY} or ${ETCDCTL_BINARY} is not installed`;

export interface EtcdPKI {
  /** etcd's server and peer certificate (both usages), for every address in `ips`. */
  member: EtcdTLSFiles;
  /** A client certificate (what etcd-manager and etcdctl present). */
  client: EtcdTLSFiles;
}

/** One CA, a member certificate for `ips`, a client certificate; keys 0600. ECDSA for speed. */
export async function makeEtcdPKI(dir: string, ips: string[]): Promise<EtcdPKI> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCA('test-etcd-ca', 30, { keyAlgorithm: 'ECDSA-P256' });
  const member = await issueCertificate(ca, { commonName: 'member', ipAddresses: [...ips, '127.0.0.1'], dnsNames: ['localhost'], usage: 'peer', validityDays: 30, keyAlgorithm: 'ECDSA-P256' });
  const client = await issueCertificate(ca, { commonName: 'client', usage: 'client', validityDays: 30, keyAlgorithm: 'ECDSA-P256' });
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, ca.certPEM);
  const files = async (name: string, pair: { certPEM: string; keyPEM: string }): Promise<EtcdTLSFiles> => {
    await writeFile(join(dir, `${name}.crt`), pair.certPEM);
    await writeFile(join(dir, `${name}.key`), pair.keyPEM, { mode: 0o600 });
    return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), caFile };
  };
  return { member: await files('member', member), client: await files('client', client) };
}

export interface RunningEtcd {
  pid: number;
  /** https://<ip>:<client port> */
  endpoint: string;
  peerURL: string;
  dataDir: string;
  /** etcd's last output lines, for failure messages. */
  output(): string;
  /** SIGTERM by PID, SIGKILL after 10 s; safe to call twice. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  name: string;
  dataDir: string;
  ip: string;
  pki: EtcdPKI;
  token: string;
  /** Defaults to this member alone. Ignored by etcd when the data dir already holds a member (a restored one). */
  initialCluster?: string;
  peerPort?: number;
}

export async function startEtcd(t: Teardown, o: StartEtcdOptions): Promise<RunningEtcd> {
  const clientPort = await freePort(o.ip);
  const peerPort = o.peerPort ?? (await freePort(o.ip));
  const endpoint = `https://${o.ip}:${clientPort}`;
  const peerURL = `https://${o.ip}:${peerPort}`;
  const { member } = o.pki;
  const args = [
    `--name=${o.name}`, `--data-dir=${o.dataDir}`,
    `--listen-client-urls=${endpoint}`, `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peerURL}`, `--initial-advertise-peer-urls=${peerURL}`,
    `--initial-cluster=${o.initialCluster ?? `${o.name}=${peerURL}`}`, `--initial-cluster-token=${o.token}`, '--initial-cluster-state=new',
    `--cert-file=${member.certFile}`, `--key-file=${member.keyFile}`, `--trusted-ca-file=${member.caFile}`, '--client-cert-auth',
    `--peer-cert-file=${member.certFile}`, `--peer-key-file=${member.keyFile}`, `--peer-trusted-ca-file=${member.caFile}`, '--peer-client-cert-auth',
  ];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
  const child: ChildProcess = spawn(ETCD_BINARY, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(...chunk.toString().split('\n').filter((l) => l.trim() !== ''));
    tail.splice(0, Math.max(0, tail.length - 20));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid!;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(pid, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    })());
  t.teardown(stop);
  try {
    await waitFor(`etcd ${o.name} healthy on ${endpoint}`, async () => {
      if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${tail.slice(-3).join(' | ')}`);
      return (await checkEtcd([endpoint], o.pki.client, 2_000)).healthy;
    }, 30_000, 200);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; etcd said: ${tail.slice(-3).join(' | ')}`, { cause: err });
  }
  return { pid, endpoint, peerURL, dataDir: o.dataDir, output: () => tail.join('\n'), stop };
}
