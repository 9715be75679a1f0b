// The metadata service, in the shape of EC2's IMDSv2: a session token from
// PUT /latest/api/token (TTL header required, 1..21600 s), then GETs carrying
// X-aws-ec2-metadata-token. Each instance is told about itself only: it is
// known by the request's source address, and a token only works from the
// address it was issued to. No IMDSv1: a GET without a token is refused (401).
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../../../shared/log.js';
import { REGION, ROLE_NAME, S3_KEYS } from './plan.js';
import type { InstanceRecord } from './records.js';

const MAX_TTL_SECONDS = 21_600;

export interface MetadataSource {
  /** The instance that owns this address, if any. */
  instanceAt(address: string): Promise<{ record: InstanceRecord; userDataPath: string } | undefined>;
}

/** Metadata paths under /latest/meta-data/, from the instance record. */
function metadataOf(record: InstanceRecord, now: Date): Map<string, string> {
  const expiration = new Date(now.getTime() + 6 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const credentials = JSON.stringify({
    Code: 'Success',
    LastUpdated: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    Type: 'AWS-HMAC',
    AccessKeyId: S3_KEYS.accessKeyId,
    SecretAccessKey: S3_KEYS.secretAccessKey,
    Token: 'local-cloud-session',
    Expiration: expiration,
  });
  const host = `ip-${record.address.replace(/\./g, '-')}.${REGION}.compute.internal`;
  return new Map([
    ['ami-id', 'ami-mooringdebian12'],
    ['hostname', host],
    ['instance-id', record.id],
    ['instance-type', 'local.nspawn'],
    ['local-hostname', host],
    ['local-ipv4', record.address],
    ['placement/availability-zone', record.zone],
    ['placement/region', REGION],
    ['iam/security-credentials/', ROLE_NAME],
    [`iam/security-credentials/${ROLE_NAME}`, credentials],
  ]);
}

/** A directory listing, as IMDS gives one: the next path segment of each key, folders with a trailing slash. */
function listing(keys: string[], prefix: string): string | undefined {
  const entries = new Set<string>();
  for (const key of keys) {
    if (!key.startsWith(prefix) || key === prefix) continue;
    const rest = key.slice(prefix.length);
    const slash = rest.indexOf('/');
    entries.add(slash === -1 ? rest : rest.slice(0, slash + 1));
  }
  return entries.size > 0 ? [...entries].sort().join('\n') : undefined;
}

export function metadataHandler(source: MetadataSource, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  const tokens = new Map<string, { address: string; expiresAt: number }>();
  const reply = (res: ServerResponse, status: number, body: string | Buffer, type = 'text/plain') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  return (req, res) => {
    void (async () => {
      const address = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const found = await source.instanceAt(address);
      const fields = { event: 'imds-request', method: req.method, path, source: address, instance: found?.record.id };
      if (!found) {
        log.warn('metadata request from an address that is no instance', fields);
        return reply(res, 404, 'Not Found');
      }
      if (req.method === 'PUT' && path === '/latest/api/token') {
        const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
          log.info('token refused: bad TTL header', { ...fields, status: 400 });
          return reply(res, 400, 'Bad Request');
        }
        const token = randomBytes(24).toString('base64url');
        for (const [t, v] of tokens) if (v.expiresAt < Date.now()) tokens.delete(t);
        tokens.set(token, { address, expiresAt: Date.now() + ttl * 1000 });
        log.info('token issued', { ...fields, status: 200 });
        res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
        return reply(res, 200, token);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'Method Not Allowed');
      const token = tokens.get(String(req.headers['x-aws-ec2-metadata-token'] ?? ''));
      if (!token || token.address !== address || token.expiresAt < Date.now()) {
        log.info('request without a valid token', { ...fields, status: 401 });
        return reply(res, 401, 'Unauthorized');
      }
      if (path === '/latest/user-data') {
        const data = await readFile(found.userDataPath).catch(() => undefined);
        log.info('user-data served', { ...fields, status: data ? 200 : 404 });
        return data ? reply(res, 200, data, 'application/octet-stream') : reply(res, 404, 'Not Found');
      }
      const prefix = '/latest/meta-data/';
      if (path === '/latest/meta-data' || path.startsWith(prefix)) {
        const key = path.slice(prefix.length);
        const metadata = metadataOf(found.record, new Date());
        const value = metadata.get(key) ?? listing([...metadata.keys()], key === '' || key.endsWith('/') ? key : `${key}/`);
        log.info('metadata served', { ...fields, status: value === undefined ? 404 : 200 });
        return value === undefined ? reply(res, 404, 'Not Found') : reply(res, 200, value);
      }
      return reply(res, 404, 'Not Found');
    })().catch((err: unknown) => {
      log.error('metadata handler failed', { event: 'imds-error', err });
      if (!res.headersSent) reply(res, 500, 'Internal Server Error');
    });
  };
}
