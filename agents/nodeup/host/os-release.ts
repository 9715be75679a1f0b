// Distro and architecture of the machine nodeup configures, read from
// <root>/etc/os-release (and the running CPU): they pick the package manager
// and the asset of the right architecture.
import { arch as cpuArch } from 'node:os';
import { ExitCode, UserError } from '../../../shared/errors.js';
import { TaskError } from '../engine/task.js';
import { RootPathError, type NodeRoot } from './fs.js';

export type DistroFamily = 'debian' | 'rhel';
export type Arch = 'amd64' | 'arm64';

export interface HostInfo {
  /** os-release ID, e.g. debian, ubuntu, rocky. */
  id: string;
  versionID: string;
  /** undefined for a distro nodeup does not know: only the tasks that need one (packages) fail. */
  family?: DistroFamily;
  arch: Arch;
  /** Where the facts came from, for error messages. */
  source: string;
}

/** The package family, or an error naming the task that needed it. */
export function requireFamily(host: HostInfo, taskId: string): DistroFamily {
  if (host.family) return host.family;
  throw new TaskError(
    taskId,
    `unknown distro ID=${JSON.stringify(host.id)} in ${host.source}; cannot choose a package manager (known: ${Object.keys(FAMILIES).join(', ')})`,
    { permanent: true },
  );
}

const FAMILIES: Record<string, DistroFamily> = {
  debian: 'debian', ubuntu: 'debian',
  rhel: 'rhel', centos: 'rhel', rocky: 'rhel', almalinux: 'rhel', fedora: 'rhel', amzn: 'rhel',
};

const OS_RELEASE = '/etc/os-release';

export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) fields[m[1]] = m[2].replace(/^(["'])(.*)\1$/, '$2');
  }
  return fields;
}

export function hostArch(nodeArch: string = cpuArch()): Arch {
  if (nodeArch === 'x64') return 'amd64';
  if (nodeArch === 'arm64') return 'arm64';
  throw new UserError(`unsupported CPU architecture ${nodeArch} (want x64/amd64 or arm64)`);
}

/** Reads <root>/etc/os-release; a missing file is an error, an unknown distro is not (yet). */
export async function detectHost(fs: NodeRoot, arch: Arch = hostArch()): Promise<HostInfo> {
  const path = await fs.resolve(OS_RELEASE); // a link out of the root is refused here, naming it
  let text: string;
  try {
    const data = await fs.read(OS_RELEASE);
    if (data === undefined) throw new Error('no such file');
    text = data.toString('utf8');
  } catch (err) {
    if (err instanceof RootPathError) throw err;
    throw new UserError(`detect distro: cannot read ${path}: ${(err as Error).message}`, ExitCode.Failure, { cause: err });
  }
  const fields = parseOsRelease(text);
  const id = fields.ID ?? '';
  // ID_LIKE lets derivatives (e.g. ID=raspbian ID_LIKE=debian) work.
  const family = [id, ...(fields.ID_LIKE ?? '').split(/\s+/)].map((name) => FAMILIES[name]).find((f) => f !== undefined);
  return { id, versionID: fields.VERSION_ID ?? '', ...(family ? { family } : {}), arch, source: path };
}
