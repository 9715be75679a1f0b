// Where a long-running agent's JavaScript memory goes, by module: each stage
// runs in a fresh process of the binary's own runtime (Node 22 from
// node_modules) under the long-running agents' V8 flags, loads one of the
// built lazy bundles (dist/lazy/<name>.js with its long-running code cache,
// as the single binary embeds and loads them) and does what a manager does with it, then collects garbage twice and reports
// process.memoryUsage() and RSS. Each row is printed beside the runtime's empty
// process measured the same way in the same run ("above the floor"); rows are
// measured in turn, three times each, and the median is kept.
// Not timing: memory does not depend on machine load, so this may run beside
// other work.
// Run: node scripts/build-binaries.mjs && node_modules/.bin/tsx bench/heap-by-module.ts
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const runtime = join(repo, `node_modules/node-linux-${process.arch}/bin/node`);
const lazyDir = join(repo, 'dist/lazy');
const flags = JSON.parse(readFileSync(join(repo, 'shared/long-running-v8-flags.json'), 'utf8')) as string[];
const RUNS = 3;

// The stage body runs after `load(name)`, which compiles and runs a lazy bundle
// as scripts/lazy-bundle-loader.ts does, and returns its packages.
const STAGES: Array<{ label: string; body: string }> = [
  { label: 'the runtime, nothing loaded (floor)', body: '' },
  // What Node itself costs once a process uses TLS (OpenSSL's initialisation), HTTP/2 and zlib: every package below pays it too.
  { label: "Node's own tls, http2, crypto, zlib (no package)", body: "for (const m of ['node:tls', 'node:http2', 'node:crypto', 'node:zlib', 'node:net', 'node:dns']) require(m); require('node:tls').createSecureContext({});" },
  { label: 'etcd3 bundle loaded (grpc-js, protobufjs)', body: "load('etcd3');" },
  {
    label: 'etcd3: a client over TLS made (its protos parsed)',
    body: `const { Etcd3 } = load('etcd3').etcd3;
      const c = new Etcd3({ hosts: ['https://127.0.0.1:1'], dialTimeout: 100 });
      await c.get('x').string().catch(() => undefined);
      globalThis.keep = c;`,
  },
  { label: 'prom-client bundle loaded', body: "load('prom-client');" },
  { label: 'aws-s3 bundle loaded (@aws-sdk/client-s3)', body: "load('aws-s3');" },
  { label: 'x509 bundle loaded (@peculiar/x509)', body: "load('x509');" },
  { label: 'yaml bundle loaded', body: "load('yaml');" },
  { label: 'execa bundle loaded', body: "load('execa');" },
];

// The flags are set as the agents set them (v8.setFlagsFromString at start), and
// --expose-gc only after the loads: any other flag changes V8's flag hash, and
// V8 then refuses the code caches.
const PRELUDE = `
require('node:v8').setFlagsFromString(${JSON.stringify(flags.join(' '))});
const { readFileSync } = require('node:fs');
const { Script } = require('node:vm');
const { join, dirname } = require('node:path');
function load(name) {
  const filename = join(${JSON.stringify(lazyDir)}, name + '.js');
  // The code cache made for the long-running flags, as the binary's loader uses it.
  const cachedData = readFileSync(join(${JSON.stringify(lazyDir)}, name + '.long-running.cache'));
  const script = new Script(readFileSync(filename, 'utf8'), { filename, cachedData });
  if (script.cachedDataRejected) throw new Error(name + ': V8 rejected the code cache');
  const run = script.runInThisContext();
  const module = { exports: {} };
  run.call(module.exports, module.exports, require, module, filename, dirname(filename));
  return module.exports;
}
`;

interface Sample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** RSS of file pages (the runtime's code, the bundles' sources and caches) and of anonymous memory. */
  rssFile: number;
  rssAnon: number;
}

function measure(body: string): Sample {
  const script = `${PRELUDE}
(async () => {
  ${body}
  await new Promise((r) => setTimeout(r, 200));
  require('node:v8').setFlagsFromString('--expose-gc');
  const gc = require('node:vm').runInNewContext('gc');
  gc(); gc();
  const m = process.memoryUsage();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field) => Number(status.split('\\n').find((l) => l.startsWith(field + ':')).split(/ +/).at(-2)) * 1024;
  process.stdout.write(JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, rssFile: kb('RssFile'), rssAnon: kb('RssAnon') }));
})();`;
  const r = spawnSync(runtime, ['-e', script], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH } });
  if (r.status !== 0) throw new Error(`stage failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(0, 8).join(' | ')}`);
  return JSON.parse(r.stdout) as Sample;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (b: number) => (b / 1024 / 1024).toFixed(1);

if (!existsSync(runtime) || !existsSync(join(lazyDir, 'etcd3.js'))) {
  console.error('needs the built lazy bundles and the runtime: run make setup and node scripts/build-binaries.mjs first');
  process.exit(1);
}
const samples = STAGES.map(() => [] as Sample[]);
for (let run = 0; run < RUNS; run++) STAGES.forEach((s, i) => samples[i].push(measure(s.body)));
const rows = samples.map((xs) => ({ rss: median(xs.map((x) => x.rss)), heapUsed: median(xs.map((x) => x.heapUsed)), heapTotal: median(xs.map((x) => x.heapTotal)), external: median(xs.map((x) => x.external)), rssFile: median(xs.map((x) => x.rssFile)), rssAnon: median(xs.map((x) => x.rssAnon)) }));
const floor = rows[0];
console.log(`JavaScript memory by module, ${runtime.replace(`${repo}/`, '')} ${spawnSync(runtime, ['--version'], { encoding: 'utf8' }).stdout.trim()} with ${flags.join(' ')}; median of ${RUNS}, after two GCs (MiB; "+" is above the floor of the same run):`);
console.log(`  ${'stage'.padEnd(58)} ${'heap used'.padStart(10)} ${'heap total'.padStart(10)} ${'external'.padStart(10)} ${'RSS'.padStart(8)} ${'of it file'.padStart(10)} ${'anon'.padStart(8)}`);
STAGES.forEach((s, i) => {
  const r = rows[i];
  const plus = (v: number, f: number) => (i === 0 ? mib(v) : `+${mib(v - f)}`);
  console.log(`  ${s.label.padEnd(58)} ${plus(r.heapUsed, floor.heapUsed).padStart(10)} ${plus(r.heapTotal, floor.heapTotal).padStart(10)} ${plus(r.external, floor.external).padStart(10)} ${plus(r.rss, floor.rss).padStart(8)} ${plus(r.rssFile, floor.rssFile).padStart(10)} ${plus(r.rssAnon, floor.rssAnon).padStart(8)}`);
});
