// An in-memory peer network for the controller's unit tests and the
// leadership property test: real Voters (with in-memory vote stores that
// survive a "restart"), reached through a PeerTransport whose every delivery
// can be delayed, reordered or dropped by the test (fast-check's scheduler, or
// plain promises). No process, no socket, no file.
import type { Answer, PeerTransport } from '../../agents/etcd-manager/peer/api.js';
import type { CommandAnswer, PeerInfo } from '../../agents/etcd-manager/peer/protocol.js';
import { Voter, type Promised, type VoteResult, type VoteStore } from '../../agents/etcd-manager/peer/voter.js';

/** A vote store in memory; saves by an incarnation that has since been restarted are lost, as a dead process's would be. */
export class MemoryVoteStore {
  saved?: Promised;
  incarnation = 0;
  forgetful = false;
  /** Called inside every save, before it is durable (the scheduler can interleave here). */
  constructor(private readonly delay: () => Promise<void> = () => Promise.resolve()) {}

  forIncarnation(n: number): VoteStore {
    return {
      load: () => Promise.resolve(this.saved ? { ...this.saved } : undefined),
      save: async (p) => {
        await this.delay();
        if (n === this.incarnation && !this.forgetful) this.saved = { ...p };
      },
    };
  }
}

export interface NetNode {
  name: string;
  voter: Voter;
  store: MemoryVoteStore;
  /** False while the node is down: every request to it fails like a refused connection. */
  up: boolean;
  info?: () => PeerInfo;
  commands: Array<{ leader: string; term: number; action: string }>;
}

export interface PeerNetOptions {
  leaseMs: number;
  now: () => number;
  /** Wraps every delivery (request and answer): may delay it, or throw to drop it. */
  deliver?: <T>(what: string, fn: () => Promise<T>) => Promise<T>;
  /** Wraps the vote store's save (before it is durable). */
  saveDelay?: () => Promise<void>;
  /** Every answer a voter gives (votes, pre-votes, admissions), as it leaves the voter. */
  observe?(answer: { node: string; kind: 'vote' | 'pre-vote' | 'admit'; who: string; term: number; granted: boolean }): void;
  /** A store that loses every save (the bug "granted before persisting" in effect): the property test's negative control. */
  forgetful?: boolean;
}

export class PeerNet {
  readonly nodes = new Map<string, NetNode>();

  constructor(private readonly options: PeerNetOptions) {}

  async add(name: string, info?: () => PeerInfo): Promise<NetNode> {
    const store = new MemoryVoteStore(this.options.saveDelay);
    store.forgetful = this.options.forgetful ?? false;
    const voter = new Voter(store.forIncarnation(0), this.options.leaseMs, this.options.now);
    await voter.load();
    const node: NetNode = { name, voter, store, up: true, info, commands: [] };
    this.nodes.set(name, node);
    return node;
  }

  /** The node's process restarts: a new Voter loads what was durably saved; saves still in flight are lost. */
  async restart(name: string): Promise<void> {
    const node = this.node(name);
    node.store.incarnation++;
    node.voter = new Voter(node.store.forIncarnation(node.store.incarnation), this.options.leaseMs, this.options.now);
    await node.voter.load();
  }

  node(name: string): NetNode {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    return node;
  }

  /** The transport as seen by member `from` (its certificate's name is `from`). Endpoints are member names. */
  transport(from: string): PeerTransport {
    const deliver = this.options.deliver ?? (<T>(_what: string, fn: () => Promise<T>) => fn());
    const reach = (endpoint: string): NetNode => {
      const node = this.node(endpoint);
      if (!node.up) throw Object.assign(new Error(`connect ECONNREFUSED ${endpoint}`), { code: 'ECONNREFUSED' });
      return node;
    };
    const ok = <T>(body: T): Answer<T> => ({ status: 200, body });
    return {
      info: (endpoint) => deliver(`info ${from}→${endpoint}`, async () => {
        const node = reach(endpoint);
        const v = node.voter.current;
        return ok(node.info?.() ?? { member: node.name, term: v.term, leader: v.leader, etcdRunning: false, volumeEmpty: true });
      }),
      vote: (endpoint, candidate, term, dryRun = false) => deliver(`${dryRun ? 'pre-vote' : 'vote'} ${from}→${endpoint} t${term}`, async (): Promise<Answer<VoteResult>> => {
        const node = reach(endpoint);
        const incarnation = node.store.incarnation;
        const answer = await node.voter.requestVote(candidate, term, { dryRun });
        // A process that restarted meanwhile died with the request: its answer never leaves.
        if (node.store.incarnation !== incarnation) throw new Error(`${endpoint} restarted`);
        this.options.observe?.({ node: node.name, kind: dryRun ? 'pre-vote' : 'vote', who: candidate, term, granted: answer.granted });
        return deliver(`answer ${endpoint}→${from}`, () => Promise.resolve(ok(answer)));
      }),
      command: (endpoint, command) => deliver(`command ${from}→${endpoint} t${command.term}`, async (): Promise<Answer<CommandAnswer>> => {
        const node = reach(endpoint);
        const incarnation = node.store.incarnation;
        const fence = await node.voter.admit(command.leader, command.term);
        if (node.store.incarnation !== incarnation) throw new Error(`${endpoint} restarted`);
        this.options.observe?.({ node: node.name, kind: 'admit', who: command.leader, term: command.term, granted: fence.ok });
        if (!fence.ok) return { status: 409, body: { error: fence.reason } };
        node.commands.push({ leader: command.leader, term: command.term, action: command.action });
        return ok({ result: 'done' });
      }),
      announce: (endpoint) => deliver(`announce ${from}→${endpoint}`, async () => {
        reach(endpoint);
        return ok({ result: 'noted' });
      }),
    };
  }
}
