// The programs' standard output and error, written straight to fds 1 and 2.
// process.stdout and process.stderr are streams: the first use of either loads
// Node's stream machinery (about 30 built-in modules; with node:v8, which
// loads them too, about 6 ms of a start in bench/startup.ts), more than a
// `--version` or `--help` costs otherwise. On Linux Node writes files, pipes and terminals
// synchronously anyway, so a synchronous write keeps the same order and
// semantics. Two exceptions:
// - a non-blocking descriptor that is full (EAGAIN, e.g. a pipe a parent made
//   non-blocking): from then on that stream goes through process.stdout or
//   process.stderr, which waits for the descriptor, so order is kept;
// - a reader that went away (EPIPE, e.g. `| head -1`): the rest of that
//   output is dropped, where the stream would end the process with an error.
import { fstatSync, writeSync } from 'node:fs';

interface Sink {
  fd: 1 | 2;
  stream: () => NodeJS.WriteStream;
  mode: 'direct' | 'stream' | 'closed';
}

const stdoutSink: Sink = { fd: 1, stream: () => process.stdout, mode: 'direct' };
const stderrSink: Sink = { fd: 2, stream: () => process.stderr, mode: 'direct' };

function write(sink: Sink, text: string): void {
  if (sink.mode === 'closed') return;
  if (sink.mode === 'stream') {
    sink.stream().write(text);
    return;
  }
  let rest = Buffer.from(text);
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(sink.fd, rest));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') {
        sink.mode = 'closed';
        return;
      }
      if (code !== 'EAGAIN') throw err;
      sink.mode = 'stream';
      sink.stream().write(rest);
      return;
    }
  }
}

/** Writes to standard output (see above). */
export function writeStdout(text: string): void {
  write(stdoutSink, text);
}

/** Writes to standard error (see above). */
export function writeStderr(text: string): void {
  write(stderrSink, text);
}

/**
 * The terminal width of fd 1 or 2, or undefined when it is not a terminal. A
 * terminal is a character device outside Linux's memory devices (major 1:
 * /dev/null, /dev/zero...), so anything else (a pipe, a file, /dev/null) is
 * answered from one fstat, without process.stdout and the stream modules it loads.
 */
export function terminalColumns(fd: 1 | 2): number | undefined {
  const stream = terminalStream(fd);
  return stream?.isTTY ? stream.columns : undefined;
}

/** Whether fd 1 or 2 is a terminal that shows colours (the same shortcut). */
export function terminalHasColors(fd: 1 | 2): boolean {
  const stream = terminalStream(fd);
  return stream?.isTTY === true && stream.hasColors();
}

function terminalStream(fd: 1 | 2): NodeJS.WriteStream | undefined {
  try {
    const stat = fstatSync(fd);
    if (!stat.isCharacterDevice() || deviceMajor(stat.rdev) === MEMORY_DEVICES_MAJOR) return undefined;
  } catch {
    return undefined;
  }
  return fd === 1 ? process.stdout : process.stderr;
}

const MEMORY_DEVICES_MAJOR = 1;

/** The major number of a Linux device number (glibc's gnu_dev_major). */
function deviceMajor(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}
