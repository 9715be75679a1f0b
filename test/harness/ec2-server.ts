// A small EC2 for tests, on 127.0.0.1 only: the EC2 Query protocol (form-encoded
// POST, Action=…&Version=2016-11-15, XML replies in the EC2 namespace, XML
// errors with real HTTP statuses) for DescribeVolumes, DescribeInstances,
// AttachVolume and DetachVolume, so the real @aws-sdk/client-ec2 request path
// (signing, serialising, parsing, retries) runs against it; and one IMDSv2
// listener per instance (token PUT required, GET without a valid token → 401).
//
// State is in memory: instances (id, zone, extra block device mappings) and
// volumes (id, zone, tags, attachments). Every EC2 request is logged. Hooks
// let a test win an attach race for another instance, delay the attaching →
// attached transition, and wire attachments to device nodes.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
export const TEST_ACCESS_KEY = 'AKIDMOORINGTEST';
export const TEST_SECRET_KEY = 'mooring-test-secret';

export type AttachmentState = 'attaching' | 'attached' | 'detaching';

export interface FakeAttachment {
  instanceId: string;
  device: string;
  attachTime: Date;
  /** When `attaching` becomes `attached` (ms epoch). */
  readyAt: number;
  /** When set, the attachment is `detaching` and goes away at this time. */
  goneAt?: number;
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

export interface LoggedRequest {
  action: string;
  params: Record<string, string>;
  /** HTTP status sent back. */
  status: number;
  errorCode?: string;
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

/** Thrown after an action took effect: the connection is cut instead of replying (a lost response). */
class DropConnection extends Error {}

class APIError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function xmlEscape(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);
}

function el(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${xmlEscape(String(value))}</${name}>`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Values of a numbered list parameter: Prefix.1, Prefix.2, … */
function listParam(params: Record<string, string>, prefix: string): string[] {
  const out: { n: number; v: string }[] = [];
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)$`);
  for (const [k, v] of Object.entries(params)) {
    const m = re.exec(k);
    if (m) out.push({ n: Number(m[1]), v });
  }
  return out.sort((a, b) => a.n - b.n).map((e) => e.v);
}

function filtersOf(params: Record<string, string>): { name: string; values: string[] }[] {
  const filters: { name: string; values: string[] }[] = [];
  for (let n = 1; params[`Filter.${n}.Name`] !== undefined; n++) {
    filters.push({ name: params[`Filter.${n}.Name`], values: listParam(params, `Filter.${n}.Value`) });
  }
  return filters;
}

/** EC2's filter values allow * and ? wildcards. */
function valueMatches(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(value);
}

