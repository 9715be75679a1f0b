// From a component section of the completed spec to what its component gets:
// kOps' flag formats (pkg/flagbuilder), the kubelet's config-file conversions
// (nodeup/pkg/model/kubelet.go), the tables that say which field goes where,
// and the warnings `update` prints for a field no component would get.
import t from 'tap';
import {
  DEFAULTED_FIELDS,
  flagValueProblems,
  KUBELET_CONFIG_FIELDS,
  kubeletConfigFields,
  MODEL_FIELDS,
  OWNED_FIELDS,
  renderWarnings,
  type ComponentSection,
} from '../../shared/api/component-render.js';
import { canonicalQuantity, durationFlagValue, quantityFlagValue } from '../../shared/api/k8s-values.js';
import { COMPONENT_STRUCTS, componentFields, FlagValueError, flagsOf, renderComponentFlags } from '../../shared/api/kops-flags.js';
import type { Cluster } from '../../shared/api/types.js';

t.test("kOps' flag formats", async (t) => {
  const api = componentFields('KubeAPIServerConfig');
  t.same(flagsOf('enableAdmissionPlugins', api.enableAdmissionPlugins, ['A', 'B']), ['--enable-admission-plugins=A,B'], 'a list: joined by commas');
  t.same(flagsOf('oidcRequiredClaim', api.oidcRequiredClaim, ['a=1', 'b=2']), ['--oidc-required-claim=a=1', '--oidc-required-claim=b=2'], 'a repeated flag: once per item');
  t.same(flagsOf('runtimeConfig', api.runtimeConfig, { 'b/v1': 'true', 'a/v1': 'false' }), ['--runtime-config=a/v1=false,b/v1=true'], 'a map: sorted k=v pairs');
  t.same(flagsOf('compactionInterval', api.compactionInterval, '5m'), ['--etcd-compaction-interval=5m0s'], "a duration: Go's form");
  t.same(flagsOf('auditWebhookBatchThrottleQps', api.auditWebhookBatchThrottleQps, '3140m'), ['--audit-webhook-batch-throttle-qps=3.140'], 'a quantity: its decimal');
  t.same(flagsOf('logFormat', api.logFormat, 'text'), [], "the tag's flag-empty value is left out");
  t.same(flagsOf('logFormat', api.logFormat, 'json'), ['--logging-format=json']);
  t.same(flagsOf('allowPrivileged', api.allowPrivileged, false), ['--allow-privileged=false'], 'a bool, false included');
  t.same(flagsOf('enableAdmissionPlugins', api.enableAdmissionPlugins, []), [], 'an empty list: no flag');
  t.throws(() => flagsOf('allowPrivileged', api.allowPrivileged, 'yes'), FlagValueError, 'a bool written as a string is refused');
  t.throws(() => flagsOf('compactionInterval', api.compactionInterval, '5 minutes'), /invalid duration "5 minutes"/);
  t.throws(() => flagsOf('auditWebhookBatchThrottleQps', api.auditWebhookBatchThrottleQps, '3.14q'), /invalid quantity "3\.14q"/);
  t.same(flagsOf('image', api.image, 'x'), [], 'a field without a flag tag renders no flag');

  t.same(['3.14', '0.5', '100Mi', '1.5Gi', '1000m', '2'].map(canonicalQuantity), ['3140m', '500m', '100Mi', '1536Mi', '1', '2'], "quantities as Kubernetes writes them (kOps' completed spec)");
  t.same(['3140m', '100Mi', '2'].map(quantityFlagValue), ['3.140', '104857600', '2']);
  t.same(['30s', '1m', '90m', '1.5h', '500ms', '0'].map(durationFlagValue), ['30s', '1m0s', '1h30m0s', '1h30m0s', '500ms', '0s']);
});

t.test('a section renders every set flag field, sorted, and names what it cannot render', async (t) => {
  const rendered = renderComponentFlags('KubeControllerManagerConfig', {
    clusterName: 'c.example.com',
    leaderElection: { leaderElect: true, leaderElectLeaseDuration: '15s' },
    featureGates: { B: 'false', A: 'true' },
    horizontalPodAutoscalerSyncPeriod: '30s',
    image: 'registry.k8s.io/kube-controller-manager:v1.34.10',
    someFutureField: 1,
  }, new Set(['image']));
  t.same(rendered.flags, [
    '--cluster-name=c.example.com',
    '--feature-gates=A=true,B=false',
    '--horizontal-pod-autoscaler-sync-period=30s',
    '--leader-elect-lease-duration=15s',
    '--leader-elect=true',
  ]);
  t.same(rendered.unrendered, ['someFutureField'], 'a field kOps has no flag for is named, not dropped silently');
});

