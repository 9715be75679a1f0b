// A Kubernetes API server for tests, on 127.0.0.1 only: HTTPS with its own test
// CA, clients authenticated by certificate (like the admin kubeconfig nodeup
// writes) or bearer token, and the real HTTP API for what addon channels, node
// labelling and pruning use: discovery (/api, /apis, resource lists), get,
// list (label and field selectors, limit/continue), create, replace, delete,
// and PATCH in all four forms, server-side apply included (field managers,
// managedFields, conflicts, force, pruning of fields a manager stopped
// applying). Errors are the real server's Status objects (404/409/422/…).
// @kubernetes/client-node talks to it unchanged, through a kubeconfig the
// harness writes.
//
// For tests it records every request (method, path, query, content type,
// body, who sent it, the answer), can be taken down (connections refused, or
// every request answered 503 with /readyz failing) and brought back up on the
// same port, and lets a test store objects as other components would have
// (a Node created by the kubelet). What it leaves out, and why that is safe for
// the tests that use it, is in test/harness/kube/README.md.
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parse as parseYAML, stringify as toYAML } from 'yaml';
import { createCA, issueCertificate, type CertificateAndKey } from '../../shared/pki/x509.js';
import type { Json, JsonObject } from './kube/json.js';
import { Registry, type KindInfo } from './kube/registry.js';
import { genericServerResponse, invalid, KubeError, forbidden, serviceUnavailable, unauthorized, methodNotSupported } from './kube/status.js';
import { ObjectStore, PATCH_TYPES, type PatchType } from './kube/store.js';
import type { Teardown } from './tmp.js';

export interface KubeUser {
  name: string;
  groups: string[];
}

/** What an authorizer is asked: the request in RBAC's terms. */
export interface AccessRequest {
  user: KubeUser;
  verb: 'get' | 'list' | 'create' | 'update' | 'patch' | 'delete';
  group: string;
  resource: string;
  namespace?: string;
  name?: string;
}

export interface RecordedRequest {
  method: string;
  /** The URL path, e.g. /apis/apps/v1/namespaces/kube-system/deployments/coredns. */
  path: string;
  /** Query parameters, each with every value it was given. */
  query: Record<string, string[]>;
  /** The Content-Type header as sent (parameters included), if any. */
  contentType?: string;
  body: string;
  userAgent?: string;
  /** Who the server took the sender for (undefined: not authenticated). */
  user?: KubeUser;
  /** The HTTP status answered. */
  status: number;
  /** The Status reason of an error answer. */
  reason?: string;
  /** The body answered: a JSON object, or the text of a plain-text answer. */
  response?: JsonObject | string;
  /** When the request arrived (ms since the epoch). */
  at: number;
}

export type DownMode = 'refused' | 'unavailable';

export interface KubeAPIServerOptions {
  registry?: Registry;
  /** Subject of the admin client certificate (default CN=admin, O=system:masters). */
  admin?: { commonName: string; organization: string[] };
  /** Bearer tokens the server accepts. */
  tokens?: Record<string, KubeUser>;
  /** Decides each resource request; default: every authenticated user may do anything. */
  authorize?: (request: AccessRequest) => boolean;
  /** The clock for timestamps (creationTimestamp, managedFields times). */
  now?: () => Date;
}

export interface KubeconfigOptions {
  /** Authenticate with this bearer token instead of the admin certificate. */
  token?: string;
  /** Write the CA, certificate and key as files beside the kubeconfig and point at them, instead of embedding them. */
  files?: boolean;
  /** A client certificate other than the admin one. */
  client?: CertificateAndKey;
  /** Namespace of the context. */
  namespace?: string;
}

