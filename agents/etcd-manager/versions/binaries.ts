// The etcd tools of one version: `<etcd-binary-dir>/<version>/etcd`, and
// `etcdctl` and `etcdutl` beside it where present (etcdutl exists from 3.5),
// else the system's /usr/bin ones when /usr/bin/etcd is that very version
// (the same rule as etcd/binary.ts, which only looks for etcd itself). The
// directory name declares the version, as in kOps' image; the system binary is
// asked, since nothing else says what it is.
import { access, constants, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { etcdBinaryVersion, SYSTEM_ETCD } from '../etcd/binary.js';
import type { Transition } from './transition.js';
import { compareVersions, parseEtcdVersion, servesV2API, VersionError, type EtcdVersion } from './version.js';

export interface EtcdBinaries {
  version: string;
  etcd: string;
  etcdctl?: string;
  etcdutl?: string;
}

export type EtcdTool = 'etcd' | 'etcdctl' | 'etcdutl';

/** How the system binary is asked its version; injectable for tests. */
export type VersionProbe = (binary: string) => Promise<string>;

/** How a tool is asked its version before a change uses it; injectable for tests. */
export type ToolProbe = (tool: EtcdTool, path: string, version: EtcdVersion) => Promise<string>;

const PROBE_TIMEOUT_MS = 30_000;

/**
 * The version a tool says it is: `etcd --version`, `etcdctl version` (v3 API;
 * `--version` for etcdctl 2.x), `etcdutl version`, each printing
 * "<tool> version: X" (etcd: "etcd Version: X").
 */
export async function toolVersion(tool: EtcdTool, path: string, version: EtcdVersion): Promise<string> {
  const args = tool === 'etcd' || (tool === 'etcdctl' && version.major === 2) ? ['--version'] : ['version'];
  const out = await execa(path, args, { reject: false, stdin: 'ignore', timeout: PROBE_TIMEOUT_MS, env: { ETCDCTL_API: version.major === 2 ? '2' : '3' } });
  const m = new RegExp(`^${tool} version:\\s*(\\S+)`, 'im').exec(String(out.stdout));
  if (out.exitCode !== 0 || !m) throw new VersionError('no-binary', `${path} ${args.join(' ')}: exit ${out.exitCode ?? out.signal}, no "${tool} version:" line: ${String(out.stderr || out.stdout).trim().split('\n')[0] ?? ''}`);
  return m[1];
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function toolsIn(dir: string, version: string, etcd: string): Promise<EtcdBinaries> {
  const found: EtcdBinaries = { version, etcd };
  for (const tool of ['etcdctl', 'etcdutl'] as const) {
    if (await executable(join(dir, tool))) found[tool] = join(dir, tool);
  }
  return found;
}

/**
 * The tools of `version`, or VersionError('no-binary') naming where they were
 * looked for. `systemEtcd` is /usr/bin/etcd unless a test says otherwise.
 */
export async function findEtcdBinaries(version: string, binaryDir: string | undefined, options: { systemEtcd?: string; probe?: VersionProbe } = {}): Promise<EtcdBinaries> {
  parseEtcdVersion(version);
  const looked: string[] = [];
  if (binaryDir) {
    const dir = join(binaryDir, version);
    const etcd = join(dir, 'etcd');
    if (await executable(etcd)) return toolsIn(dir, version, etcd);
    looked.push(`${etcd} is missing`);
  }
  const systemEtcd = options.systemEtcd ?? SYSTEM_ETCD;
  const probe = options.probe ?? etcdBinaryVersion;
  let systemVersion: string | undefined;
  try {
    systemVersion = await probe(systemEtcd);
  } catch (err) {
    looked.push((err as Error).message);
  }
  if (systemVersion === version) return toolsIn(join(systemEtcd, '..'), version, systemEtcd);
  if (systemVersion !== undefined) looked.push(`${systemEtcd} is ${systemVersion}`);
  throw new VersionError('no-binary', `no etcd ${version}: ${looked.join(' and ')}`);
}

/** The versions `<binaryDir>/<version>/etcd` provides, oldest first (names that are not versions are ignored). */
export async function installedVersions(binaryDir: string): Promise<EtcdVersion[]> {
  let names: string[];
  try {
    names = await readdir(binaryDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const versions: EtcdVersion[] = [];
  for (const name of names) {
    let version: EtcdVersion;
    try {
      version = parseEtcdVersion(name);
    } catch {
      continue;
    }
    if (await executable(join(binaryDir, name, 'etcd'))) versions.push(version);
  }
  return versions.sort(compareVersions);
}

/**
 * An etcd that serves the v2 API (2.x, or 3.0–3.5 with --enable-v2), to read a
 * v2 backup with: the newest such version in the binary directory, else the
 * system etcd if it is one.
 */
export async function findV2CapableEtcd(binaryDir: string | undefined, options: { systemEtcd?: string; probe?: VersionProbe } = {}): Promise<EtcdBinaries> {
  const candidates = binaryDir ? (await installedVersions(binaryDir)).filter(servesV2API) : [];
  const newest = candidates.at(-1);
  if (newest) return findEtcdBinaries(newest.text, binaryDir, options);
  const systemEtcd = options.systemEtcd ?? SYSTEM_ETCD;
  let systemVersion: string;
  try {
    systemVersion = await (options.probe ?? etcdBinaryVersion)(systemEtcd);
  } catch (err) {
    throw new VersionError('no-binary', `no etcd that serves the v2 API (2.x or 3.0 to 3.5)${binaryDir ? ` in ${binaryDir}` : ''}: ${(err as Error).message}`);
  }
  let parsed: EtcdVersion | undefined;
  try {
    parsed = parseEtcdVersion(systemVersion);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !servesV2API(parsed)) {
    throw new VersionError('no-binary', `no etcd that serves the v2 API (2.x or 3.0 to 3.5)${binaryDir ? ` in ${binaryDir}` : ''}, and ${systemEtcd} is ${systemVersion}`);
  }
  return toolsIn(join(systemEtcd, '..'), systemVersion, systemEtcd);
}

export interface RequiredTool {
  version: string;
  tool: EtcdTool;
  /** What it is for, for the error message. */
  purpose: string;
}

/** etcdutl does snapshot restores from 3.5; before it, etcdctl did. */
function snapshotRestoreTool(version: string): EtcdTool {
  const v = parseEtcdVersion(version);
  return v.major === 3 && v.minor >= 5 ? 'etcdutl' : 'etcdctl';
}

/** What each transition runs: the new etcd, and the tools its backup and restore need. */
export function requiredTools(t: Transition): RequiredTool[] {
  switch (t.kind) {
    case 'none':
      return [];
    case 'in-place':
      return [{ version: t.to, tool: 'etcd', purpose: 'the members after the change' }];
    case 'restore':
      return [
        { version: t.to, tool: 'etcd', purpose: 'the restored members' },
        { version: t.to, tool: snapshotRestoreTool(t.to), purpose: 'the snapshot restore' },
      ];
    case 'migrate-v2':
      return [
        { version: t.from, tool: 'etcdctl', purpose: 'the v2 backup (etcdctl backup)' },
        { version: t.to, tool: 'etcd', purpose: 'the migration target and the restored members' },
        { version: t.to, tool: snapshotRestoreTool(t.to), purpose: 'the snapshot restore' },
      ];
  }
}

/**
 * Every tool a transition needs, found and saying it is the version its
 * directory declares; VersionError('no-binary') naming the first one missing
 * or wrong (a 3.5 binary left in 3.4.23/ would move the data to 3.5 behind the
 * plan's back). Checked before a change starts, so none stops half way for
 * want of a binary.
 */
export async function checkBinaries(t: Transition, binaryDir: string | undefined, options: { systemEtcd?: string; probe?: VersionProbe; toolProbe?: ToolProbe } = {}): Promise<Map<string, EtcdBinaries>> {
  const found = new Map<string, EtcdBinaries>();
  const askTool = options.toolProbe ?? toolVersion;
  for (const need of requiredTools(t)) {
    const set = found.get(need.version) ?? (await findEtcdBinaries(need.version, binaryDir, options));
    found.set(need.version, set);
    const path = set[need.tool];
    if (!path) {
      throw new VersionError('no-binary', `no ${need.tool} ${need.version} for ${need.purpose}: ${join(set.etcd, '..', need.tool)} is missing`);
    }
    const reported = await askTool(need.tool, path, parseEtcdVersion(need.version));
    if (reported !== need.version) {
      throw new VersionError('no-binary', `no ${need.tool} ${need.version} for ${need.purpose}: ${path} says it is ${reported}`);
    }
  }
  if (t.kind === 'migrate-v2') await findV2CapableEtcd(binaryDir, options);
  return found;
}
