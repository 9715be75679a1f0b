// Operator requests to the leading manager (an on-demand backup today) through
// the backup store alone, so they work from any machine that has the store URL
// and credentials, with no network path to the managers.
//
//   control/requests/<id>.request.json  written once by the requester
//   control/requests/<id>.result.json   written by the leader: running (with
//                                       progress), then succeeded / failed / expired
//   control/doorbell                    overwritten by every requester after it
//                                       wrote its request (a fresh nonce each time)
//
// The leader GETs the doorbell every second or two — one tiny GET, the cheapest
// S3 request there is (a conditional GET costs the same request; the store API
// has no ETags, so the leader compares content) — and lists control/requests
// only when the doorbell changed, when it becomes leader, and every few minutes
// as a fallback. A request written before a ring is always seen by the list that
// ring triggers, because the requester rings only after its request is written.
//
// One request at a time, oldest id first (ids are BackupNamer names, which sort
// by time): a second backup request while one runs is QUEUED, never run at the
// same time; the requester sees no result until its turn (its own CLI shows
// "queued"). A request older than expireAfterMs that no leader has started is
// answered `expired` instead of run. A `running` result not updated for
// staleAfterMs belongs to a leader that died: the request is run again (backups
// are idempotent). Finished pairs are deleted after keepFinishedMs.
// None of these objects is named `_command.json`, so kOps' readers never see them.
import { randomBytes } from 'node:crypto';
import type { StateStore } from '../../../shared/store/types.js';
import { isRecord } from '../backup/jsonpb.js';

export const REQUESTS_PREFIX = 'control/requests';
export const DOORBELL_PATH = 'control/doorbell';
export const REQUEST_FORMAT = 'mooring.etcd-manager-request/v1';

/** What can be asked. Restores go through kOps' _command.json instead (commands.ts) and ring the doorbell too. */
export type RequestSpec = { kind: 'backup'; reason?: string };

export interface ManagerRequest {
  id: string;
  spec: RequestSpec;
  createdAt: string;
  /** Free text naming who asked (user@host), for logs. */
  requestedBy?: string;
}

export type RequestState = 'running' | 'succeeded' | 'failed' | 'expired';

export interface RequestResult {
  id: string;
  state: RequestState;
  /** Who is running / ran it: `<member>/<process nonce>`. */
  runner: string;
  startedAt: string;
  /** Refreshed with every progress write; a running result that stops changing was abandoned. */
  updatedAt: string;
  finishedAt?: string;
  progress?: { bytes: number; totalBytes?: number };
  /** For a backup that succeeded. */
  backup?: { name: string; storedBytes: number; snapshotBytes?: number; durationMs: number };
  /** For failed / expired: one line. */
  error?: string;
}

const requestPath = (id: string) => `${REQUESTS_PREFIX}/${id}.request.json`;
const resultPath = (id: string) => `${REQUESTS_PREFIX}/${id}.result.json`;
const ID = /^[A-Za-z0-9][A-Za-z0-9:._-]*$/;

function checkId(id: string): void {
  if (!ID.test(id)) throw new Error(`${JSON.stringify(id)} is not a request id`);
}

export class RequestFormatError extends Error {}

function parseRequest(text: string, source: string): ManagerRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new RequestFormatError(`${source}: not JSON`);
  }
  if (!isRecord(doc) || doc.format !== REQUEST_FORMAT || typeof doc.id !== 'string' || typeof doc.createdAt !== 'string' || !isRecord(doc.spec)) {
    throw new RequestFormatError(`${source}: not a ${REQUEST_FORMAT} request`);
  }
  if (doc.spec.kind !== 'backup') throw new RequestFormatError(`${source}: unknown request kind ${JSON.stringify(doc.spec.kind)}`);
  const spec: RequestSpec = { kind: 'backup', ...(typeof doc.spec.reason === 'string' ? { reason: doc.spec.reason } : {}) };
  return { id: doc.id, spec, createdAt: doc.createdAt, ...(typeof doc.requestedBy === 'string' ? { requestedBy: doc.requestedBy } : {}) };
}

function parseResult(text: string, source: string): RequestResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new RequestFormatError(`${source}: not JSON`);
  }
  if (!isRecord(doc) || doc.format !== REQUEST_FORMAT || typeof doc.id !== 'string' || typeof doc.state !== 'string' || typeof doc.updatedAt !== 'string') {
    throw new RequestFormatError(`${source}: not a ${REQUEST_FORMAT} result`);
  }
  const { format: _format, ...rest } = doc;
  return rest as unknown as RequestResult;
}

