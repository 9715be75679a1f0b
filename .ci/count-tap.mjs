// Decides whether a tap run passed, from its TAP output (tap --reporter=tap),
// and ends with the plain "N passed, N failed, N skipped" line CI prints.
//
//   node .ci/count-tap.mjs LOG [--must-run=LIST]
//
// Exit 1 (after naming each problem) when any of these holds, else 0:
// - a test file failed (`not ok`: non-zero exit, signal, or tap's own plan check),
//   registered no test (tap: `ok … # SKIP no tests found`), was skipped or marked
//   TODO as a whole, reported another number of tests than it planned, or stopped
//   inside a test; the run reported fewer files than tap planned, or bailed out;
// - any `not ok` at any depth, whatever its directive: a failing `# TODO` is a failure;
// - an entry of the must-run list (LIST) was skipped anywhere, or not reported.
//
// The counts: each test directly in a file (one level in) is one test, passed or
// failed (failed when it or anything in it is `not ok`); every skip and every
// passing TODO, at any depth, counts as skipped; a file that failed with no
// failing test in it (it crashed, or ran none) counts as one failed.
//
// Directives follow TAP 14: a directive starts at the first `#` that is preceded
// by whitespace and not escaped; in a name `\#` is a literal `#` and `\\` a literal `\`
// (tap prints names that way). So `not ok 2 - a \# skip in the name` is a failure.
import { readFileSync } from 'node:fs';

/** @typedef {{ kind: 'skip' | 'todo', reason: string }} Directive */
/**
 * @typedef {object} Result
 * @property {boolean} ok
 * @property {string} name   unescaped
 * @property {Directive | undefined} directive
 * @property {Result[]} children  the test points of its subtest, if any
 * @property {{ count: number, reason: string } | undefined} plan  its subtest's plan
 * @property {Record<string, string>} diag  top-level keys of its YAML block (exitCode, signal)
 * @property {boolean} cutShort  a subtest inside it printed results but never its own result line
 */

/** Splits what follows `ok N -` into the unescaped name and the directive, per TAP 14. */
function splitDescription(text) {
  let name = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && (text[i + 1] === '\\' || text[i + 1] === '#')) {
      name += text[++i];
      continue;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      return { name: name.trim(), directive: parseDirective(text.slice(i + 1)) };
    }
    name += c;
  }
  return { name: name.trim(), directive: undefined };
}

/** `SKIP reason`, `skipped: reason`, `TODO` (any case); anything else (`time=3ms`) is no directive. */
function parseDirective(text) {
  const m = /^\s*(skip|todo)\S*(?:\s+(.*))?$/i.exec(text);
  return m ? { kind: /** @type {'skip'|'todo'} */ (m[1].toLowerCase()), reason: (m[2] ?? '').trim() } : undefined;
}

