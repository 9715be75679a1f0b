// Runs etcd-manager as its own process from source (node --import tsx), the
// way a test of a daemon should: signals, exit codes and logs are real. Its
// JSON log lines are kept; the PIDs of the etcd processes it started are read
// from them so teardown can stop exactly those (never by name: other work on
// this machine runs etcd too).
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { processAlive } from './net.js';
import type { Teardown } from './tmp.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');

export interface ManagerProcess {
  child: ChildProcess;
  logs: Array<Record<string, unknown>>;
  /** Every etcd PID this manager reported starting. */
  etcdPids(): number[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL the manager and every etcd it started (teardown). */
  kill(): Promise<void>;
}

export function startManager(t: Teardown, args: string[], env: Record<string, string> = {}): ManagerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'scripts/multicall-entry.ts'), 'etcd-manager', ...args], {
    cwd: repo,
    env: { ...process.env, MOORING_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    raw.push(line);
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
    if (process.env.MOORING_TEST_VERBOSE) console.log(`# ${line}`);
  });
  child.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const etcdPids = () => logs.filter((l) => l.msg === 'etcd started' && typeof l.pid === 'number').map((l) => l.pid as number);
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    for (const pid of etcdPids()) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  };
  t.teardown(kill);
  return {
    child,
    logs,
    etcdPids,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill,
  };
}
