// A small EC2 for tests, on 127.0.0.1 only: the EC2 Query protocol (form-encoded
// POST, Action=…&Version=2016-11-15, XML replies in the EC2 namespace, XML
// errors with real HTTP statuses) for DescribeVolumes, DescribeInstances,
// AttachVolume and DetachVolume, so the real @aws-sdk/client-ec2 request path
// (signing, serialising, parsing, paging, retries) runs against it; and one
// IMDSv2 listener per instance (token PUT required, GET without a valid token → 401).
//
// It is strict where EC2 is, so a client that gets something wrong fails here
// as it would against AWS:
// - SigV4 is verified with the test secret: canonical request, string to sign,
//   derived key; the date must be within 15 minutes of now, the scope's date,
//   region and service must be right. Unknown key → 401 AuthFailure, bad
//   signature or scope → 403 SignatureDoesNotMatch, stale date → 400
//   RequestExpired (with a Date header, so the SDK can correct its clock).
// - Each action accepts only its own parameters: anything else is 400
//   UnknownParameter; a required one missing is MissingParameter; malformed
//   IDs are InvalidVolumeID.Malformed / InvalidInstanceID.Malformed; bad
//   values and combinations are InvalidParameterValue / InvalidParameterCombination.
// - List parameters (`Name.N`) take N as an integer from 1 (AWS: "values of n
//   are integers starting from 1"); every index present is read, in order,
//   with no stop at a gap (AWS documents no contiguity rule).
// - DescribeVolumes and DescribeInstances page: without MaxResults every item
//   comes back at once (as EC2 documents); with it (5–500 for volumes, 5–1000
//   for instances; larger values are capped), at most that many come back with
//   a NextToken while more remain. A token not issued for the same query is
//   InvalidParameterValue. `pageLimit` makes pages shorter still, which EC2 may
//   also do, so a client must follow NextToken rather than count items.
//
// State is in memory: instances (id, zone, extra block device mappings) and
// volumes (id, zone, tags, attachments). Every EC2 request is logged, with what
// DescribeVolumes answered. Hooks let a test win an attach race for another
// instance, delay the attaching → attached and detaching → gone transitions
// (by time, or by the number of DescribeVolumes answers, which is deterministic),
// and wire attachments to device nodes.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const API_VERSION = '2016-11-15';
export const TEST_ACCESS_KEY = 'AKIDMOORINGTEST';
export const TEST_SECRET_KEY = 'mooring-test-secret';
/** The region the server signs for: instances' zones are in it (us-test-1a, …). */
export const TEST_REGION = 'us-test-1';

export type AttachmentState = 'attaching' | 'attached' | 'detaching';

export interface FakeAttachment {
  instanceId: string;
  device: string;
  attachTime: Date;
  /** When `attaching` becomes `attached` (ms epoch). */
  readyAt: number;
  /** DescribeVolumes answers still to report `attaching` (see EC2TestServer.attachingPolls). */
  attachingAnswersLeft?: number;
  /** When set, the attachment is `detaching` and goes away at this time… */
  goneAt?: number;
  /** …and not before this many more DescribeVolumes answers have listed it as `detaching`. */
  detachingAnswersLeft?: number;
}

export interface FakeVolume {
  id: string;
  availabilityZone: string;
  sizeGiB: number;
  tags: Record<string, string>;
  attachments: FakeAttachment[];
}

export interface FakeInstance {
  id: string;
  availabilityZone: string;
  /** Device names already used on the instance besides the EBS attachments (the root disk, …). */
  extraDevices: string[];
  imdsEndpoint: string;
  /** Its private IPv4 (IMDS local-ipv4). */
  privateIp: string;
}

/** One volume as a DescribeVolumes reply described it. */
export interface AnsweredVolume {
  id: string;
  state: string;
  attachments: { instanceId: string; state: string }[];
}

export interface LoggedRequest {
  action: string;
  params: Record<string, string>;
  /** HTTP status sent back. */
  status: number;
  errorCode?: string;
  /** DescribeVolumes: the volumes the reply listed, as it listed them. */
  answered?: AnsweredVolume[];
  /** Describe calls: the NextToken the reply carried. */
  nextToken?: string;
}

export interface AttachRequest {
  volumeId: string;
  instanceId: string;
  device: string;
}

export interface EC2ServerHooks {
  /** Runs before AttachVolume is judged: a test can attach the volume elsewhere here to make this caller lose. */
  beforeAttach?: (request: AttachRequest) => void | Promise<void>;
  /** Runs after an attachment is recorded (through the API or attachDirect): e.g. create the device node. */
  onAttach?: (attachment: AttachRequest) => void | Promise<void>;
  /** Runs when DetachVolume is accepted. */
  onDetach?: (attachment: AttachRequest) => void | Promise<void>;
}

