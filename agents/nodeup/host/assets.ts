// Hash-verified downloads: `sha256@url1,url2`. Mirrors are tried in order, the
// hash is computed while the bytes stream to a temp file in the cache, and
// only a file with the right hash is renamed into the cache
// (<cache>/<sha256>_<name>), which later runs reuse without any request.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { lstatIfExists, tempPathFor } from './fs.js';

export interface AssetRef {
  sha256: string;
  urls: string[];
  /** File name: the last path segment of the first URL. */
  name: string;
}

const SPEC = /^([0-9a-f]{64})@(.+)$/;

/** Parses `sha256@url1,url2`; throws a message naming the bad spec. */
export function parseAssetSpec(spec: string): AssetRef {
  const m = SPEC.exec(spec.trim());
  if (!m) throw new Error(`asset ${JSON.stringify(spec)} is not sha256@url1,url2 (64 lowercase hex digits)`);
  const urls = m[2].split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length === 0) throw new Error(`asset ${JSON.stringify(spec)} names no URL`);
  const name = basename(new URL(urls[0]).pathname);
  if (!name) throw new Error(`asset ${JSON.stringify(spec)}: cannot tell a file name from ${urls[0]}`);
  return { sha256: m[1], urls, name };
}

export function formatAssetSpec(a: AssetRef): string {
  return `${a.sha256}@${a.urls.join(',')}`;
}

export function cachePath(cacheDir: string, a: AssetRef): string {
  return join(cacheDir, `${a.sha256}_${a.name}`);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

async function openSource(url: string, signal: AbortSignal): Promise<Readable> {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:') return createReadStream(fileURLToPath(parsed));
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`unsupported URL scheme ${parsed.protocol}`);
  const response = await fetch(url, { signal, redirect: 'follow' });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status} ${response.statusText}`);
  return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
}

/** Streams one mirror into `temp`, hashing on the way; returns the hex digest. */
async function download(url: string, temp: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const tee = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(await openSource(url, signal), tee, createWriteStream(temp, { mode: 0o644 }), { signal });
  return hash.digest('hex');
}

/**
 * The cached file for the asset, downloading it first when the cache lacks it.
 * Errors name every mirror tried and why it failed.
 */
export async function fetchToCache(cacheDir: string, a: AssetRef, signal: AbortSignal): Promise<string> {
  const target = cachePath(cacheDir, a);
  const cached = await lstatIfExists(target);
  if (cached) {
    // Only a regular file is read: a link planted as an entry is never read through, just replaced.
    if (cached.isFile() && (await sha256File(target)) === a.sha256) return target;
    await rm(target, { force: true }); // corrupted cache entry: fetch again
  }
  await mkdir(cacheDir, { recursive: true, mode: 0o755 });
  const failures: string[] = [];
  for (const url of a.urls) {
    const temp = tempPathFor(target);
    try {
      const got = await download(url, temp, signal);
      if (got !== a.sha256) throw new Error(`sha256 mismatch: got ${got}, want ${a.sha256}`);
      await rename(temp, target);
      return target;
    } catch (err) {
      await rm(temp, { force: true });
      if (signal.aborted) throw err;
      failures.push(`${url}: ${describeError(err)}`);
    }
  }
  throw new Error(`download ${a.name} failed from every mirror: ${failures.join('; ')}`);
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}
