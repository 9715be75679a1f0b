// Loads the npm packages the build keeps out of the single executable's main
// script (scripts/build-binaries.mjs, LAZY_BUNDLES): the AWS SDK clients and
// etcd3/gRPC are most of the bundle's bytes, and Node turns the whole main
// script into a V8 string and reads its code cache at every start, even for
// --version. Each group is its own bundle, a function expression
//   (function (exports, require, module, __filename, __dirname) { ... })
// embedded as the SEA asset lazy/<name>.js with its V8 code cache in
// lazy/<name>.cache (made at build time by the same node; absent for arm64).
// Outside a single executable (node dist/bundle.cjs) it is read from
// dist/lazy/<name>.js beside the bundle. Its module.exports maps each package
// name to what require() of the package gives. Only the bundle uses this module:
// from source the packages are imported as usual.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

type CodeCache = 'accepted' | 'rejected' | 'none';

interface SeaAssets {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: string): string;
}

interface LoadedBundle {
  packages: Record<string, unknown>;
  codeCache: CodeCache;
}

type BundleFunction = (exports: object, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void;

const loaded = new Map<string, LoadedBundle>();
// Built-in modules only: every other dependency of a lazy bundle is inside it.
const builtinRequire = createRequire(process.execPath);

function seaAssets(): SeaAssets | undefined {
  try {
    const sea = builtinRequire('node:sea') as SeaAssets;
    return sea.isSea() ? sea : undefined;
  } catch {
    return undefined;
  }
}

function readBundle(name: string): { source: string; cachedData?: Buffer; filename: string } {
  const sea = seaAssets();
  if (sea === undefined) {
    // The plain bundle: dist/lazy/<name>.js next to dist/bundle.cjs.
    const filename = join(dirname(import.meta.filename), 'lazy', `${name}.js`);
    return { source: readFileSync(filename, 'utf8'), filename };
  }
  const source = sea.getAsset(`lazy/${name}.js`, 'utf8');
  let cachedData: Buffer | undefined;
  try {
    cachedData = Buffer.from(sea.getAsset(`lazy/${name}.cache`));
  } catch {
    // Built without a code cache (arm64): V8 compiles the source.
  }
  return { source, filename: join(dirname(process.execPath), 'lazy', `${name}.js`), ...(cachedData ? { cachedData } : {}) };
}

/** Compiles and runs one lazy bundle once; later calls get the same packages. */
function load(name: string): LoadedBundle {
  const known = loaded.get(name);
  if (known !== undefined) return known;
  const { source, cachedData, filename } = readBundle(name);
  const script = new Script(source, { filename, ...(cachedData ? { cachedData } : {}) });
  const run = script.runInThisContext() as BundleFunction;
  const module = { exports: {} as Record<string, unknown> };
  run.call(module.exports, module.exports, builtinRequire, module, filename, dirname(filename));
  const packages = module.exports;
  const codeCache: CodeCache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  const bundle = { packages, codeCache };
  loaded.set(name, bundle);
  return bundle;
}

/** The exports of npm package `pkg`, from lazy bundle `name`. */
export function loadLazyPackage(name: string, pkg: string): unknown {
  const { packages } = load(name);
  if (!Object.hasOwn(packages, pkg)) throw new Error(`lazy bundle ${name} has no package ${pkg}`);
  return packages[pkg];
}

/** Loads every named bundle and says whether V8 took its code cache (for `mooring-agents __selftest-lazy`). */
export function lazyBundleReport(names: readonly string[]): Record<string, CodeCache> {
  return Object.fromEntries(names.map((name) => [name, load(name).codeCache]));
}
