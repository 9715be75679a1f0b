// Runs the mooring CLI in-process and captures what it prints.
import { isIP } from 'node:net';
import { main } from '../../agents/mooring/main.js';

/**
 * Tests never leave this machine: `update cluster` looks up the sha256 of an asset
 * that is not in the shipped table from `<url>.sha256`, so a test whose spec names
 * an unknown version would otherwise try the internet. Any fetch to a host other
 * than loopback fails at once, as an unreachable server does, naming the URL.
 */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}
const realFetch = globalThis.fetch;
globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (!isLoopback(url.hostname)) throw new TypeError(`fetch failed`, { cause: new Error(`test network guard: ${url.href} is not on this machine`) });
  return realFetch(input, init);
}) as typeof fetch;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function mooring(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    out: (s) => void (stdout += s),
    err: (s) => void (stderr += s),
    env,
  });
  return { code, stdout, stderr };
}

/** A dummy agent binary description, enough to render user-data. */
export const TEST_AGENT_ARGS = ['--agent-url', 'file:///opt/test/mooring', '--agent-sha256', 'a'.repeat(64)];

/** The same for a cloud cluster (aws), whose instances can only download over http(s). */
export const TEST_CLOUD_AGENT_ARGS = ['--agent-url', 'https://mirror.example.com/mooring/mooring', '--agent-sha256', 'a'.repeat(64)];