t.test("the kubelet's config file: kOps' conversions", async (t) => {
  t.same(kubeletConfigFields({
    clusterDNS: '100.64.0.10',
    evictionHard: 'memory.available<100Mi,nodefs.available<10%',
    evictionSoftGracePeriod: 'memory.available=1m30s',
    featureGates: { ImageVolume: 'true', Foo: 'False' },
    enforceNodeAllocatable: 'pods,system-reserved',
    shutdownGracePeriod: '1m',
    podManifestPath: '/etc/kubernetes/manifests',
    clientCaFile: '/srv/kubernetes/ca.crt',
    anonymousAuth: false,
    maxPods: 50,
    eventRecordQPS: 5,
    eventQPS: 10,
    kubeconfigPath: '/var/lib/kubelet/kubeconfig',
  }), {
    clusterDNS: ['100.64.0.10'],
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '10%' },
    evictionSoftGracePeriod: { 'memory.available': '1m30s' },
    featureGates: { ImageVolume: true, Foo: false },
    enforceNodeAllocatable: ['pods', 'system-reserved'],
    shutdownGracePeriod: '1m0s',
    staticPodPath: '/etc/kubernetes/manifests',
    authentication: { x509: { clientCAFile: '/srv/kubernetes/ca.crt' }, anonymous: { enabled: false } },
    maxPods: 50,
    eventRecordQPS: 10,
  }, "eventQPS (kOps' older name) wins; kubeconfigPath is a flag, not a config field");
  t.throws(() => kubeletConfigFields({ featureGates: { Foo: 'yes' } }), /featureGates: invalid feature gate value "Foo"="yes"/);
  t.throws(() => kubeletConfigFields({ evictionHard: 'memory.available=100Mi' }), /evictionHard: invalid key\/value pair/);
});

t.test('the tables name only fields kOps has, and every kubelet config-file field has a home', async (t) => {
  for (const section of Object.keys(MODEL_FIELDS) as ComponentSection[]) {
    const struct = COMPONENT_STRUCTS[section];
    const fields = componentFields(struct);
    const named = [...MODEL_FIELDS[section], ...Object.keys(OWNED_FIELDS[section]), ...Object.keys(DEFAULTED_FIELDS[section] ?? {})];
    t.same(named.filter((f) => !Object.hasOwn(fields, f)), [], `${section}: every field nodeup renders itself is a ${struct} field`);
  }
  const kubelet = componentFields('KubeletConfigSpec');
  t.same(Object.keys(KUBELET_CONFIG_FIELDS).filter((f) => !Object.hasOwn(kubelet, f)), [], 'every config-file field is a KubeletConfigSpec field');
  // kOps puts every `flag:"-"` kubelet field in the config file; these are the ones nodeup sets or leaves out on purpose.
  const elsewhere = new Set(['taints', 'nodeLabels']);
  const configOnly = Object.entries(kubelet).filter(([, facts]) => facts.flag === '-').map(([f]) => f);
  t.same(configOnly.filter((f) => !Object.hasOwn(KUBELET_CONFIG_FIELDS, f) && !elsewhere.has(f)), [], 'every kubelet field kOps writes to the config file, Mooring does too');
});

t.test("malformed values are found field by field, for validation", async (t) => {
  t.same(flagValueProblems('kubeAPIServer', { allowPrivileged: 'yes', compactionInterval: 'soon', logLevel: 2 }), [
    { field: 'allowPrivileged', reason: 'must be true or false' },
    { field: 'compactionInterval', reason: 'invalid duration "soon" (want e.g. 30s, 1m0s, 1h30m, 500ms)' },
  ]);
  t.same(flagValueProblems('kubelet', { featureGates: { A: 'maybe' }, maxPods: 10 }), [{ field: 'featureGates', reason: 'invalid feature gate value "A"="maybe" (want true or false)' }]);
});

t.test('update warns about every field nodes would not get', async (t) => {
  const cluster: Cluster = {
    apiVersion: 'kops.k8s.io/v1alpha2',
    kind: 'Cluster',
    metadata: { name: 'w.example.com' },
    spec: {
      kubeAPIServer: { oidcIssuerURL: 'https://sso.example.com', tlsCertFile: '/etc/my.crt', someFutureFlag: true },
      kubelet: { maxPods: 50, podInfraContainerImage: 'registry.k8s.io/pause:3.9' },
      kubeScheduler: { qps: '3.5', burst: 10 },
      containerd: { version: '2.3.4', registryMirrors: { 'docker.io': ['https://mirror.example.com'] } },
    },
  };
  t.same(renderWarnings(cluster), [
    'warning: spec.kubeAPIServer.someFutureFlag is set but nodeup has no way to pass it to kube-apiserver; nodes leave it out',
    'warning: spec.kubeAPIServer.tlsCertFile is set but nodeup sets it to /srv/kubernetes/kube-apiserver/server.crt (the file it writes); nodes do not use the spec\'s value',
    'warning: spec.kubelet.podInfraContainerImage is set but nodeup has no way to pass it to the kubelet; nodes leave it out',
  ], 'the rest (OIDC flag, maxPods config field, scheduler config file, containerd mirrors) all reach their component');
  const group = { apiVersion: 'kops.k8s.io/v1alpha2', kind: 'InstanceGroup', metadata: { name: 'gpu' }, spec: { role: 'Node', kubelet: { maxPods: 10, podInfraContainerImage: 'x' } } } as const;
  t.same(renderWarnings({ ...cluster, spec: {} }, [group]), [
    'warning: instance group "gpu": spec.kubelet.podInfraContainerImage is set but nodeup has no way to pass it to the kubelet; nodes leave it out',
  ], "a group's own kubelet settings too");
});
