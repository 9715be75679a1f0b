// etcd's v2 store, as far as reading a v2 data directory needs it
// (v2-data-dir.ts): the tree a v2 snapshot holds, the writes its WAL holds
// after the snapshot applied to it the way etcd applies them (etcd 3.4's
// etcdserver/apply_v2.go and api/v2store/store.go, the same rules as etcd 2),
// and the v2 API's GET over the result (V2Reader), so the migration walks it
// as it walks a live source.
//
// Nodes are the snapshot's own JSON objects (Path, CreatedIndex,
// ModifiedIndex, ExpireTime, Value, Children), not copies: a snapshot of
// 50,000 keys is 37 MB, and a second tree would double what it costs.
//
// The store's index counts successful writes. It names the keys a POST
// creates and it is what a compare-and-swap by index compares, so it must be
// exact for those. Some entries change it in ways this model does not follow
// (membership changes, which write under /0); after one of them the index is
// marked inexact, and a later write that depends on it is refused with
// UnmodeledEntry: the caller then serves the data with etcd itself.
import { isUtf8 } from 'node:buffer';
import type { V2Reader, V2Response } from './v2-source.js';
import { compareLeafOrder } from './order.js';

/** A node of the v2 store, as etcd's snapshot JSON spells it. */
export interface StoreNode {
  Path: string;
  CreatedIndex: number;
  ModifiedIndex: number;
  /** RFC 3339 with nanoseconds; Go's zero time for a node without a TTL. */
  ExpireTime: string;
  Value: string;
  /** Present (an object) for a directory, null for a leaf. */
  Children: Record<string, StoreNode> | null;
}

/** The snapshot's top-level object (store.Save()). */
export interface StoreSnapshot {
  Root: StoreNode;
  CurrentIndex: number;
}

/** A v2 request as the WAL holds it (etcdserverpb.Request). */
export interface V2Request {
  method: string;
  path: string;
  val: string;
  dir: boolean;
  prevValue: string;
  prevIndex: number;
  /** Unset, or the request's prevExist. */
  prevExist?: boolean;
  /** Absolute expiry, ns since the epoch; 0 for none. */
  expirationNs: bigint;
  recursive: boolean;
  /** SYNC: the leader's time, ns since the epoch. */
  timeNs: bigint;
  refresh: boolean;
}

/** A WAL entry this model cannot apply exactly. */
export class UnmodeledEntry extends Error {}

const ZERO_TIME = '0001-01-01T00:00:00Z';
/** etcd treats an expiry before this as none (store.go: minExpireTime). */
const MIN_EXPIRE_NS = BigInt(Date.parse('2000-01-01T00:00:00Z')) * 1_000_000n;
/** The user's keys live under /1; /0 is etcd's own (members, version). */
export const KEYS_PREFIX = '/1';
/** etcd's membership path of a member's attributes (etcdserver's storeMemberAttributeRegexp). */
const MEMBER_ATTRIBUTES = /^\/0\/members\/([0-9a-f]+)\/attributes$/;
/** etcd's store refuses writes to these (its namespaces and the root). */
const READ_ONLY = new Set(['/', '/0', '/1']);

/** Go's RFC 3339 (nanosecond) time as ns since the epoch; undefined for Go's zero time or a malformed one. */
export function parseTimeNs(text: string): bigint | undefined {
  if (text === ZERO_TIME) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (!m) return undefined;
  const whole = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(whole) || m[1].startsWith('0001-')) return undefined;
  return BigInt(whole) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** ns since the epoch as RFC 3339 with nine fraction digits, in UTC (how etcd prints expirations). */
export function formatTimeNs(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const frac = String(ns % 1_000_000_000n).padStart(9, '0');
  return `${new Date(Number(ms)).toISOString().slice(0, 19)}.${frac}Z`;
}

/**
 * Bytes as Go's JSON encoder writes them, which is how the v2 API (and a v2
 * snapshot) returns a value: valid UTF-8 as is, each byte of an invalid
 * sequence as U+FFFD (Buffer's decoder would merge some into one).
 */
export function goString(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const width = utf8SequenceLength(bytes, i);
    if (width === 0) {
      out += '\ufffd';
      i++;
    } else {
      out += bytes.toString('utf8', i, i + width);
      i += width;
    }
  }
  return out;
}

/** The length of the valid UTF-8 sequence at `i` (Go's utf8.DecodeRune rules), or 0. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** Go's path.Clean(path.Join("/", p)). */
export function cleanPath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}

