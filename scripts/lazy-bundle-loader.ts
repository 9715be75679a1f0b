// Loads the code the build keeps out of the single executable's main script
// (scripts/build-binaries.mjs). Node turns the whole main script into a V8
// string and reads its code cache at every start, even for --version, so the
// main script is only the dispatcher (scripts/multicall-entry.ts). The rest
// comes in bundles of two kinds, each a function expression
//   (function (exports, require, module, __filename, __dirname) { ... })
// embedded as a SEA asset <kind>/<name>.js with its V8 code cache in
// <kind>/<name>.cache (made at build time by the same node; absent for arm64):
// - programs/<name>: one program (agents/<name>/main.ts) or diagnostic, with
//   the code of ours it imports; the dispatcher loads the one it runs
//   (loadProgram), so `nodeup --version` never reads etcd-manager's code;
// - lazy/<name>: npm packages only some commands use (LAZY_BUNDLES), loaded at
//   their first import (loadLazyPackage). lazy/<name>.long-running.cache is the
//   cache made under the long-running agents' V8 flags (shared/long-running.ts),
//   which a process that set them uses instead: V8 refuses a cache made under
//   other flags. Programs load before any program sets those flags.
// A program bundle gets its own copy of the code of ours it imports, except
// this module and shared/long-running.ts, which hold per-process state (what
// was loaded; whether the V8 flags were set): the build makes a program's
// imports of them require("mooring-dispatcher:<name>"), answered here with
// the dispatcher's own instances (DISPATCHER_MODULES).
// Outside a single executable (node dist/bundle.cjs) bundles are read from
// dist/<kind>/<name>.js beside the bundle. Only the bundle uses this module:
// from source, programs and packages are imported as usual.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';
import * as longRunning from '../shared/long-running.js';

type CodeCache = 'accepted' | 'rejected' | 'none';
type BundleKind = 'programs' | 'lazy';

interface SeaAssets {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
  /** The asset's bytes in the executable's own memory, not a copy: read only. */
  getRawAsset(key: string): ArrayBuffer;
}

interface LoadedBundle {
  exports: Record<string, unknown>;
  codeCache: CodeCache;
}

type BundleFunction = (exports: object, require: (id: string) => unknown, module: { exports: unknown }, filename: string, dirname: string) => void;

const loaded = new Map<string, LoadedBundle>();
// Built-in modules only: every other dependency of a bundle is inside it.
const builtinRequire = createRequire(process.execPath);
const DISPATCHER_PREFIX = 'mooring-dispatcher:';

function seaAssets(): SeaAssets | undefined {
  try {
    const sea = builtinRequire('node:sea') as SeaAssets;
    return sea.isSea() ? sea : undefined;
  } catch {
    return undefined;
  }
}

function readBundle(kind: BundleKind, name: string): { source: string; cachedData?: Buffer; filename: string } {
  const sea = seaAssets();
  if (sea === undefined) {
    // The plain bundle: dist/<kind>/<name>.js next to dist/bundle.cjs.
    const filename = join(dirname(import.meta.filename), kind, `${name}.js`);
    return { source: readFileSync(filename, 'utf8'), filename };
  }
  // The build checks every bundle is ASCII, so its bytes are its characters:
  // latin1 makes the one-byte string V8 wants straight from the executable's
  // bytes, with neither a copy nor UTF-8 decoding (~7 ms of mooring's start).
  const source = Buffer.from(sea.getRawAsset(`${kind}/${name}.js`)).toString('latin1');
  const flagsSuffix = kind === 'lazy' && longRunning.tunedForLongRunning() ? '.long-running' : '';
  let cachedData: Buffer | undefined;
  try {
    cachedData = Buffer.from(sea.getAsset(`${kind}/${name}${flagsSuffix}.cache`));
  } catch {
    // Built without a code cache (arm64): V8 compiles the source.
  }
  return { source, filename: join(dirname(process.execPath), kind, `${name}.js`), ...(cachedData ? { cachedData } : {}) };
}

/** What a bundle's require() gives: this process's dispatcher modules, else built-ins. */
function bundleRequire(id: string): unknown {
  if (!id.startsWith(DISPATCHER_PREFIX)) return builtinRequire(id);
  const name = id.slice(DISPATCHER_PREFIX.length);
  if (!Object.hasOwn(DISPATCHER_MODULES, name)) throw new Error(`the dispatcher has no module ${name}`);
  return DISPATCHER_MODULES[name];
}

/** Compiles and runs one bundle once; later calls get the same exports. */
function load(kind: BundleKind, name: string): LoadedBundle {
  const key = `${kind}/${name}`;
  const known = loaded.get(key);
  if (known !== undefined) return known;
  const { source, cachedData, filename } = readBundle(kind, name);
  const script = new Script(source, { filename, ...(cachedData ? { cachedData } : {}) });
  const run = script.runInThisContext() as BundleFunction;
  const module = { exports: {} as Record<string, unknown> };
  run.call(module.exports, module.exports, bundleRequire, module, filename, dirname(filename));
  const codeCache: CodeCache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  const bundle = { exports: module.exports, codeCache };
  loaded.set(key, bundle);
  return bundle;
}

/** The exports of npm package `pkg`, from lazy bundle `name`. */
export function loadLazyPackage(name: string, pkg: string): unknown {
  const { exports } = load('lazy', name);
  if (!Object.hasOwn(exports, pkg)) throw new Error(`lazy bundle ${name} has no package ${pkg}`);
  return exports[pkg];
}

/** The module exports of program bundle `name` (its entry's exports: main). */
export function loadProgram(name: string): Record<string, unknown> {
  return load('programs', name).exports;
}

/** Loads every named bundle of a kind and says whether V8 took its code cache (for `mooring-agents __selftest-lazy`). */
export function bundleReport(kind: BundleKind, names: readonly string[]): Record<string, CodeCache> {
  return Object.fromEntries(names.map((name) => [name, load(kind, name).codeCache]));
}

const DISPATCHER_MODULES: Record<string, unknown> = {
  'lazy-bundle-loader': { loadLazyPackage, loadProgram, bundleReport },
  'long-running': longRunning,
};