const KUBE_VERSION = {
  major: '1',
  minor: '31',
  gitVersion: 'v1.31.0',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-08-13T07:28:49Z',
  goVersion: 'go1.22.5',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const STARTING_MESSAGE = 'the request has been made before all known HTTP paths have been installed, please try again';
const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** storageversionhash.StorageVersionHash: base64 of the first 8 bytes of sha256("group/version/kind"). */
function storageVersionHash(k: KindInfo): string {
  return createHash('sha256').update(`${k.group}/${k.version}/${k.kind}`).digest().subarray(0, 8).toString('base64');
}

function parseBool(value: string | null): boolean | undefined {
  if (value === null) return undefined;
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new KubeError(400, 'BadRequest', `strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) reject(new KubeError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728'));
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

interface Reply {
  status: number;
  body: JsonObject | string;
  reason?: string;
}

/** A resource request, parsed from its path. */
interface ResourcePath {
  info: KindInfo;
  namespace?: string;
  name?: string;
}

export class KubeAPIServer {
  readonly requests: RecordedRequest[] = [];
  readonly store: ObjectStore;
  readonly registry: Registry;
  /** Runs before each authenticated request is served; an error returned is the answer (to inject failures). */
  beforeRequest?: (request: RecordedRequest) => KubeError | undefined;
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private mode: 'up' | DownMode = 'up';
  private upTimer?: NodeJS.Timeout;
  private port = 0;
  private readonly tokens = new Map<string, KubeUser>();

  private constructor(
    readonly ca: CertificateAndKey,
    private readonly serving: CertificateAndKey,
    readonly admin: CertificateAndKey,
    private readonly options: KubeAPIServerOptions,
  ) {
    this.registry = options.registry ?? new Registry();
    this.store = new ObjectStore(this.registry, options.now);
    for (const [token, user] of Object.entries(options.tokens ?? {})) this.tokens.set(token, user);
  }

  /** Starts a server on 127.0.0.1 (random port); with `t`, it is closed when the test ends. */
  static async start(t?: Teardown, options: KubeAPIServerOptions = {}): Promise<KubeAPIServer> {
    const ca = await createCA('kubernetes-ca-test', 30, { keyAlgorithm: 'ECDSA-P256' });
    const serving = await issueCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'localhost'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
      validityDays: 30,
      keyAlgorithm: 'ECDSA-P256',
    });
    const adminSubject = options.admin ?? { commonName: 'admin', organization: ['system:masters'] };
    const admin = await issueCertificate(ca, {
      commonName: adminSubject.commonName,
      organization: adminSubject.organization,
      usage: 'client',
      validityDays: 30,
      keyAlgorithm: 'ECDSA-P256',
    });
    const server = new KubeAPIServer(ca, serving, admin, options);
    t?.teardown(() => server.close());
    await server.listen();
    return server;
  }

  /** https://127.0.0.1:<port> */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** A client certificate signed by the server's CA (for a user other than the admin). */
  issueClientCertificate(commonName: string, organization: string[] = []): Promise<CertificateAndKey> {
    return issueCertificate(this.ca, { commonName, organization, usage: 'client', validityDays: 30, keyAlgorithm: 'ECDSA-P256' });
  }

  addToken(token: string, user: KubeUser): void {
    this.tokens.set(token, user);
  }

  /** Writes a kubeconfig that KubeConfig.loadFromFile reads (mode 0600); returns its path. */
  writeKubeconfig(path: string, options: KubeconfigOptions = {}): string {
    mkdirSync(dirname(path), { recursive: true });
    const client = options.client ?? this.admin;
    const cluster: JsonObject = { server: this.url };
    const user: JsonObject = {};
    if (options.files) {
      const dir = dirname(path);
      const write = (file: string, content: string) => {
        writeFileSync(join(dir, file), content, { mode: 0o600 });
        chmodSync(join(dir, file), 0o600);
        return join(dir, file);
      };
      cluster['certificate-authority'] = write('ca.crt', this.ca.certPEM);
      if (options.token === undefined) {
        user['client-certificate'] = write('client.crt', client.certPEM);
        user['client-key'] = write('client.key', client.keyPEM);
      }
    } else {
      cluster['certificate-authority-data'] = Buffer.from(this.ca.certPEM).toString('base64');
      if (options.token === undefined) {
        user['client-certificate-data'] = Buffer.from(client.certPEM).toString('base64');
        user['client-key-data'] = Buffer.from(client.keyPEM).toString('base64');
      }
    }
    if (options.token !== undefined) user.token = options.token;
    const context: JsonObject = { cluster: 'test', user: 'test-user' };
    if (options.namespace) context.namespace = options.namespace;
    const config: JsonObject = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster }],
      users: [{ name: 'test-user', user }],
      contexts: [{ name: 'test', context }],
      'current-context': 'test',
    };
    writeFileSync(path, toYAML(config), { mode: 0o600 });
    chmodSync(path, 0o600);
    return path;
  }

  /**
   * Takes the server down: `refused` stops listening (connections are refused,
   * open ones are cut); `unavailable` keeps listening but answers every request
   * 503 (a Status, as a server still starting does) and /readyz 500. With `forMs`,
   * it comes back by itself after that long.
   */
  async down(mode: DownMode, forMs?: number): Promise<void> {
    this.clearTimer();
    if (mode === 'refused' && this.mode !== 'refused') await this.stopListening();
    if (mode === 'unavailable' && this.mode === 'refused') await this.listen();
    this.mode = mode;
    if (forMs !== undefined) this.upTimer = setTimeout(() => void this.up(), forMs);
  }

  async up(): Promise<void> {
    this.clearTimer();
    if (this.mode === 'refused') await this.listen();
    this.mode = 'up';
  }

  get state(): 'up' | DownMode {
    return this.mode;
  }

  async close(): Promise<void> {
    this.clearTimer();
    await this.stopListening();
  }

  /** Recorded requests that match every given property (path may be a prefix ending in '*'). */
  requestsMatching(filter: { method?: string; path?: string; contentType?: string }): RecordedRequest[] {
    return this.requests.filter((r) => {
      if (filter.method && r.method !== filter.method) return false;
      if (filter.contentType && r.contentType !== filter.contentType) return false;
      if (filter.path) {
        if (filter.path.endsWith('*')) return r.path.startsWith(filter.path.slice(0, -1));
        return r.path === filter.path;
      }
      return true;
    });
  }

  private clearTimer(): void {
    if (this.upTimer) clearTimeout(this.upTimer);
    this.upTimer = undefined;
  }

  private async listen(): Promise<void> {
    const server = createServer(
      {
        key: this.serving.keyPEM,
        cert: this.serving.certPEM,
        ca: this.ca.certPEM,
        // Client certificates are optional (tokens, anonymous health checks), but one that is sent must verify.
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => void this.handle(req, res),
    );
    server.on('secureConnection', (socket: TLSSocket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      // Go's VerifyClientCertIfGiven fails the handshake for a certificate that does not verify.
      if (!socket.authorized && socket.getPeerCertificate() && Object.keys(socket.getPeerCertificate()).length > 0) socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  private async stopListening(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private authenticate(req: IncomingMessage): KubeUser | undefined {
    const socket = req.socket as TLSSocket;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const user = this.tokens.get(auth.slice('Bearer '.length).trim());
      if (user) return user;
    }
    if (socket.authorized) {
      const cert = socket.getPeerCertificate();
      if (cert && cert.subject) {
        // Node gives a repeated attribute (several O=) as an array.
        const cn: unknown = cert.subject.CN;
        const o: unknown = cert.subject.O;
        const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
        return { name: list(cn)[0] ?? '', groups: list(o) };
      }
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const query: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      contentType: req.headers['content-type'],
      body: '',
      userAgent: req.headers['user-agent'],
      status: 0,
      at: Date.now(),
    };
    this.requests.push(record);
    let reply: Reply;
    try {
      record.body = await readBody(req);
      reply = await this.serve(req, url, record);
    } catch (err) {
      reply = this.errorReply(err);
    }
    record.status = reply.status;
    record.reason = reply.reason;
    record.response = reply.body;
    const headers: Record<string, string> = { 'Audit-Id': randomUUID(), 'Cache-Control': 'no-cache, private' };
    if (typeof reply.body === 'string') {
      headers['Content-Type'] = 'text/plain; charset=utf-8';
      headers['X-Content-Type-Options'] = 'nosniff';
      res.writeHead(reply.status, headers).end(reply.body);
    } else {
      headers['Content-Type'] = 'application/json';
      res.writeHead(reply.status, headers).end(JSON.stringify(reply.body));
    }
  }

  private errorReply(err: unknown): Reply {
    if (err instanceof KubeError) return { status: err.code, body: err.toStatus(), reason: err.reason };
    const wrapped = new KubeError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`, {
      causes: [{ message: (err as Error).message }],
    });
    return { status: 500, body: wrapped.toStatus(), reason: 'InternalError' };
  }

  private async serve(req: IncomingMessage, url: URL, record: RecordedRequest): Promise<Reply> {
    const path = url.pathname;
    const health = ['/healthz', '/livez', '/readyz'].includes(path);
    if (this.mode === 'unavailable') {
      if (health) return { status: 500, body: `[+]ping ok\n[-]etcd failed: reason withheld\n${path.slice(1)} check failed\n` };
      throw serviceUnavailable(STARTING_MESSAGE, 5);
    }
    if (health) return { status: 200, body: 'ok' };
    if (path === '/version' || path === '/version/') return { status: 200, body: KUBE_VERSION };
    const user = this.authenticate(req);
    record.user = user;
    if (!user) throw unauthorized();
    const injected = this.beforeRequest?.(record);
    if (injected) throw injected;

    const segments = path.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    if (segments[0] === 'api') {
      if (segments.length === 1) return { status: 200, body: this.apiVersions() };
      return this.serveGroupVersion('', segments[1], segments.slice(2), req, url, record);
    }
    if (segments[0] === 'apis') {
      if (segments.length === 1) return { status: 200, body: this.apiGroupList() };
      const group = segments[1];
      if (!this.registry.groups().has(group) || group === '') return notFoundPage();
      if (segments.length === 2) return { status: 200, body: this.apiGroup(group) };
      return this.serveGroupVersion(group, segments[2], segments.slice(3), req, url, record);
    }
    return notFoundPage();
  }

  private serveGroupVersion(group: string, version: string, rest: string[], req: IncomingMessage, url: URL, record: RecordedRequest): Reply | Promise<Reply> {
    const kinds = this.registry.inGroupVersion(group, version);
    if (kinds.length === 0) return notFoundPage();
    if (rest.length === 0) return { status: 200, body: this.resourceList(group, version) };
    const parsed = this.parseResourcePath(group, version, rest);
    if (!parsed) throw genericServerResponse(404);
    return this.serveResource(parsed, req, url, record);
  }

  private parseResourcePath(group: string, version: string, rest: string[]): ResourcePath | undefined {
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const info = this.registry.byResource(group, version, rest[2]);
      if (!info || !info.namespaced || rest.length > 4) return undefined;
      return { info, namespace: rest[1], name: rest[3] };
    }
    const info = this.registry.byResource(group, version, rest[0]);
    if (!info || rest.length > 2) return undefined;
    // A namespaced kind answers at the cluster level for lists only.
    if (info.namespaced && rest.length === 2) return undefined;
    return { info, name: rest[1] };
  }

  private async serveResource(target: ResourcePath, req: IncomingMessage, url: URL, record: RecordedRequest): Promise<Reply> {
    const { info, namespace, name } = target;
    const method = req.method ?? 'GET';
    const params = url.searchParams;
    const verb = verbOf(method, name !== undefined);
    if (!verb) throw genericServerResponse(405);
    if (info.namespaced && namespace === undefined && verb !== 'list') throw genericServerResponse(405);
    if (params.get('watch') === 'true' || params.get('watch') === '1') throw methodNotSupported({ group: info.group, resource: info.plural }, 'watch');
    const user = record.user!;
    const authorize = this.options.authorize;
    if (authorize && !authorize({ user, verb, group: info.group, resource: info.plural, namespace, name })) {
      const scope = namespace !== undefined ? `in the namespace "${namespace}"` : 'at the cluster scope';
      throw forbidden({ group: info.group, resource: info.plural }, name ?? '', `User "${user.name}" cannot ${verb} resource "${info.plural}" in API group "${info.group}" ${scope}`);
    }
    const dryRun = this.dryRun(params, verb);
    const write = { dryRun, fieldManager: params.get('fieldManager') ?? undefined, userAgent: req.headers['user-agent'] ?? '' };
    switch (verb) {
      case 'get':
        return { status: 200, body: this.store.get(info, namespace, name!) };
      case 'list': {
        const limit = params.get('limit');
        return {
          status: 200,
          body: this.store.list(info, namespace, {
            labelSelector: params.get('labelSelector') ?? undefined,
            fieldSelector: params.get('fieldSelector') ?? undefined,
            limit: limit === null ? undefined : Number(limit),
            continueToken: params.get('continue') ?? undefined,
          }),
        };
      }
      case 'create': {
        const result = this.store.create(info, namespace, this.decodeObject(record), write);
        return { status: result.code, body: result.body };
      }
      case 'update': {
        const result = this.store.replace(info, namespace, name!, this.decodeObject(record), write);
        return { status: result.code, body: result.body };
      }
      case 'patch': {
        const type = (record.contentType ?? '').split(';')[0].trim().toLowerCase();
        if (!(Object.values(PATCH_TYPES) as string[]).includes(type)) throw genericServerResponse(415, '415: Unsupported Media Type');
        const result = this.store.patch(info, namespace, name!, type as PatchType, record.body, { ...write, force: parseBool(params.get('force')) });
        return { status: result.code, body: result.body };
      }
      case 'delete': {
        const options = record.body.trim() === '' ? undefined : (JSON.parse(record.body) as Json);
        return { status: 200, body: this.store.delete(info, namespace, name!, options, dryRun) };
      }
    }
  }

  /** The dryRun query parameter: absent, or `All`. */
  private dryRun(params: URLSearchParams, verb: AccessRequest['verb']): boolean {
    const values = params.getAll('dryRun');
    const bad = values.find((v) => v !== 'All');
    if (bad !== undefined) {
      const kind = { create: 'CreateOptions', update: 'UpdateOptions', patch: 'PatchOptions', delete: 'DeleteOptions', get: 'GetOptions', list: 'ListOptions' }[verb];
      throw invalid({ group: 'meta.k8s.io', kind }, '', [{ type: 'FieldValueNotSupported', field: 'dryRun', detail: '', badValue: bad, supported: ['All'] }]);
    }
    return values.length > 0;
  }

  /** A create or replace body: JSON, or YAML when sent as application/yaml. */
  private decodeObject(record: RecordedRequest): Json {
    const type = (record.contentType ?? 'application/json').split(';')[0].trim().toLowerCase();
    try {
      if (type === 'application/json') return JSON.parse(record.body) as Json;
      if (type === 'application/yaml') return parseYAML(record.body) as Json;
    } catch (err) {
      throw new KubeError(400, 'BadRequest', `the object provided is unrecognized: ${(err as Error).message}`);
    }
    throw genericServerResponse(415, '415: Unsupported Media Type');
  }

  // ---- discovery ----

  private apiVersions(): JsonObject {
    return {
      kind: 'APIVersions',
      versions: this.registry.groups().get('') ?? [],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }],
    };
  }

  private apiGroup(group: string): JsonObject {
    const versions = (this.registry.groups().get(group) ?? []).map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
    return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions, preferredVersion: versions[0] };
  }

  private apiGroupList(): JsonObject {
    const groups = [...this.registry.groups().keys()].filter((g) => g !== '').map((g) => {
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = this.apiGroup(g);
      return rest;
    });
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }

  private resourceList(group: string, version: string): JsonObject {
    const resources = this.registry.inGroupVersion(group, version).map((k) => {
      const r: JsonObject = {
        name: k.plural,
        singularName: k.singular,
        namespaced: k.namespaced,
        kind: k.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'],
      };
      if (k.shortNames.length > 0) r.shortNames = k.shortNames;
      r.storageVersionHash = storageVersionHash(k);
      return r;
    });
    const list: JsonObject = { kind: 'APIResourceList' };
    if (group !== '') list.apiVersion = 'v1';
    list.groupVersion = group === '' ? version : `${group}/${version}`;
    list.resources = resources;
    return list;
  }

  /** A copy of a stored object, for assertions. */
  object(apiVersion: string, kind: string, namespace: string | undefined, name: string): JsonObject | undefined {
    return this.store.peek(apiVersion, kind, namespace, name);
  }

  /** Stores an object as a component other than the one under test would have (see ObjectStore.seed). */
  seed(obj: JsonObject, options: { manager?: string; trackManagedFields?: boolean } = {}): JsonObject {
    return this.store.seed(obj, options);
  }
}

function verbOf(method: string, hasName: boolean): AccessRequest['verb'] | undefined {
  switch (method) {
    case 'GET':
      return hasName ? 'get' : 'list';
    case 'POST':
      return hasName ? undefined : 'create';
    case 'PUT':
      return hasName ? 'update' : undefined;
    case 'PATCH':
      return hasName ? 'patch' : undefined;
    case 'DELETE':
      return hasName ? 'delete' : undefined;
    default:
      return undefined;
  }
}

/** Go's http.NotFound, which the real server answers for paths outside every API group it serves. */
function notFoundPage(): Reply {
  return { status: 404, body: '404 page not found\n' };
}

