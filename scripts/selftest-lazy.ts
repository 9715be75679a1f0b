// Diagnostic of the built binary, hidden behind `mooring-agents
// __selftest-lazy [--long-running] NAME...`: loads each named lazy bundle (the
// packages kept out of the main script, see lazy-bundle-loader.ts) and prints,
// as JSON, whether V8 accepted its code cache ("accepted", "rejected", or
// "none" if built without). With --long-running it first sets the long-running
// agents' V8 flags (shared/long-running.ts), as they do, so the other set of
// caches is checked.
import { tuneForLongRunning } from '../shared/long-running.js';
import { lazyBundleReport } from './lazy-bundle-loader.js';

export async function main(argv: string[]): Promise<number> {
  const longRunning = argv[0] === '--long-running';
  const names = longRunning ? argv.slice(1) : argv;
  if (names.length === 0) {
    process.stderr.write('__selftest-lazy: name at least one lazy bundle\n');
    return 2;
  }
  if (longRunning) tuneForLongRunning();
  process.stdout.write(`${JSON.stringify(lazyBundleReport(names))}\n`);
  return 0;
}