const TEST_LINE = /^( *)(not ok|ok)\b(?: +\d+)?(?: +-)?(?: +(.*))?$/;
const PLAN_LINE = /^( *)1\.\.(\d+)(?:\s*#\s*(.*))?$/;

/** The tree of results: test files at depth 0, their tests below. Lines before `TAP version` are not TAP. */
function parseTap(text) {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((l) => /^TAP version \d+$/.test(l));
  /** @type {Result[][]} results seen at each depth since their parent's last sibling */
  const pending = [];
  /** @type {Array<{ count: number, reason: string } | undefined>} */
  const plans = [];
  /** @type {string | undefined} */
  let bailOut;
  /** @type {Result | undefined} */
  let last;
  /** @type {string | undefined} the `---` that may open the YAML block of the test line just read */
  let yamlOpen;
  /** @type {{ end: string, indent: number } | undefined} while inside that YAML block */
  let yaml;
  for (const line of start < 0 ? [] : lines.slice(start + 1)) {
    if (yaml) {
      if (line === yaml.end) yaml = undefined;
      const kv = /^( *)(\w+): (.*)$/.exec(line);
      if (yaml && last && kv && kv[1].length === yaml.indent) last.diag[kv[2]] = kv[3];
      continue;
    }
    if (line === yamlOpen) {
      yaml = { end: line.replace('---', '...'), indent: line.length - 3 };
      continue;
    }
    yamlOpen = undefined;
    const test = TEST_LINE.exec(line);
    if (test && test[1].length % 4 === 0) {
      const depth = test[1].length / 4;
      const { name, directive } = splitDescription(test[3] ?? '');
      const cutShort = pending.slice(depth + 2).some((rs) => rs && rs.length > 0);
      last = { ok: test[2] === 'ok', name, directive, children: pending[depth + 1] ?? [], plan: plans[depth + 1], diag: {}, cutShort };
      pending.length = plans.length = depth + 1;
      (pending[depth] ??= []).push(last);
      yamlOpen = `${test[1]}  ---`;
      continue;
    }
    const plan = PLAN_LINE.exec(line);
    if (plan && plan[1].length % 4 === 0) {
      plans[plan[1].length / 4] = { count: Number(plan[2]), reason: plan[3] ?? '' };
      continue;
    }
    const bail = /^ *Bail out!(.*)$/.exec(line);
    if (bail) bailOut = bail[1].trim();
  }
  const unfinished = pending.slice(1).some((rs) => rs && rs.length > 0);
  return { sawTap: start >= 0, files: pending[0] ?? [], plan: plans[0], bailOut, unfinished };
}

const directiveText = (d) => `${d.kind.toUpperCase()}${d.reason ? ` ${d.reason}` : ''}`;

/** Every result in the tree under `r` (not r itself) with its path of names. */
function* descendants(r, path) {
  for (const c of r.children) {
    const p = [...path, c.name];
    yield { r: c, path: p };
    yield* descendants(c, p);
  }
}

const isFailure = (r) => !r.ok || r.cutShort;
const anyFailure = (r) => isFailure(r) || [...descendants(r, [])].some((d) => isFailure(d.r));
const isSkip = (r) => r.ok && r.directive !== undefined;

/** Why a test file counts as failed as a whole, or undefined. */
function fileProblem(file) {
  const unfinished = file.cutShort ? '; a test in it did not finish (its output stops before its result line)' : '';
  if (!file.ok) {
    const how = [file.diag.exitCode && file.diag.exitCode !== 'null' ? `exit code ${file.diag.exitCode}` : '', file.diag.signal && file.diag.signal !== 'null' ? `signal ${file.diag.signal}` : '']
      .filter((s) => s !== '').join(', ');
    return `failed${how ? ` (${how})` : ''}${unfinished}`;
  }
  if (unfinished) return unfinished.slice(2);
  if (file.directive) return file.directive.kind === 'skip' && /no tests found/i.test(file.directive.reason)
    ? 'registers no test (tap: SKIP no tests found); a file must register its tests and skip each with a reason'
    : `whole file reported as ${directiveText(file.directive)}; a file must run, skipping single tests with a reason`;
  if (!file.plan) return 'no plan: its output was cut short';
  if (file.children.length === 0) return 'registers no test';
  if (file.plan.count !== file.children.length) return `planned ${file.plan.count} tests, reported ${file.children.length}`;
  return undefined;
}

/** Must-run entries: `test/file.test.ts`, or `test/file.test.ts > subtest name > nested name`. */
function readMustRun(text) {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** Problems of one must-run entry: not reported, or skipped somewhere in it. */
function mustRunProblems(files, entry) {
  const [fileName, ...names] = entry.split(' > ').map((s) => s.trim());
  let node = files.find((f) => f.name === fileName);
  if (!node) return [`must-run test not reported by this run: ${entry}`];
  for (const name of names) {
    const next = node.children.find((c) => c.name === name);
    if (!next) return [`must-run test not reported by this run: ${entry} (no test by that name in ${fileName})`];
    node = next;
  }
  const all = [{ r: node, path: [fileName, ...names] }, ...descendants(node, [fileName, ...names])];
  return all.filter((d) => isSkip(d.r)).map((d) => `must-run test skipped: ${d.path.join(' > ')} (${directiveText(d.r.directive)})`);
}

/** The verdict on a TAP log: counts and the problems that fail CI. */
function judge(text, mustRun = []) {
  const tap = parseTap(text);
  const problems = [];
  let passed = 0, failed = 0, skipped = 0;
  if (!tap.sawTap) problems.push('no TAP output: tap did not run (no "TAP version" line)');
  else if (!tap.plan) problems.push('no plan for the run: tap did not finish');
  else if (tap.plan.count !== tap.files.length) problems.push(`tap planned ${tap.plan.count} test files, reported ${tap.files.length}`);
  if (tap.sawTap && tap.files.length === 0) problems.push('no test file reported');
  if (tap.unfinished) problems.push('the output ends inside a test file (run cut short)');
  if (tap.bailOut !== undefined) problems.push(`Bail out!${tap.bailOut ? ` ${tap.bailOut}` : ''}`);
  for (const file of tap.files) {
    let failedTests = 0;
    for (const test of file.children) {
      if (anyFailure(test)) failedTests++;
      else if (isSkip(test)) skipped++;
      else passed++;
      // Skips and passing TODOs deeper in count too (a failing one failed its test above).
      skipped += [...descendants(test, [])].filter((d) => isSkip(d.r)).length;
    }
    failed += failedTests;
    // Name the innermost `not ok`s, so the end of a long log says what failed.
    for (const d of descendants(file, [file.name])) {
      if (d.r.cutShort) problems.push(`did not finish a test: ${d.path.join(' > ')}`);
      else if (!d.r.ok && !d.r.children.some((c) => !c.ok)) problems.push(`not ok: ${d.path.join(' > ')}${d.r.directive ? ` # ${directiveText(d.r.directive)}` : ''}`);
    }
    const why = fileProblem(file);
    if (why) {
      problems.push(`${file.name}: ${why}`);
      if (failedTests === 0) failed++;
    }
  }
  for (const entry of mustRun) problems.push(...mustRunProblems(tap.files, entry));
  return { passed, failed, skipped, problems };
}

{
  const args = process.argv.slice(2);
  const logs = args.filter((a) => !a.startsWith('--'));
  const mustRunFile = args.find((a) => a.startsWith('--must-run='))?.slice('--must-run='.length);
  const unknown = args.filter((a) => a.startsWith('--') && !a.startsWith('--must-run='));
  if (logs.length !== 1 || unknown.length > 0) {
    console.error('usage: node .ci/count-tap.mjs LOG [--must-run=LIST]');
    process.exit(2);
  }
  const verdict = judge(readFileSync(logs[0], 'utf8'), mustRunFile ? readMustRun(readFileSync(mustRunFile, 'utf8')) : []);
  for (const p of verdict.problems) console.log(`CI: ${p}`);
  console.log(`${verdict.passed} passed, ${verdict.failed} failed, ${verdict.skipped} skipped`);
  process.exit(verdict.problems.length > 0 || verdict.failed > 0 ? 1 : 0);
}
