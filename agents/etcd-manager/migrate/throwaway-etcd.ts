// A one-member etcd that lives only as long as one job of this process: the
// v2 source serving a backup (v2-backup.ts), or the v3 cluster a v2 backup is
// migrated into before it is snapshotted (convert.ts). It listens on 127.0.0.1
// on kernel-chosen ports, speaks mutual TLS with a CA made for it (thrown away
// with it), and is started through `setpriv --pdeathsig KILL`, so it dies with
// this process even on kill -9; otherwise it is stopped by its PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, UserError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import { createCA, issueCertificate } from '../../../shared/pki/x509.js';
import { freePorts } from '../etcd/free-ports.js';
import { SETPRIV, type EtcdTLSFiles } from '../etcd/process.js';

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
/** A refused connection costs next to nothing, and every 200 ms here was up to 200 ms added to a migration or conversion. */
const PROBE_INTERVAL_MS = 50;
const HOST = '127.0.0.1';

export interface ThrowawayPKI {
  server: EtcdTLSFiles;
  client: EtcdTLSFiles;
}

export interface ThrowawayEtcdOptions {
  /** The etcd binary, and the version it is (for messages). */
  etcd: string;
  version: string;
  /** Member name (also in messages). */
  name: string;
  dataDir: string;
  pki: ThrowawayPKI;
  /** Flags beyond the listeners and TLS (--force-new-cluster, --enable-v2, …). */
  extraArgs: string[];
  /** What it serves, for messages ("the backup at …"). */
  serving: string;
  /** Resolves once the etcd at `url` answers; throws (quickly) while it does not. */
  probe(url: string): Promise<void>;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}

export interface ThrowawayEtcd {
  url: string;
  pid: number;
  /** Stops it by its PID (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all 0600 in `dir`, valid one day. */
export async function makeThrowawayPKI(dir: string, name: string): Promise<ThrowawayPKI> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCA(`etcd-manager-${name}`, 1, { keyAlgorithm: 'ECDSA-P256' });
  const server = await issueCertificate(ca, { commonName: name, ipAddresses: [HOST], dnsNames: ['localhost'], usage: 'server', validityDays: 1, keyAlgorithm: 'ECDSA-P256' });
  const client = await issueCertificate(ca, { commonName: `${name}-client`, usage: 'client', validityDays: 1, keyAlgorithm: 'ECDSA-P256' });
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, ca.certPEM, { mode: 0o600 });
  const save = async (file: string, pair: { certPEM: string; keyPEM: string }): Promise<EtcdTLSFiles> => {
    await writeFile(join(dir, `${file}.crt`), pair.certPEM, { mode: 0o600 });
    await writeFile(join(dir, `${file}.key`), pair.keyPEM, { mode: 0o600 });
    return { certFile: join(dir, `${file}.crt`), keyFile: join(dir, `${file}.key`), caFile };
  };
  return { server: await save('server', server), client: await save('client', client) };
}

/** Starts it and waits until `probe` succeeds; a port taken between the check and etcd's bind is tried once more. */
export async function startThrowawayEtcd(o: ThrowawayEtcdOptions): Promise<ThrowawayEtcd> {
  for (let attempt = 1; ; attempt++) {
    const [clientPort, peerPort] = await freePorts(HOST, 2);
    const clientURL = `https://${HOST}:${clientPort}`;
    const peerURL = `http://${HOST}:${peerPort}`;
    const args = [
      `--name=${o.name}`, `--data-dir=${o.dataDir}`,
      `--listen-client-urls=${clientURL}`, `--advertise-client-urls=${clientURL}`,
      `--listen-peer-urls=${peerURL}`, `--initial-advertise-peer-urls=${peerURL}`, `--initial-cluster=${o.name}=${peerURL}`,
      `--cert-file=${o.pki.server.certFile}`, `--key-file=${o.pki.server.keyFile}`, `--trusted-ca-file=${o.pki.server.caFile}`, '--client-cert-auth',
      // One member and no peers: nothing to lose by short raft timers. With etcd's defaults (100 ms
      // ticks, 1 s election timeout, randomized up to 2 s) it waited 0.1–1 s after loading its data
      // before electing itself and answering.
      '--heartbeat-interval=10', '--election-timeout=100',
      ...o.extraArgs,
    ];
    // etcd reads ETCD_* variables as settings: none of the caller's may leak in.
    const env = Object.fromEntries(Object.entries(o.env ?? process.env).filter(([k]) => !k.startsWith('ETCD_')));
    const tail: string[] = [];
    const child: ChildProcess = spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', o.etcd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    const running = () => child.exitCode === null && child.signalCode === null;
    const stop = async () => {
      if (child.pid && running()) {
        process.kill(child.pid, 'SIGTERM');
        const timer = setTimeout(() => child.pid && running() && process.kill(child.pid, 'SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
    };
    const keep = (chunk: Buffer) => {
      tail.push(...chunk.toString().split('\n').filter((l) => l.trim() !== ''));
      tail.splice(0, Math.max(0, tail.length - 10));
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let spawnFailure: Error | undefined;
    child.once('error', (err) => (spawnFailure = err));
    const deadline = Date.now() + START_TIMEOUT_MS;
    let lastError = '';
    try {
      for (;;) {
        if (spawnFailure) throw new UserError(`cannot start ${o.etcd} for ${o.serving}: ${spawnFailure.message}`, ExitCode.Failure);
        if (!running()) break;
        try {
          await o.probe(clientURL);
          o.log.info('throwaway etcd up', { event: 'throwaway-etcd.up', name: o.name, pid: child.pid, etcd: o.etcd, version: o.version, url: clientURL });
          return { url: clientURL, pid: child.pid!, stop };
        } catch (err) {
          lastError = (err as Error).message;
        }
        if (Date.now() > deadline) throw new UserError(`etcd ${o.version} for ${o.serving} did not answer within ${START_TIMEOUT_MS / 1000}s: ${lastError}; its last lines: ${tail.slice(-3).join(' | ')}`, ExitCode.Failure);
        await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
      }
    } catch (err) {
      await stop();
      throw err;
    }
    if (attempt < 2 && /address already in use/.test(tail.join(' | '))) continue;
    throw new UserError(`etcd ${o.version} could not serve ${o.serving} (exit ${child.exitCode ?? child.signalCode}): ${tail.slice(-3).join(' | ')}`, ExitCode.Failure);
  }
}
