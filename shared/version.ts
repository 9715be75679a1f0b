// The suite's version, from package.json. A JSON import works from source
// (Node/tsx) and esbuild inlines it into the bundle, so the binary needs no
// package.json at run time.
import packageJSON from '../package.json' with { type: 'json' };

export const VERSION: string = packageJSON.version;

/** What every agent prints for --version: its own name, then the version. */
export function versionLine(program: string): string {
  return `${program} ${VERSION}\n`;
}
