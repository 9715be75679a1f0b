// A real S3 API for tests: s3rver on 127.0.0.1, a random port, a fresh directory
// and one bucket. It runs in a child Node process started with
// --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation tokens
// with DES, which OpenSSL 3 only has in its legacy provider, so without the flag
// every list longer than one page fails with a 500. The flag only works at
// startup, and the test process itself should keep Node's default crypto.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { Teardown } from './tmp.js';

export interface S3Server {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  bucket: string;
  /** s3://<bucket> */
  url: string;
  /** AWS_* settings that reach this server (for child processes, or openStore's env option). */
  env: Record<string, string>;
  /** Every request received so far (after a round trip, so none is still in flight in the log). */
  requests(): Promise<S3Request[]>;
  /** Stops the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

/** One request the server received. */
export interface S3Request {
  method: string;
  /** Path and query, e.g. `/mooring-test/state/big?uploadId=…&partNumber=1`. */
  url: string;
  /** The AWS SDK's attempt number of this call (its amz-sdk-request header: 2 and up are its retries), when it sent one. */
  attempt?: number;
}

// CommonJS run with `node -e`; argv: s3rver module path, data directory, bucket.
// stdout carries JSON lines: first {port}, then one {method,url,attempt} per request, and
// {sync:n} echoing each `n` line read on stdin (so the parent knows it has every earlier line).
const SERVER_SCRIPT = `
const S3rver = require(process.argv[1]);
const [directory, bucket] = process.argv.slice(2);
const send = (message) => process.stdout.write(JSON.stringify(message) + '\\n');
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
server.middleware.unshift((ctx, next) => {
  const attempt = /attempt=(\\d+)/.exec(String(ctx.headers['amz-sdk-request'] || ''));
  send({ method: ctx.method, url: ctx.url, ...(attempt ? { attempt: Number(attempt[1]) } : {}) });
  return next();
});
server.run().then(
  (address) => send({ port: address.port }),
  (err) => { console.error(err); process.exit(1); },
);
// The parent holds our stdin: when it ends (the parent exited, even by SIGKILL), stop too.
require('readline').createInterface({ input: process.stdin })
  .on('line', (line) => send({ sync: Number(line) }))
  .on('close', () => process.exit(0));
`;

const READY_TIMEOUT_MS = 60_000; // generous: a loaded CI machine can take many seconds to start a Node process

type ServerMessage = { port: number } | S3Request | { sync: number };

/** Reads the server's stdout: resolves with its port, then keeps the request log. */
function follow(child: ChildProcess, log: S3Request[], synced: Map<number, () => void>): Promise<number> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${READY_TIMEOUT_MS} ms: ${stderr}`)), READY_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as ServerMessage;
      if ('port' in message) {
        clearTimeout(timer);
        resolve(message.port);
      } else if ('sync' in message) {
        synced.get(message.sync)?.();
      } else {
        log.push(message);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      for (const done of synced.values()) done(); // no echo will come now
      reject(new Error(`s3rver exited before it was ready (code ${code}, signal ${signal}): ${stderr}`));
    });
  });
}

export async function startS3(t?: Teardown, options: { bucket?: string } = {}): Promise<S3Server> {
  const bucket = options.bucket ?? 'mooring-test';
  const directory = mkdtempSync(join(tmpdir(), 'mooring-s3rver-'));
  const { NODE_OPTIONS: _dropLoaders, ...childEnv } = process.env; // the server needs no test loaders
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', SERVER_SCRIPT, createRequire(import.meta.url).resolve('s3rver'), directory, bucket],
    { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv },
  );

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      child.ref();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true, maxRetries: 3 });
    })());
  t?.teardown(stop);

  const log: S3Request[] = [];
  const synced = new Map<number, () => void>();
  let port: number;
  try {
    port = await follow(child, log, synced);
  } catch (err) {
    await stop();
    throw err;
  }
  // A forgotten server must not keep the test process alive; stdin still ties its life to ours.
  const pipes = [child.stdin, child.stdout, child.stderr] as unknown as Array<Socket | null>;
  child.unref();
  for (const pipe of pipes) pipe?.unref();

  let syncs = 0;
  const requests = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return [...log];
    const id = ++syncs;
    const stdout = pipes[1];
    stdout?.ref(); // keep this process alive while it waits for the echo
    try {
      await new Promise<void>((resolve) => {
        synced.set(id, resolve);
        child.stdin?.write(`${id}\n`);
      });
    } finally {
      synced.delete(id);
      stdout?.unref();
    }
    return [...log];
  };

  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    url: `s3://${bucket}`,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER', // s3rver's fixed credentials
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_EC2_METADATA_DISABLED: 'true', // never let the credential chain look for an instance
    },
    requests,
    stop,
  };
}
