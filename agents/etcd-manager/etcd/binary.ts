// Which etcd binary runs a given version: <etcd-binary-dir>/<version>/etcd when
// a directory of versioned binaries is configured, else Debian's /usr/bin/etcd,
// but only if it really is that version (running the wrong one could upgrade
// or downgrade the data on the volume behind the operator's back).
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

export const SYSTEM_ETCD = '/usr/bin/etcd';
const VERSION = /^\d+\.\d+\.\d+$/;

export async function etcdBinaryVersion(binary: string): Promise<string> {
  const out = await execa(binary, ['--version'], { reject: false, stdin: 'ignore', env: { ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '' } });
  const m = /etcd Version:\s*(\S+)/.exec(String(out.stdout));
  if (out.exitCode !== 0 || !m) throw new Error(`${binary} --version: exit ${out.exitCode ?? out.signal}: ${String(out.stderr).trim()}`);
  return m[1];
}

export async function resolveEtcdBinary(version: string, binaryDir?: string): Promise<string> {
  if (!VERSION.test(version)) throw new Error(`etcd version ${JSON.stringify(version)} is not like 3.4.23`);
  if (binaryDir) {
    const candidate = join(binaryDir, version, 'etcd');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // fall through to the system binary when it is the right version
    }
  }
  let found: string;
  try {
    found = await etcdBinaryVersion(SYSTEM_ETCD);
  } catch (err) {
    throw new Error(`no etcd ${version}: ${binaryDir ? `${join(binaryDir, version, 'etcd')} is missing and ` : ''}${(err as Error).message}`);
  }
  if (found !== version) {
    throw new Error(`no etcd ${version}: ${binaryDir ? `${join(binaryDir, version, 'etcd')} is missing and ` : ''}${SYSTEM_ETCD} is ${found}`);
  }
  return SYSTEM_ETCD;
}