// ---- the requester's side (CLI) ----

export interface SubmitDeps {
  /** A fresh id: BackupNamer.next(). */
  id: string;
  nowMs: number;
  requestedBy?: string;
  /** Randomness for the doorbell nonce; crypto by default. */
  nonce?: () => string;
}

/** Writes the request, then rings the doorbell. Returns the id to wait on. */
export async function submitRequest(store: StateStore, spec: RequestSpec, deps: SubmitDeps): Promise<string> {
  checkId(deps.id);
  const request: ManagerRequest = { id: deps.id, spec, createdAt: new Date(deps.nowMs).toISOString(), ...(deps.requestedBy ? { requestedBy: deps.requestedBy } : {}) };
  await store.write(requestPath(deps.id), JSON.stringify({ format: REQUEST_FORMAT, ...request }, null, 2) + '\n');
  await ringDoorbell(store, deps.id, deps.nowMs, deps.nonce);
  return deps.id;
}

/** Tells the leader to look now (also after queueing a kOps restore command). */
export async function ringDoorbell(store: StateStore, about: string, nowMs: number, nonce: () => string = () => randomBytes(8).toString('hex')): Promise<void> {
  await store.write(DOORBELL_PATH, JSON.stringify({ about, rungAt: new Date(nowMs).toISOString(), nonce: nonce() }) + '\n');
}

/** The request's result so far; undefined while it is queued (or no leader has seen it). One GET. */
export async function readResult(store: StateStore, id: string): Promise<RequestResult | undefined> {
  checkId(id);
  const data = await store.readIfExists(resultPath(id));
  return data === undefined ? undefined : parseResult(data.toString('utf8'), store.urlOf(resultPath(id)));
}

export interface RequestEntry {
  id: string;
  /** Absent when only a result is there (its request was cleaned up) or the request does not parse. */
  request?: ManagerRequest;
  /** The result so far; absent while the request is queued. */
  result?: RequestResult;
  /** One line naming the object that does not parse. */
  invalid?: string;
}

/**
 * Every request in the store with its result so far, oldest first: one
 * listing, then one GET per object. For operators (`etcd-manager get`, and
 * `backup` showing what its request waits behind); the leader uses the inbox.
 */
export async function listRequests(store: StateStore): Promise<RequestEntry[]> {
  const ids = new Map<string, { request: boolean; result: boolean }>();
  for (const path of await store.list(REQUESTS_PREFIX)) {
    const m = /^control\/requests\/(.+)\.(request|result)\.json$/.exec(path);
    if (!m || !ID.test(m[1])) continue;
    const entry = ids.get(m[1]) ?? { request: false, result: false };
    entry[m[2] as 'request' | 'result'] = true;
    ids.set(m[1], entry);
  }
  const entries: RequestEntry[] = [];
  for (const [id, has] of [...ids].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const entry: RequestEntry = { id };
    try {
      if (has.request) {
        const data = await store.readIfExists(requestPath(id));
        if (data !== undefined) entry.request = parseRequest(data.toString('utf8'), store.urlOf(requestPath(id)));
      }
      if (has.result) {
        const result = await readResult(store, id);
        if (result !== undefined) entry.result = result;
      }
    } catch (err) {
      if (!(err instanceof RequestFormatError)) throw err;
      entry.invalid = err.message;
    }
    if (entry.request || entry.result || entry.invalid) entries.push(entry);
  }
  return entries;
}

// ---- the leader's side ----

export interface InboxOptions {
  /** `<member>/<process nonce>`: unique per manager process. */
  runner: string;
  now: () => number;
  /** List at least this often even without a ring. Default 5 min. */
  fallbackListMs?: number;
  /** A `running` result not updated for this long was abandoned. Default 2 min. */
  staleAfterMs?: number;
  /** A request not started within this is answered `expired`. Default 1 h. */
  expireAfterMs?: number;
  /** Finished request/result pairs are deleted after this. Default 24 h. */
  keepFinishedMs?: number;
}

export interface InboxPoll {
  /** Requests to run, oldest first; run them one at a time. */
  pending: ManagerRequest[];
  /** Requests answered `expired` in this poll. */
  expired: string[];
  /** Whether this poll listed the requests folder (false: the doorbell had not changed). */
  listed: boolean;
  /** Requests or results that do not parse (named; left in place for the operator). */
  invalid: string[];
}

