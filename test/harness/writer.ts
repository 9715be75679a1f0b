// A background writer for "keeps serving while X happens" tests: one write every
// intervalMs until stopped, each to a key of its own, counting successes and
// keeping every failure message. It remembers every acknowledged write, so the
// test can read them all back afterwards (notReadBack): "no write failed" says
// nothing until the acknowledged writes are shown to have survived.

export interface WriteTally {
  /** Acknowledged writes. */
  writes: number;
  failures: string[];
  /** Key → value of every acknowledged write. */
  acked: Map<string, string>;
}

export interface WriterOptions {
  /** Keys are <prefix><n>, n zero-padded: a prefix read (getAll().prefix) finds them all. */
  prefix: string;
  intervalMs?: number;
}

export function startWriter(put: (key: string, value: string) => Promise<unknown>, options: WriterOptions): { stop(): Promise<WriteTally> } {
  const tally: WriteTally = { writes: 0, failures: [], acked: new Map() };
  let writing = true;
  const loop = (async () => {
    for (let n = 0; writing; n++) {
      const key = `${options.prefix}${String(n).padStart(6, '0')}`;
      const value = `v${n}`;
      try {
        await put(key, value);
        tally.writes++;
        tally.acked.set(key, value);
      } catch (err) {
        tally.failures.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
    }
  })();
  return {
    async stop() {
      writing = false;
      await loop;
      return tally;
    },
  };
}

/** Acknowledged writes that `found` (what a read under the prefix returned) lacks, or holds with another value. */
export function notReadBack(tally: WriteTally, found: Record<string, string>): string[] {
  return [...tally.acked].filter(([key, value]) => found[key] !== value).map(([key, value]) => `${key}=${value} (read ${JSON.stringify(found[key] ?? null)})`);
}
