// The managers' private API: JSON over HTTPS with mutual TLS, both sides
// holding a certificate from etcd-manager-ca-<etcd>; a caller without one is
// refused during the handshake. Small on purpose: info, vote, and fenced
// commands (every command names its leader and term; the Voter admits it or not).
import { readFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../../shared/log.js';
import type { EtcdTLSFiles } from '../etcd/process.js';
import type { VoteResult, Voter } from './voter.js';

export interface PeerInfo {
  member: string;
  term: number;
  leader: string;
  etcdRunning: boolean;
  clusterToken?: string;
  initialCluster?: Record<string, string[]>;
  /** True only once the manager has READ its volume and found no member state: positive evidence, never a default. */
  volumeEmpty: boolean;
  /** False while its reconcile loop is stuck or it stands by: it answers, but must not keep others from leading. Absent from older managers. */
  canLead?: boolean;
}

export interface Command {
  leader: string;
  term: number;
  action: string;
  body?: unknown;
}

export interface PeerHandlers {
  info(): PeerInfo;
  /** Runs a command that passed the fence. */
  command(command: Command): Promise<unknown>;
}

export interface PeerServer {
  port: number;
  /** Takes a renewed certificate for new connections. */
  reload(tls: EtcdTLSFiles): Promise<void>;
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;

async function tlsOptions(tls: EtcdTLSFiles) {
  return { cert: await readFile(tls.certFile), key: await readFile(tls.keyFile), ca: await readFile(tls.caFile) };
}

export async function startPeerServer(options: {
  address: string;
  port: number;
  tls: EtcdTLSFiles;
  voter: Voter;
  handlers: PeerHandlers;
  log: Logger;
}): Promise<PeerServer> {
  const { voter, handlers, log } = options;
  const server: Server = createServer({ ...(await tlsOptions(options.tls)), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const caller = ((req.socket as TLSSocket).getPeerCertificate().subject as { CN?: string } | undefined)?.CN ?? '?';
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      raw += chunk;
      if (raw.length > MAX_BODY) req.destroy();
    });
    req.on('end', () => {
      void (async () => {
        const body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
        if (req.method === 'POST' && !(Number.isSafeInteger(body.term) && (body.term as number) > 0)) {
          return reply(400, { error: `term must be a positive integer, got ${JSON.stringify(body.term)}` });
        }
        if (req.method === 'GET' && req.url === '/v1/info') return reply(200, handlers.info());
        if (req.method === 'POST' && req.url === '/v1/vote') {
          // A candidate may only ask for itself: the certificate's CN is the member name.
          if (body.candidate !== caller) return reply(403, { error: `certificate ${caller} cannot ask votes for ${String(body.candidate)}` });
          return reply(200, await voter.requestVote(String(body.candidate), Number(body.term), { dryRun: body.dryRun === true }));
        }
        if (req.method === 'POST' && req.url === '/v1/command') {
          const command = body as unknown as Command;
          if (command.leader !== caller) return reply(403, { error: `certificate ${caller} cannot act as ${command.leader}` });
          const fence = await voter.admit(command.leader, Number(command.term));
          if (!fence.ok) {
            log.warn('command refused by the fence', { from: caller, term: command.term, action: command.action, reason: fence.reason });
            return reply(409, { error: fence.reason });
          }
          return reply(200, { result: await handlers.command(command) });
        }
        return reply(404, { error: 'not found' });
      })().catch((err: unknown) => reply(500, { error: (err as Error).message }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    reload: async (tls) => server.setSecureContext({ ...(await tlsOptions(tls)) }),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export class PeerClient {
  private constructor(private readonly creds: { cert: Buffer; key: Buffer; ca: Buffer }, private readonly timeoutMs: number) {}

  static async open(tls: EtcdTLSFiles, timeoutMs = 2_000): Promise<PeerClient> {
    return new PeerClient(await tlsOptions(tls), timeoutMs);
  }

  call<T>(endpoint: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const [host, port] = splitHostPort(endpoint);
    return new Promise((resolve, reject) => {
      const req = request({ host, port, method, path, ...this.creds, timeout: this.timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (raw += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(raw) as T });
          } catch (err) {
            reject(err);
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${endpoint}${path}: no answer in ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  info(endpoint: string) {
    return this.call<PeerInfo>(endpoint, 'GET', '/v1/info');
  }

  /** A vote, or with dryRun a pre-vote (would you grant it? nothing is promised). */
  vote(endpoint: string, candidate: string, term: number, dryRun = false) {
    return this.call<VoteResult>(endpoint, 'POST', '/v1/vote', { candidate, term, ...(dryRun ? { dryRun } : {}) });
  }

  command(endpoint: string, command: Command) {
    return this.call<{ result?: unknown; error?: string }>(endpoint, 'POST', '/v1/command', command);
  }
}

function splitHostPort(endpoint: string): [string, number] {
  const i = endpoint.lastIndexOf(':');
  return [endpoint.slice(0, i).replace(/^\[|\]$/g, ''), Number(endpoint.slice(i + 1))];
}
