// Diagnostic of the built binary, hidden behind `mooring-agents
// __selftest-lazy [--long-running | --programs] NAME...`: loads each named
// bundle (the code kept out of the main script, see lazy-bundle-loader.ts) and
// prints, as JSON, whether V8 accepted its code cache ("accepted", "rejected",
// or "none" if built without). NAMEs are lazy bundles (npm packages); with
// --programs they are program bundles, loaded as the dispatcher loads them
// (their modules initialised, no main run). With --long-running it first sets
// the long-running agents' V8 flags (shared/long-running.ts), as they do, so
// the lazy bundles' other set of caches is checked.
import { tuneForLongRunning } from '../shared/long-running.js';
import { bundleReport } from './lazy-bundle-loader.js';

export async function main(argv: string[]): Promise<number> {
  const mode = argv[0] === '--long-running' || argv[0] === '--programs' ? argv[0] : undefined;
  const names = mode === undefined ? argv : argv.slice(1);
  if (names.length === 0) {
    process.stderr.write('__selftest-lazy: name at least one bundle\n');
    return 2;
  }
  if (mode === '--long-running') tuneForLongRunning();
  process.stdout.write(`${JSON.stringify(bundleReport(mode === '--programs' ? 'programs' : 'lazy', names))}\n`);
  return 0;
}
