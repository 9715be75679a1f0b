// Packages: every missing one installed in a single apt-get/dnf call, chosen
// from os-release. An interrupted dpkg (nodeup killed mid-install, kops#9180)
// is repaired with `dpkg --configure -a` before anything is installed. A
// `.deb` can also come from a hash-verified asset.
import { execa } from 'execa';
import { fetchToCache, type AssetRef } from '../host/assets.js';
import { requireFamily } from '../host/os-release.js';
import { planFrom, TaskError, type Plan, type Task, type TaskContext } from '../engine/task.js';

interface Installed {
  version: string;
}

const DPKG_ADMINDIR = '/var/lib/dpkg';

/** name → installed version, from the package database under root. */
async function installedPackages(ctx: TaskContext, taskId: string, names: string[]): Promise<Map<string, Installed>> {
  const found = new Map<string, Installed>();
  if (requireFamily(ctx.host, taskId) === 'debian') {
    const r = await execa('dpkg-query', ['--admindir', await ctx.fs.resolve(DPKG_ADMINDIR), '-W', '-f', '${Package}\t${db:Status-Abbrev}\t${Version}\n', ...names], { reject: false });
    for (const line of String(r.stdout).split('\n')) {
      const [name, status, version] = line.split('\t');
      if (name && status?.trim() === 'ii') found.set(name, { version: version ?? '' });
    }
  } else {
    const r = await execa('rpm', [...(ctx.root === '/' ? [] : ['--root', ctx.root]), '-q', '--qf', '%{NAME}\t%{VERSION}-%{RELEASE}\n', ...names], { reject: false });
    for (const line of String(r.stdout).split('\n')) {
      const [name, version] = line.split('\t');
      if (name && version !== undefined && names.includes(name)) found.set(name, { version });
    }
  }
  return found;
}

const dpkgRoot = (root: string): string[] => (root === '/' ? [] : [`--root=${root}`]);

/** Finishes an interrupted dpkg run, so apt does not refuse to install. */
async function repairDpkg(ctx: TaskContext): Promise<void> {
  const audit = await execa('dpkg', [...dpkgRoot(ctx.root), '--audit'], { reject: false, cancelSignal: ctx.signal });
  if (String(audit.stdout).trim() !== '') {
    ctx.log.warn('dpkg was interrupted; running dpkg --configure -a', { audit: String(audit.stdout).split('\n')[0] });
    await execa('dpkg', [...dpkgRoot(ctx.root), '--configure', '-a'], { cancelSignal: ctx.signal, env: { DEBIAN_FRONTEND: 'noninteractive' } });
  }
}

export class PackagesTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  readonly paths: readonly string[] = [`${DPKG_ADMINDIR}/`];
  constructor(label: string, readonly names: string[]) {
    this.id = `Packages:${label}`;
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    const installed = await installedPackages(ctx, this.id, this.names);
    const missing = this.names.filter((n) => !installed.has(n));
    // The set of packages always "exists"; it is modified when some are missing.
    return planFrom(true, missing.length === 0 ? [] : [{ field: 'install', new: missing.join(' ') }]);
  }

  async apply(ctx: TaskContext, plan: Plan): Promise<void> {
    const missing = (plan.changes.find((c) => c.field === 'install')?.new ?? '').split(' ').filter(Boolean);
    if (missing.length === 0) return;
    // With --root the package manager runs inside the root (image builds); dnf has --installroot for that.
    const inRoot = ctx.root === '/' ? [] : ['chroot', ctx.root];
    const run = async (args: string[]): Promise<void> => {
      const [cmd, ...rest] = [...inRoot, ...args];
      await execa(cmd, rest, { cancelSignal: ctx.signal, env: { DEBIAN_FRONTEND: 'noninteractive' } });
    };
    try {
      if (ctx.host.family === 'debian') {
        await repairDpkg(ctx);
        const install = ['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...missing];
        try {
          await run(install);
        } catch {
          // Package lists may be missing or stale on a fresh image: refresh once and retry.
          await run(['apt-get', 'update', '-q']);
          await run(install);
        }
      } else {
        await execa('dnf', ['install', '-y', ...(ctx.root === '/' ? [] : [`--installroot=${ctx.root}`]), ...missing], { cancelSignal: ctx.signal });
      }
    } catch (err) {
      throw new TaskError(this.id, `installing ${missing.join(' ')}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
  }
}

/** `name_version_arch.deb` → name and version (Debian's file naming). */
export function debIdentity(fileName: string): { name: string; version: string } | undefined {
  const m = /^([a-z0-9][a-z0-9+.-]+)_([^_]+)_[a-z0-9]+\.deb$/.exec(fileName);
  return m ? { name: m[1], version: decodeURIComponent(m[2]).replace(/%3a/gi, ':') } : undefined;
}

export class DebPackageTask implements Task {
  readonly id: string;
  readonly deps: readonly string[] = [];
  readonly paths: readonly string[] = [`${DPKG_ADMINDIR}/`];
  constructor(readonly asset: AssetRef, readonly pkg: { name: string; version: string }) {
    this.id = `DebPackage:${pkg.name}`;
  }

  async plan(ctx: TaskContext): Promise<Plan> {
    if (requireFamily(ctx.host, this.id) !== 'debian') throw new TaskError(this.id, `${this.asset.name} is a .deb, but this is ${ctx.host.id} (${ctx.host.family})`);
    const have = (await installedPackages(ctx, this.id, [this.pkg.name])).get(this.pkg.name);
    if (!have) return planFrom(false, [{ field: 'version', new: this.pkg.version }, { field: 'source', new: this.asset.urls[0] }]);
    return planFrom(true, have.version === this.pkg.version ? [] : [{ field: 'version', old: have.version, new: this.pkg.version }]);
  }

  async apply(ctx: TaskContext): Promise<void> {
    try {
      const deb = await fetchToCache(await ctx.fs.mkdirs(ctx.cache), this.asset, ctx.signal);
      await repairDpkg(ctx);
      await execa('dpkg', [...dpkgRoot(ctx.root), '-i', deb], { cancelSignal: ctx.signal, env: { DEBIAN_FRONTEND: 'noninteractive' } });
    } catch (err) {
      throw new TaskError(this.id, (err as Error).message.split('\n')[0], { cause: err });
    }
  }
}
