// shared/stdio.ts writes the programs' output straight to fds 1 and 2. Two
// situations where a plain synchronous write would fail are covered with a
// real child process and a real pipe:
// - fd 1 non-blocking and full (EAGAIN): the output still arrives whole and in
//   order, the rest through process.stdout;
// - the reader closed its end (EPIPE): the program goes on, not killed by it.
import t from 'tap';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const child = join(repo, 'test/fixtures/stdio-child.ts');
const LINES = 40_000;

function start(mode: string) {
  return spawn(process.execPath, ['--import', 'tsx', child, mode], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 });
}

function collect(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}

function exited(proc: ReturnType<typeof start>): Promise<number | null> {
  return new Promise((resolve) => proc.on('close', (code) => resolve(code)));
}

t.test('a full non-blocking pipe: everything arrives, in order', async (t) => {
  const proc = start('full-nonblocking');
  proc.stdout.pause();
  const stderr = collect(proc.stderr);
  // Not reading for a while lets the pipe fill while the child writes.
  await sleep(1_500);
  const stdout = collect(proc.stdout);
  proc.stdout.resume();
  t.equal(await exited(proc), 0, 'the child exits 0');
  const lines = (await stdout).split('\n');
  t.equal(lines.length, LINES + 2, 'every line arrived (and END)');
  const outOfOrder = lines.slice(0, LINES).findIndex((l, i) => !l.startsWith(`line ${String(i).padStart(8, '0')} `));
  t.equal(outOfOrder, -1, 'in order');
  t.equal(lines[LINES], 'END', 'END last');
  const report = JSON.parse((await stderr).trim()) as { queuedInStream: number };
  t.ok(report.queuedInStream > 0, `the pipe was full: the rest went through process.stdout (${report.queuedInStream} bytes queued there)`);
});

t.test('a closed reader: the writer goes on', async (t) => {
  const proc = start('closed-reader');
  proc.stdout.destroy();
  const stderr = collect(proc.stderr);
  t.equal(await exited(proc), 0, 'the child exits 0');
  t.equal((await stderr).trim(), 'survived', 'and got past its writes');
});
