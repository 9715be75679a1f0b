// Instance identity from the EC2 instance metadata service (shared: etcd-manager finds its volume with it, protokube its address and zone), IMDSv2 only: a
// session token from PUT /latest/api/token (with its TTL header), then GETs
// that carry it. There is no silent IMDSv1 fallback: an instance whose IMDS
// refuses tokens is misconfigured, and the error says so.
//
// The endpoint follows the SDK's conventions: an explicit option, else
// AWS_EC2_METADATA_SERVICE_ENDPOINT, else AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE
// (IPv4 / IPv6), else http://169.254.169.254. Plain fetch, not the SDK's
// @internal IMDS helpers: this is three requests with a timeout.

export interface InstanceIdentity {
  instanceId: string;
  availabilityZone: string;
  /** placement/region where the IMDS has it, else the zone minus its letter. */
  region: string;
}

export interface MetadataOptions {
  endpoint?: string;
  /** Per request (connect + reply). Default 2 s. */
  timeoutMs?: number;
  /** Token lifetime asked for. Default 300 s (IMDS allows 1–21600). */
  tokenTTLSeconds?: number;
  /** Attempts per request on network errors and 5xx. Default 3. */
  attempts?: number;
}

export function metadataEndpoint(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const configured = explicit ?? env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  if (configured) return configured.replace(/\/+$/, '');
  const mode = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE ?? 'IPv4').toLowerCase();
  if (mode === 'ipv6') return 'http://[fd00:ec2::254]';
  if (mode !== 'ipv4') throw new Error(`AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=${env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE}: want IPv4 or IPv6`);
  return 'http://169.254.169.254';
}

/** The useful part of a fetch failure: undici hides the errno in `cause`. */
export function networkReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timed out';
  const cause = (err as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code ? `${code} (${cause.message})` : cause.message;
  }
  return err.message;
}

class HTTPStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class InstanceMetadata {
  readonly endpoint: string;
  private token?: { value: string; expiresAt: number };

  constructor(private readonly options: MetadataOptions = {}) {
    this.endpoint = metadataEndpoint(options.endpoint);
  }

  private async send(method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<string> {
    const attempts = Math.max(1, this.options.attempts ?? 3);
    let last: Error | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const res = await fetch(`${this.endpoint}${path}`, {
          method,
          headers,
          redirect: 'error',
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 2000),
        });
        const body = await res.text();
        if (res.ok) return body;
        const err = new HTTPStatusError(res.status, `HTTP ${res.status}${body.trim() ? `: ${body.trim().slice(0, 200)}` : ''}`);
        if (res.status < 500) throw err;
        last = err;
      } catch (err) {
        if (err instanceof HTTPStatusError && err.status < 500) throw err;
        last = err instanceof HTTPStatusError ? err : new Error(networkReason(err));
      }
      // Capped, jittered backoff: 100 ms, 200 ms, … up to 1 s, ±50 %.
      if (attempt < attempts) await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** (attempt - 1), 1000) * (0.5 + Math.random())));
    }
    throw last ?? new Error('no attempt made');
  }

  private async sessionToken(): Promise<string> {
    if (this.token && this.token.expiresAt > Date.now()) return this.token.value;
    const ttl = this.options.tokenTTLSeconds ?? 300;
    let value: string;
    try {
      value = (await this.send('PUT', '/latest/api/token', { 'X-aws-ec2-metadata-token-ttl-seconds': String(ttl) })).trim();
    } catch (err) {
      throw new Error(`instance metadata (IMDSv2) at ${this.endpoint}: PUT /latest/api/token: ${(err as Error).message}`);
    }
    if (value === '') throw new Error(`instance metadata (IMDSv2) at ${this.endpoint}: PUT /latest/api/token returned an empty token`);
    // Renewed well before the IMDS drops it.
    this.token = { value, expiresAt: Date.now() + (ttl * 1000) / 2 };
    return value;
  }

  /** GET /latest/meta-data/<path> with the session token; a rejected token is renewed once. */
  async get(path: string): Promise<string> {
    const url = `/latest/meta-data/${path.replace(/^\/+/, '')}`;
    for (let round = 1; ; round++) {
      const token = await this.sessionToken();
      try {
        return (await this.send('GET', url, { 'X-aws-ec2-metadata-token': token })).trim();
      } catch (err) {
        if (err instanceof HTTPStatusError && err.status === 401 && round === 1) {
          this.token = undefined;
          continue;
        }
        throw new Error(`instance metadata (IMDSv2) at ${this.endpoint}: GET ${url}: ${(err as Error).message}`);
      }
    }
  }

  async identity(): Promise<InstanceIdentity> {
    const instanceId = await this.get('instance-id');
    const availabilityZone = await this.get('placement/availability-zone');
    if (!/^i-[0-9a-z]+$/.test(instanceId)) throw new Error(`instance metadata at ${this.endpoint}: instance-id ${JSON.stringify(instanceId)} does not look like an EC2 instance id`);
    if (!/^[a-z0-9-]+[a-z]$/.test(availabilityZone)) throw new Error(`instance metadata at ${this.endpoint}: availability zone ${JSON.stringify(availabilityZone)} is not a zone name`);
    let region: string;
    try {
      region = await this.get('placement/region');
    } catch (err) {
      // Older IMDS versions have no placement/region; standard zones are <region><letter>.
      if (!/HTTP 404/.test((err as Error).message)) throw err;
      region = availabilityZone.slice(0, -1);
    }
    return { instanceId, availabilityZone, region };
  }
}
