// What protokube is doing, for humans and probes: one entry per check (names,
// the API server, each addon, the node's labels), each ok or failing with a
// reason. A change of state is logged once (an addon failing every minute for
// the same reason logs once, and once more when it recovers: kOps' failures
// were only in the journal, every minute, kops#13714); /readyz answers from
// it; the daemon keeps it in a file that `protokube status` prints.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import type { Logger } from '../../shared/log.js';

export const STATUS_API_VERSION = 'mooring.dev/v1alpha1';

export interface CheckState {
  ok: boolean;
  /** Why it fails (one line), or what it found when ok (e.g. "applied id k8s-1.12"). */
  reason?: string;
  /** Since when it has been in this state (ISO time). */
  since: string;
  /** Facts a human wants beside the state (addresses, addon id and hash, …). */
  detail?: Record<string, unknown>;
}

export interface StatusDocument {
  apiVersion: typeof STATUS_API_VERSION;
  kind: 'ProtokubeStatus';
  mode: 'control-plane' | 'names-only';
  cluster: string;
  pid: number;
  updatedAt: string;
  ready: boolean;
  checks: Record<string, CheckState>;
}

export interface CheckEvents {
  /** Event logged when the check starts failing or fails for a new reason. */
  failed: string;
  /** Event logged when it is ok again after failing. */
  recovered: string;
}

export class StatusBoard {
  private readonly checks = new Map<string, CheckState>();
  private dirty = true;

  constructor(
    private readonly log: Logger,
    private readonly identity: { mode: StatusDocument['mode']; cluster: string },
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Records a check's state; logs only when ok/failing or the reason changed.
   * Returns true when it changed.
   */
  set(check: string, ok: boolean, reason: string | undefined, events: CheckEvents, detail?: Record<string, unknown>): boolean {
    const before = this.checks.get(check);
    const changed = before === undefined || before.ok !== ok || (!ok && before.reason !== reason);
    const since = changed ? this.now().toISOString() : before.since;
    this.checks.set(check, { ok, ...(reason !== undefined ? { reason } : {}), since, ...(detail ? { detail } : {}) });
    if (JSON.stringify(before) !== JSON.stringify(this.checks.get(check))) this.dirty = true;
    if (!changed) return false;
    if (!ok) this.log.warn(`${check}: ${reason ?? 'failing'}`, { event: events.failed, check, reason, ...detail });
    else if (before !== undefined && !before.ok) this.log.info(`${check}: ok again`, { event: events.recovered, check, previousReason: before.reason, ...detail });
    return true;
  }

  /** Forgets a check (an addon no longer in its channel). */
  remove(check: string): void {
    if (this.checks.delete(check)) this.dirty = true;
  }

  get(check: string): CheckState | undefined {
    return this.checks.get(check);
  }

  failing(): Array<{ check: string; reason: string }> {
    return [...this.checks].filter(([, s]) => !s.ok).map(([check, s]) => ({ check, reason: s.reason ?? 'failing' }));
  }

  document(): StatusDocument {
    return {
      apiVersion: STATUS_API_VERSION,
      kind: 'ProtokubeStatus',
      mode: this.identity.mode,
      cluster: this.identity.cluster,
      pid: process.pid,
      updatedAt: this.now().toISOString(),
      ready: this.failing().length === 0,
      checks: Object.fromEntries([...this.checks].sort(([a], [b]) => a.localeCompare(b))),
    };
  }

  /** Writes the status file (atomically) when something changed since the last save. */
  async save(path: string): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await writeAtomic(path, JSON.stringify(this.document(), null, 2) + '\n');
    } catch (err) {
      this.dirty = true;
      throw err;
    }
  }
}

async function writeAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/** `protokube status` in text: one line per check, failing ones first. */
export function formatStatus(doc: StatusDocument, now: Date = new Date()): string {
  const age = Math.max(0, Math.round((now.getTime() - Date.parse(doc.updatedAt)) / 1000));
  const lines = [
    `protokube (${doc.mode}) for cluster ${doc.cluster}, pid ${doc.pid}: ${doc.ready ? 'ready' : 'NOT READY'} (status written ${age}s ago, ${doc.updatedAt})`,
  ];
  const entries = Object.entries(doc.checks).sort(([a, x], [b, y]) => Number(x.ok) - Number(y.ok) || a.localeCompare(b));
  const width = Math.max(0, ...entries.map(([name]) => name.length));
  for (const [name, state] of entries) {
    const facts = state.detail ? Object.entries(state.detail).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ') : '';
    lines.push(`  ${state.ok ? 'ok  ' : 'FAIL'} ${name.padEnd(width)}  ${state.reason ?? ''}${facts ? `${state.reason ? '; ' : ''}${facts}` : ''} (since ${state.since})`);
  }
  if (entries.length === 0) lines.push('  no checks have run yet');
  return lines.join('\n') + '\n';
}
