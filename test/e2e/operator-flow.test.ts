// The operator's flow with the built single binary alone (no node_modules, no repo):
// create -> update --yes -> get userdata, on file:// and on s3:// (s3rver).
// The user-data must point at that binary and carry its real sha256.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { startS3 } from '../harness/s3.js';
import { tempDir } from '../harness/tmp.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const built = join(repo, 'dist/bin/mooring');
const skip = existsSync(built) ? false : 'dist/bin/mooring is not built (run make build, or make e2e which builds it)';
if (skip) console.log(`# skipping: ${skip}`);

/** writeFlags: what every writing command needs on this store (s3rver ignores conditional writes, so no lock). */
async function flow(t: Test, state: string, env: Record<string, string>, writeFlags: string[] = []): Promise<void> {
  const dir = tempDir(t, 'mooring-e2e-');
  const binary = join(dir, 'mooring');
  copyFileSync(built, binary);
  const run = (...args: string[]) =>
    execa(binary, ['--state', state, ...args], { reject: false, extendEnv: false, env: { PATH: '/usr/bin:/bin', HOME: dir, ...env } });

  const create = await run('create', 'cluster', 'e2e.example.com', '--cloud', 'local', '--control-plane-count', '1', '--node-count', '1', ...writeFlags);
  t.equal(create.exitCode, 0, create.stderr);
  const again = await run('create', 'cluster', 'e2e.example.com', '--cloud', 'local', ...writeFlags);
  t.equal(again.exitCode, 6, 'creating it twice is refused');
  t.match(again.stderr, /already exists/);

  const update = await run('update', 'cluster', 'e2e.example.com', '--yes', ...writeFlags);
  t.equal(update.exitCode, 0, update.stderr);
  t.match(update.stdout, /Created in/);

  const ud = await run('get', 'userdata', 'e2e.example.com', '--instance-group', 'control-plane-local-a');
  t.equal(ud.exitCode, 0, ud.stderr);
  const sha = createHash('sha256').update(readFileSync(binary)).digest('hex');
  t.match(ud.stdout, `agent_sha256='${sha}'`, 'user-data carries the hash of the binary that rendered it');
  t.match(ud.stdout, pathToFileURL(binary).href, 'and downloads it from where it is');
  await execa('bash', ['-n'], { input: ud.stdout });

  const noop = await run('update', 'cluster', 'e2e.example.com', '--yes', ...writeFlags);
  t.match(noop.stdout, /No changes needed/);

  const missing = await run('get', 'cluster', 'missing.example.com');
  t.equal(missing.exitCode, 4);
  t.equal(missing.stderr.trim().split('\n').length, 1, 'one-line error');
}

t.test('file:// store, binary alone', { skip }, async (t) => {
  await flow(t, `file://${tempDir(t, 'mooring-e2e-state-')}`, {});
});

t.test('s3:// store (s3rver), binary alone', { skip }, async (t) => {
  const s3 = await startS3(t);
  await flow(t, `${s3.url}/state`, s3.env, ['--allow-unserialized-writes']);
});
