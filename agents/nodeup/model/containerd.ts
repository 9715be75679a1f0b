// containerd: the binaries (a release tarball from the node config's assets,
// else the distro package), config.toml and the unit. The unit restarts only
// when config.toml, the binaries or the unit itself changed.
import { containerdAssetName } from '../../../shared/api/assets.js';
import { FileTask } from '../tasks/file.js';
import { PackagesTask } from '../tasks/package.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { assetNamed, assetTask } from './assets.js';
import type { ModelInput } from './context.js';
import { execCommand } from './systemd-syntax.js';

export const CONTAINERD_CONFIG = '/etc/containerd/config.toml';

export function containerdConfigToml(): string {
  return `# Written by nodeup.
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
`;
}

function unit(binary: string): string {
  return `# Written by nodeup.
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-${execCommand(['/sbin/modprobe', 'overlay'])}
ExecStart=${execCommand([binary])}
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
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
  if (assetNamed(input, tarball)) {
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
  const config = new FileTask({ path: CONTAINERD_CONFIG, content: containerdConfigToml() });
  tasks.push(config);
  tasks.push(new ServiceTask({ name: 'containerd.service', unit: unit(binary), restartOn: [config.id, binaryTask] }));
  return tasks;
}
