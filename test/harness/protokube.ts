// Runs protokube as its own process, as a daemon test should (signals, exit
// codes and logs are real): the built dist/bin/protokube when it is newer
// than every source file, else the source through tsx (see manager.ts). Its
// JSON log lines are kept and can be waited for by `event`.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { waitFor } from './net.js';
import type { Teardown } from './tmp.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BINARY = join(repo, 'dist/bin/protokube');
const SETPRIV = '/usr/bin/setpriv';

export type LogLine = Record<string, unknown>;

export interface ProtokubeProcess {
  child: ChildProcess;
  logs: LogLine[];
  /** Lines with this event so far. */
  events(event: string): LogLine[];
  /** Waits for the n-th line with this event (n counts from 1) and returns it. */
  waitForEvent(event: string, options?: { timeoutMs?: number; n?: number; match?: (line: LogLine) => boolean }): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL (a silent death: no deregistration). */
  kill(): Promise<void>;
}

let chosen: string[] | undefined;

/** The built binary if no source file is newer than it (checked once per test process), else tsx. */
export function protokubeCommand(): string[] {
  if (chosen) return chosen;
  const fromSource = [process.execPath, '--import', 'tsx', join(repo, 'scripts/multicall-entry.ts'), 'protokube'];
  if (process.env.MOORING_TEST_FROM_SOURCE === '1' || !existsSync(BINARY)) return (chosen = fromSource);
  const built = statSync(BINARY).mtimeMs;
  const newest = Math.max(...['agents', 'shared', 'scripts'].flatMap((dir) => newestMtimes(join(repo, dir))), statSync(join(repo, 'package-lock.json')).mtimeMs);
  return (chosen = newest > built ? fromSource : [BINARY]);
}

function newestMtimes(dir: string): number[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|json)$/.test(e.name))
    .map((e) => statSync(join(e.parentPath, e.name)).mtimeMs);
}

/** A minimal environment: no PROTOKUBE_* or AWS_* of the caller leaks in (protokube refuses unknown PROTOKUBE_* names). */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('PROTOKUBE_') && !k.startsWith('AWS_') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  return { ...env, ...extra };
}

export function startProtokube(t: Teardown, args: string[], env: Record<string, string> = {}, program: string[] = protokubeCommand()): ProtokubeProcess {
  const command = [...program, ...args];
  // Dies with the test process (parent-death signal) even when tap kills the file on its timeout.
  const [file, argv] = existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ...command]] : [command[0], command.slice(1)];
  const child = spawn(file, argv, { cwd: repo, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ msg: line });
    }
    if (process.env.MOORING_TEST_VERBOSE) console.log(`# ${line}`);
  });
  child.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const kill = async () => {
    if (alive()) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  t.teardown(kill);
  const events = (event: string) => logs.filter((l) => l.event === event);
  return {
    child,
    logs,
    events,
    async waitForEvent(event, options = {}) {
      const n = options.n ?? 1;
      return waitFor(`protokube event ${event} #${n}`, async () => {
        const found = events(event).filter((l) => options.match?.(l) ?? true);
        if (found.length >= n) return found[n - 1];
        if (!alive()) throw new Error(`protokube exited; last lines: ${logs.slice(-5).map((l) => JSON.stringify(l)).join(' | ')}`);
        return undefined;
      }, options.timeoutMs ?? 60_000, 50);
    },
    exited,
    stop: async () => {
      if (alive()) child.kill('SIGTERM');
      return exited;
    },
    kill,
  };
}

/** One protokube command to its end (status, channels apply). */
export async function runProtokube(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string; logs: LogLine[] }> {
  const [file, ...rest] = [...protokubeCommand(), ...args];
  const r = await execa(file, rest, { cwd: repo, env: childEnv(env), extendEnv: false, reject: false, timeout: 120_000 });
  const logs = String(r.stderr).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), logs };
}
