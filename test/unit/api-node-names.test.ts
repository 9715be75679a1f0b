// Names in node and boot configs that nodeup turns into paths, unit names and
// store keys: refused as names when read by nodeup and when built by mooring.
import t from 'tap';
import { ExitCode } from '../../shared/errors.js';
import { completeCluster, newClusterObjects } from '../../shared/api/complete.js';
import { buildBootConfig, buildNodeConfig, parseBootConfig, parseNodeConfig, serializeNodeConfig, type NodeConfig } from '../../shared/api/nodeconfig.js';
import { nodeConfigNameProblems } from '../../shared/api/node-names.js';
import { SpecError, toYAML } from '../../shared/api/parse.js';

const KEYPAIRS = { 'kubernetes-ca': '1', 'service-account': '2', 'etcd-clients-ca': '3' };

function completed() {
  const user = newClusterObjects({ name: 'names.example.com', zones: ['us-east-1a'], controlPlaneCount: 1, nodeCount: 1, cloud: 'aws' });
  return completeCluster(user.cluster, user.instanceGroups, { configBase: 's3://state/names.example.com' });
}

function controlPlaneConfig(): NodeConfig {
  const { cluster, instanceGroups } = completed();
  const ig = instanceGroups.find((g) => g.spec.role === 'ControlPlane');
  if (!ig) throw new Error('no control-plane group');
  return buildNodeConfig(cluster, ig, KEYPAIRS);
}

function specError(fn: () => unknown): SpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpecError) return err;
    throw err;
  }
  throw new Error('expected a SpecError');
}

t.test('a node config built from a valid spec has no name problem', async (t) => {
  t.same(nodeConfigNameProblems(controlPlaneConfig()), []);
});

t.test('parseNodeConfig refuses names that would become paths out of place, naming the field', async (t) => {
  const cases: Array<[string, (nc: NodeConfig) => void, string]> = [
    ['etcd cluster name climbing out', (nc) => ((nc.etcdClusters ?? [])[0].name = '../../../../tmp/x'), 'etcdClusters[0].name'],
    ['etcd cluster name with a slash', (nc) => ((nc.etcdClusters ?? [])[1].name = 'events/x'), 'etcdClusters[1].name'],
    ['etcd version climbing out (a folder under /opt/etcd)', (nc) => ((nc.etcdClusters ?? [])[0].version = '../../etc'), 'etcdClusters[0].version'],
    ['etcd member name', (nc) => ((nc.etcdClusters ?? [])[0].memberName = '../a'), 'etcdClusters[0].memberName'],
    ['etcd member names', (nc) => ((nc.etcdClusters ?? [])[0].memberNames = ['a', 'b\nc']), 'etcdClusters[0].memberNames[1]'],
    ['containerd version climbing out (/opt/containerd-<version>)', (nc) => (nc.containerdVersion = '1.7.24/../../../x'), 'containerdVersion'],
    ['cluster name', (nc) => (nc.clusterName = '../x'), 'clusterName'],
    ['instance group name', (nc) => (nc.instanceGroupName = 'a/../../b'), 'instanceGroupName'],
    ['API server internal name (written to /etc/hosts)', (nc) => (nc.masterInternalName = 'api.internal\n10.0.0.1 evil'), 'masterInternalName'],
    ['sysctl key climbing out of /proc/sys', (nc) => (nc.sysctls = { ...nc.sysctls, 'net/../../../etc/shadow': '1' }), 'sysctls["net/../../../etc/shadow"]'],
  ];
  for (const [what, edit, field] of cases) {
    const nc = controlPlaneConfig();
    edit(nc);
    const err = specError(() => parseNodeConfig(serializeNodeConfig(nc), 'nc.yaml'));
    t.equal(err.path, field, `${what}: names ${field}`);
    t.equal(err.exitCode, ExitCode.InvalidSpec, `${what}: invalid input`);
    t.match(err.message, /^nc\.yaml:\d+: /, `${what}: names the file and line`);
    t.match(err.reason, /^invalid value /);
  }
  const ok = controlPlaneConfig();
  t.doesNotThrow(() => parseNodeConfig(serializeNodeConfig(ok), 'nc.yaml'), 'the unedited config parses');
});

t.test('buildNodeConfig never builds one with a bad name', async (t) => {
  const { cluster, instanceGroups } = completed();
  const ig = instanceGroups.find((g) => g.spec.role === 'ControlPlane');
  if (!ig) throw new Error('no control-plane group');
  // Completion and validation normally stop this earlier; the builder does not rely on it.
  (cluster.spec.etcdClusters ?? [])[0].name = '../../x';
  t.throws(() => buildNodeConfig(cluster, ig, KEYPAIRS), {
    message: `cluster "names.example.com", node config of instance group "${ig.metadata.name}": etcdClusters[0].name: invalid value "../../x" (want a lowercase DNS label such as main)`,
    exitCode: ExitCode.InvalidSpec,
  });
});

t.test('parseBootConfig refuses a cluster or group name that is not a DNS name', async (t) => {
  const { cluster, instanceGroups } = completed();
  const boot = buildBootConfig(cluster, instanceGroups[0], 'x', 's3://state/names.example.com');
  for (const key of ['clusterName', 'instanceGroupName'] as const) {
    const err = specError(() => parseBootConfig(toYAML({ ...boot, [key]: '../../igconfig' }), 'boot.yaml'));
    t.equal(err.path, key);
    t.equal(err.exitCode, ExitCode.InvalidSpec);
  }
  t.same(parseBootConfig(toYAML(boot), 'boot.yaml'), boot);
});