const isDir = (n: StoreNode): boolean => n.Children !== null;
const nameOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const parentOf = (p: string): string => p.slice(0, Math.max(1, p.lastIndexOf('/')));

/** A failed write: etcd answers it with an error and changes nothing (beyond the directories a create made on its way). */
class WriteFailed extends Error {}

export class V2Store implements V2Reader {
  /** The cluster the data came from (hex, as X-Etcd-Cluster-Id), when known. */
  clusterId?: string;
  private index: number;
  private indexExact = true;
  /** Nodes with a TTL and their expiry (ns), collected at the first SYNC (most WAL tails have none). */
  private ttlNodes?: Map<StoreNode, bigint>;

  constructor(private readonly root: StoreNode, currentIndex: number) {
    this.index = currentIndex;
  }

  /** An empty store (a data directory with no snapshot yet): the root and etcd's two namespaces. */
  static empty(): V2Store {
    const dir = (path: string): StoreNode => ({ Path: path, CreatedIndex: 0, ModifiedIndex: 0, ExpireTime: ZERO_TIME, Value: '', Children: {} });
    const root = dir('/');
    root.Children = { 0: dir('/0'), 1: dir('/1') };
    return new V2Store(root, 0);
  }

  static fromSnapshot(snapshot: StoreSnapshot): V2Store {
    return new V2Store(snapshot.Root, snapshot.CurrentIndex);
  }

  get currentIndex(): number {
    return this.index;
  }

  /**
   * A raft membership change, as etcd 3.4's applyConfChange writes it to the
   * store: adding a member creates /0/members/<id>/raftAttributes (refused,
   * changing nothing, when the ID is a member or was removed); removing one
   * deletes /0/members/<id> and creates /0/removed_members/<id>; updating one
   * rewrites its raftAttributes. (etcd also refuses an add whose peer URLs
   * another member has; a WAL that holds one is not one this follows.)
   */
  applyMembershipChange(kind: 'add' | 'remove' | 'update', memberId: string): void {
    const member = `/0/members/${memberId}`;
    try {
      const known = this.lookup(member) !== undefined;
      const removed = this.lookup(`/0/removed_members/${memberId}`) !== undefined;
      if (kind === 'add' && !known && !removed) this.create(`${member}/raftAttributes`, false, '', false, false, undefined);
      else if (kind === 'remove' && known) {
        this.delete(member, true, true);
        this.create(`/0/removed_members/${memberId}`, false, '', false, false, undefined);
      } else if (kind === 'update' && known) this.update(`${member}/raftAttributes`, '', undefined, false);
    } catch (err) {
      if (!(err instanceof WriteFailed)) throw err;
      this.markIndexInexact();
    }
  }

  /** The store's index no longer follows etcd's (an entry changed it in a way not modelled). */
  markIndexInexact(): void {
    this.indexExact = false;
  }

  /** Applies one committed v2 request; a request that fails in etcd fails here too, changing nothing. */
  apply(r: V2Request): void {
    const dependsOnIndex = r.method === 'POST' || ((r.method === 'PUT' || r.method === 'DELETE') && r.prevIndex > 0);
    if (dependsOnIndex && !this.indexExact) {
      throw new UnmodeledEntry(`a ${r.method} of ${r.path} that depends on the store's index, after an entry that changed the index in a way not modelled`);
    }
    const expireNs = r.expirationNs !== 0n ? r.expirationNs : undefined;
    try {
      switch (r.method) {
        case 'PUT':
          if (r.prevExist !== undefined) {
            if (!r.prevExist) this.create(r.path, r.dir, r.val, false, false, expireNs);
            else if (r.prevIndex === 0 && r.prevValue === '') this.update(r.path, r.val, expireNs, r.refresh);
            else this.compareAndSwap(r.path, r.prevValue, r.prevIndex, r.val, expireNs, r.refresh);
          } else if (r.prevIndex > 0 || r.prevValue !== '') {
            this.compareAndSwap(r.path, r.prevValue, r.prevIndex, r.val, expireNs, r.refresh);
          } else {
            // Member attributes and the cluster version go through etcd's membership code, which sets them in the
            // store just the same; a member's attributes only while it is a member (else etcd writes nothing).
            const attributesOf = MEMBER_ATTRIBUTES.exec(cleanPath(r.path))?.[1];
            if (attributesOf !== undefined && this.lookup(`/0/members/${attributesOf}`) === undefined) this.markIndexInexact();
            else this.set(r.path, r.dir, r.val, expireNs, r.refresh);
          }
          return;
        case 'POST':
          this.create(r.path, r.dir, r.val, true, false, expireNs);
          return;
        case 'DELETE':
          if (r.prevIndex > 0 || r.prevValue !== '') this.compareAndDelete(r.path, r.prevValue, r.prevIndex);
          else this.delete(r.path, r.dir, r.recursive);
          return;
        case 'SYNC':
          this.deleteExpired(r.timeNs);
          return;
        case 'QGET':
        case 'GET':
        case 'HEAD':
          return;
        default:
          throw new UnmodeledEntry(`a v2 request with method ${JSON.stringify(r.method)}`);
      }
    } catch (err) {
      if (err instanceof WriteFailed) return;
      throw err;
    }
  }

