// Where instances download the agent from, and the hash they check it against.
// Order: flags, then MOORING_AGENT_URLS / MOORING_AGENT_SHA256, then this very
// executable when mooring runs as the single binary (it is the multi-call agent).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { isRunningAsSingleBinary } from '../../shared/single-binary.js';
import { ExitCode, UserError } from '../../shared/errors.js';

export interface AgentBinary {
  urls: string[];
  sha256: string;
  /** Where the URLs came from, so an error can name what to change. */
  source: 'flag' | 'env' | 'self';
}

export interface AgentBinaryOptions {
  agentURL?: string[];
  agentSHA256?: string;
}

export async function resolveAgentBinary(options: AgentBinaryOptions, env: NodeJS.ProcessEnv): Promise<AgentBinary> {
  const urls = splitList(options.agentURL ?? []).concat(options.agentURL?.length ? [] : splitList([env.MOORING_AGENT_URLS ?? '']));
  let sha256 = options.agentSHA256 ?? env.MOORING_AGENT_SHA256;
  let source: AgentBinary['source'] = options.agentURL?.length ? 'flag' : 'env';
  if (urls.length === 0 && sha256 === undefined && isRunningAsSingleBinary()) {
    urls.push(pathToFileURL(process.execPath).href);
    sha256 = await sha256OfFile(process.execPath);
    source = 'self';
  }
  if (urls.length === 0 || sha256 === undefined) {
    throw new UserError(
      'cannot render user-data: no agent binary; pass --agent-url and --agent-sha256 ' +
        '(or set MOORING_AGENT_URLS and MOORING_AGENT_SHA256), or run the built dist/bin/mooring',
      ExitCode.Usage,
    );
  }
  sha256 = sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new UserError(`--agent-sha256: "${sha256}" is not a sha256 (64 hex digits)`, ExitCode.Usage);
  }
  for (const url of urls) {
    if (!/^(https?|file):\/\//.test(url)) {
      throw new UserError(`--agent-url: "${url}" is not an http(s):// or file:// URL`, ExitCode.Usage);
    }
  }
  return { urls, sha256, source };
}

function splitList(values: string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0);
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
