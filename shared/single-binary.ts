// Whether this process is the Node single-executable build of Mooring.
import { createRequire } from 'node:module';

export function isRunningAsSingleBinary(): boolean {
  try {
    // node:sea exists from Node 20.12; require() keeps this working in the CJS bundle too.
    const require = createRequire(process.execPath);
    const sea = require('node:sea') as { isSea(): boolean };
    return sea.isSea();
  } catch {
    return false;
  }
}
