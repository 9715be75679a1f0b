#!/usr/bin/env node
// Builds the single executable that holds all four programs:
//   1. esbuild bundles scripts/multicall-entry.ts into dist/bundle.cjs
//      (CommonJS: a Node single executable's main must be a CJS script);
//   2. Node writes a SEA blob from it (sea-config.json);
//   3. a copy of this very node binary (the blob only runs on the node version
//      that wrote it) gets its symbols stripped and the blob injected with
//      postject, as dist/bin/mooring;
//   4. dist/bin/{nodeup,etcd-manager,protokube,mooring-agents} link to it.
// Files read at run time are embedded at step 1 (see the two plugins), since
// the binary runs with no repo and no node_modules around it.
//
// Usage: node scripts/build-binaries.mjs [--no-strip] [--no-code-cache]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'postject';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(repo, 'dist');
const binDir = join(dist, 'bin');
const bundlePath = join(dist, 'bundle.cjs');
const binaryPath = join(binDir, 'mooring');
const LINKS = ['nodeup', 'etcd-manager', 'protokube', 'mooring-agents'];
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const flags = new Set(process.argv.slice(2));
for (const flag of flags) {
  if (!['--no-strip', '--no-code-cache'].includes(flag)) fail(`unknown option ${flag}`);
}

function fail(message) {
  console.error(`build-binaries: ${message}`);
  process.exit(1);
}

function log(message) {
  console.error(`build-binaries: ${message}`);
}

const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

// postject's LIEF prints "Can't find string offset for section name '.note…'"
// for every note of the official node binary; harmless, and it drowns real output.
async function quietLIEFNoteWarnings(action) {
  const warn = console.warn;
  console.warn = (...args) => {
    if (!/Can't find string offset for section name '\.note/.test(String(args[0]))) warn(...args);
  };
  try {
    return await action();
  } finally {
    console.warn = warn;
  }
}

// --- esbuild plugins ---------------------------------------------------------

// bootstrap/embedded-text.ts reads repo files next to its source; in the
// bundle it becomes the same files as string constants.
const embedTextFiles = {
  name: 'embed-text-files',
  setup(b) {
    b.onLoad({ filter: /[\\/]bootstrap[\\/]embedded-text\.ts$/ }, () => {
      const listPath = join(repo, 'bootstrap/embedded-files.json');
      const list = JSON.parse(readFileSync(listPath, 'utf8'));
      const files = Object.fromEntries(list.map((path) => [path, readFileSync(join(repo, path), 'utf8')]));
      return {
        loader: 'js',
        watchFiles: [listPath, ...list.map((path) => join(repo, path))],
        contents: `const files = ${JSON.stringify(files)};
export function readEmbeddedText(repoPath) {
  if (!Object.hasOwn(files, repoPath)) throw new Error(repoPath + ' is not embedded in this binary (bootstrap/embedded-files.json)');
  return files[repoPath];
}
`,
      };
    });
  },
};

// etcd3 parses node_modules/etcd3/proto/rpc.proto (+ kv, auth) from disk when
// it is loaded. Parse them now, at build time, and have the bundle build the
// same gRPC package definition from that JSON (proto-loader's fromJSON).
const ETCD3_PROTO_CALL = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, (\{\s*keepCase: true,\s*longs: String,\s*enums: String,\s*defaults: true,\s*oneofs: true,\s*\})\)/;

function etcd3ProtoJSON(etcd3Lib) {
  const requireFromEtcd3 = createRequire(join(etcd3Lib, 'connection-pool.js'));
  const protoLoader = requireFromEtcd3('@grpc/proto-loader');
  const protobuf = createRequire(requireFromEtcd3.resolve('@grpc/proto-loader'))('protobufjs');
  const protoPath = join(etcd3Lib, '../proto/rpc.proto');
  // keepCase must match the options etcd3 passes: protobufjs applies it while parsing.
  const root = new protobuf.Root().loadSync(protoPath, { keepCase: true });
  root.resolveAll();
  const json = root.toJSON();
  // Same services and methods as etcd3's own load, or the build stops here.
  const options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
  const describe = (definition) =>
    Object.entries(definition)
      .filter(([, value]) => value && typeof value === 'object' && !('format' in value))
      .flatMap(([service, methods]) => Object.values(methods).map((m) => `${service} ${m.path}`))
      .sort()
      .join('\n');
  const fromDisk = describe(protoLoader.loadSync(protoPath, options));
  if (fromDisk === '' || fromDisk !== describe(protoLoader.fromJSON(json, options))) {
    fail('etcd3 protos: the embedded JSON does not describe the same gRPC methods as the .proto files');
  }
  return json;
}

