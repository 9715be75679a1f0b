// Runs the mooring CLI as its own process (not in-process), for tests where
// several writers must really run at once: the built dist/bin/mooring when it
// is newer than every source file, else the source through tsx
// (MOORING_TEST_FROM_SOURCE=1 forces the source). Every child is bounded in
// time and killed by its own PID.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BINARY = join(repo, 'dist/bin/mooring');

let chosen: string[] | undefined;

/** The command that runs `mooring`: the built binary if no source is newer, else tsx. */
export function mooringCommand(): string[] {
  if (chosen) return chosen;
  const fromSource = [process.execPath, '--import', 'tsx', join(repo, 'scripts/multicall-entry.ts'), 'mooring'];
  if (process.env.MOORING_TEST_FROM_SOURCE === '1' || !existsSync(BINARY)) return (chosen = fromSource);
  const built = statSync(BINARY).mtimeMs;
  const newest = Math.max(
    ...['agents', 'shared', 'scripts', 'bootstrap'].flatMap((dir) => newestMtimes(join(repo, dir))),
    statSync(join(repo, 'package-lock.json')).mtimeMs,
  );
  return (chosen = newest > built ? fromSource : [BINARY]);
}

function newestMtimes(dir: string): number[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|proto|json|tmpl)$/.test(e.name))
    .map((e) => statSync(join(e.parentPath, e.name)).mtimeMs);
}

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs mooring with args in its own process; killed (by its PID) after timeoutMs. */
export function runMooringProcess(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; /** Sends `signal` to the child (by its PID) once its stderr matches `when`. */ signalOn?: { when: RegExp; signal: NodeJS.Signals } } = {},
): Promise<ProcessResult> {
  const [file, ...pre] = mooringCommand();
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file!, [...pre, ...args], { cwd: repo, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => void (stdout += c.toString()));
    let signalled = false;
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (options.signalOn && !signalled && options.signalOn.when.test(stderr)) {
        signalled = true;
        child.kill(options.signalOn.signal);
      }
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
