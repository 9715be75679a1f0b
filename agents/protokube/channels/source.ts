// Reads a channel or manifest by URL: from the state store (s3://, file://,
// memfs://: through the store the daemon already has open when the URL is
// under it, so one S3 client serves everything), or over http(s) with a
// deadline. Sizes are bounded: a manifest is text a human could review.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../../shared/store/index.js';
import type { StateStore } from '../../../shared/store/types.js';

export const MAX_RESOURCE_BYTES = 4 * 1024 * 1024;

export class ResourceReader {
  private readonly opened = new Map<string, StateStore>();

  constructor(
    /** Stores already open (the cluster's folder): URLs under them are read through them. */
    private readonly roots: StateStore[],
    private readonly options: { storeTimeoutMs: number; httpTimeoutMs?: number },
  ) {}

  async read(url: string): Promise<Buffer> {
    const data = await this.fetch(url);
    if (data.length > MAX_RESOURCE_BYTES) throw new Error(`${url}: ${data.length} bytes, more than the ${MAX_RESOURCE_BYTES / 1024 / 1024} MiB protokube reads`);
    return data;
  }

  private async fetch(url: string): Promise<Buffer> {
    if (url.startsWith('/')) return readFile(url);
    if (/^https?:\/\//.test(url)) return this.http(url);
    for (const root of this.roots) {
      if (url.startsWith(`${root.baseURL}/`)) return root.read(decodeURIComponent(url.slice(root.baseURL.length + 1)));
    }
    if (url.startsWith('file://')) return readFile(fileURLToPath(url));
    const slash = url.lastIndexOf('/');
    const folder = url.slice(0, slash);
    let store = this.opened.get(folder);
    if (!store) {
      store = openStore(folder, { timeoutMs: this.options.storeTimeoutMs });
      this.opened.set(folder, store);
    }
    return store.read(url.slice(slash + 1));
  }

  private async http(url: string): Promise<Buffer> {
    const res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(this.options.httpTimeoutMs ?? 30_000) });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > MAX_RESOURCE_BYTES) throw new Error(`${url}: ${length} bytes, more than the ${MAX_RESOURCE_BYTES / 1024 / 1024} MiB protokube reads`);
    return Buffer.from(await res.arrayBuffer());
  }
}
