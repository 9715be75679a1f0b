// Golden comparison with kOps itself: for five of kOps' own integration cases
// (tests/integration/update_cluster/<case>), the user's spec kOps starts from
// (in-v1alpha2.yaml) is loaded and completed by Mooring, and the result is
// compared path by path with the completed spec kOps wrote for it
// (data/aws_s3_object_cluster-completed.spec_content). Every path must be equal,
// except the deliberate differences listed below, each with its reason.
//
// The cases are read from a kOps git checkout at a pinned commit (never copied
// into this repository): MOORING_KOPS_REPO, else the mirror this project's
// sessions read kOps from. Without it the test says why and is skipped.
//
// Cases, chosen for what they exercise (the completion is kOps' defaults code,
// not tuned to them):
//   minimal-aws        Kubernetes 1.34: etcd 3.6, no registerSchedulable, ImageVolume gate
//   minimal-1.33       the 1.33 side of every version switch (etcd 3.5, apiserver cloudProvider)
//   complex            many user settings: resources, quantities (3.14 -> 3140m), a load balancer
//   minimal-ipv6       IPv6: ::/0, fd00:5e4f:ce::/108, no pod range, node IP families, DNS upstream
//   containerd-custom  containerd: skipInstall, registry mirrors, own packages
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import YAML from 'yaml';
import { completeCluster } from '../../shared/api/complete.js';
import { fieldsKopsDoesNotDefine } from '../../shared/api/known-fields.js';
import { parseSpecFile } from '../../shared/api/parse.js';
import type { Cluster, InstanceGroup } from '../../shared/api/types.js';
import { validateCluster } from '../../shared/api/validate.js';

const KOPS_COMMIT = '268927e26409f861634e18f3632c9dd483c350cf';
const KOPS_REPO = process.env.MOORING_KOPS_REPO ?? '/work/.mirror/kubernetes+kops/repo';
const CASES = ['minimal-aws', 'minimal-1.33', 'complex', 'minimal-ipv6', 'containerd-custom'] as const;

/** The sections nodes consume (the measure of fidelity). */
const NODE_SECTIONS = ['kubeAPIServer', 'kubelet', 'masterKubelet', 'kubeControllerManager', 'kubeScheduler', 'kubeProxy', 'containerd', 'cloudConfig', 'iam'];

interface Difference {
  /** kops: a path only kOps' completed spec has (or where it differs); mooring: a path only Mooring's has. */
  side: 'kops' | 'mooring';
  path: RegExp;
  why: string;
}

const DIFFERENCES: readonly Difference[] = [
  { side: 'kops', path: /^spec\.cloudControllerManager\./, why: "kOps' AWS cloud-controller-manager addon settings: Mooring applies no addons (protokube's channels are not built)" },
  { side: 'kops', path: /^spec\.nodeTerminationHandler\./, why: "kOps' node-termination-handler addon settings: no addons" },
  { side: 'kops', path: /^spec\.externalDns\./, why: "kOps' dns-controller addon: no addons" },
  { side: 'kops', path: /^spec\.dnsZone$/, why: 'kOps looks the Route 53 zone up in the cloud; Mooring makes no cloud call at update' },
  { side: 'mooring', path: /^spec\.containerRuntime$/, why: "the user's own v1alpha2 field, kept as written (kOps' round trip through its internal API drops it)" },
  { side: 'mooring', path: /^spec\.serviceOIDCProvider\./, why: "not a v1alpha2 field: kOps' decoder drops it, Mooring keeps unknown fields as written (and warns at create)" },
  { side: 'mooring', path: /^spec\.cloudConfig\.awsEBSCSIDriver\.enabled$/, why: "the user's own v1alpha2 field, kept as written (kOps' round trip drops it)" },
  { side: 'mooring', path: /^spec\.cloudControllerManager$/, why: "the user's own empty section, kept as written (kOps fills it for its addon)" },
];

