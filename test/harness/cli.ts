// Runs the mooring CLI in-process and captures what it prints.
import { main } from '../../agents/mooring/main.js';

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
