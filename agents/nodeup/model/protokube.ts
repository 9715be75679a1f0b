// protokube on the control plane: its unit and environment file. The binary
// is the Mooring multi-call binary that user-data installed.
import { FileTask } from '../tasks/file.js';
import { LeftOutTask } from '../tasks/missing.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { MOORING_BIN, type ModelInput } from './context.js';
import { environmentFile, execCommand } from './systemd-syntax.js';

/**
 * protokube in this build only answers --help/--version: a unit that runs it
 * would crash-loop, and every nodeup run would start it again (a run that
 * always "changes" something). Until it is implemented its service is reported
 * as skipped, with this reason; flip this when protokube runs.
 */
export const PROTOKUBE_RUNS = false;

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
  if (!PROTOKUBE_RUNS) return [env, new LeftOutTask('Service:protokube.service', 'protokube is not implemented in this build yet (it answers --help and --version only)')];
  return [env, new ServiceTask({ name: 'protokube.service', unit, restartOn: [env.id] })];
}
