// Counts the tests in a tap run: each subtest of a test file (indented one level)
// is one test; a skip at any depth counts as skipped. Exits 1 when no test ran at all.
import { readFileSync } from 'node:fs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n');
let passed = 0, failed = 0, skipped = 0;
for (const line of lines) {
  const m = /^( +)(not ok|ok) \d+ - .*?(# (SKIP|TODO)\b.*)?$/i.exec(line);
  if (!m) continue;
  if (m[3]) skipped++;
  else if (m[1].length !== 4) continue;
  else if (m[2] === 'ok') passed++;
  else failed++;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(passed + failed === 0 ? 1 : 0);
