// Everything a nodeup test needs: a cluster in a file:// state store made by
// the real mooring CLI from a fixture spec (with fixed fixture CAs, so plans
// are stable), node configs carrying the test's assets, boot configs from
// `mooring get bootconfig`, and a root folder that looks like Debian 12.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNodeConfig, serializeNodeConfig } from '../../shared/api/nodeconfig.js';
import { openStore } from '../../shared/store/index.js';
import { main as nodeupMain } from '../../agents/nodeup/main.js';
import { mooring, TEST_AGENT_ARGS } from './cli.js';
import { tempDir, type Teardown } from './tmp.js';

export const CLUSTER = 'nodeup.example.com';
export const CONTROL_PLANE = 'control-plane-local-a';
export const WORKER = 'nodes-local-a';
const FIXTURES = fileURLToPath(new URL('../fixtures/nodeup/', import.meta.url));

export interface TestCluster {
  storeDir: string;
  storeURL: string;
  /** Writes (or rewrites) the node configs with these assets and returns the boot config path of a group. */
  bootConfig(group: string): Promise<string>;
  setAssets(assets: string[]): Promise<void>;
  /** Runs `mooring replace` with an edited spec and `update cluster --yes`, keeping the assets. */
  editCluster(edit: (spec: Record<string, unknown>) => void): Promise<void>;
}

async function run(args: string[]): Promise<string> {
  const r = await mooring(args);
  if (r.code !== 0) throw new Error(`mooring ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export async function makeCluster(t: Teardown): Promise<TestCluster> {
  const storeDir = tempDir(t, 'nodeup-store-');
  const storeURL = `file://${storeDir}`;
  const state = ['--state', storeURL];
  await run([...state, 'create', '-f', join(FIXTURES, 'cluster.yaml')]);
  // Fixed CAs and node client keypairs (kubelet, kube-proxy): update cluster reuses existing
  // keysets, so keypair ids and certificates are stable.
  cpSync(join(FIXTURES, 'ca-store/pki'), join(storeDir, CLUSTER, 'pki'), { recursive: true });
  // Until a test sets its own, node configs keep the assets update wrote (kOps' upstream
  // URLs, whose hashes the shipped table knows), so user-data pins their hash.
  let assets: string[] | undefined;
  const update = async (): Promise<void> => {
    await run([...state, 'update', 'cluster', CLUSTER, '--yes', ...TEST_AGENT_ARGS]);
    await writeAssets();
  };
  const writeAssets = async (): Promise<void> => {
    if (assets === undefined) return;
    const store = openStore(storeURL).sub(CLUSTER);
    for (const path of await store.list('igconfig/')) {
      const nc = parseNodeConfig((await store.read(path)).toString('utf8'), path);
      nc.assets = { amd64: assets, arm64: assets };
      await store.write(path, serializeNodeConfig(nc));
    }
  };
  await update();
  const confDir = tempDir(t, 'nodeup-conf-');
  return {
    storeDir,
    storeURL,
    async bootConfig(group) {
      const path = join(confDir, `${group}.yaml`);
      writeFileSync(path, await run([...state, 'get', 'bootconfig', CLUSTER, '--instance-group', group]));
      return path;
    },
    async setAssets(next) {
      assets = next;
      await writeAssets();
    },
    async editCluster(edit) {
      const file = join(confDir, 'cluster-edit.yaml');
      const text = await run([...state, 'get', 'cluster', CLUSTER, '-o', 'json']);
      const cluster = JSON.parse(text) as { spec: Record<string, unknown> };
      edit(cluster.spec);
      writeFileSync(file, JSON.stringify(cluster));
      await run([...state, 'replace', '-f', file]);
      await update();
    },
  };
}

const DEBIAN_OS_RELEASE = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`;

/** Packages a fresh root claims to have, in dpkg's own database format (read by the real dpkg-query). */
export const PREINSTALLED = ['conntrack', 'ebtables', 'ethtool', 'iptables', 'socat', 'ca-certificates'];

export function makeRoot(t: Teardown, options: { osRelease?: string; installed?: string[] } = {}): string {
  const root = tempDir(t, 'nodeup-root-');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/os-release'), options.osRelease ?? DEBIAN_OS_RELEASE);
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  const dpkg = join(root, 'var/lib/dpkg');
  mkdirSync(join(dpkg, 'info'), { recursive: true });
  mkdirSync(join(dpkg, 'updates'), { recursive: true });
  writeFileSync(join(dpkg, 'available'), '');
  writeFileSync(
    join(dpkg, 'status'),
    (options.installed ?? PREINSTALLED)
      .map((name) => `Package: ${name}\nStatus: install ok installed\nPriority: optional\nSection: net\nMaintainer: test <test@example.com>\nArchitecture: all\nVersion: 1.0\nDescription: test stand-in for ${name}\n`)
      .join('\n'),
  );
  return root;
}

export interface NodeupResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function nodeup(args: string[]): Promise<NodeupResult> {
  let stdout = '';
  let stderr = '';
  const code = await nodeupMain(args, { out: (s) => void (stdout += s), err: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

/** Generated stand-ins for the release files nodeup installs, as the mirror serves them. */
export function generatedAssets(t: Teardown): Map<string, Buffer> {
  const work = tempDir(t, 'nodeup-assets-');
  const files = new Map<string, Buffer>();
  const script = (name: string): string => `#!/bin/sh\necho "${name} stand-in $*"\n`;
  files.set('/kubelet', Buffer.from(script('kubelet')));
  const tarball = (name: string, top: string, entries: string[]): void => {
    for (const entry of entries) {
      mkdirSync(join(work, name, top, entry, '..'), { recursive: true });
      writeFileSync(join(work, name, top, entry), script(entry), { mode: 0o755 });
    }
    // Fixed mtime and owner: the same bytes (and hash) every run.
    execFileSync('tar', ['-czf', join(work, `${name}.tgz`), '--mtime=@0', '--owner=0', '--group=0', '--sort=name', '-C', join(work, name), top]);
    files.set(`/${name}`, Buffer.from(execFileSync('cat', [join(work, `${name}.tgz`)])));
  };
  tarball('etcd-v3.4.23-linux-amd64.tar.gz', 'etcd-v3.4.23-linux-amd64', ['etcd', 'etcdctl']);
  tarball('containerd-1.7.24-linux-amd64.tar.gz', 'bin', ['containerd', 'containerd-shim-runc-v2', 'ctr']);
  return files;
}
