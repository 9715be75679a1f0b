// Processes the local cloud starts, recorded by PID *and* start time (field 22
// of /proc/<pid>/stat): a PID is only ever signalled while its start time still
// matches, so a recycled PID belonging to someone else is never touched.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync } from 'node:fs';

export interface ProcessRecord {
  pid: number;
  /** Clock ticks since boot at which the process started. */
  startTime: string;
}

interface Stat {
  comm: string;
  state: string;
  ppid: number;
  startTime: string;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may hold spaces: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  return { comm, state: fields[0] ?? '', ppid: Number(fields[1]), startTime: fields[19] ?? '' };
}

export function recordOf(pid: number): ProcessRecord | undefined {
  const stat = readStat(pid);
  return stat ? { pid, startTime: stat.startTime } : undefined;
}

/** True while the recorded process runs (a zombie counts as gone). */
export function isAlive(record: ProcessRecord | undefined): boolean {
  if (!record) return false;
  const stat = readStat(record.pid);
  return stat !== undefined && stat.startTime === record.startTime && stat.state !== 'Z' && stat.state !== 'X';
}

/** Signals the recorded process if it is still that process; false when it is gone. */
export function signalRecorded(record: ProcessRecord | undefined, signal: NodeJS.Signals): boolean {
  if (!record || !isAlive(record)) return false;
  try {
    process.kill(record.pid, signal);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitGone(record: ProcessRecord | undefined, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(record)) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function stopRecorded(record: ProcessRecord | undefined, graceMs: number): Promise<void> {
  if (!signalRecorded(record, 'SIGTERM')) return;
  if (await waitGone(record, graceMs)) return;
  signalRecorded(record, 'SIGKILL');
  await waitGone(record, 10_000);
}

/**
 * A child of `pid` whose command is not `exceptComm`: nspawn's own forks are
 * named like it, and only its final child (the instance's PID 1) is not.
 */
export function childOf(pid: number, exceptComm?: string): ProcessRecord | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat?.ppid === pid && stat.comm !== exceptComm && stat.state !== 'Z') return { pid: Number(entry), startTime: stat.startTime };
  }
  return undefined;
}

/** Starts a process in its own session, stdio to a log file, not waited for. */
export function spawnDetached(file: string, args: string[], options: { logFile: string; env?: NodeJS.ProcessEnv; argv0?: string }): ProcessRecord {
  const out = openSync(options.logFile, 'a', 0o600);
  try {
    const child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', out, out],
      env: options.env ?? process.env,
      argv0: options.argv0,
    });
    child.on('error', () => undefined); // reported below as a missing pid
    if (child.pid === undefined) throw new Error(`cannot start ${file}`);
    child.unref();
    const record = recordOf(child.pid);
    if (!record) throw new Error(`${file} exited at once (see ${options.logFile})`);
    return record;
  } finally {
    closeSync(out);
  }
}
