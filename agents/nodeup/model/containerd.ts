// containerd: the binaries (a release tarball from the node config's assets,
// else the distro package), runc and the CNI plugins (when listed), config.toml
// and the unit, all from spec.containerd. The unit restarts only when
// config.toml, the binaries or the unit itself changed.
import { containerdAssetName } from '../../../shared/api/assets.js';
import { MODEL_FIELDS, OWNED_FIELDS } from '../../../shared/api/component-render.js';
import { durationFlagValue } from '../../../shared/api/k8s-values.js';
import { COMPONENT_STRUCTS, renderComponentFlags } from '../../../shared/api/kops-flags.js';
import { FileTask } from '../tasks/file.js';
import { PackagesTask } from '../tasks/package.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { assetNamed, assetTask } from './assets.js';
import { assetsByName, type ModelInput } from './context.js';
import { execCommand } from './systemd-syntax.js';
import { setPath, toToml, type TomlTable } from './toml.js';

export const CONTAINERD_CONFIG = '/etc/containerd/config.toml';
const REGISTRY_HOSTS_DIR = '/etc/containerd/certs.d';
export const RUNC_BIN = '/usr/local/sbin/runc';

function containerdSection(input: ModelInput): Record<string, unknown> {
  const value = input.cluster.spec.containerd;
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function versionParts(version: string): [number, number] {
  const [major = 0, minor = 0] = version.split('.').map((n) => Number.parseInt(n, 10));
  return [major, minor];
}

/** The folder the CNI plugins release is extracted to (a folder of its own: /opt/cni/bin stays the CNI's). */
export function cniPluginsDir(version: string): string {
  return `/opt/cni/plugins-v${version}`;
}

/** The CNI plugins release the node config lists for this node, if any. */
function cniPluginsAsset(input: ModelInput): { name: string; version: string } | undefined {
  for (const name of assetsByName(input).keys()) {
    const m = /^cni-plugins-linux-[a-z0-9]+-v(\d+\.\d+\.\d+)\.tgz$/.exec(name);
    if (m) return { name, version: m[1] };
  }
  return undefined;
}

/** kOps' configAdditions keys: table names joined by '.', a name with dots in double quotes. */
function additionPath(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of key) {
    if (ch === '"') quoted = !quoted;
    else if (ch === '.' && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

/**
 * config.toml from the spec, as kOps' nodeup writes it: containerd 2 speaks config
 * version 3 (version 4 from 2.3, whose plugin names are the same), containerd 1
 * version 2; the sandbox image, registry mirrors, SELinux, NRI and the user's
 * configAdditions from spec.containerd; runc with the systemd cgroup driver.
 * spec.containerd.configOverride replaces all of it. A containerd nodeup does not
 * install from its release (the distro's package: Debian 12 ships 1.6) gets version
 * 2, which every containerd reads.
 */
export function containerdConfigToml(input: ModelInput, fromRelease = true): string {
  const spec = containerdSection(input);
  if (typeof spec.configOverride === 'string') return spec.configOverride;
  const [major, minor] = fromRelease ? versionParts(input.nodeConfig.containerdVersion) : [1, 6];
  const config: TomlTable = {};
  const cni = cniPluginsAsset(input);
  const mirrors = typeof spec.registryMirrors === 'object' && spec.registryMirrors !== null && Object.keys(spec.registryMirrors).length > 0;
  if (major >= 2) {
    setPath(config, ['version'], major > 2 || minor >= 3 ? 4 : 3);
    const runtime = ['plugins', 'io.containerd.cri.v1.runtime'];
    const images = ['plugins', 'io.containerd.cri.v1.images'];
    const nri = typeof spec.nri === 'object' && spec.nri !== null ? (spec.nri as Record<string, unknown>) : undefined;
    if (nri && nri.enabled !== false) {
      setPath(config, ['plugins', 'io.containerd.nri.v1.nri', 'disable'], false);
      for (const key of ['pluginRequestTimeout', 'pluginRegistrationTimeout']) {
        if (typeof nri[key] === 'string') {
          const name = key === 'pluginRequestTimeout' ? 'plugin_request_timeout' : 'plugin_registration_timeout';
          setPath(config, ['plugins', 'io.containerd.nri.v1.nri', name], durationFlagValue(nri[key] as string));
        }
      }
    }
    if (spec.selinuxEnabled === true) setPath(config, [...runtime, 'enable_selinux'], true);
    if (typeof spec.sandboxImage === 'string') setPath(config, [...images, 'pinned_images', 'sandbox'], spec.sandboxImage);
    if (mirrors) setPath(config, [...images, 'registry', 'config_path'], REGISTRY_HOSTS_DIR);
    setPath(config, [...runtime, 'containerd', 'default_runtime_name'], 'runc');
    setPath(config, [...runtime, 'containerd', 'runtimes', 'runc', 'runtime_type'], 'io.containerd.runc.v2');
    setPath(config, [...runtime, 'containerd', 'runtimes', 'runc', 'options', 'SystemdCgroup'], true);
    // The CNI plugins release sits beside /opt/cni/bin, where network plugins put theirs.
    setPath(config, [...runtime, 'cni', 'bin_dirs'], ['/opt/cni/bin', ...(cni ? [cniPluginsDir(cni.version)] : [])]);
    setPath(config, [...runtime, 'cni', 'conf_dir'], '/etc/cni/net.d');
  } else {
    const cri = ['plugins', 'io.containerd.grpc.v1.cri'];
    setPath(config, ['version'], 2);
    if (spec.selinuxEnabled === true) setPath(config, [...cri, 'enable_selinux'], true);
    if (typeof spec.sandboxImage === 'string') setPath(config, [...cri, 'sandbox_image'], spec.sandboxImage);
    if (mirrors) setPath(config, [...cri, 'registry', 'config_path'], REGISTRY_HOSTS_DIR);
    setPath(config, [...cri, 'containerd', 'default_runtime_name'], 'runc');
    setPath(config, [...cri, 'containerd', 'runtimes', 'runc', 'runtime_type'], 'io.containerd.runc.v2');
    setPath(config, [...cri, 'containerd', 'runtimes', 'runc', 'options', 'SystemdCgroup'], true);
    setPath(config, [...cri, 'cni', 'bin_dir'], '/opt/cni/bin');
    setPath(config, [...cri, 'cni', 'conf_dir'], '/etc/cni/net.d');
  }
  const additions = typeof spec.configAdditions === 'object' && spec.configAdditions !== null ? (spec.configAdditions as Record<string, unknown>) : {};
  for (const key of Object.keys(additions).sort()) {
    const value = additions[key];
    const path = additionPath(key);
    if (typeof value === 'number') setPath(config, path, value);
    else if (value === true || value === 'true') setPath(config, path, true);
    else if (value === false || value === 'false') setPath(config, path, false);
    else setPath(config, path, String(value));
  }
  return `# Written by nodeup from spec.containerd.\n${toToml(config)}`;
}

/** kOps: one hosts.toml per mirrored registry ("*" is containerd's _default), endpoints in the spec's order. */
function registryHostsFiles(input: ModelInput): FileTask[] {
  const mirrors = containerdSection(input).registryMirrors;
  if (typeof mirrors !== 'object' || mirrors === null || containerdSection(input).configOverride !== undefined) return [];
  return Object.keys(mirrors).sort().map((name) => {
    const endpoints = (mirrors as Record<string, unknown>)[name];
    const hosts = (Array.isArray(endpoints) ? endpoints : []).map((e) => `[host.${JSON.stringify(String(e))}]\n  capabilities = ["pull", "resolve"]\n`);
    const dir = name === '*' ? '_default' : name;
    return new FileTask({ path: `${REGISTRY_HOSTS_DIR}/${dir}/hosts.toml`, content: hosts.join('\n') });
  });
}

/** containerd's command-line flags from the spec (kOps' CONTAINERD_OPTS: log level, root, state, address). */
export function containerdFlags(input: ModelInput): string[] {
  const values: Record<string, unknown> = { ...containerdSection(input), ...OWNED_FIELDS.containerd };
  return renderComponentFlags(COMPONENT_STRUCTS.containerd, values, MODEL_FIELDS.containerd).flags;
}

function unit(binary: string, flags: string[]): string {
  return `# Written by nodeup.
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-${execCommand(['/sbin/modprobe', 'overlay'])}
ExecStart=${execCommand([binary, '-c', CONTAINERD_CONFIG, ...flags])}
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=1048576
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`;
}

export function containerdTasks(input: ModelInput): Task[] {
  const version = input.nodeConfig.containerdVersion;
  const tarball = containerdAssetName(version, input.host.arch);
  const tasks: Task[] = [];
  let binary: string;
  let binaryTask: string;
  // A tarball the mirror leaves out is still the tarball: its task is skipped, not swapped for the package.
  const fromRelease = assetNamed(input, tarball);
  if (fromRelease) {
    const dir = `/opt/containerd-${version}`;
    const asset = assetTask(input, tarball, { kind: 'extract', dir });
    tasks.push(asset);
    binary = `${dir}/bin/containerd`;
    binaryTask = asset.id;
  } else {
    const pkg = new PackagesTask('containerd', ['containerd']);
    tasks.push(pkg);
    binary = '/usr/bin/containerd';
    binaryTask = pkg.id;
  }
  const restartOn = [binaryTask];
  // runc, from its release when the node config lists it (containerd's tarball has none).
  const runc = `runc.${input.host.arch}`;
  if (assetsByName(input).has(runc)) {
    const task = assetTask(input, runc, { kind: 'file', path: RUNC_BIN, mode: 0o755 });
    tasks.push(task);
    restartOn.push(task.id);
  }
  const cni = cniPluginsAsset(input);
  if (cni) tasks.push(assetTask(input, cni.name, { kind: 'extract', dir: cniPluginsDir(cni.version) }));
  const config = new FileTask({ path: CONTAINERD_CONFIG, content: containerdConfigToml(input, fromRelease) });
  tasks.push(config, ...registryHostsFiles(input));
  tasks.push(new ServiceTask({ name: 'containerd.service', unit: unit(binary, containerdFlags(input)), restartOn: [config.id, ...restartOn] }));
  return tasks;
}
