// Real etcd 3.4.23 processes for the v2 → v3 migration and version tests and benchmark: a
// v2 source (--enable-v2=true, etcd2's data model) or a v3 target, each with
// mutual TLS from a throwaway ECDSA CA, on its own 127.0.x.y address, ports and
// data directory, killed by PID in teardown. Plus a small v2 HTTP client to
// seed and read the source (independent of the product's reader).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { checkEtcd } from '../../agents/etcd-manager/etcd/client.js';
import type { EtcdTLSFiles } from '../../agents/etcd-manager/etcd/process.js';
import { createCA, issueCertificate } from '../../shared/pki/x509.js';
import { freePort, waitFor } from './net.js';
import type { Teardown } from './tmp.js';

export const ETCD = '/usr/bin/etcd';
export const ETCDCTL = '/usr/bin/etcdctl';
export const SETPRIV = '/usr/bin/setpriv';
export const etcdSkipReason: string | false = [ETCD, ETCDCTL, SETPRIV].find((p) => !existsSync(p)) ? `${[ETCD, ETCDCTL, SETPRIV].filter((p) => !existsSync(p)).join(', ')} not installed` : false;

export interface TestPKI {
  /** etcd's serving certificate for every address given. */
  server: EtcdTLSFiles;
  /** What clients (the command, the test) present. */
  client: EtcdTLSFiles;
}

export async function makeTestPKI(dir: string, ips: string[]): Promise<TestPKI> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCA('migrate-v2-test-ca', 2, { keyAlgorithm: 'ECDSA-P256' });
  const server = await issueCertificate(ca, { commonName: 'etcd', ipAddresses: [...ips, '127.0.0.1'], dnsNames: ['localhost'], usage: 'peer', validityDays: 2, keyAlgorithm: 'ECDSA-P256' });
  const client = await issueCertificate(ca, { commonName: 'client', usage: 'client', validityDays: 2, keyAlgorithm: 'ECDSA-P256' });
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, ca.certPEM);
  const save = async (name: string, pair: { certPEM: string; keyPEM: string }): Promise<EtcdTLSFiles> => {
    await writeFile(join(dir, `${name}.crt`), pair.certPEM);
    await writeFile(join(dir, `${name}.key`), pair.keyPEM, { mode: 0o600 });
    return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), caFile };
  };
  return { server: await save('server', server), client: await save('client', client) };
}

export interface TestEtcd {
  pid: number;
  endpoint: string;
  dataDir: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM by PID, SIGKILL after 10 s; safe to call twice. */
  stop(): Promise<void>;
}

export interface StartOptions {
  name: string;
  ip: string;
  dataDir: string;
  pki: TestPKI;
  enableV2?: boolean;
  extraArgs?: string[];
  /** The etcd to run (default /usr/bin/etcd), e.g. a version directory's stand-in (etcd-binary-dirs.ts). */
  binary?: string;
}

export async function startTestEtcd(t: Teardown, o: StartOptions): Promise<TestEtcd> {
  const clientPort = await freePort(o.ip);
  const peerPort = await freePort(o.ip);
  const endpoint = `https://${o.ip}:${clientPort}`;
  const peerURL = `http://${o.ip}:${peerPort}`;
  const args = [
    `--name=${o.name}`, `--data-dir=${o.dataDir}`,
    `--listen-client-urls=${endpoint}`, `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peerURL}`, `--initial-advertise-peer-urls=${peerURL}`, `--initial-cluster=${o.name}=${peerURL}`,
    `--cert-file=${o.pki.server.certFile}`, `--key-file=${o.pki.server.keyFile}`, `--trusted-ca-file=${o.pki.server.caFile}`, '--client-cert-auth',
    ...(o.enableV2 ? ['--enable-v2=true'] : []),
    ...(o.extraArgs ?? []),
  ];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
  // Dies with the test process even when tap kills it on a timeout and no teardown runs.
  const child = spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', o.binary ?? ETCD, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    }, 60_000, 200);
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid, endpoint, dataDir: o.dataDir, child, output: () => tail.join('\n'), stop };
}

/** A v2 HTTP client of the test's own (keep-alive, client certificate). */
export class V2Client {
  private readonly agent: https.Agent;

  constructor(readonly endpoint: string, tls: EtcdTLSFiles, maxSockets = 64) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets, ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) });
  }

  /** One v2 API request (path with its query; body form-encoded); the answer and its X-Etcd-Index. */
  request(method: string, path: string, body?: string): Promise<{ status: number; text: string; etcdIndex?: number }> {
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(path, this.endpoint), {
        method,
        agent: this.agent,
        headers: body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const index = res.headers['x-etcd-index'];
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), ...(typeof index === 'string' ? { etcdIndex: Number(index) } : {}) }));
        res.on('error', reject);
      });
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  async put(key: string, value: string, ttlSeconds?: number): Promise<void> {
    const path = `/v2/keys${key.split('/').map(encodeURIComponent).join('/')}`;
    const body = `value=${encodeURIComponent(value)}${ttlSeconds ? `&ttl=${ttlSeconds}` : ''}`;
    const res = await this.request('PUT', path, body);
    if (res.status >= 300) throw new Error(`PUT ${key}: HTTP ${res.status}: ${res.text}`);
  }

  async mkdir(key: string): Promise<void> {
    const res = await this.request('PUT', `/v2/keys${key.split('/').map(encodeURIComponent).join('/')}`, 'dir=true');
    if (res.status >= 300) throw new Error(`mkdir ${key}: HTTP ${res.status}: ${res.text}`);
  }

  /** Every leaf: key → {value, expiration (ms) if it has a TTL}. */
  async leaves(): Promise<Map<string, { value: string; expiresAt?: number }>> {
    const res = await this.request('GET', '/v2/keys/?recursive=true');
    if (res.status !== 200) throw new Error(`GET /: HTTP ${res.status}: ${res.text.slice(0, 200)}`);
    type Node = { key?: string; value?: string; dir?: boolean; expiration?: string; nodes?: Node[] };
    const out = new Map<string, { value: string; expiresAt?: number }>();
    const visit = (n: Node) => {
      if (n.dir) (n.nodes ?? []).forEach(visit);
      else if (n.key) out.set(n.key, { value: n.value ?? '', ...(n.expiration ? { expiresAt: Date.parse(n.expiration) } : {}) });
    };
    visit((JSON.parse(res.text) as { node: Node }).node);
    return out;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs `fn` over items, `width` at a time. */
export async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}
