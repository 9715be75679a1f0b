// Runs etcd-manager as its own process, the way a test of a daemon should:
// signals, exit codes and logs are real. It runs the single binary
// dist/bin/etcd-manager when that is newer than every source file (make test
// builds it first; it starts in a fraction of the CPU time tsx needs, which
// matters with nine managers on two cores), else the source through tsx. Its
// JSON log lines are kept; the PIDs of the etcd processes it started are read
// from them so teardown can stop exactly those (never by name: other work on
// this machine runs etcd too).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { SETPRIV } from '../../agents/etcd-manager/etcd/process.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { isZombie, processAlive } from './net.js';
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

const BINARY = join(repo, 'dist/bin/etcd-manager');


let chosen: string[] | undefined;

/** The built binary if no source file is newer than it (checked once per test process), else tsx. */
export function managerCommand(): string[] {
  if (chosen) return chosen;
  const fromSource = [process.execPath, '--import', 'tsx', join(repo, 'scripts/multicall-entry.ts'), 'etcd-manager'];
  if (process.env.MOORING_TEST_FROM_SOURCE === '1' || !existsSync(BINARY)) return (chosen = fromSource);
  const built = statSync(BINARY).mtimeMs;
  const newest = Math.max(...['agents', 'shared', 'scripts'].flatMap((dir) => newestMtimes(join(repo, dir))), statSync(join(repo, 'package-lock.json')).mtimeMs);
  return (chosen = newest > built ? fromSource : [BINARY]);
}

function newestMtimes(dir: string): number[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|proto|json)$/.test(e.name))
    .map((e) => statSync(join(e.parentPath, e.name)).mtimeMs);
}

/** What each manager was doing: its last warnings/errors and its last lines (for a stalled wait's error). */
export function describeManagers(managers: ManagerProcess[], names: string[] = managers.map((_, i) => String(i))): string {
  return managers.map((m, i) => {
    const lines = m.logs.filter((l) => l.level === 'warn' || l.level === 'error').slice(-3).concat(m.logs.slice(-3));
    return `manager ${names[i]}: ${lines.map((l) => `${String(l.time)} ${String(l.msg)}${l.err ? ` (${String(l.err)})` : ''}${l.step ? ` [${String(l.step)}]` : ''}`).join(' | ')}`;
  }).join('\n');
}

export function startManager(t: Teardown, args: string[], env: Record<string, string> = {}): ManagerProcess {
  // The manager dies with this test process (parent-death signal), and its etcd with the manager, even
  // when tap kills a test file on its timeout and no teardown runs.
  const command = [...managerCommand(), ...args];
  const [file, argv] = existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ...command]] : [command[0], command.slice(1)];
  const child = spawn(file, argv, {
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
  const etcdPids = () => logs.filter((l) => l.event === 'etcd.started' && typeof l.pid === 'number').map((l) => l.pid as number);
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    for (const pid of etcdPids()) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    // etcd is not our child once its manager is gone: wait until it has really exited (or is a zombie),
    // so the caller can unmount its volume.
    for (const pid of etcdPids()) {
      for (let i = 0; i < 200 && processAlive(pid) && !isZombie(pid); i++) await new Promise((r) => setTimeout(r, 50));
    }
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
