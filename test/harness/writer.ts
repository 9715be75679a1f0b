// A background writer for "keeps serving while X happens" tests: one write every
// intervalMs until stopped, counting successes and keeping every failure message.

export interface WriteTally {
  writes: number;
  failures: string[];
}

export function startWriter(write: (n: number) => Promise<unknown>, intervalMs = 100): { stop(): Promise<WriteTally> } {
  const tally: WriteTally = { writes: 0, failures: [] };
  let writing = true;
  const loop = (async () => {
    while (writing) {
      try {
        await write(tally.writes);
        tally.writes++;
      } catch (err) {
        tally.failures.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, intervalMs));
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
