// etcd on the control plane: etcd binaries per version (release tarballs,
// extracted to /opt/etcd-v<version>), one `etcd-manager@.service` template and
// an instance per etcd cluster this group hosts a member of, each with its
// environment file. An instance restarts only when its env file, the template
// or its etcd binaries changed.
import { FileTask } from '../tasks/file.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { assetTask } from './assets.js';
import { MOORING_BIN, type ModelInput } from './context.js';

export const ETCD_MANAGER_TEMPLATE = 'etcd-manager@.service';
const ENV_DIR = '/etc/mooring/etcd-manager';

const TEMPLATE_UNIT = `# Written by nodeup. One instance per etcd cluster: etcd-manager@main, etcd-manager@events.
[Unit]
Description=Mooring etcd-manager for etcd cluster %i
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=${ENV_DIR}/%i.env
ExecStart=${MOORING_BIN}/etcd-manager
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
`;

export function etcdTasks(input: ModelInput): Task[] {
  const tasks: Task[] = [];
  const clusters = (input.nodeConfig.etcdClusters ?? []).filter((e) => e.memberName !== undefined);
  if (clusters.length === 0) return tasks;
  const binaries = new Map<string, string>();
  for (const version of new Set(clusters.map((e) => e.version))) {
    const task = assetTask(input, `etcd-v${version}-linux-${input.host.arch}.tar.gz`, { kind: 'extract', dir: `/opt/etcd-v${version}`, stripComponents: 1 });
    tasks.push(task);
    binaries.set(version, task.id);
  }
  const template = new ServiceTask({ name: ETCD_MANAGER_TEMPLATE, unit: TEMPLATE_UNIT, enabled: false, running: false });
  // The template itself is never enabled or started; the service task only writes it.
  tasks.push(template);
  for (const etcd of clusters) {
    const env = new FileTask({
      path: `${ENV_DIR}/${etcd.name}.env`,
      content: [
        `ETCD_MANAGER_CLUSTER_NAME=${etcd.name}`,
        `ETCD_MANAGER_MEMBER_NAME=${etcd.memberName ?? ''}`,
        `ETCD_MANAGER_MEMBERS=${etcd.memberNames.join(',')}`,
        `ETCD_MANAGER_ETCD_VERSION=${etcd.version}`,
        `ETCD_MANAGER_ETCD_DIR=/opt/etcd-v${etcd.version}`,
        `ETCD_MANAGER_CLIENT_PORT=${etcd.clientPort}`,
        `ETCD_MANAGER_PEER_PORT=${etcd.peerPort}`,
        `ETCD_MANAGER_GRPC_PORT=${etcd.grpcPort}`,
        `ETCD_MANAGER_QUARANTINE_CLIENT_PORT=${etcd.quarantineClientPort}`,
        `ETCD_MANAGER_BACKUP_STORE=${etcd.backupStore}`,
        `ETCD_MANAGER_BACKUP_RETENTION_DAYS=${etcd.backupRetentionDays}`,
        `ETCD_MANAGER_CLUSTER=${input.nodeConfig.clusterName}`,
        '',
      ].join('\n'),
    });
    tasks.push(env);
    tasks.push(new ServiceTask({
      name: `etcd-manager@${etcd.name}.service`,
      deps: [template.id],
      restartOn: [env.id, template.id, binaries.get(etcd.version) as string],
    }));
  }
  return tasks;
}
