// Spec fidelity (issue 10): component settings whose values would reach a flag or
// the kubelet's config file in a form their component cannot read, kOps'
// additional objects kOps refuses, clouds the agents do not run, kOps' IPv6
// subnet allocations written wrong, and a taint kOps takes but kubelet does not.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { HostileCase, World } from '../case.js';

function clusterWith(w: World, keys: Array<string | number>, value: unknown): string {
  const doc = parseDocument(readFileSync(join(w.storeDir, w.cluster, 'config'), 'utf8'));
  doc.setIn(keys, value);
  return w.file('edited.yaml', String(doc));
}

function badSetting(name: string, keys: Array<string | number>, value: unknown, message: RegExp): HostileCase {
  return {
    name,
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'replace', '-f', clusterWith(w, keys, value)] }),
    exit: 3,
    message,
  };
}

/** The stored Cluster and groups, with more documents after them, as one create -f file (for a new store). */
function allWith(w: World, ...extra: string[]): string {
  const dir = join(w.storeDir, w.cluster);
  const docs = [readFileSync(join(dir, 'config'), 'utf8'), ...['control-plane-local-a', 'nodes-local-a'].map((g) => readFileSync(join(dir, 'instancegroup', g), 'utf8')), ...extra];
  return w.file('all.yaml', docs.join('---\n'));
}

export const cases: HostileCase[] = [
  badSetting('a kubelet feature gate that is neither true nor false', ['spec', 'kubelet', 'featureGates', 'ImageVolume'], 'maybe',
    /edited\.yaml:\d+: spec\.kubelet\.featureGates: invalid feature gate value "ImageVolume"="maybe" \(want true or false\)/),
  badSetting('an API server duration in words', ['spec', 'kubeAPIServer', 'compactionInterval'], 'soon',
    /spec\.kubeAPIServer\.compactionInterval: invalid duration "soon"/),
  badSetting('an API server quantity with a made-up suffix', ['spec', 'kubeAPIServer', 'auditWebhookBatchThrottleQps'], '3.14q',
    /spec\.kubeAPIServer\.auditWebhookBatchThrottleQps: invalid quantity "3\.14q"/),
  badSetting('a kubelet eviction threshold written with = instead of <', ['spec', 'kubelet', 'evictionHard'], 'memory.available=100Mi',
    /spec\.kubelet\.evictionHard: invalid key\/value pair "memory\.available=100Mi"/),
  badSetting('a controller-manager flag list given as one string', ['spec', 'kubeControllerManager', 'controllers'], '*,-nodeipam',
    /spec\.kubeControllerManager\.controllers: must be a list of strings/),
  badSetting('a kube-proxy flag number given as a string', ['spec', 'kubeProxy', 'conntrackMaxPerCore'], '65536',
    /spec\.kubeProxy\.conntrackMaxPerCore: must be a number/),
  badSetting('a subnet IPv6 allocation that is not /<size>#<hex>', ['spec', 'subnets', 0, 'ipv6CIDR'], '/64#zz',
    /spec\.subnets\[0\]\.ipv6CIDR: invalid IPv6 allocation "\/64#zz"/),
  {
    name: 'a cloud the agents do not run, with other problems after it',
    program: 'mooring',
    prepare: (w) => {
      const doc = parseDocument(readFileSync(join(w.storeDir, w.cluster, 'config'), 'utf8'));
      doc.setIn(['spec', 'cloudProvider'], 'gce');
      doc.setIn(['spec', 'kubelet', 'featureGates', 'A'], 'maybe');
      doc.setIn(['spec', 'networkCIDR'], '10.0.0.0/33');
      return { args: ['--state', w.storeURL, 'replace', '-f', w.file('gce.yaml', String(doc))] };
    },
    exit: 3,
    message: /gce\.yaml:\d+: spec\.cloudProvider: unsupported cloud "gce" \(want aws or local\)/,
  },
  {
    name: "a KubeSchedulerConfiguration that sets the scheduler's kubeconfig",
    program: 'mooring',
    prepare: (w) => ({
      args: ['--state', `file://${w.dir}/other-state`, 'create', '-f',
        allWith(w, 'apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: /root/.kube/config\n')],
    }),
    exit: 3,
    message: /all\.yaml:\d+: clientConnection\.kubeconfig: KubeSchedulerConfiguration: is set by nodeup/,
  },
  {
    name: 'an additional object in a file that holds no Cluster',
    program: 'mooring',
    prepare: (w) => ({
      args: ['--state', w.storeURL, 'create', '-f', w.file('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n')],
    }),
    exit: 3,
    message: /cm\.yaml:\d+: kind: ConfigMap: additional objects go with exactly one Cluster in the same file/,
  },
  {
    name: 'a node config whose kubelet settings slipped past validation',
    program: 'nodeup',
    prepare: async (w) => {
      const path = join(w.cluster, 'igconfig/node/nodes-local-a/nodeupconfig.yaml');
      const doc = parseDocument(readFileSync(join(w.storeDir, path), 'utf8'));
      doc.setIn(['kubelet', 'shutdownGracePeriod'], '30 s\nExecStartPre=/bin/evil');
      w.file(join('state', path), String(doc));
      // The boot config carries the hash of the edited bytes, as if the store had been written that way.
      return { args: ['--conf', await w.bootConfig('nodes-local-a'), '--root', w.root, '--dry-run'] };
    },
    exit: 3,
    message: /nodeupconfig\.yaml:\d+: kubelet\.shutdownGracePeriod: invalid duration/,
  },
  {
    // kOps takes any effect word (util.ParseTaint); kubelet takes three. Kept in the spec, left off the
    // nodes, and said once by update (a dry run: nothing written).
    name: 'a taint with an effect kubelet does not take',
    program: 'mooring',
    prepare: (w) => {
      const path = join(w.cluster, 'instancegroup/nodes-local-a');
      const doc = parseDocument(readFileSync(join(w.storeDir, path), 'utf8'));
      doc.setIn(['spec', 'taints'], ['dedicated=x:Sometimes']);
      w.file(join('state', path), String(doc));
      return { args: ['--state', w.storeURL, 'update', 'cluster', w.cluster, '--agent-url', 'file:///opt/test/mooring', '--agent-sha256', 'a'.repeat(64)] };
    },
    exit: 0,
    // The local cloud also says, every time, that its etcd is Debian's.
    maxLines: 2,
    message: /warning: instance group "nodes-local-a": taint "dedicated=x:Sometimes" has no effect kubelet takes \(NoSchedule, PreferNoSchedule, NoExecute\); its nodes register without it/,
  },
];
