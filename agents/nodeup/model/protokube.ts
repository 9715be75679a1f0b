// protokube on the control plane: its unit and environment file. The binary
// is the Mooring multi-call binary that user-data installed.
import { FileTask } from '../tasks/file.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { MOORING_BIN, type ModelInput } from './context.js';
import { environmentFile, execCommand } from './systemd-syntax.js';

export function protokubeTasks(input: ModelInput): Task[] {
  const envPath = '/etc/sysconfig/protokube';
  const env = new FileTask({
    path: envPath,
    content: environmentFile('Written by nodeup.', {
      PROTOKUBE_CLUSTER: input.nodeConfig.clusterName,
      PROTOKUBE_CONFIG_BASE: input.nodeConfig.configBase,
      PROTOKUBE_MASTER_INTERNAL_NAME: input.nodeConfig.masterInternalName,
    }),
  });
  const unit = `# Written by nodeup.
[Unit]
Description=Mooring protokube: /etc/hosts names, addon channels, node labels
After=network-online.target containerd.service
Wants=network-online.target

[Service]
EnvironmentFile=${envPath}
ExecStart=${execCommand([`${MOORING_BIN}/protokube`])}
Restart=always
RestartSec=3s

[Install]
WantedBy=multi-user.target
`;
  return [env, new ServiceTask({ name: 'protokube.service', unit, restartOn: [env.id] })];
}