  private lookup(path: string): StoreNode | undefined {
    let node = this.root;
    for (const part of cleanPath(path).split('/').slice(1)) {
      if (part === '') break;
      if (!isDir(node)) throw new WriteFailed('not a directory');
      const child: StoreNode | undefined = node.Children?.[part];
      if (!child) return undefined;
      node = child;
    }
    return node;
  }

  private existing(path: string): StoreNode {
    const node = this.lookup(path);
    if (!node) throw new WriteFailed('key not found');
    return node;
  }

  private set(path: string, dir: boolean, value: string, expireNs: bigint | undefined, refresh: boolean): void {
    const found = this.lookup(path);
    if (refresh) {
      if (!found) throw new WriteFailed('key not found');
      value = found.Value;
    }
    this.create(path, dir, value, false, true, expireNs);
  }

  private create(path: string, dir: boolean, value: string, unique: boolean, replace: boolean, expireNs: bigint | undefined): void {
    const next = this.index + 1;
    let nodePath = unique ? `${path}/${String(next).padStart(20, '0')}` : path;
    nodePath = cleanPath(nodePath);
    if (READ_ONLY.has(nodePath)) throw new WriteFailed('read-only');
    if (expireNs !== undefined && expireNs < MIN_EXPIRE_NS) expireNs = undefined;
    // The parent directories are made on the way, even when the create then fails (store.go: checkDir).
    let parent = this.root;
    for (const part of parentOf(nodePath).split('/').slice(1)) {
      if (part === '') break;
      const children = parent.Children as Record<string, StoreNode>;
      let child: StoreNode | undefined = children[part];
      if (!child) {
        child = { Path: parent.Path === '/' ? `/${part}` : `${parent.Path}/${part}`, CreatedIndex: next, ModifiedIndex: next, ExpireTime: ZERO_TIME, Value: '', Children: {} };
        children[part] = child;
      } else if (!isDir(child)) {
        throw new WriteFailed('not a directory');
      }
      parent = child;
    }
    const name = nameOf(nodePath);
    const children = parent.Children as Record<string, StoreNode>;
    const existing = children[name];
    if (existing) {
      if (!replace || isDir(existing)) throw new WriteFailed(replace ? 'not a file' : 'node exists');
      this.detach(existing);
    }
    const node: StoreNode = {
      Path: nodePath, CreatedIndex: next, ModifiedIndex: next,
      ExpireTime: expireNs === undefined ? ZERO_TIME : formatTimeNs(expireNs),
      Value: dir ? '' : value, Children: dir ? {} : null,
    };
    children[name] = node;
    if (expireNs !== undefined) this.ttlNodes?.set(node, expireNs);
    this.index = next;
  }

  private update(path: string, value: string, expireNs: bigint | undefined, refresh: boolean): void {
    const p = cleanPath(path);
    if (READ_ONLY.has(p)) throw new WriteFailed('read-only');
    const node = this.existing(p);
    if (isDir(node) && value !== '') throw new WriteFailed('not a file');
    const next = this.index + 1;
    // etcd writes the value of a leaf only (a directory's write fails, and is ignored there).
    if (!isDir(node)) {
      node.Value = refresh ? node.Value : value;
      node.ModifiedIndex = next;
    }
    this.updateTTL(node, expireNs);
    this.index = next;
  }

  private compareAndSwap(path: string, prevValue: string, prevIndex: number, value: string, expireNs: bigint | undefined, refresh: boolean): void {
    const p = cleanPath(path);
    if (READ_ONLY.has(p)) throw new WriteFailed('read-only');
    const node = this.existing(p);
    if (isDir(node) || !this.matches(node, prevValue, prevIndex)) throw new WriteFailed('compare failed');
    this.index++;
    node.Value = refresh ? node.Value : value;
    node.ModifiedIndex = this.index;
    this.updateTTL(node, expireNs);
  }

