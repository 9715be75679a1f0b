// protokube: its unit and environment file on every node but bastions, and on
// the control plane its kubeconfig. The binary is the Mooring multi-call
// binary that user-data installed. protokube's own flags, as PROTOKUBE_<FLAG>
// (a test reads this file with protokube's flag parser, so a name it does not
// know fails there):
// - control plane: registers the instance, keeps api.internal in the hosts
//   file, applies the bootstrap channel and labels and taints its node;
// - other nodes: --names-only, follows the control plane's published
//   addresses into the hosts file, cheaply (one conditional GET a poll).
import { FileTask } from '../tasks/file.js';
import { issuedClientCredentials, KubeconfigTask } from '../tasks/certificate.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { isControlPlaneRole, MOORING_BIN, type ModelInput } from './context.js';
import { environmentFile, execCommand } from './systemd-syntax.js';

export const PROTOKUBE_ENV = '/etc/sysconfig/protokube';
export const PROTOKUBE_KUBECONFIG = '/var/lib/protokube/kubeconfig';

/** Nodes that run protokube: every role that talks to the API server through its internal name. */
export function runsProtokube(input: ModelInput): boolean {
  return input.nodeConfig.instanceGroupRole !== 'Bastion';
}

/** The unit's settings, as protokube's own flags in their PROTOKUBE_<FLAG> form. */
export function protokubeSettings(input: ModelInput): Record<string, string> {
  const nc = input.nodeConfig;
  const settings: Record<string, string> = {
    PROTOKUBE_CLUSTER: nc.clusterName,
    PROTOKUBE_CONFIG_BASE: nc.configBase,
    PROTOKUBE_MASTER_INTERNAL_NAME: nc.masterInternalName,
  };
  if (nc.cloudProvider === 'aws') settings.PROTOKUBE_CLOUD = 'aws';
  const seeds = input.boot.apiServerIPs ?? [];
  if (seeds.length > 0) settings.PROTOKUBE_SEED_ADDRESS = seeds.join(',');
  if (isControlPlaneRole(nc)) {
    settings.PROTOKUBE_KUBECONFIG = PROTOKUBE_KUBECONFIG;
    if (nc.taints.length > 0) settings.PROTOKUBE_NODE_TAINT = nc.taints.join(',');
  } else {
    settings.PROTOKUBE_NAMES_ONLY = 'true';
  }
  return settings;
}

export function protokubeTasks(input: ModelInput): Task[] {
  if (!runsProtokube(input)) return [];
  const controlPlane = isControlPlaneRole(input.nodeConfig);
  const env = new FileTask({
    path: PROTOKUBE_ENV,
    content: environmentFile(`Written by nodeup: protokube's settings (its flags as PROTOKUBE_<FLAG>)${controlPlane ? '' : ', names-only on this node'}.`, protokubeSettings(input)),
  });
  const tasks: Task[] = [env];
  const restartOn = [env.id];
  if (controlPlane) {
    // Addons install RBAC and cluster-scoped objects: protokube applies them as a cluster admin, on this node's API server.
    const kubeconfig = new KubeconfigTask(
      { path: PROTOKUBE_KUBECONFIG, server: 'https://127.0.0.1', user: 'protokube' },
      issuedClientCredentials(input.ca, { ca: 'kubernetes-ca', commonName: 'protokube', organization: ['system:masters'], usage: 'client' }),
    );
    tasks.push(kubeconfig);
    restartOn.push(kubeconfig.id);
  }
  const unit = `# Written by nodeup.
[Unit]
Description=Mooring protokube: ${controlPlane ? '/etc/hosts names, addon channels, node labels' : '/etc/hosts names of the control plane'}
After=network-online.target${controlPlane ? ' containerd.service' : ''}
Wants=network-online.target

[Service]
EnvironmentFile=${PROTOKUBE_ENV}
ExecStart=${execCommand([`${MOORING_BIN}/protokube`])}
Restart=always
RestartSec=3s

[Install]
WantedBy=multi-user.target
`;
  tasks.push(new ServiceTask({ name: 'protokube.service', unit, restartOn }));
  return tasks;
}
