// Measures how many of kOps' own example specs Mooring loads: every
// tests/integration/update_cluster/<case>/in-*.yaml of a kOps checkout, tried
// as a user would, through the real CLI in-process against a fresh file://
// store: `mooring create -f <file>`, then `mooring update cluster <name>`
// (a dry run: it writes nothing). kOps' memfs:// URLs become s3:// ones (its
// tests keep state in memory; a user's AWS cluster names its bucket). Nothing is sent over the network: the
// update of a cloud (aws) cluster whose asset hashes are not in the shipped
// table would look them up, so those runs use a fetch that refuses.
//
//   node_modules/.bin/tsx scripts/measure-kops-examples.ts <kops git dir> [ref] [-v]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../agents/mooring/main.js';

const args = process.argv.slice(2);
const verbose = args.includes('-v');
const [repo, gitRef = 'HEAD'] = args.filter((a) => a !== '-v');
if (!repo) {
  console.error('usage: measure-kops-examples.ts <kops git dir> [ref] [-v]');
  process.exit(2);
}
const git = (...a: string[]) => execFileSync('git', ['-C', repo, ...a], { encoding: 'utf8', maxBuffer: 64 << 20 });
const files = git('ls-tree', '-r', '--name-only', gitRef, 'tests/integration/update_cluster')
  .split('\n')
  .filter((f) => /\/in-[^/]*\.yaml$/.test(f));

// No request leaves this process: a hash look-up fails at once instead.
globalThis.fetch = (async (input: string | URL | Request) => {
  throw new Error(`network disabled while measuring (${String(input instanceof Request ? input.url : input)})`);
}) as typeof fetch;

async function run(argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await main(argv, { out: () => undefined, err: (s) => void (err += s), env: {} });
  return { code, err };
}

let created = 0;
let updated = 0;
const failures: string[] = [];
for (const file of files) {
  const dir = mkdtempSync(join(tmpdir(), 'kops-example-'));
  try {
    const spec = join(dir, 'in.yaml');
    // kOps' tests keep their state in memory (memfs://); a user's cloud cluster names
    // the bucket its instances read, so the measure does too (same paths, s3://).
    const text = git('show', `${gitRef}:${file}`).replace(/memfs:\/\//g, 's3://');
    writeFileSync(spec, text);
    const store = `file://${dir}/store`;
    const c = await run(['--state', store, 'create', '-f', spec]);
    const name = /^kind: Cluster\n(?:.*\n)*?metadata:\n(?:  .*\n)*?  name: (\S+)/m.exec(text)?.[1] ?? '';
    if (c.code !== 0) {
      failures.push(`${file}: create exit ${c.code}: ${c.err.split('\n').filter((l) => !l.startsWith('warning')).slice(0, 3).join(' | ')}`);
      continue;
    }
    created++;
    const u = await run(['--state', store, 'update', 'cluster', name, '--agent-url', 'https://mirror.example.com/mooring', '--agent-sha256', 'a'.repeat(64)]);
    if (u.code !== 0) {
      failures.push(`${file}: update exit ${u.code}: ${u.err.split('\n').filter((l) => !l.startsWith('warning')).slice(0, 3).join(' | ')}`);
      continue;
    }
    updated++;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log(`${files.length} example specs: ${created} load (create -f), ${updated} also complete (update cluster, dry run)`);
if (verbose) for (const f of failures) console.log(`  ${f}`);
