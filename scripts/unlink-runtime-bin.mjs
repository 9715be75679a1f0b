// npm links node-linux-<arch>'s `node` into node_modules/.bin, and npm scripts and npx
// put that folder first on PATH: `npm test` or `npx tap` would then run the product on
// the binary's embedded Node 22 instead of the Node 20 it targets. The build reads that
// Node by its package path (scripts/build-binaries.mjs), so the link is only a trap.
import { lstatSync, readlinkSync, rmSync } from 'node:fs';

const link = 'node_modules/.bin/node';
try {
  if (lstatSync(link).isSymbolicLink() && /node-linux-/.test(readlinkSync(link))) rmSync(link);
} catch (err) {
  if (err.code !== 'ENOENT') throw err;
}
