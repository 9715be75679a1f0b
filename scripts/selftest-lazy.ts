// Diagnostic of the built binary, hidden behind `mooring-agents
// __selftest-lazy NAME...`: loads each named lazy bundle (the packages kept out
// of the main script, see lazy-bundle-loader.ts) and prints, as JSON, whether
// V8 accepted its code cache ("accepted", "rejected", or "none" if built without).
import { lazyBundleReport } from './lazy-bundle-loader.js';

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    process.stderr.write('__selftest-lazy: name at least one lazy bundle\n');
    return 2;
  }
  process.stdout.write(`${JSON.stringify(lazyBundleReport(argv))}\n`);
  return 0;
}
