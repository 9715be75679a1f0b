// The WAL's committed entries applied to the v2 store (v2-store.ts): a v2
// request (etcdserverpb.Request, or an etcd 3 InternalRaftRequest carrying one
// in field 2), a raft membership change (raftpb.ConfChange), or an etcd 3
// request that leaves the v2 store alone.
import { WireError, WireReader } from './kv-wire.js';
import { fail } from './v2-read-error.js';
import { goString, UnmodeledEntry, type V2Request, type V2Store } from './v2-store.js';
import type { WalEntry } from './v2-wal.js';

const ENTRY_NORMAL = 0;
const ENTRY_CONF_CHANGE = 1;
/** raftpb.ConfChangeType: AddNode, RemoveNode, UpdateNode, AddLearnerNode. */
const CONF_CHANGE_KINDS = ['add', 'remove', 'update', 'add'] as const;
const V2_METHODS = new Set(['PUT', 'POST', 'DELETE', 'QGET', 'GET', 'HEAD', 'SYNC']);
/** InternalRaftRequest fields of etcd 3.5+ that write to the v2 store's /0 (cluster version, member attributes, downgrade). */
const V3_FIELDS_WRITING_V2 = new Set([1300, 1301, 1302]);

export function applyEntry(store: V2Store, entry: WalEntry): void {
  if (entry.type === ENTRY_CONF_CHANGE) {
    const change = decodeConfChange(entry.data);
    if (change) store.applyMembershipChange(change.kind, change.memberId);
    else store.markIndexInexact();
    return;
  }
  if (entry.type !== ENTRY_NORMAL) {
    // etcd 3.5's joint-consensus changes: membership written under /0 in ways not followed here.
    store.markIndexInexact();
    return;
  }
  if (entry.data.length === 0) return; // a new leader's empty entry
  let request: V2Request | undefined;
  try {
    request = decodeRequest(entry.data);
    if (!request) {
      const inner = v2OfInternalRequest(entry.data, store);
      if (inner) request = decodeRequest(inner);
    }
  } catch (err) {
    if (err instanceof WireError) fail(`entry ${entry.index}: not a request etcd writes (${err.message})`);
    throw err;
  }
  if (!request) return; // an etcd 3 request that does not touch the v2 store
  try {
    store.apply(request);
  } catch (err) {
    if (err instanceof UnmodeledEntry) fail(`entry ${entry.index}: ${err.message}`);
    throw err;
  }
}

/** raftpb.ConfChange{type (2), node_id (3)}: what it does to which member (hex ID, as etcd names it under /0/members). */
function decodeConfChange(data: Buffer): { kind: 'add' | 'remove' | 'update'; memberId: string } | undefined {
  const r = new WireReader(data, 0, data.length);
  let type = 0;
  let nodeId = 0n;
  try {
    while (!r.done) {
      const { field, wireType } = r.tag();
      if (field === 2 && wireType === 0) type = r.varint();
      else if (field === 3 && wireType === 0) nodeId = r.uint64();
      else r.skip(wireType);
    }
  } catch {
    return undefined;
  }
  const kind = CONF_CHANGE_KINDS[type];
  return kind === undefined || nodeId === 0n ? undefined : { kind, memberId: nodeId.toString(16) };
}

/** etcdserverpb.Request, when `data` is one (its method a v2 method); undefined for anything else. */
function decodeRequest(data: Buffer): V2Request | undefined {
  const r = new WireReader(data, 0, data.length);
  const req: V2Request = { method: '', path: '', val: '', dir: false, prevValue: '', prevIndex: 0, expirationNs: 0n, recursive: false, timeNs: 0n, refresh: false };
  try {
    while (!r.done) {
      const { field, wireType } = r.tag();
      if (wireType === 2 && (field === 2 || field === 3 || field === 4 || field === 6)) {
        const text = goString(r.bytes());
        if (field === 2) req.method = text;
        else if (field === 3) req.path = text;
        else if (field === 4) req.val = text;
        else req.prevValue = text;
      } else if (wireType === 0) {
        const n = r.uint64();
        if (field === 5) req.dir = n !== 0n;
        else if (field === 7) req.prevIndex = Number(n);
        else if (field === 8) req.prevExist = n !== 0n;
        else if (field === 9) req.expirationNs = BigInt.asIntN(64, n);
        else if (field === 12) req.recursive = n !== 0n;
        else if (field === 15) req.timeNs = BigInt.asIntN(64, n);
        else if (field === 17) req.refresh = n !== 0n;
      } else r.skip(wireType);
    }
  } catch {
    return undefined; // not a Request (an InternalRaftRequest decodes differently)
  }
  return V2_METHODS.has(req.method) ? req : undefined;
}

/** The v2 request inside an InternalRaftRequest (field 2); marks the index inexact for etcd 3.5's requests that write /0. */
function v2OfInternalRequest(data: Buffer, store: V2Store): Buffer | undefined {
  const r = new WireReader(data, 0, data.length);
  let v2: Buffer | undefined;
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (field === 2 && wireType === 2) v2 = r.bytes();
    else {
      if (V3_FIELDS_WRITING_V2.has(field)) store.markIndexInexact();
      r.skip(wireType);
    }
  }
  return v2;
}
