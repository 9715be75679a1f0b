// An --etcd-binary-dir whose version directories all run Debian's etcd 3.4.23,
// each declaring its own version: `<dir>/<version>/etcd`, `etcdctl` and (from
// 3.5, as upstream ships it) `etcdutl` are small shell scripts that answer
// their version queries with the directory's version and otherwise exec the
// real tool (exec: the PID a caller started is etcd itself, so it can be
// stopped by PID). Only 3.4.23 can be installed here; this lets the version
// logic and later end-to-end tests move a cluster between "versions" with real
// processes and real data. etcd's own status API still reports 3.4.23: what a
// member runs is what its manager started, not what etcd says.
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEtcdVersion } from '../../agents/etcd-manager/versions/version.js';

export const DEBIAN_ETCD = '/usr/bin/etcd';
export const DEBIAN_ETCDCTL = '/usr/bin/etcdctl';
/** The version Debian's binaries really are. */
export const DEBIAN_ETCD_VERSION = '3.4.23';
export const binaryDirSkipReason: string | false = [DEBIAN_ETCD, DEBIAN_ETCDCTL].some((p) => !existsSync(p))
  ? `${[DEBIAN_ETCD, DEBIAN_ETCDCTL].filter((p) => !existsSync(p)).join(', ')} not installed`
  : false;

function etcdScript(version: string): string {
  return `#!/bin/sh
# etcd ${version} stand-in for tests: Debian's etcd ${DEBIAN_ETCD_VERSION} declaring ${version}.
case "$1" in
  --version|-version) printf 'etcd Version: %s\\nGit SHA: test-stand-in\\nGo Version: go1\\nGo OS/Arch: linux/amd64\\n' '${version}'; exit 0 ;;
esac
exec ${DEBIAN_ETCD} "$@"
`;
}

function etcdctlScript(version: string): string {
  const api = version.startsWith('2.') ? '2' : version.split('.').slice(0, 2).join('.');
  return `#!/bin/sh
# etcdctl ${version} stand-in for tests: Debian's etcdctl ${DEBIAN_ETCD_VERSION} declaring ${version}.
case "$1" in
  version|--version) printf 'etcdctl version: %s\\nAPI version: %s\\n' '${version}' '${api}'; exit 0 ;;
esac
exec ${DEBIAN_ETCDCTL} "$@"
`;
}

/** etcdutl (3.5+) took over etcdctl's offline commands (snapshot restore/status) with the same flags. */
function etcdutlScript(version: string): string {
  return `#!/bin/sh
# etcdutl ${version} stand-in for tests: Debian's etcdctl ${DEBIAN_ETCD_VERSION} (v3 API) doing etcdutl's offline commands.
case "$1" in
  version|--version) printf 'etcdutl version: %s\\nAPI version: %s\\n' '${version}' '${version.split('.').slice(0, 2).join('.')}'; exit 0 ;;
esac
ETCDCTL_API=3 exec ${DEBIAN_ETCDCTL} "$@"
`;
}

async function script(path: string, text: string): Promise<void> {
  await writeFile(path, text);
  await chmod(path, 0o755);
}

export interface VersionDirOptions {
  /** Leave a tool out (e.g. to test a refusal). */
  without?: Array<'etcdctl' | 'etcdutl'>;
  /** The version the scripts report, when it should differ from the directory's name (a misinstall). */
  reports?: string;
}

/** `<dir>/<version>/{etcd,etcdctl[,etcdutl]}` for each version; returns `dir`. */
export async function makeEtcdBinaryDir(dir: string, versions: string[], options: Record<string, VersionDirOptions> = {}): Promise<string> {
  for (const version of versions) {
    const parsed = parseEtcdVersion(version);
    const o = options[version] ?? {};
    const reports = o.reports ?? version;
    const home = join(dir, version);
    await mkdir(home, { recursive: true });
    await script(join(home, 'etcd'), etcdScript(reports));
    if (!o.without?.includes('etcdctl')) await script(join(home, 'etcdctl'), etcdctlScript(reports));
    if (parsed.major === 3 && parsed.minor >= 5 && !o.without?.includes('etcdutl')) await script(join(home, 'etcdutl'), etcdutlScript(reports));
  }
  return dir;
}
