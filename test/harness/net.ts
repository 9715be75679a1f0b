// Loopback addresses and ports for tests that run several etcd members, and a
// bounded poll. Each test file gets its own 127.0.<n>.x range, so files running
// in parallel (and other work on this machine) do not collide.
import { readFileSync } from 'node:fs';
import { freePorts } from '../../agents/etcd-manager/etcd/free-ports.js';

/** A 127.0.<n>.0/24 prefix chosen at random per call, avoiding 127.0.0.x. */
export function loopbackNet(): (host: number) => string {
  const n = 2 + Math.floor(Math.random() * 250);
  return (host) => `127.0.${n}.${host}`;
}

// Every port this process was given, per address: a test asks for several ports in a row (peer,
// client, quarantine), and once a probe's listener is closed the kernel may hand the same port out
// again; two roles on one port made etcd-manager-supervisor fail under load (CI run 27).
const handedOut = new Set<string>();

/** A port free on that address right now (the kernel picks it), never one this process was given before. */
export async function freePort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const [port] = await freePorts(host, 1);
    if (!handedOut.has(`${host}:${port}`)) {
      handedOut.add(`${host}:${port}`);
      return port;
    }
  }
  throw new Error(`no port on ${host} that this process was not given before, in 100 tries`);
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