export interface EC2ServerOptions {
  /** Region requests must be signed for. Default TEST_REGION. */
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** Thrown after an action took effect: the connection is cut instead of replying (a lost response). */
class DropConnection extends Error {}

class APIError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const invalidValue = (message: string) => new APIError(400, 'InvalidParameterValue', message);

function xmlEscape(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);
}

function el(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${xmlEscape(String(value))}</${name}>`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// ---- SigV4 ------------------------------------------------------------------

/** How far a request's date may be from the server's clock (AWS: 15 minutes). */
const MAX_CLOCK_SKEW_MS = 15 * 60_000;

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** RFC 3986 encoding, as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Every value a header was sent with, in order (node folds repeats in req.headers). */
function headerValues(req: IncomingMessage, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i].toLowerCase() === name) out.push(req.rawHeaders[i + 1]);
  return out;
}

function canonicalQuery(rawQuery: string): string {
  if (rawQuery === '') return '';
  const pairs = rawQuery.split('&').filter((p) => p !== '').map((p) => {
    const eq = p.indexOf('=');
    const [k, v] = eq === -1 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)];
    return [uriEncode(decodeURIComponent(k)), uriEncode(decodeURIComponent(v))] as const;
  });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const date = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

interface SigningKeys {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  service: string;
}

/**
 * Checks a header-signed SigV4 request as AWS does; throws the APIError EC2
 * would answer. The payload hash is computed from the body, never taken from
 * x-amz-content-sha256 (which, when sent, must agree with it).
 */
function verifySigV4(req: IncomingMessage, body: Buffer, keys: SigningKeys, now: number): void {
  const auth = headerValues(req, 'authorization').join(',');
  if (auth === '') throw new APIError(401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
  const space = auth.indexOf(' ');
  const algorithm = space === -1 ? auth : auth.slice(0, space);
  if (algorithm !== 'AWS4-HMAC-SHA256') throw new APIError(400, 'IncompleteSignature', `Unsupported AWS 'algorithm': '${algorithm}'`);
  const fields = new Map<string, string>();
  for (const part of auth.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq !== -1) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((name) => !fields.get(name));
  if (missing.length > 0) throw new APIError(400, 'IncompleteSignature', missing.map((name) => `Authorization header requires '${name}' parameter.`).join(' '));
  const credential = fields.get('Credential')!.split('/');
  if (credential.length !== 5) throw new APIError(400, 'IncompleteSignature', `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${fields.get('Credential')}'`);
  const [accessKeyId, scopeDate, region, service, terminator] = credential;
  if (accessKeyId !== keys.accessKeyId) throw new APIError(401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
  if (headerValues(req, 'x-amz-security-token').length > 0) throw new APIError(401, 'AuthFailure', 'The security token included in the request is invalid.');

  const amzDate = headerValues(req, 'x-amz-date')[0] ?? '';
  if (amzDate === '') throw new APIError(400, 'IncompleteSignature', "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  const signedAt = parseAmzDate(amzDate);
  if (!signedAt) throw new APIError(400, 'IncompleteSignature', `Date must be in ISO-8601 'basic format'. Got '${amzDate}'.`);
  if (Math.abs(now - signedAt.getTime()) > MAX_CLOCK_SKEW_MS) throw new APIError(400, 'RequestExpired', `Request has expired. Signed at ${amzDate}, more than 15 minutes from the server's time.`);
  const mismatch = (message: string) => new APIError(403, 'SignatureDoesNotMatch', message);
  if (terminator !== 'aws4_request') throw mismatch(`Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'.`);
  if (scopeDate !== amzDate.slice(0, 8)) throw mismatch(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`);
  if (region !== keys.region) throw mismatch(`Credential should be scoped to a valid region, not '${region}'.`);
  if (service !== keys.service) throw mismatch(`Credential should be scoped to correct service: '${keys.service}'.`);

  const signedHeaders = fields.get('SignedHeaders')!.split(';');
  for (const required of ['host', 'x-amz-date']) {
    if (!signedHeaders.includes(required)) throw mismatch(`'${required}' must be a 'SignedHeader' in the AWS Authorization.`);
  }
  const payloadHash = sha256Hex(body);
  const claimed = headerValues(req, 'x-amz-content-sha256')[0];
  if (claimed !== undefined && claimed !== payloadHash) throw mismatch("The provided 'x-amz-content-sha256' header does not match what was computed.");

  const [rawPath, rawQuery = ''] = (req.url ?? '/').split('?', 2);
  // Non-S3 services encode each path segment twice: the wire form once more.
  const canonicalUri = rawPath.split('/').map(uriEncode).join('/') || '/';
  const canonicalHeaders = signedHeaders.map((name) => `${name}:${headerValues(req, name).map((v) => v.trim().replace(/\s+/g, ' ')).join(',')}\n`).join('');
  const canonicalRequest = [req.method ?? '', canonicalUri, canonicalQuery(rawQuery), canonicalHeaders, signedHeaders.join(';'), payloadHash].join('\n');
  const scope = `${scopeDate}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${keys.secretAccessKey}`, scopeDate), region), service), 'aws4_request');
  const expected = Buffer.from(createHmac('sha256', signingKey).update(stringToSign).digest('hex'));
  const given = Buffer.from(fields.get('Signature')!);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw mismatch('The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');
  }
}

// ---- Query parameters ------------------------------------------------------

type ScalarKind = 'string' | 'integer' | 'boolean';

/** What one action accepts besides Action and Version. */
interface ActionShape {
  scalars: Record<string, ScalarKind>;
  /** `Name.N` lists. */
  lists: string[];
  /** Filter.N.Name / Filter.N.Value.M. */
  filters: boolean;
  required: string[];
}

const SHAPES: Record<string, ActionShape> = {
  DescribeVolumes: {
    scalars: { DryRun: 'boolean', MaxResults: 'integer', NextToken: 'string', IncludeManagedResources: 'boolean' },
    lists: ['VolumeId'], filters: true, required: [],
  },
  DescribeInstances: {
    scalars: { DryRun: 'boolean', MaxResults: 'integer', NextToken: 'string' },
    lists: ['InstanceId'], filters: true, required: [],
  },
  AttachVolume: {
    scalars: { DryRun: 'boolean', VolumeId: 'string', InstanceId: 'string', Device: 'string' },
    lists: [], filters: false, required: ['Device', 'InstanceId', 'VolumeId'],
  },
  DetachVolume: {
    scalars: { DryRun: 'boolean', VolumeId: 'string', InstanceId: 'string', Device: 'string', Force: 'boolean' },
    lists: [], filters: false, required: ['VolumeId'],
  },
};

interface QueryFilter {
  name: string;
  values: string[];
}

interface ParsedParams {
  scalars: Record<string, string>;
  lists: Record<string, string[]>;
  filters: QueryFilter[];
}

/** Query list indices are integers from 1, with no leading zero. */
const INDEX = '([1-9][0-9]*)';

/** Validates the request's parameters against the action's shape (EC2 rejects what it does not know). */
function parseParams(shape: ActionShape, params: Record<string, string>): ParsedParams {
  const scalars: Record<string, string> = {};
  const lists = new Map<string, Map<number, string>>();
  const filterNames = new Map<number, string>();
  const filterValues = new Map<number, Map<number, string>>();
  for (const [key, value] of Object.entries(params)) {
    if (key === 'Action' || key === 'Version') continue;
    const kind = shape.scalars[key];
    if (kind) {
      if (kind === 'integer' && !/^-?[0-9]+$/.test(value)) throw invalidValue(`Invalid value '${value}' for ${key}. It must be an integer.`);
      if (kind === 'boolean' && value !== 'true' && value !== 'false') throw invalidValue(`Invalid value '${value}' for ${key}. It must be true or false.`);
      scalars[key] = value;
      continue;
    }
    const item = new RegExp(`^(${shape.lists.join('|') || '(?!)'})\\.${INDEX}$`).exec(key);
    if (item) {
      const list = lists.get(item[1]) ?? new Map<number, string>();
      list.set(Number(item[2]), value);
      lists.set(item[1], list);
      continue;
    }
    const filterName = shape.filters ? new RegExp(`^Filter\\.${INDEX}\\.Name$`).exec(key) : null;
    if (filterName) {
      filterNames.set(Number(filterName[1]), value);
      continue;
    }
    const filterValue = shape.filters ? new RegExp(`^Filter\\.${INDEX}\\.Value\\.${INDEX}$`).exec(key) : null;
    if (filterValue) {
      const values = filterValues.get(Number(filterValue[1])) ?? new Map<number, string>();
      values.set(Number(filterValue[2]), value);
      filterValues.set(Number(filterValue[1]), values);
      continue;
    }
    throw new APIError(400, 'UnknownParameter', `The parameter ${key} is not recognized`);
  }
  for (const name of shape.required) {
    if (scalars[name] === undefined) throw new APIError(400, 'MissingParameter', `The request must contain the parameter ${name}`);
  }
  const inOrder = <T>(m: Map<number, T>): T[] => [...m.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  for (const n of filterValues.keys()) {
    if (!filterNames.has(n)) throw new APIError(400, 'MissingParameter', `The request must contain the parameter Filter.${n}.Name`);
  }
  const filters = [...filterNames.entries()].sort((a, b) => a[0] - b[0])
    .map(([n, name]) => ({ name, values: inOrder(filterValues.get(n) ?? new Map<number, string>()) }));
  return { scalars, lists: Object.fromEntries([...lists.entries()].map(([name, m]) => [name, inOrder(m)])), filters };
}

/** IDs as EC2 issues them: a prefix and 8 or 17 lowercase hex digits. */
export function isVolumeId(id: string): boolean {
  return /^vol-(?:[0-9a-f]{8}|[0-9a-f]{17})$/.test(id);
}

export function isInstanceId(id: string): boolean {
  return /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/.test(id);
}

function checkVolumeId(id: string): void {
  if (!isVolumeId(id)) throw new APIError(400, 'InvalidVolumeID.Malformed', `Invalid id: "${id}"${id.startsWith('vol-') ? '' : ' (expecting "vol-...")'}`);
}

function checkInstanceId(id: string): void {
  if (!isInstanceId(id)) throw new APIError(400, 'InvalidInstanceID.Malformed', `Invalid id: "${id}"${id.startsWith('i-') ? '' : ' (expecting "i-...")'}`);
}

/** EC2's filter values allow * and ? wildcards. */
function valueMatches(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(value);
}

/** A filter on one attribute: any of its values matches any pattern; with no values, the attribute only has to be there. */
function filterMatches(filter: QueryFilter, values: (string | undefined)[]): boolean {
  const present = values.filter((v): v is string => v !== undefined);
  if (filter.values.length === 0) return present.length > 0;
  return present.some((value) => filter.values.some((p) => valueMatches(p, value)));
}

/** The filters this server implements (EC2 has more; asking for one of those here is refused, not ignored). */
const VOLUME_FILTERS = new Set(['availability-zone', 'volume-id', 'status', 'tag-key', 'tag-value', 'attachment.instance-id', 'attachment.device', 'attachment.status']);
const INSTANCE_FILTERS = new Set(['instance-id', 'availability-zone', 'instance-state-name', 'private-ip-address']);

const slot = (device: string) => {
  const base = device.replace(/^\/dev\//, '');
  const m = /^(?:xv|s)d([a-z]+)$/.exec(base);
  return m ? m[1] : base;
};

/** Per-request facts the handlers hand to the request log. */
interface ReplyNotes {
  answered?: AnsweredVolume[];
  nextToken?: string;
}

export class EC2TestServer {
  readonly instances = new Map<string, FakeInstance>();
  readonly volumes = new Map<string, FakeVolume>();
  readonly requests: LoggedRequest[] = [];
  /** IMDS requests: instance, method, path, status. */
  readonly imdsRequests: { instanceId: string; method: string; path: string; status: number }[] = [];
  hooks: EC2ServerHooks = {};
  /** How long new attachments stay `attaching`. */
  attachDelayMs = 0;
  /** New attachments also stay `attaching` for this many DescribeVolumes replies that list them (a delay counted in polls, not time). */
  attachingPolls = 0;
  /** How long detaching attachments take to go away. */
  detachDelayMs = 0;
  /** Cut the connection instead of answering the next N successful AttachVolume calls (they still take effect). */
  dropAttachResponses = 0;
  /** At most this many items per Describe page when MaxResults is given, however large it is (EC2 may return short pages). */
  pageLimit = Number.POSITIVE_INFINITY;
  /** How far this EC2's clock is ahead of the machine's: judges request dates and sets the Date header (from which the SDK corrects its clock). */
  clockOffsetMs = 0;
  readonly region: string;
  private readonly keys: SigningKeys;
  private server?: Server;
  private readonly imdsServers: Server[] = [];
  private readonly tokens = new Map<string, { instanceId: string; expiresAt: number }>();
  /** NextTokens issued: what query they continue, and where. */
  private readonly pageTokens = new Map<string, { query: string; offset: number }>();
  private counter = 0;
  endpoint = '';

  constructor(options: EC2ServerOptions = {}) {
    this.region = options.region ?? TEST_REGION;
    this.keys = {
      accessKeyId: options.accessKeyId ?? TEST_ACCESS_KEY,
      secretAccessKey: options.secretAccessKey ?? TEST_SECRET_KEY,
      region: this.region,
      service: 'ec2',
    };
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handleEC2(req, res));
    this.endpoint = `http://127.0.0.1:${await listen(this.server)}`;
    return this;
  }

  async close(): Promise<void> {
    for (const server of [this.server, ...this.imdsServers]) {
      if (!server) continue;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.server = undefined;
    this.imdsServers.length = 0;
  }

  /** Adds an instance and starts its own IMDS listener. */
  async addInstance(options: { id?: string; availabilityZone: string; extraDevices?: string[]; privateIp?: string }): Promise<FakeInstance> {
    const id = options.id ?? `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
    if (!isInstanceId(id)) throw new Error(`test EC2: ${id} is not an instance id EC2 would issue (i- and 8 or 17 hex digits)`);
    const imds = createServer((req, res) => void this.handleIMDS(id, req, res));
    this.imdsServers.push(imds);
    const instance: FakeInstance = {
      id,
      availabilityZone: options.availabilityZone,
      extraDevices: options.extraDevices ?? ['/dev/xvda'],
      imdsEndpoint: `http://127.0.0.1:${await listen(imds)}`,
      privateIp: options.privateIp ?? '10.0.0.10',
    };
    this.instances.set(id, instance);
    return instance;
  }

  addVolume(options: { id?: string; availabilityZone: string; tags: Record<string, string>; sizeGiB?: number }): FakeVolume {
    const id = options.id ?? `vol-${randomBytes(9).toString('hex').slice(0, 17)}`;
    if (!isVolumeId(id)) throw new Error(`test EC2: ${id} is not a volume id EC2 would issue (vol- and 8 or 17 hex digits)`);
    const volume: FakeVolume = { id, availabilityZone: options.availabilityZone, sizeGiB: options.sizeGiB ?? 20, tags: { ...options.tags }, attachments: [] };
    this.volumes.set(id, volume);
    return volume;
  }

  /** Attaches as EC2 would, bypassing the API (another instance's doing); `attached` at once. */
  async attachDirect(volumeId: string, instanceId: string, device: string): Promise<void> {
    const volume = this.mustVolume(volumeId);
    if (volume.attachments.length > 0) throw new Error(`${volumeId} is already attached`);
    volume.attachments.push({ instanceId, device, attachTime: new Date(), readyAt: Date.now() });
    await this.hooks.onAttach?.({ volumeId, instanceId, device });
  }

  /** Count of logged EC2 requests for one action, optionally narrowed by a parameter. */
  count(action: string, params: Record<string, string> = {}): number {
    return this.requests.filter((r) => r.action === action && Object.entries(params).every(([k, v]) => r.params[k] === v)).length;
  }

  attachmentState(a: FakeAttachment, now = Date.now()): AttachmentState | 'gone' {
    if (a.goneAt !== undefined) return now >= a.goneAt && (a.detachingAnswersLeft ?? 0) === 0 ? 'gone' : 'detaching';
    return now >= a.readyAt && (a.attachingAnswersLeft ?? 0) === 0 ? 'attached' : 'attaching';
  }

  /** Drops attachments whose detach has finished. */
  private settle(): void {
    const now = Date.now();
    for (const v of this.volumes.values()) v.attachments = v.attachments.filter((a) => this.attachmentState(a, now) !== 'gone');
  }

  volumeState(v: FakeVolume): 'available' | 'in-use' {
    this.settle();
    return v.attachments.length === 0 ? 'available' : 'in-use';
  }

  private mustVolume(id: string): FakeVolume {
    checkVolumeId(id);
    const v = this.volumes.get(id);
    if (!v) throw new APIError(400, 'InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    return v;
  }

  private mustInstance(id: string): FakeInstance {
    checkInstanceId(id);
    const i = this.instances.get(id);
    if (!i) throw new APIError(400, 'InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    return i;
  }

  private requestId(): string {
    const n = (++this.counter).toString(16).padStart(12, '0');
    return `7a62c49f-347e-4fc4-9331-${n}`;
  }

  // ---- IMDSv2 -------------------------------------------------------------

  private async handleIMDS(instanceId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    await readBody(req);
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: string) => {
      this.imdsRequests.push({ instanceId, method: req.method ?? '', path, status });
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.headers['x-forwarded-for']) return reply(403, 'Forbidden');
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return reply(405, 'Method Not Allowed');
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return reply(400, 'Bad Request');
      const token = randomBytes(24).toString('base64');
      this.tokens.set(token, { instanceId, expiresAt: Date.now() + ttl * 1000 });
      res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
      return reply(200, token);
    }
    if (req.method !== 'GET') return reply(405, 'Method Not Allowed');
    const header = req.headers['x-aws-ec2-metadata-token'];
    const token = typeof header === 'string' ? this.tokens.get(header) : undefined;
    if (!token || token.instanceId !== instanceId || token.expiresAt < Date.now()) return reply(401, 'Unauthorized');
    const instance = this.instances.get(instanceId);
    if (!instance) return reply(404, 'Not Found');
    const data: Record<string, string> = {
      '/latest/meta-data/instance-id': instance.id,
      '/latest/meta-data/placement/availability-zone': instance.availabilityZone,
      '/latest/meta-data/placement/region': instance.availabilityZone.slice(0, -1),
      '/latest/meta-data/instance-type': 'm5.large',
      '/latest/meta-data/local-ipv4': instance.privateIp,
    };
    const body = data[path];
    return body === undefined ? reply(404, 'Not Found') : reply(200, body);
  }

  /** Makes every current IMDS token invalid (as if they expired). */
  expireTokens(): void {
    this.tokens.clear();
  }

  // ---- EC2 Query ----------------------------------------------------------

  private async handleEC2(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const form = new URLSearchParams(body.toString('utf8'));
    const params: Record<string, string> = Object.fromEntries(form);
    const action = params.Action ?? '';
    const requestId = this.requestId();
    const notes: ReplyNotes = {};
    const send = (status: number, xml: string, errorCode?: string) => {
      this.requests.push({ action, params, status, errorCode, ...notes });
      res.writeHead(status, {
        'content-type': 'text/xml;charset=UTF-8', 'content-length': Buffer.byteLength(xml), 'x-amzn-requestid': requestId,
        date: new Date(Date.now() + this.clockOffsetMs).toUTCString(),
      });
      res.end(xml);
    };
    try {
      if (req.method !== 'POST') throw new APIError(405, 'UnsupportedOperation', `${req.method} is not supported; POST a form`);
      const contentType = req.headers['content-type'] ?? '';
      if (!contentType.startsWith('application/x-www-form-urlencoded')) throw new APIError(400, 'MalformedQueryString', `content-type ${contentType} is not a form`);
      verifySigV4(req, body, this.keys, Date.now() + this.clockOffsetMs);
      // (The test server's own rule: a parameter given twice is refused rather than one copy silently winning.)
      const repeated = [...form.keys()].find((k, i, all) => all.indexOf(k) !== i);
      if (repeated) throw new APIError(400, 'MalformedQueryString', `The parameter ${repeated} is given more than once`);
      if (params.Version === undefined) throw new APIError(400, 'MissingParameter', 'The request must contain the parameter Version');
      if (params.Version !== API_VERSION) throw invalidValue(`Version ${params.Version} is not ${API_VERSION}`);
      const shape = SHAPES[action];
      if (!shape) throw new APIError(400, 'InvalidAction', `The action ${action || '(none)'} is not valid for this web service.`);
      const parsed = parseParams(shape, params);
      let inner: string;
      switch (action) {
        case 'DescribeVolumes': inner = this.describeVolumes(parsed, notes); break;
        case 'DescribeInstances': inner = this.describeInstances(parsed, notes); break;
        case 'AttachVolume': inner = await this.attachVolume(parsed); break;
        default: inner = await this.detachVolume(parsed); break;
      }
      send(200, `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}">${el('requestId', requestId)}${inner}</${action}Response>`);
    } catch (err) {
      if (err instanceof DropConnection) {
        this.requests.push({ action, params, status: 0, errorCode: 'ConnectionDropped' });
        req.socket.destroy();
        return;
      }
      const e = err instanceof APIError ? err : new APIError(500, 'InternalError', (err as Error).message);
      send(e.status, `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>${el('Code', e.code)}${el('Message', e.message)}</Error></Errors>${el('RequestID', requestId)}</Response>`, e.code);
    }
  }

  /** DryRun=true: the request was valid, nothing is done (EC2: 412 DryRunOperation). */
  private dryRun(parsed: ParsedParams): void {
    if (parsed.scalars.DryRun === 'true') throw new APIError(412, 'DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
  }

  /**
   * One page of a Describe call. Without MaxResults: everything (EC2 returns
   * all items then). With it: [min, max] bounds as EC2 has them, larger values
   * capped, a NextToken while more remain. `ids` lists cannot be combined with it.
   */
  private page<T>(items: T[], parsed: ParsedParams, query: string, limits: { min: number; max: number; idList: string; idSetName: string }, notes: ReplyNotes): T[] {
    const { MaxResults: maxResults, NextToken: token } = parsed.scalars;
    if (maxResults !== undefined && (parsed.lists[limits.idList]?.length ?? 0) > 0) {
      throw new APIError(400, 'InvalidParameterCombination', `The parameter ${limits.idSetName} cannot be used with the parameter maxResults`);
    }
    let offset = 0;
    if (token !== undefined) {
      const issued = this.pageTokens.get(token);
      if (!issued || issued.query !== query) throw invalidValue(`Value ( ${token} ) for parameter NextToken is invalid. The token is invalid.`);
      offset = issued.offset;
    }
    if (maxResults === undefined) return items.slice(offset);
    const asked = Number(maxResults);
    if (asked < limits.min) throw invalidValue(`Value ( ${asked} ) for parameter maxResults is invalid. Expecting a value greater than ${limits.min}.`);
    const size = Math.min(asked, limits.max, this.pageLimit);
    const end = offset + size;
    if (end < items.length) {
      const next = randomBytes(30).toString('base64');
      this.pageTokens.set(next, { query, offset: end });
      notes.nextToken = next;
    }
    return items.slice(offset, end);
  }

  private volumeMatches(v: FakeVolume, filter: QueryFilter): boolean {
    if (filter.name.startsWith('tag:')) return filterMatches(filter, [v.tags[filter.name.slice(4)]]);
    switch (filter.name) {
      case 'availability-zone': return filterMatches(filter, [v.availabilityZone]);
      case 'volume-id': return filterMatches(filter, [v.id]);
      case 'status': return filterMatches(filter, [this.volumeState(v)]);
      case 'tag-key': return filterMatches(filter, Object.keys(v.tags));
      case 'tag-value': return filterMatches(filter, Object.values(v.tags));
      case 'attachment.instance-id': return filterMatches(filter, v.attachments.map((a) => a.instanceId));
      case 'attachment.device': return filterMatches(filter, v.attachments.map((a) => a.device));
      case 'attachment.status': return filterMatches(filter, v.attachments.map((a) => this.attachmentState(a)));
      default: throw new Error(`volume filter ${filter.name} is listed in VOLUME_FILTERS but not implemented`);
    }
  }

  private describeVolumes(parsed: ParsedParams, notes: ReplyNotes): string {
    this.settle();
    const ids = parsed.lists.VolumeId ?? [];
    for (const id of ids) this.mustVolume(id);
    const { filters } = parsed;
    // Every filter name is judged, even when no volume would reach it.
    for (const f of filters) if (!f.name.startsWith('tag:') && !VOLUME_FILTERS.has(f.name)) throw invalidValue(`The filter '${f.name}' is invalid`);
    const selected = [...this.volumes.values()]
      .filter((v) => ids.length === 0 || ids.includes(v.id))
      .filter((v) => filters.every((f) => this.volumeMatches(v, f)));
    const query = JSON.stringify(['DescribeVolumes', filters, parsed.scalars.IncludeManagedResources ?? 'false']);
    const shown = this.page(selected, parsed, query, { min: 5, max: 500, idList: 'VolumeId', idSetName: 'volumeSet' }, notes);
    this.dryRun(parsed);
    notes.answered = [];
    const now = Date.now();
    const items = shown.map((v) => {
      v.attachments = v.attachments.filter((a) => this.attachmentState(a, now) !== 'gone');
      const states = v.attachments.map((a) => this.attachmentState(a, now));
      const volumeState = v.attachments.length === 0 ? 'available' : 'in-use';
      notes.answered!.push({ id: v.id, state: volumeState, attachments: v.attachments.map((a, i) => ({ instanceId: a.instanceId, state: states[i] })) });
      const attachments = v.attachments.map((a, i) => `<item>${el('volumeId', v.id)}${el('instanceId', a.instanceId)}${el('device', a.device)}${el('status', states[i])}${el('attachTime', a.attachTime.toISOString())}${el('deleteOnTermination', false)}</item>`).join('');
      // This reply has shown the attachments: count it against their poll-counted delay.
      for (const a of v.attachments) {
        if ((a.attachingAnswersLeft ?? 0) > 0) a.attachingAnswersLeft = (a.attachingAnswersLeft ?? 0) - 1;
        if (a.goneAt !== undefined && (a.detachingAnswersLeft ?? 0) > 0) a.detachingAnswersLeft = (a.detachingAnswersLeft ?? 0) - 1;
      }
      const tags = Object.entries(v.tags).map(([k, value]) => `<item>${el('key', k)}${el('value', value)}</item>`).join('');
      return `<item>${el('volumeId', v.id)}${el('size', v.sizeGiB)}<snapshotId/>${el('availabilityZone', v.availabilityZone)}${el('status', volumeState)}${el('createTime', '2026-01-01T00:00:00.000Z')}<attachmentSet>${attachments}</attachmentSet><tagSet>${tags}</tagSet>${el('volumeType', 'gp3')}${el('encrypted', false)}${el('multiAttachEnabled', false)}</item>`;
    });
    return `<volumeSet>${items.join('')}</volumeSet>${el('nextToken', notes.nextToken)}`;
  }

  /** Device names an instance uses: its extra devices plus its EBS attachments. */
  devicesOf(instanceId: string): { device: string; volumeId?: string; state: string }[] {
    this.settle();
    const instance = this.mustInstance(instanceId);
    const out: { device: string; volumeId?: string; state: string }[] = instance.extraDevices.map((device) => ({ device, state: 'attached' }));
    for (const v of this.volumes.values()) {
      for (const a of v.attachments) if (a.instanceId === instanceId) out.push({ device: a.device, volumeId: v.id, state: this.attachmentState(a) });
    }
    return out;
  }

  private instanceMatches(i: FakeInstance, filter: QueryFilter): boolean {
    switch (filter.name) {
      case 'instance-id': return filterMatches(filter, [i.id]);
      case 'availability-zone': return filterMatches(filter, [i.availabilityZone]);
      case 'instance-state-name': return filterMatches(filter, ['running']);
      case 'private-ip-address': return filterMatches(filter, [i.privateIp]);
      default: throw new Error(`instance filter ${filter.name} is listed in INSTANCE_FILTERS but not implemented`);
    }
  }

  private describeInstances(parsed: ParsedParams, notes: ReplyNotes): string {
    const ids = parsed.lists.InstanceId ?? [];
    for (const id of ids) this.mustInstance(id);
    const { filters } = parsed;
    for (const f of filters) if (!INSTANCE_FILTERS.has(f.name)) throw invalidValue(`The filter '${f.name}' is invalid`);
    const selected = [...this.instances.values()]
      .filter((i) => ids.length === 0 || ids.includes(i.id))
      .filter((i) => filters.every((f) => this.instanceMatches(i, f)));
    const query = JSON.stringify(['DescribeInstances', filters]);
    const shown = this.page(selected, parsed, query, { min: 5, max: 1000, idList: 'InstanceId', idSetName: 'instancesSet' }, notes);
    this.dryRun(parsed);
    const items = shown.map((i) => {
      const mappings = this.devicesOf(i.id).map((d) => `<item>${el('deviceName', d.device)}<ebs>${el('volumeId', d.volumeId ?? `vol-${i.id.slice(2, 10)}`)}${el('status', d.state)}${el('attachTime', '2026-01-01T00:00:00.000Z')}${el('deleteOnTermination', d.volumeId === undefined)}</ebs></item>`).join('');
      return `<item>${el('reservationId', `r-${i.id.slice(2)}`)}${el('ownerId', '123456789012')}<groupSet/><instancesSet><item>${el('instanceId', i.id)}${el('imageId', 'ami-12345678')}<instanceState><code>16</code><name>running</name></instanceState>${el('instanceType', 'm5.large')}<placement>${el('availabilityZone', i.availabilityZone)}${el('tenancy', 'default')}</placement>${el('privateIpAddress', i.privateIp)}${el('rootDeviceType', 'ebs')}${el('rootDeviceName', i.extraDevices[0] ?? '/dev/xvda')}<blockDeviceMapping>${mappings}</blockDeviceMapping></item></instancesSet></item>`;
    });
    return `<reservationSet>${items.join('')}</reservationSet>${el('nextToken', notes.nextToken)}`;
  }

  private async attachVolume(parsed: ParsedParams): Promise<string> {
    const { VolumeId: volumeId, InstanceId: instanceId, Device: device } = parsed.scalars;
    checkVolumeId(volumeId);
    checkInstanceId(instanceId);
    this.dryRun(parsed);
    const request: AttachRequest = { volumeId, instanceId, device };
    await this.hooks.beforeAttach?.(request);
    const volume = this.mustVolume(request.volumeId);
    const instance = this.mustInstance(request.instanceId);
    if (volume.availabilityZone !== instance.availabilityZone) {
      throw new APIError(400, 'InvalidVolume.ZoneMismatch', `The volume '${volume.id}' is not in the same availability zone as instance '${instance.id}'`);
    }
    this.settle();
    if (volume.attachments.length > 0) {
      const a = volume.attachments[0];
      if (this.attachmentState(a) === 'attached' || a.instanceId === instance.id) throw new APIError(400, 'VolumeInUse', `${volume.id} is already attached to an instance`);
      throw new APIError(400, 'IncorrectState', `vol '${volume.id}' is in the 'in-use' state.`);
    }
    if (!/^\/dev\/(sd|xvd)[b-z]$/.test(request.device)) {
      throw invalidValue(`Value (${request.device}) for parameter device is invalid. ${request.device} is not a valid EBS device name.`);
    }
    if (this.devicesOf(instance.id).some((d) => slot(d.device) === slot(request.device))) {
      throw invalidValue(`Invalid value '${request.device}' for unixDevice. Attachment point ${request.device} is already in use`);
    }
    const attachTime = new Date();
    volume.attachments.push({
      instanceId: instance.id, device: request.device, attachTime, readyAt: Date.now() + this.attachDelayMs, attachingAnswersLeft: this.attachingPolls,
    });
    await this.hooks.onAttach?.(request);
    if (this.dropAttachResponses > 0) {
      this.dropAttachResponses--;
      throw new DropConnection('response dropped');
    }
    return `${el('volumeId', volume.id)}${el('instanceId', instance.id)}${el('device', request.device)}${el('status', 'attaching')}${el('attachTime', attachTime.toISOString())}`;
  }

  private async detachVolume(parsed: ParsedParams): Promise<string> {
    const { VolumeId: volumeId, InstanceId: instanceId } = parsed.scalars;
    checkVolumeId(volumeId);
    if (instanceId !== undefined) checkInstanceId(instanceId);
    this.dryRun(parsed);
    const volume = this.mustVolume(volumeId);
    this.settle();
    const a = volume.attachments.find((x) => (!instanceId || x.instanceId === instanceId) && x.goneAt === undefined);
    if (!a) throw new APIError(400, 'IncorrectState', `Volume '${volume.id}' is in the 'available' state.`);
    a.goneAt = Date.now() + this.detachDelayMs;
    await this.hooks.onDetach?.({ volumeId: volume.id, instanceId: a.instanceId, device: a.device });
    this.settle();
    return `${el('volumeId', volume.id)}${el('instanceId', a.instanceId)}${el('device', a.device)}${el('status', 'detaching')}${el('attachTime', a.attachTime.toISOString())}`;
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startEC2Server(options: EC2ServerOptions = {}): Promise<EC2TestServer> {
  return new EC2TestServer(options).start();
}