export class RequestInbox {
  private lastDoorbell: string | undefined = undefined;
  private lastList = -Infinity;
  private readonly o: Required<InboxOptions>;

  constructor(private readonly store: StateStore, options: InboxOptions) {
    this.o = { fallbackListMs: 5 * 60_000, staleAfterMs: 2 * 60_000, expireAfterMs: 60 * 60_000, keepFinishedMs: 24 * 60 * 60_000, ...options };
  }

  /** Forget what was seen: the next poll lists (call on becoming leader). */
  reset(): void {
    this.lastDoorbell = undefined;
    this.lastList = -Infinity;
  }

  /**
   * One GET of the doorbell; when it changed (or on the first poll, or when the
   * fallback interval passed) one listing of control/requests plus one GET per
   * request without a finished result. Also answers expired requests and deletes
   * finished pairs past keepFinishedMs.
   */
  async poll(): Promise<InboxPoll> {
    const now = this.o.now();
    const bell = (await this.store.readIfExists(DOORBELL_PATH))?.toString('utf8') ?? '';
    const rang = this.lastDoorbell === undefined || bell !== this.lastDoorbell;
    this.lastDoorbell = bell;
    if (!rang && now - this.lastList < this.o.fallbackListMs) return { pending: [], expired: [], listed: false, invalid: [] };
    this.lastList = now;

    const paths = await this.store.list(REQUESTS_PREFIX);
    const ids = new Map<string, { request: boolean; result: boolean }>();
    for (const path of paths) {
      const m = /^control\/requests\/(.+)\.(request|result)\.json$/.exec(path);
      if (!m) continue;
      const entry = ids.get(m[1]) ?? { request: false, result: false };
      entry[m[2] as 'request' | 'result'] = true;
      ids.set(m[1], entry);
    }
    const pending: ManagerRequest[] = [];
    const expired: string[] = [];
    const invalid: string[] = [];
    for (const [id, has] of [...ids].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      try {
        const result = has.result ? await readResult(this.store, id) : undefined;
        if (result && result.state !== 'running') {
          const finished = Date.parse(result.finishedAt ?? result.updatedAt);
          if (Number.isFinite(finished) && now - finished > this.o.keepFinishedMs) await this.forget(id);
          continue;
        }
        if (result && now - Date.parse(result.updatedAt) < this.o.staleAfterMs) continue; // running elsewhere, alive
        if (!has.request) continue; // a result without its request: leave it
        const data = await this.store.readIfExists(requestPath(id));
        if (data === undefined) continue;
        const request = parseRequest(data.toString('utf8'), this.store.urlOf(requestPath(id)));
        if (!result && now - Date.parse(request.createdAt) > this.o.expireAfterMs) {
          await this.finish(id, { state: 'expired', startedAt: new Date(now).toISOString(), error: `not started within ${Math.round(this.o.expireAfterMs / 60_000)} min of being asked` });
          expired.push(id);
          continue;
        }
        pending.push(request);
      } catch (err) {
        if (!(err instanceof RequestFormatError)) throw err;
        invalid.push(err.message);
      }
    }
    return { pending, expired, listed: true, invalid };
  }

  private async write(result: Omit<RequestResult, 'runner' | 'updatedAt'>): Promise<RequestResult> {
    const full: RequestResult = { ...result, runner: this.o.runner, updatedAt: new Date(this.o.now()).toISOString() };
    await this.store.write(resultPath(result.id), JSON.stringify({ format: REQUEST_FORMAT, ...full }, null, 2) + '\n');
    return full;
  }

  /** Marks a request running (call before starting it). Returns the startedAt to pass back to progress/finish. */
  async start(id: string): Promise<string> {
    const startedAt = new Date(this.o.now()).toISOString();
    await this.write({ id, state: 'running', startedAt });
    return startedAt;
  }

  /** Refreshes a running result (call every few seconds: it is also the liveness signal). */
  async progress(id: string, startedAt: string, progress: { bytes: number; totalBytes?: number }): Promise<void> {
    await this.write({ id, state: 'running', startedAt, progress });
  }

  async finish(id: string, outcome: Pick<RequestResult, 'state' | 'startedAt'> & Partial<Pick<RequestResult, 'backup' | 'error'>>): Promise<RequestResult> {
    return this.write({ id, ...outcome, finishedAt: new Date(this.o.now()).toISOString() });
  }

  private async forget(id: string): Promise<void> {
    await this.store.delete(requestPath(id));
    await this.store.delete(resultPath(id));
  }
}
