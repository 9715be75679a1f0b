// nodeup must never write outside --root: symlinks planted in the root at
// several depths, an asset cache that leads out, and a node config whose etcd
// cluster name climbs out. Each is refused before anything is written (exit 3,
// invalid input, naming the link or field); the runner checks that the whole
// world (store, root and the "outside" folder beside it) is unchanged.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseNodeConfig, serializeNodeConfig } from '../../../shared/api/nodeconfig.js';
import { StorePaths } from '../../../shared/api/types.js';
import type { HostileCase, World } from '../case.js';

const CONTROL_PLANE = 'control-plane-local-a';
const WORKER = 'nodes-local-a';
const OS_RELEASE = 'ID=debian\nVERSION_ID="12"\n';

/** A Debian-looking root and, beside it, an "outside" folder holding what nodeup would read if it followed a link there (so that code which follows it goes on to write). */
function prepareRoot(w: World): string {
  w.file('root/etc/os-release', OS_RELEASE);
  w.file('outside/os-release', OS_RELEASE);
  w.file('outside/secret', 'OUTSIDE-SECRET\n');
  return join(w.dir, 'outside');
}

/** Replaces the root's `nodePath` with a link to `target` (relative to the link's folder when asked). */
function plant(w: World, nodePath: string, target: string, relativeTarget: boolean): void {
  const link = join(w.root, nodePath);
  rmSync(link, { recursive: true, force: true });
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(relativeTarget ? relative(dirname(link), target) : target, link);
}

function linkCase(name: string, group: string, nodePath: string, into: string, relativeTarget: boolean, message: RegExp, extra: string[] = []): HostileCase {
  return {
    name,
    program: 'nodeup',
    async prepare(w) {
      const outside = prepareRoot(w);
      mkdirSync(join(outside, into), { recursive: true });
      plant(w, nodePath, join(outside, into), relativeTarget);
      return { args: ['--conf', await w.bootConfig(group), '--root', w.root, '--retries', '0', ...extra] };
    },
    exit: 3,
    message,
    never: [/OUTSIDE-SECRET/],
  };
}

export const cases: HostileCase[] = [
  linkCase('nodeup --root where etc/ is a symlink to an absolute folder outside', WORKER, '/etc', '', false,
    /root\/etc is a symlink to \/.*\/outside, an absolute path; under --root .* nodeup follows only relative links/),
  linkCase('nodeup --root where etc/kubernetes -> ../../outside', CONTROL_PLANE, '/etc/kubernetes', '', true,
    /root\/etc\/kubernetes is a symlink to \.\.\/\.\.\/outside, which leads out of --root /),
  linkCase('nodeup --root --dry-run where srv/kubernetes/kube-apiserver (keys) -> ../../../outside/pki', CONTROL_PLANE, '/srv/kubernetes/kube-apiserver', 'pki', true,
    /root\/srv\/kubernetes\/kube-apiserver is a symlink to \.\.\/\.\.\/\.\.\/outside\/pki, which leads out of --root /, ['--dry-run']),
  linkCase('nodeup --root where etc/kubernetes/manifests is an absolute link outside', CONTROL_PLANE, '/etc/kubernetes/manifests', 'manifests', false,
    /root\/etc\/kubernetes\/manifests is a symlink to \/.*\/outside\/manifests, an absolute path/),
  linkCase('nodeup --root where the asset cache folder var/cache -> ../../outside', WORKER, '/var/cache', '', true,
    /\/var\/cache\/nodeup: .*root\/var\/cache is a symlink to \.\.\/\.\.\/outside, which leads out of --root /),
  {
    name: 'nodeup --cache that climbs out of --root',
    program: 'nodeup',
    async prepare(w) {
      prepareRoot(w);
      return { args: ['--conf', await w.bootConfig(WORKER), '--root', w.root, '--cache', '../../outside', '--retries', '0'] };
    },
    exit: 2,
    message: /--cache must be an absolute path without \. or \.\. components/,
  },
  {
    name: 'a node config whose etcd cluster name climbs out of the root (hash re-pinned in the boot config)',
    program: 'nodeup',
    async prepare(w) {
      const outside = prepareRoot(w);
      const path = join(w.storeDir, w.cluster, StorePaths.nodeupConfig('ControlPlane', CONTROL_PLANE));
      const nc = parseNodeConfig(readFileSync(path, 'utf8'), path);
      // /etc/mooring/etcd-manager/<name>.env would land in the outside folder.
      (nc.etcdClusters ?? [])[0].name = join(relative(join(w.root, 'etc/mooring/etcd-manager'), outside), 'x');
      writeFileSync(path, serializeNodeConfig(nc));
      return { args: ['--conf', await w.bootConfig(CONTROL_PLANE), '--root', w.root, '--retries', '0'] };
    },
    exit: 3,
    message: /nodeupconfig\.yaml:\d+: etcdClusters\[0\]\.name: invalid value "\.\.\/\.\.\/\.\.\/\.\.\/outside\/x" \(want a lowercase DNS label/,
  },
];
