// .ci/count-tap.mjs, the judge of CI's tap output, run on TAP logs kept in
// test/fixtures/tap: each way a run can look green while it is not (a crashed
// or empty test file, an escaped "# skip" in a failing test's name, a failing
// TODO, a must-run test skipped) must fail it, with its exit status and counts.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = join(repo, '.ci/count-tap.mjs');
const fixture = (name: string) => join(repo, 'test/fixtures/tap', name);

interface Verdict {
  exitCode: number | undefined;
  /** The last line: "N passed, N failed, N skipped". */
  summary: string;
  /** The "CI: ..." lines naming each problem, without the prefix. */
  problems: string[];
}

async function countTap(...args: string[]): Promise<Verdict> {
  const r = await execa(process.execPath, [SCRIPT, ...args], { reject: false });
  const lines = r.stdout.split('\n');
  return {
    exitCode: r.exitCode,
    summary: lines.at(-1) ?? '',
    problems: lines.filter((l) => l.startsWith('CI: ')).map((l) => l.slice('CI: '.length)),
  };
}

t.test('a green run: 0, skips counted at any depth, YAML and lines before the TAP stream ignored, escaped names are names', async (t) => {
  const v = await countTap(fixture('green.tap'));
  t.same(v.problems, []);
  t.equal(v.summary, '5 passed, 0 failed, 2 skipped');
  t.equal(v.exitCode, 0);
});

t.test('a file that registers no test (tap: SKIP no tests found) is a failure', async (t) => {
  const v = await countTap(fixture('no-tests.tap'));
  t.equal(v.exitCode, 1);
  t.equal(v.summary, '1 passed, 1 failed, 0 skipped');
  t.match(v.problems, [/^test\/integration\/empty\.test\.ts: registers no test/]);
});

t.test('a crashed file is a failure, counted once, whether it crashed before its first test or in the middle', async (t) => {
  const v = await countTap(fixture('crashed.tap'));
  t.equal(v.exitCode, 1);
  t.equal(v.summary, '1 passed, 2 failed, 0 skipped');
  t.match(v.problems, [
    /^test\/integration\/binaries\.test\.ts: failed \(exit code 1\)$/,
    /^test\/integration\/crashmid\.test\.ts: failed \(exit code 1\); a test in it did not finish/,
  ]);
});

t.test('fewer tests than planned, fewer files than planned, output ending inside a file: each a failure', async (t) => {
  const v = await countTap(fixture('cut-short.tap'));
  t.equal(v.exitCode, 1);
  t.equal(v.summary, '2 passed, 1 failed, 0 skipped');
  t.same(v.problems.sort(), [
    'tap planned 3 test files, reported 2',
    'test/integration/short.test.ts: planned 3 tests, reported 1',
    'the output ends inside a test file (run cut short)',
  ]);
});

t.test('"\\# skip" in a failing test\'s name is part of the name: failed, not skipped', async (t) => {
  const v = await countTap(fixture('escaped-skip.tap'));
  t.equal(v.exitCode, 1);
  t.equal(v.summary, '1 passed, 1 failed, 1 skipped');
  t.match(v.problems, [/^not ok: test\/unit\/names\.test\.ts > a name with # skip inside > boom$/, /^test\/unit\/names\.test\.ts: failed/]);
});

t.test('a failing TODO is a failure even though tap passes the file', async (t) => {
  const v = await countTap(fixture('todo-failing.tap'));
  t.equal(v.exitCode, 1);
  t.equal(v.summary, '2 passed, 1 failed, 2 skipped');
  t.same(v.problems, ['not ok: test/unit/todo.test.ts > has a failing todo assertion > not done # TODO later']);
});

t.test('no TAP at all (the build failed before tap ran) is a failure', async (t) => {
  const v = await countTap(fixture('no-tap.tap'));
  t.equal(v.exitCode, 1);
  t.equal(v.summary, '0 passed, 0 failed, 0 skipped');
  t.match(v.problems, [/^no TAP output/]);
});

t.test('must-run: a skip of a listed file or test, or a listed one not reported, fails and is named', async (t) => {
  const without = await countTap(fixture('must-run.tap'));
  t.equal(without.exitCode, 0, 'the same log passes without the list');
  t.equal(without.summary, '2 passed, 0 failed, 3 skipped');

  const v = await countTap(fixture('must-run.tap'), `--must-run=${fixture('must-run.txt')}`);
  t.equal(v.exitCode, 1);
  t.equal(v.summary, '2 passed, 0 failed, 3 skipped', 'the counts do not change');
  t.same(v.problems, [
    'must-run test skipped: test/integration/etcd-manager-fence.test.ts > a deposed leader paused between its check and its etcd call is refused by the etcd fence'
      + ' (SKIP loop devices refused: losetup --find: losetup: cannot find an unused loop device)',
    'must-run test skipped: test/unit/userdata.test.ts > template and rendered script pass shellcheck (SKIP shellcheck is not installed)',
    'must-run test not reported by this run: test/unit/userdata.test.ts > no such test (no test by that name in test/unit/userdata.test.ts)',
    'must-run test not reported by this run: test/e2e/nodeup-nspawn.test.ts',
  ], 'the skipped store test is not listed, so it does not count');
});

t.test('bad usage exits 2', async (t) => {
  t.equal((await countTap()).exitCode, 2);
  t.equal((await countTap(fixture('green.tap'), '--strict')).exitCode, 2);
});

t.test('every entry of .ci/must-run.txt names a test file that exists', async (t) => {
  const entries = readFileSync(join(repo, '.ci/must-run.txt'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  t.ok(entries.length >= 15, `${entries.length} entries`);
  for (const entry of entries) {
    const file = entry.split(' > ')[0];
    t.ok(existsSync(join(repo, file)), `${file} exists`);
  }
});
