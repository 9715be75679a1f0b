// Hash-verified downloads: `sha256@url1,url2`. Mirrors are tried in order, the
// hash is computed while the bytes stream to a temp file in the cache, and
// only a file with the right hash is renamed into the cache
// (<cache>/<sha256>_<name>), which later runs reuse without any request.
// A mirror that sends no byte for the stall timeout (no answer, or a body that
// stops) is given up at once and the next one tried: fetch's own limits are
// 300 s for the headers and 300 s between body chunks.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { DEFAULT_STALL_TIMEOUT_MS } from '../defaults.js';
import { lstatIfExists, tempPathFor } from './fs.js';

export interface AssetRef {
  sha256: string;
  urls: string[];
  /** File name: the last path segment of the first URL. */
  name: string;
}

const SPEC = /^([0-9a-f]{64})@(.+)$/;

/** A mirror sent no byte for the stall timeout: it was given up, and the next one tried. */
export class MirrorStalledError extends Error {
  constructor(readonly stallTimeoutMs: number) {
    super(`stalled: no data for ${stallTimeoutMs / 1000} s`);
    this.name = 'MirrorStalledError';
  }
}

/** Every mirror failed; `failures` says how each one did, in the order tried. */
export class AssetDownloadError extends Error {
  constructor(readonly asset: string, readonly failures: Array<{ url: string; error: unknown }>) {
    super(`download ${asset} failed from every mirror: ${failures.map((f) => `${f.url}: ${describeError(f.error)}`).join('; ')}`);
    this.name = 'AssetDownloadError';
  }
}

/**
 * Aborts when no byte has come for `ms`: armed before the request, re-armed by
 * every chunk. It measures idleness, so a big download that keeps moving is
 * never cut short, however long it takes in all (the task timeout bounds that).
 */
function stallWatch(ms: number, parent: AbortSignal) {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new MirrorStalledError(ms)), ms);
  };
  arm();
  return {
    signal: AbortSignal.any([parent, controller.signal]),
    stalled: () => controller.signal.aborted,
    touch: arm,
    stop: () => clearTimeout(timer),
  };
}

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
async function download(url: string, temp: string, signal: AbortSignal, stallTimeoutMs: number): Promise<string> {
  const hash = createHash('sha256');
  const watch = stallWatch(stallTimeoutMs, signal);
  const tee = new Transform({
    transform(chunk: Buffer, _enc, done) {
      watch.touch();
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(await openSource(url, watch.signal), tee, createWriteStream(temp, { mode: 0o644 }), { signal: watch.signal });
  } catch (err) {
    // The task's own signal wins: a task timeout is not this mirror's stall.
    if (watch.stalled() && !signal.aborted) throw new MirrorStalledError(stallTimeoutMs);
    throw err;
  } finally {
    watch.stop();
  }
  return hash.digest('hex');
}

/**
 * The cached file for the asset, downloading it first when the cache lacks it.
 * Errors name every mirror tried and why it failed.
 */
export async function fetchToCache(cacheDir: string, a: AssetRef, signal: AbortSignal, stallTimeoutMs = DEFAULT_STALL_TIMEOUT_MS): Promise<string> {
  const target = cachePath(cacheDir, a);
  const cached = await lstatIfExists(target);
  if (cached) {
    // Only a regular file is read: a link planted as an entry is never read through, just replaced.
    if (cached.isFile() && (await sha256File(target)) === a.sha256) return target;
    await rm(target, { force: true }); // corrupted cache entry: fetch again
  }
  await mkdir(cacheDir, { recursive: true, mode: 0o755 });
  const failures: Array<{ url: string; error: unknown }> = [];
  for (const url of a.urls) {
    const temp = tempPathFor(target);
    try {
      const got = await download(url, temp, signal, stallTimeoutMs);
      if (got !== a.sha256) throw new Error(`sha256 mismatch: got ${got}, want ${a.sha256}`);
      await rename(temp, target);
      return target;
    } catch (err) {
      await rm(temp, { force: true });
      if (signal.aborted) throw err;
      failures.push({ url, error: err });
    }
  }
  throw new AssetDownloadError(a.name, failures);
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}
