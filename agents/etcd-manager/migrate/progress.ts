// The progress line of `etcd-manager migrate-v2` on stderr: keys done, keys/s,
// ETA. On a terminal one line rewritten in place about once a second; otherwise
// (a log file, CI) a plain line every 5 s, so it neither floods nor stays silent.
import type { Progress } from './migrate.js';

const number = new Intl.NumberFormat('en-US');

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One progress line (no newline). */
export function progressLine(p: Progress): string {
  const seconds = Math.max(p.elapsedMs / 1000, 0.001);
  const rate = Math.round(p.done / seconds);
  if (p.phase === 'verify') {
    return `verifying: ${number.format(p.verified)}${p.total !== undefined ? ` of ~${number.format(p.total)}` : ''} keys read back from the target`;
  }
  const resumed = p.skipped > 0 ? ` (${number.format(p.skipped)} done by an earlier run)` : '';
  if (p.total === undefined) {
    return `copying: ${number.format(p.done)} keys${resumed}, ${number.format(rate)} keys/s, ETA ? (still reading the source)`;
  }
  const pct = p.total === 0 ? 100 : Math.floor((p.done / p.total) * 100);
  const eta = rate > 0 ? formatDuration(((p.total - p.done) / rate) * 1000) : '?';
  return `copying: ${number.format(p.done)} of ${number.format(p.total)} keys (${pct}%)${resumed}, ${number.format(rate)} keys/s, ETA ${eta}`;
}

export class ProgressPrinter {
  private last = 0;
  private shown = false;
  private latest?: Progress;

  constructor(private readonly write: (s: string) => void, private readonly tty: boolean, private readonly now: () => number = Date.now) {}

  update(p: Progress): void {
    this.latest = p;
    const every = this.tty ? 1000 : 5000;
    if (this.now() - this.last < every) return;
    this.last = this.now();
    this.print(p);
  }

  /** The last state, then a newline, so what follows starts on its own line. */
  finish(): void {
    if (this.latest && this.shown) this.print(this.latest);
    if (this.tty && this.shown) this.write('\n');
  }

  private print(p: Progress): void {
    this.shown = true;
    this.write(this.tty ? `\r\x1b[K${progressLine(p)}` : `${progressLine(p)}\n`);
  }
}
