// The managers' private API: JSON over HTTPS with mutual TLS, both sides
// holding a certificate from etcd-manager-ca-<etcd>; a caller without one is
// refused during the handshake. Small on purpose: info, vote, fenced commands
// (every command names its leader and term; the Voter admits it or not) and
// announce (a nudge: "look at me again"). Every request is decoded once, by
// protocol.ts, before anything acts on it; every answer likewise by the client.
// PROTOCOL.md describes the messages, what each side stores and the invariants.
import { readFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../../shared/log.js';
import type { EtcdTLSFiles } from '../etcd/process.js';
import {
  decodeCommandAnswer, decodeErrorAnswer, decodeInfo, decodeRequest, decodeVoteResult, encodeCommand,
  type Command, type CommandAnswer, type PeerInfo,
} from './protocol.js';
import type { VoteResult, Voter } from './voter.js';

export type { Command, PeerInfo } from './protocol.js';

export interface PeerHandlers {
  info(): PeerInfo;
  /** Runs a command that passed the fence; answers once the command is accepted (not when its effect is done). */
  command(command: Command): Promise<string>;
  /** A peer says its state changed (registered, etcd started, …): look again soon. */
  announce?(member: string, reason: string): void;
}

export interface PeerServer {
  port: number;
  /** Takes a renewed certificate for new connections. */
  reload(tls: EtcdTLSFiles): Promise<void>;
  close(): Promise<void>;
}

/** One answer: its HTTP status and its decoded body. */
export interface Answer<T> {
  status: number;
  body: T;
}

/** What the leader side needs from a peer API client (PeerClient, or an in-memory one in tests). */
export interface PeerTransport {
  info(endpoint: string): Promise<Answer<PeerInfo>>;
  vote(endpoint: string, candidate: string, term: number, dryRun?: boolean): Promise<Answer<VoteResult>>;
  command(endpoint: string, command: Command): Promise<Answer<CommandAnswer>>;
  announce(endpoint: string, member: string, reason: string): Promise<Answer<CommandAnswer>>;
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
        const decoded = decodeRequest(req.method, req.url, raw);
        if (!decoded.ok) return reply(decoded.status, { error: decoded.error });
        const message = decoded.value;
        switch (message.kind) {
          case 'info':
            return reply(200, handlers.info());
          case 'vote':
            // A candidate may only ask for itself: the certificate's CN is the member name.
            if (message.candidate !== caller) return reply(403, { error: `certificate ${caller} cannot ask votes for ${message.candidate}` });
            return reply(200, await voter.requestVote(message.candidate, message.term, { dryRun: message.dryRun }));
          case 'announce':
            if (message.member !== caller) return reply(403, { error: `certificate ${caller} cannot announce ${message.member}` });
            handlers.announce?.(message.member, message.reason);
            return reply(200, { result: 'noted' });
          case 'command': {
            const { command } = message;
            if (command.leader !== caller) return reply(403, { error: `certificate ${caller} cannot act as ${command.leader}` });
            const fence = await voter.admit(command.leader, command.term);
            if (!fence.ok) {
              log.warn('command refused by the fence', { event: 'command.fenced', from: caller, term: command.term, action: command.action, reason: fence.reason });
              return reply(409, { error: fence.reason });
            }
            return reply(200, { result: await handlers.command(command) });
          }
        }
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

/** The default deadline of one peer API call. */
export const PEER_CALL_TIMEOUT_MS = 2_000;

export class PeerClient implements PeerTransport {
  private constructor(private readonly creds: { cert: Buffer; key: Buffer; ca: Buffer }, private readonly timeoutMs: number) {}

  static async open(tls: EtcdTLSFiles, timeoutMs = PEER_CALL_TIMEOUT_MS): Promise<PeerClient> {
    return new PeerClient(await tlsOptions(tls), timeoutMs);
  }

  private call(endpoint: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const [host, port] = splitHostPort(endpoint);
    return new Promise((resolve, reject) => {
      const req = request({ host, port, method, path, ...this.creds, timeout: this.timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (raw += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(raw) as unknown });
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

  async info(endpoint: string): Promise<Answer<PeerInfo>> {
    const r = await this.call(endpoint, 'GET', '/v1/info');
    const info = r.status === 200 ? decodeInfo(r.body) : undefined;
    if (!info) throw new Error(`${endpoint}/v1/info: ${r.status === 200 ? 'not a manager\'s info' : `${r.status} ${decodeErrorAnswer(r.body).error ?? ''}`}`);
    return { status: r.status, body: info };
  }

  /** A vote, or with dryRun a pre-vote (would you grant it? nothing is promised). A refusal of the request itself is a non-200 answer, never a grant. */
  async vote(endpoint: string, candidate: string, term: number, dryRun = false): Promise<Answer<VoteResult>> {
    const r = await this.call(endpoint, 'POST', '/v1/vote', { candidate, term, ...(dryRun ? { dryRun } : {}) });
    if (r.status !== 200) return { status: r.status, body: { granted: false, term: 0, reason: decodeErrorAnswer(r.body).error } };
    const vote = decodeVoteResult(r.body);
    if (!vote) throw new Error(`${endpoint}/v1/vote: not a vote answer`);
    return { status: r.status, body: vote };
  }

  async command(endpoint: string, command: Command): Promise<Answer<CommandAnswer>> {
    return this.answer(endpoint, '/v1/command', await this.call(endpoint, 'POST', '/v1/command', encodeCommand(command)));
  }

  /** Tells a peer this member's state changed (it registered, its etcd started, …), so a leader looks again at once. */
  async announce(endpoint: string, member: string, reason: string): Promise<Answer<CommandAnswer>> {
    return this.answer(endpoint, '/v1/announce', await this.call(endpoint, 'POST', '/v1/announce', { member, reason }));
  }

  private answer(endpoint: string, path: string, r: { status: number; body: unknown }): Answer<CommandAnswer> {
    const body = decodeCommandAnswer(r.body);
    if (!body) throw new Error(`${endpoint}${path}: not a command answer`);
    return { status: r.status, body };
  }
}

function splitHostPort(endpoint: string): [string, number] {
  const i = endpoint.lastIndexOf(':');
  return [endpoint.slice(0, i).replace(/^\[|\]$/g, ''), Number(endpoint.slice(i + 1))];
}