  private delete(path: string, dir: boolean, recursive: boolean): void {
    const p = cleanPath(path);
    if (READ_ONLY.has(p)) throw new WriteFailed('read-only');
    const node = this.existing(p);
    if (isDir(node)) {
      if (!dir && !recursive) throw new WriteFailed('not a file');
      if (!recursive && Object.keys(node.Children as object).length > 0) throw new WriteFailed('directory not empty');
    }
    this.detach(node);
    this.index++;
  }

  private compareAndDelete(path: string, prevValue: string, prevIndex: number): void {
    const node = this.existing(cleanPath(path));
    if (isDir(node) || !this.matches(node, prevValue, prevIndex)) throw new WriteFailed('compare failed');
    this.index++;
    this.detach(node);
  }

  /** store.DeleteExpiredKeys: every node whose time has come, earliest first, each one write. */
  private deleteExpired(cutoffNs: bigint): void {
    this.ttlNodes ??= this.collectTTLNodes();
    const due = [...this.ttlNodes]
      .filter(([, at]) => at <= cutoffNs)
      .sort(([, a], [, b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [node] of due) {
      if (!this.ttlNodes.has(node)) continue; // went with a directory that expired before it
      this.index++;
      this.detach(node);
    }
  }

  private matches(node: StoreNode, prevValue: string, prevIndex: number): boolean {
    return (prevIndex === 0 || node.ModifiedIndex === prevIndex) && (prevValue === '' || node.Value === prevValue);
  }

  private updateTTL(node: StoreNode, expireNs: bigint | undefined): void {
    node.ExpireTime = expireNs === undefined ? ZERO_TIME : formatTimeNs(expireNs);
    if (expireNs === undefined) this.ttlNodes?.delete(node);
    else this.ttlNodes?.set(node, expireNs);
  }

  private detach(node: StoreNode): void {
    const parent = this.lookup(parentOf(node.Path));
    if (parent?.Children && parent.Children[nameOf(node.Path)] === node) delete parent.Children[nameOf(node.Path)];
    if (this.ttlNodes) {
      const forget = (n: StoreNode) => {
        this.ttlNodes?.delete(n);
        for (const child of Object.values(n.Children ?? {})) forget(child);
      };
      forget(node);
    }
  }

  private collectTTLNodes(): Map<StoreNode, bigint> {
    const out = new Map<StoreNode, bigint>();
    const visit = (n: StoreNode) => {
      if (n.ExpireTime !== ZERO_TIME) {
        const at = parseTimeNs(n.ExpireTime);
        if (at === undefined) throw new UnmodeledEntry(`node ${n.Path} has an expiry this does not read: ${JSON.stringify(n.ExpireTime)}`);
        out.set(n, at);
      }
      for (const child of Object.values(n.Children ?? {})) visit(child);
    };
    visit(this.root);
    return out;
  }

  // --- the v2 API's GET over the user's keys (under /1) ---

  async get(dir: string, recursive: boolean): Promise<V2Response> {
    const path = dir === '/' ? KEYS_PREFIX : `${KEYS_PREFIX}${cleanPath(dir)}`;
    let node: StoreNode | undefined;
    try {
      node = this.lookup(path);
    } catch {
      node = undefined;
    }
    if (!node) throw new Error(`v2 key ${dir} not found in the data directory`);
    return { node: this.view(node, recursive, true, Date.now() * 1_000_000), clusterId: this.clusterId };
  }

  close(): void {}

  /** What GET returns for `node`: hidden children (a name starting with `_`) left out, as etcd does; a directory whose TTL has run out is gone (etcd's leader removes it at its next SYNC). */
  private view(node: StoreNode, recursive: boolean, expand: boolean, nowNs: number): V2Response['node'] {
    const key = node.Path === KEYS_PREFIX ? '/' : node.Path.slice(KEYS_PREFIX.length);
    const expiration = node.ExpireTime === ZERO_TIME ? undefined : node.ExpireTime;
    if (!isDir(node)) return { key, value: node.Value, ...(expiration ? { expiration } : {}) };
    const out: V2Response['node'] = { key, dir: true, ...(expiration ? { expiration } : {}) };
    if (!expand) return out;
    const names = Object.keys(node.Children as object).filter((name) => name[0] !== '_').sort((a, b) => compareLeafOrder(a, b));
    out.nodes = [];
    for (const name of names) {
      const child = (node.Children as Record<string, StoreNode>)[name];
      if (isDir(child) && child.ExpireTime !== ZERO_TIME && Number(parseTimeNs(child.ExpireTime) ?? 0n) <= nowNs) continue;
      out.nodes.push(this.view(child, recursive, recursive, nowNs));
    }
    return out;
  }
}
