// Loopback addresses and ports for tests that run several etcd members, and a
// bounded poll. Each test file gets its own 127.0.<n>.x range, so files running
// in parallel (and other work on this machine) do not collide.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A 127.0.<n>.0/24 prefix chosen at random per call, avoiding 127.0.0.x. */
export function loopbackNet(): (host: number) => string {
  const n = 2 + Math.floor(Math.random() * 250);
  return (host) => `127.0.${n}.${host}`;
}

/** A port free on that address right now (the kernel picks it). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until check returns a value (not undefined/false) or the time is up; then throws with the last detail. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** True for a process that has exited but is not reaped yet (or is gone). */
export function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true; // gone
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
