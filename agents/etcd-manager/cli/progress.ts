// The progress line of anything that runs for more than a second, on stderr
// (stdout stays clean for the result and for -o json). On a terminal it is one
// line rewritten in place, at most five times a second; elsewhere (a CI log, a
// pipe) a new line at most every ten seconds. Nothing is shown before a second
// has gone by, so quick commands print no progress at all.
import type { CommandIO } from './types.js';

export interface ProgressOptions {
  io: CommandIO;
  now(): number;
  /** Shown only after this long (default 1 s). */
  delayMs?: number;
  /** Terminal: rewrite at most this often (default 200 ms). */
  ttyEveryMs?: number;
  /** Not a terminal: a new line at most this often (default 10 s). */
  lineEveryMs?: number;
}

export class ProgressLine {
  private readonly started: number;
  private lastWrite = -Infinity;
  private shown = false;
  private readonly delayMs: number;
  private readonly everyMs: number;

  constructor(private readonly o: ProgressOptions) {
    this.started = o.now();
    this.delayMs = o.delayMs ?? 1000;
    this.everyMs = o.io.errIsTTY ? (o.ttyEveryMs ?? 200) : (o.lineEveryMs ?? 10_000);
  }

  /** Milliseconds since the line was created. */
  elapsed(): number {
    return this.o.now() - this.started;
  }

  update(text: string): void {
    const now = this.o.now();
    if (now - this.started < this.delayMs || now - this.lastWrite < this.everyMs) return;
    this.lastWrite = now;
    const line = text.replace(/[\r\n]+/g, ' ');
    if (this.o.io.errIsTTY) this.o.io.err(`\r${line}\x1b[K`);
    else this.o.io.err(`${line}\n`);
    this.shown = true;
  }

  /** Clears the rewritten line on a terminal, so what follows starts on a clean line. */
  done(): void {
    if (this.shown && this.o.io.errIsTTY) this.o.io.err('\r\x1b[K');
    this.shown = false;
  }
}

/**
 * For one wait with nothing to count (the listing of a big store, a slow
 * endpoint): a line once it has lasted a second, cleared (on a terminal) when
 * it ends. Quick runs print nothing.
 */
export async function noteIfSlow<T>(io: CommandIO, text: string, work: Promise<T>, delayMs = 1000): Promise<T> {
  let shown = false;
  const timer = setTimeout(() => {
    shown = true;
    io.err(io.errIsTTY ? `\r${text}\x1b[K` : `${text}\n`);
  }, delayMs);
  timer.unref();
  try {
    return await work;
  } finally {
    clearTimeout(timer);
    if (shown && io.errIsTTY) io.err('\r\x1b[K');
  }
}