const slot = (device: string) => {
  const base = device.replace(/^\/dev\//, '');
  const m = /^(?:xv|s)d([a-z]+)$/.exec(base);
  return m ? m[1] : base;
};

export class EC2TestServer {
  readonly instances = new Map<string, FakeInstance>();
  readonly volumes = new Map<string, FakeVolume>();
  readonly requests: LoggedRequest[] = [];
  /** IMDS requests: instance, method, path, status. */
  readonly imdsRequests: { instanceId: string; method: string; path: string; status: number }[] = [];
  hooks: EC2ServerHooks = {};
  /** How long new attachments stay `attaching`. */
  attachDelayMs = 0;
  /** How long detaching attachments take to go away. */
  detachDelayMs = 0;
  /** Cut the connection instead of answering the next N successful AttachVolume calls (they still take effect). */
  dropAttachResponses = 0;
  private server?: Server;
  private readonly imdsServers: Server[] = [];
  private readonly tokens = new Map<string, { instanceId: string; expiresAt: number }>();
  private counter = 0;
  endpoint = '';

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
    const id = options.id ?? `i-${randomBytes(8).toString('hex').slice(0, 17)}`;
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
    if (a.goneAt !== undefined) return now >= a.goneAt ? 'gone' : 'detaching';
    return now >= a.readyAt ? 'attached' : 'attaching';
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
    const v = this.volumes.get(id);
    if (!v) throw new APIError(400, 'InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    return v;
  }

  private mustInstance(id: string): FakeInstance {
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
    const params: Record<string, string> = Object.fromEntries(new URLSearchParams(body));
    const action = params.Action ?? '';
    const requestId = this.requestId();
    const send = (status: number, xml: string, errorCode?: string) => {
      this.requests.push({ action, params, status, errorCode });
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'content-length': Buffer.byteLength(xml), 'x-amzn-requestid': requestId });
      res.end(xml);
    };
    try {
      if (req.method !== 'POST') throw new APIError(405, 'UnsupportedOperation', `${req.method} is not supported; POST a form`);
      const contentType = req.headers['content-type'] ?? '';
      if (!contentType.startsWith('application/x-www-form-urlencoded')) throw new APIError(400, 'MalformedQueryString', `content-type ${contentType} is not a form`);
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('AWS4-HMAC-SHA256 ') || !auth.includes(`Credential=${TEST_ACCESS_KEY}/`)) {
        throw new APIError(401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
      }
      if (params.Version !== '2016-11-15') throw new APIError(400, 'InvalidParameterValue', `Version ${params.Version ?? '(none)'} is not 2016-11-15`);
      let inner: string;
      switch (action) {
        case 'DescribeVolumes': inner = this.describeVolumes(params); break;
        case 'DescribeInstances': inner = this.describeInstances(params); break;
        case 'AttachVolume': inner = await this.attachVolume(params); break;
        case 'DetachVolume': inner = await this.detachVolume(params); break;
        default: throw new APIError(400, 'InvalidAction', `The action ${action || '(none)'} is not valid for this web service.`);
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

  private volumeMatches(v: FakeVolume, filter: { name: string; values: string[] }): boolean {
    const any = (value: string | undefined) => value !== undefined && filter.values.some((p) => valueMatches(p, value));
    const anyOf = (values: string[]) => values.some((value) => any(value));
    if (filter.name.startsWith('tag:')) return any(v.tags[filter.name.slice(4)]);
    switch (filter.name) {
      case 'availability-zone': return any(v.availabilityZone);
      case 'volume-id': return any(v.id);
      case 'status': return any(this.volumeState(v));
      case 'tag-key': return anyOf(Object.keys(v.tags));
      case 'tag-value': return anyOf(Object.values(v.tags));
      case 'attachment.instance-id': return anyOf(v.attachments.map((a) => a.instanceId));
      case 'attachment.device': return anyOf(v.attachments.map((a) => a.device));
      case 'attachment.status': return anyOf(v.attachments.map((a) => this.attachmentState(a)));
      default: throw new APIError(400, 'InvalidParameterValue', `The filter '${filter.name}' is invalid`);
    }
  }

  private describeVolumes(params: Record<string, string>): string {
    this.settle();
    const ids = listParam(params, 'VolumeId');
    for (const id of ids) this.mustVolume(id);
    const filters = filtersOf(params);
    const selected = [...this.volumes.values()]
      .filter((v) => ids.length === 0 || ids.includes(v.id))
      .filter((v) => filters.every((f) => this.volumeMatches(v, f)));
    const items = selected.map((v) => {
      const attachments = v.attachments.map((a) => `<item>${el('volumeId', v.id)}${el('instanceId', a.instanceId)}${el('device', a.device)}${el('status', this.attachmentState(a))}${el('attachTime', a.attachTime.toISOString())}${el('deleteOnTermination', false)}</item>`).join('');
      const tags = Object.entries(v.tags).map(([k, value]) => `<item>${el('key', k)}${el('value', value)}</item>`).join('');
      return `<item>${el('volumeId', v.id)}${el('size', v.sizeGiB)}<snapshotId/>${el('availabilityZone', v.availabilityZone)}${el('status', this.volumeState(v))}${el('createTime', '2026-01-01T00:00:00.000Z')}<attachmentSet>${attachments}</attachmentSet><tagSet>${tags}</tagSet>${el('volumeType', 'gp3')}${el('encrypted', false)}${el('multiAttachEnabled', false)}</item>`;
    });
    return `<volumeSet>${items.join('')}</volumeSet>`;
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

  private describeInstances(params: Record<string, string>): string {
    const ids = listParam(params, 'InstanceId');
    for (const id of ids) this.mustInstance(id);
    const selected = [...this.instances.values()].filter((i) => ids.length === 0 || ids.includes(i.id));
    const items = selected.map((i) => {
      const mappings = this.devicesOf(i.id).map((d) => `<item>${el('deviceName', d.device)}<ebs>${el('volumeId', d.volumeId ?? `vol-root${i.id.slice(2, 10)}`)}${el('status', d.state)}${el('attachTime', '2026-01-01T00:00:00.000Z')}${el('deleteOnTermination', d.volumeId === undefined)}</ebs></item>`).join('');
      return `<item>${el('reservationId', `r-${i.id.slice(2)}`)}${el('ownerId', '123456789012')}<groupSet/><instancesSet><item>${el('instanceId', i.id)}${el('imageId', 'ami-12345678')}<instanceState><code>16</code><name>running</name></instanceState>${el('instanceType', 'm5.large')}<placement>${el('availabilityZone', i.availabilityZone)}${el('tenancy', 'default')}</placement>${el('rootDeviceType', 'ebs')}${el('rootDeviceName', i.extraDevices[0] ?? '/dev/xvda')}<blockDeviceMapping>${mappings}</blockDeviceMapping></item></instancesSet></item>`;
    });
    return `<reservationSet>${items.join('')}</reservationSet>`;
  }

  private async attachVolume(params: Record<string, string>): Promise<string> {
    const request: AttachRequest = { volumeId: params.VolumeId ?? '', instanceId: params.InstanceId ?? '', device: params.Device ?? '' };
    if (!request.volumeId || !request.instanceId || !request.device) throw new APIError(400, 'MissingParameter', 'AttachVolume needs VolumeId, InstanceId and Device');
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
      throw new APIError(400, 'InvalidParameterValue', `Value (${request.device}) for parameter device is invalid. ${request.device} is not a valid EBS device name.`);
    }
    if (this.devicesOf(instance.id).some((d) => slot(d.device) === slot(request.device))) {
      throw new APIError(400, 'InvalidParameterValue', `Invalid value '${request.device}' for unixDevice. Attachment point ${request.device} is already in use`);
    }
    const attachTime = new Date();
    volume.attachments.push({ instanceId: instance.id, device: request.device, attachTime, readyAt: Date.now() + this.attachDelayMs });
    await this.hooks.onAttach?.(request);
    if (this.dropAttachResponses > 0) {
      this.dropAttachResponses--;
      throw new DropConnection('response dropped');
    }
    return `${el('volumeId', volume.id)}${el('instanceId', instance.id)}${el('device', request.device)}${el('status', 'attaching')}${el('attachTime', attachTime.toISOString())}`;
  }

  private async detachVolume(params: Record<string, string>): Promise<string> {
    const volume = this.mustVolume(params.VolumeId ?? '');
    this.settle();
    const a = volume.attachments.find((x) => (!params.InstanceId || x.instanceId === params.InstanceId) && x.goneAt === undefined);
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

export async function startEC2Server(): Promise<EC2TestServer> {
  return new EC2TestServer().start();
}