function git(...args: string[]): string {
  return execFileSync('git', ['-C', KOPS_REPO, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
}

function whyUnavailable(): string | undefined {
  if (!existsSync(KOPS_REPO)) return `no kOps checkout at ${KOPS_REPO} (set MOORING_KOPS_REPO to one)`;
  try {
    git('cat-file', '-e', `${KOPS_COMMIT}:tests/integration/update_cluster/minimal-aws/in-v1alpha2.yaml`);
  } catch {
    return `the kOps checkout at ${KOPS_REPO} lacks commit ${KOPS_COMMIT}`;
  }
  return undefined;
}

/** Every leaf (and every empty object or list) by its dotted path. */
function leaves(value: unknown, path = '', out = new Map<string, string>()): Map<string, string> {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(path, '[]');
    value.forEach((item: unknown, i) => leaves(item, `${path}[${i}]`, out));
  } else if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) out.set(path, '{}');
    for (const [key, item] of entries) leaves(item, path === '' ? key : `${path}.${key}`, out);
  } else {
    out.set(path, JSON.stringify(value));
  }
  return out;
}

const isNodeRelevant = (path: string): boolean => NODE_SECTIONS.some((s) => path === `spec.${s}` || path.startsWith(`spec.${s}.`) || path.startsWith(`spec.${s}[`));
const deliberate = (side: Difference['side'], path: string): Difference | undefined => DIFFERENCES.find((d) => d.side === side && d.path.test(path));

const unavailable = whyUnavailable();
if (unavailable) {
  t.comment(`kOps golden comparison skipped: ${unavailable}`);
  t.pass('kOps golden comparison', { skip: unavailable });
} else {
  for (const name of CASES) {
    t.test(`kOps case ${name}: Mooring's completed spec is kOps'`, async (t) => {
      const dir = `tests/integration/update_cluster/${name}`;
      const input = git('show', `${KOPS_COMMIT}:${dir}/in-v1alpha2.yaml`);
      const expected = YAML.parse(git('show', `${KOPS_COMMIT}:${dir}/data/aws_s3_object_cluster-completed.spec_content`)) as unknown;
      const parsed = parseSpecFile(input, `${name}/in-v1alpha2.yaml`);
      const cluster = parsed.objects.find((o) => o.object.kind === 'Cluster')?.object as Cluster;
      const groups = parsed.objects.filter((o) => o.object.kind === 'InstanceGroup').map((o) => o.object as InstanceGroup);
      t.same(validateCluster(cluster, groups).map((e) => e.message), [], "kOps' input is a valid Mooring spec");
      const completed = completeCluster(cluster, groups).cluster;

      const ours = leaves(completed);
      const theirs = leaves(expected);
      const unexplained: string[] = [];
      let nodeTotal = 0;
      let nodeMatched = 0;
      for (const [path, value] of theirs) {
        const same = ours.get(path) === value;
        if (isNodeRelevant(path)) {
          nodeTotal++;
          if (same) nodeMatched++;
        }
        if (!same && !deliberate('kops', path)) unexplained.push(`${path}: kOps ${value}, Mooring ${ours.get(path) ?? '(none)'}`);
      }
      for (const [path, value] of ours) {
        if (!theirs.has(path) && !deliberate('mooring', path)) unexplained.push(`${path}: Mooring ${value}, kOps (none)`);
      }
      t.comment(`${name}: ${nodeMatched} of ${nodeTotal} node-relevant kOps paths match (${((100 * nodeMatched) / nodeTotal).toFixed(1)}%)`);
      t.same(unexplained, [], 'every path equal, or a listed deliberate difference');
      t.equal(nodeMatched, nodeTotal, 'every node-relevant path kOps fills is filled the same');
      // The user's own unknown fields are kept as written (the design); completion adds none.
      t.same(fieldsKopsDoesNotDefine(completed), fieldsKopsDoesNotDefine(cluster), "completion adds no field kOps' v1alpha2 does not define");
    });
  }
}