const embedEtcd3Protos = {
  name: 'embed-etcd3-protos',
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!ETCD3_PROTO_CALL.test(source)) {
        fail(`${relative(repo, args.path)}: etcd3 no longer loads its protos the way this build expects; update embed-etcd3-protos`);
      }
      const json = JSON.stringify(etcd3ProtoJSON(dirname(args.path)));
      const contents = source.replace(ETCD3_PROTO_CALL, (_all, options) => `(0, proto_loader_1.fromJSON)(${json}, ${options})`);
      return { contents, loader: 'js' };
    });
  },
};

// --- 1. bundle ---------------------------------------------------------------

rmSync(binDir, { recursive: true, force: true });
mkdirSync(binDir, { recursive: true });

const packageVersion = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version;
log(`bundling mooring ${packageVersion}`);
await build({
  entryPoints: [join(repo, 'scripts/multicall-entry.ts')],
  outfile: bundlePath,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'eof',
  plugins: [embedTextFiles, embedEtcd3Protos],
  // import.meta is empty in CJS output. Code that needs its own files must
  // embed them (as above); what remains (e.g. createRequire(import.meta.url)
  // for built-in modules) gets the file URL of the bundle or executable.
  banner: { js: 'var __mooringImportMetaURL = require("url").pathToFileURL(__filename).href;' },
  define: {
    'import.meta.url': '__mooringImportMetaURL',
    'import.meta.filename': '__filename',
    'import.meta.dirname': '__dirname',
  },
  logLevel: 'warning',
  logOverride: { 'empty-import-meta': 'error' },
}).catch(() => fail('esbuild failed (errors above)'));
log(`dist/bundle.cjs: ${mib(statSync(bundlePath).size)}`);

// --- 2. SEA blob ---------------------------------------------------------------

const seaConfigPath = join(dist, 'sea-config.json');
const blobPath = join(dist, 'sea-prep.blob');
const seaConfig = {
  main: bundlePath,
  output: blobPath,
  disableExperimentalSEAWarning: true,
  // V8 code cache of the bundle: measured to cut start-up (bench/startup.ts).
  useCodeCache: !flags.has('--no-code-cache'),
};
writeFileSync(seaConfigPath, `${JSON.stringify(seaConfig, null, 2)}\n`);
execFileSync(process.execPath, ['--experimental-sea-config', seaConfigPath], { stdio: 'inherit' });

// --- 3. executable -------------------------------------------------------------

copyFileSync(process.execPath, binaryPath);
chmodSync(binaryPath, 0o755);
if (!flags.has('--no-strip')) {
  // Node ships with symbols and debug info; strip before injecting so the
  // injected note is never touched. Skipped (with a word) where strip is absent.
  try {
    execFileSync('strip', ['--strip-all', binaryPath], { stdio: 'inherit' });
  } catch (err) {
    log(`strip failed or is not installed (${err.message}); keeping symbols`);
  }
}
await quietLIEFNoteWarnings(() => inject(binaryPath, 'NODE_SEA_BLOB', readFileSync(blobPath), { sentinelFuse: SEA_FUSE }));

// --- 4. links and checks --------------------------------------------------------

for (const name of LINKS) symlinkSync('mooring', join(binDir, name));
const sha256 = createHash('sha256').update(readFileSync(binaryPath)).digest('hex');
writeFileSync(`${binaryPath}.sha256`, `${sha256}  mooring\n`);

// The binary must run, and etcd3 must find its protos without node_modules.
const version = execFileSync(binaryPath, ['--version'], { encoding: 'utf8' }).trim();
const selftest = execFileSync(join(binDir, 'mooring-agents'), ['__selftest-etcd3'], { encoding: 'utf8' }).trim();
if (!JSON.parse(selftest).protosLoaded) fail(`etcd3 self-test failed: ${selftest}`);
log(`dist/bin/mooring: ${mib(statSync(binaryPath).size)}, sha256 ${sha256}, --version: ${version}`);
log(`links: ${LINKS.map((name) => `dist/bin/${name}`).join(', ')} -> mooring`);
