// etcd on the control plane: etcd binaries per version (release tarballs,
// extracted to /opt/etcd/<version>; on the local cloud, whose default is Debian
// 12's etcd 3.4.23, its etcd-server package when the node config lists no
// tarball for it), one `etcd-manager@.service` template and
// an instance per etcd cluster this group hosts a member of, each with its
// environment file. An instance restarts only when its env file, the template
// or its etcd binaries changed.
import { etcdAssetName } from '../../../shared/api/assets.js';
import { LOCAL_CLOUD_ETCD_VERSION } from '../../../shared/api/options/etcd.js';
import { PackagesTask } from '../tasks/package.js';
import { FileTask } from '../tasks/file.js';
import { ServiceTask } from '../tasks/service.js';
import type { Task } from '../engine/task.js';
import { assetTask } from './assets.js';
import { assetsByName, MOORING_BIN, type ModelInput } from './context.js';
import { environmentFile, execCommand } from './systemd-syntax.js';

export const ETCD_MANAGER_TEMPLATE = 'etcd-manager@.service';
const ENV_DIR = '/etc/mooring/etcd-manager';
/** etcd-manager's --etcd-binary-dir layout: <dir>/<version>/etcd. */
const ETCD_BINARY_DIR = '/opt/etcd';

type EtcdClusterConfig = NonNullable<ModelInput['nodeConfig']['etcdClusters']>[number];

/** kOps names the main cluster `etcd` and the others `etcd-<name>` in etcd-manager's --cluster-name. */
function etcdManagerClusterName(etcd: string): string {
  return etcd === 'main' ? 'etcd' : `etcd-${etcd}`;
}

/**
 * The instance's settings, as etcd-manager's own flags in their ETCD_MANAGER_<FLAG> form
 * (the way kOps starts it: volumes found by tags, URLs on the member's DNS name).
 * A test parses this with etcd-manager's flag parser, so a name it does not know fails there.
 */
export function etcdManagerEnv(input: ModelInput, etcd: EtcdClusterConfig, binaries: 'versioned' | 'system' = 'versioned'): string {
  const cluster = input.nodeConfig.clusterName;
  const volumeTags = [`k8s.io/etcd/${etcd.name}`, 'k8s.io/role/control-plane=1', `kubernetes.io/cluster/${cluster}=owned`];
  const settings: Record<string, string | number> = {
    CLUSTER_NAME: etcdManagerClusterName(etcd.name),
    BACKUP_STORE: etcd.backupStore,
    CLIENT_URLS: `https://__name__:${etcd.clientPort}`,
    PEER_URLS: `https://__name__:${etcd.peerPort}`,
    QUARANTINE_CLIENT_URLS: `https://__name__:${etcd.quarantineClientPort}`,
    GRPC_PORT: etcd.grpcPort,
    DNS_SUFFIX: cluster,
    VOLUME_PROVIDER: input.nodeConfig.cloudProvider === 'aws' ? 'aws' : 'local',
    // The local cloud's instances have an IMDS-shaped metadata service: the member's address comes from it.
    ...(input.nodeConfig.cloudProvider === 'local' ? { INSTANCE_METADATA: 'true' } : {}),
    VOLUME_TAG: volumeTags.join(','),
    VOLUME_NAME_TAG: `k8s.io/etcd/${etcd.name}`,
    // Without it, etcd-manager runs /usr/bin/etcd (Debian's package) whatever its version.
    ...(binaries === 'versioned' ? { ETCD_BINARY_DIR } : {}),
    // One directory per etcd cluster: main and events must not overwrite each other's keys.
    PKI_DIR: `/etc/kubernetes/pki/etcd-manager-${etcd.name}`,
  };
  return environmentFile(
    `Written by nodeup: etcd-manager@${etcd.name}.service's settings (etcd-manager's flags as ETCD_MANAGER_<FLAG>).`,
    Object.fromEntries(Object.entries(settings).map(([k, v]) => [`ETCD_MANAGER_${k}`, v])),
  );
}

const TEMPLATE_UNIT = `# Written by nodeup. One instance per etcd cluster: etcd-manager@main, etcd-manager@events.
[Unit]
Description=Mooring etcd-manager for etcd cluster %i
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=${ENV_DIR}/%i.env
ExecStart=${execCommand([`${MOORING_BIN}/etcd-manager`])}
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
`;

export function etcdTasks(input: ModelInput): Task[] {
  const tasks: Task[] = [];
  const clusters = (input.nodeConfig.etcdClusters ?? []).filter((e) => e.memberName !== undefined);
  if (clusters.length === 0) return tasks;
  const binaries = new Map<string, { task: string; kind: 'versioned' | 'system' }>();
  for (const version of new Set(clusters.map((e) => e.version))) {
    const tarball = etcdAssetName(version, input.host.arch);
    if (!assetsByName(input).has(tarball) && input.nodeConfig.cloudProvider === 'local' && version === LOCAL_CLOUD_ETCD_VERSION) {
      const pkg = new PackagesTask('etcd', ['etcd-server']);
      tasks.push(pkg);
      binaries.set(version, { task: pkg.id, kind: 'system' });
      continue;
    }
    const task = assetTask(input, tarball, { kind: 'extract', dir: `${ETCD_BINARY_DIR}/${version}`, stripComponents: 1 });
    tasks.push(task);
    binaries.set(version, { task: task.id, kind: 'versioned' });
  }
  const template = new ServiceTask({ name: ETCD_MANAGER_TEMPLATE, unit: TEMPLATE_UNIT, enabled: false, running: false });
  // The template itself is never enabled or started; the service task only writes it.
  tasks.push(template);
  for (const etcd of clusters) {
    const binary = binaries.get(etcd.version) as { task: string; kind: 'versioned' | 'system' };
    const env = new FileTask({ path: `${ENV_DIR}/${etcd.name}.env`, content: etcdManagerEnv(input, etcd, binary.kind) });
    tasks.push(env);
    tasks.push(new ServiceTask({
      name: `etcd-manager@${etcd.name}.service`,
      deps: [template.id],
      restartOn: [env.id, template.id, binary.task],
    }));
  }
  return tasks;
}
