// Validation of a cluster and its instance groups: every problem at once, each
// naming the field path and, for parsed files, the source line.
import { cloudOf, SUPPORTED_CLOUDS } from './cloud.js';
import { joinPath } from './fieldpath.js';
import { flagValueProblems } from './component-render.js';
import { ipAddressProblem, labelKeyProblem, labelValueProblem, parseKopsTaint } from './k8s-syntax.js';
import { DNS_NAME_RULE, isDNSName, KUBERNETES_VERSION } from './names.js';
import { SpecError, type ParsedObject } from './parse.js';
import { INSTANCE_GROUP_ROLES, type ApiObject, type Cluster, type InstanceGroup } from './types.js';
import { checkComponents, checkSyntax } from './validate-components.js';
import { checkEtcdClusters } from './validate-etcd.js';
import { checkNetworks, checkSubnets } from './validate-network.js';
import { checkNumbers, checkSysctls, isNonNegativeInteger, isRecord, MAX_GROUP_SIZE, optionalList, show, type Report } from './validate-util.js';

export const CLUSTER_LABEL = 'kops.k8s.io/cluster';
/** nodeup labels every node with its group's name, so the name must be a valid label value. */
const GROUP_LABEL = 'kops.k8s.io/instancegroup';

function isParsed(subject: ParsedObject | ApiObject): subject is ParsedObject {
  return typeof (subject as { lineOf?: unknown }).lineOf === 'function' && 'object' in subject;
}

/** Plain objects have no file: messages name them `Kind/name`. */
function locate(subject: ParsedObject | ApiObject): ParsedObject {
  if (isParsed(subject)) return subject;
  return { object: subject, source: `${String(subject.kind)}/${String(subject.metadata?.name)}`, lineOf: () => undefined };
}

interface ObjectReport extends Report {
  /** Whether a problem was reported at this path of this object. */
  has(path: string): boolean;
}

function reporter(parsed: ParsedObject, problems: SpecError[]): ObjectReport {
  const paths = new Set<string>();
  const report = (path: string, reason: string) => {
    paths.add(path);
    problems.push(new SpecError(reason, { source: parsed.source, path, line: parsed.lineOf(path) }));
  };
  return Object.assign(report, { has: (path: string) => paths.has(path) });
}

/** Numbers no field can hold exactly, wherever they are; fields already reported are not reported twice. */
function checkAllNumbers(object: ApiObject, report: ObjectReport): void {
  checkNumbers(object, '', report, report.has);
}

/**
 * All problems of a user's (or completed) spec; [] when it is valid. Fields
 * the spec leaves out are checked as completion will fill them.
 */
export function validateCluster(cluster: ParsedObject | Cluster, instanceGroups: Array<ParsedObject | InstanceGroup>): SpecError[] {
  const problems: SpecError[] = [];
  const parsedCluster = locate(cluster);
  const report = reporter(parsedCluster, problems);
  if (parsedCluster.object.kind !== 'Cluster') {
    report('kind', `expected Cluster, found ${show(parsedCluster.object.kind)}`);
    return problems;
  }
  const c = parsedCluster.object;
  // A cloud the agents cannot run nodes on is the one thing to say: the rest would only follow from it.
  const cloud = cloudOf(c);
  if (c.spec?.cloudProvider !== undefined && !(SUPPORTED_CLOUDS as readonly string[]).includes(cloud)) {
    report('spec.cloudProvider', `unsupported cloud ${show(cloud || c.spec.cloudProvider)} (want ${SUPPORTED_CLOUDS.join(' or ')})`);
    return problems;
  }
  checkClusterFields(c, report);
  checkComponents(c, report);
  const subnetZones = checkSubnets(c, checkNetworks(c, report), report);

  const groupRoles = new Map<string, unknown>();
  for (const parsedGroup of instanceGroups.map(locate)) {
    const reportGroup = reporter(parsedGroup, problems);
    const ig = parsedGroup.object;
    if (ig.kind !== 'InstanceGroup') {
      reportGroup('kind', `expected InstanceGroup, found ${show(ig.kind)}`);
      continue;
    }
    const name: unknown = ig.metadata?.name;
    if (typeof name === 'string' && groupRoles.has(name)) reportGroup('metadata.name', `duplicate instance group ${show(name)}`);
    else if (typeof name === 'string') groupRoles.set(name, ig.spec?.role);
    checkInstanceGroup(ig, c.metadata.name, subnetZones, reportGroup);
    checkAllNumbers(ig, reportGroup);
  }
  checkEtcdClusters(c, groupRoles, report);
  if (![...groupRoles.values()].some((role) => role === 'ControlPlane' || role === 'Master')) {
    report('', 'no control-plane instance group (want at least one with role ControlPlane)');
  }
  checkAllNumbers(c, report);
  return problems;
}

function checkName(name: unknown, report: Report): void {
  if (typeof name !== 'string' || name === '') report('metadata.name', 'missing');
  else if (!isDNSName(name)) report('metadata.name', `invalid name ${show(name)} (want ${DNS_NAME_RULE})`);
}

function checkClusterFields(cluster: Cluster, report: Report): void {
  const spec = cluster.spec;
  checkName(cluster.metadata?.name, report);
  // An unsupported cloud is reported (alone) by validateCluster.
  if (spec.cloudProvider === undefined) report('spec.cloudProvider', `missing (want ${SUPPORTED_CLOUDS.join(' or ')})`);
  const version: unknown = spec.kubernetesVersion;
  if (version !== undefined && (typeof version !== 'string' || !KUBERNETES_VERSION.test(version))) {
    report('spec.kubernetesVersion', `invalid version ${show(version)} (want a string such as "1.30.5")`);
  }
  checkSysctls(spec.sysctlParameters, 'spec.sysctlParameters', report);
}

function checkInstanceGroup(
  ig: InstanceGroup,
  clusterName: string,
  subnetZones: Map<string, string | undefined> | undefined,
  report: Report,
): void {
  checkName(ig.metadata?.name, report);
  const groupName: unknown = ig.metadata?.name;
  if (typeof groupName === 'string' && isDNSName(groupName) && labelValueProblem(groupName)) {
    report('metadata.name', `${show(groupName)} is ${groupName.length} characters: at most 63, as nodes carry it as the ${GROUP_LABEL} label`);
  }
  const owner: unknown = ig.metadata?.labels?.[CLUSTER_LABEL];
  if (owner !== undefined && owner !== clusterName) {
    report(`metadata.labels["${CLUSTER_LABEL}"]`, `${show(owner)} does not match cluster name ${show(clusterName)}`);
  }
  const spec = ig.spec ?? {};
  const role: unknown = spec.role;
  const roles = INSTANCE_GROUP_ROLES.join(', ');
  if (role === undefined) report('spec.role', `missing (want one of ${roles})`);
  else if (!(INSTANCE_GROUP_ROLES as readonly unknown[]).includes(role)) report('spec.role', `unknown role ${show(role)} (want one of ${roles})`);
  checkSizes(spec.minSize, spec.maxSize, report);
  checkPlacement(ig, subnetZones, report);
  checkNodeLabels(spec.nodeLabels, report);
  optionalList(spec.taints, 'spec.taints', report).forEach((taint, i) => {
    const parsed = typeof taint === 'string' ? parseKopsTaint(taint) : 'must be a string';
    if (typeof parsed === 'string') report(`spec.taints[${i}]`, `invalid taint ${show(taint)}: ${parsed}`);
  });
  checkSysctls(spec.sysctlParameters, 'spec.sysctlParameters', report);
  // The group's own kubelet settings go over the cluster's (kOps): the same formats apply.
  const kubelet: unknown = spec.kubelet;
  if (kubelet !== undefined && kubelet !== null) {
    if (!isRecord(kubelet)) report('spec.kubelet', 'must be an object');
    else {
      for (const { field, reason } of flagValueProblems('kubelet', kubelet)) report(`spec.kubelet.${field}`, reason);
      checkSyntax(kubelet.clusterDNS, 'spec.kubelet.clusterDNS', ipAddressProblem, 'IP address', report);
      optionalList(kubelet.taints, 'spec.kubelet.taints', report).forEach((taint, i) => {
        const parsed = typeof taint === 'string' ? parseKopsTaint(taint) : 'must be a string';
        if (typeof parsed === 'string') report(`spec.kubelet.taints[${i}]`, `invalid taint ${show(taint)}: ${parsed}`);
      });
    }
  }
}

/** Labels kubelet registers the node with (--node-labels): Kubernetes' label syntax for keys and values. */
export function checkNodeLabels(labels: unknown, report: Report, path = 'spec.nodeLabels'): void {
  if (labels === undefined) return;
  if (!isRecord(labels)) return report(path, 'must be an object of label: value');
  for (const [key, value] of Object.entries(labels)) {
    const at = joinPath(path, key);
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) report(at, `invalid label key ${show(key)}: ${keyProblem}`);
    else if (typeof value !== 'string') report(at, `must be a string (got ${show(value)})`);
    else {
      const valueProblem = labelValueProblem(value);
      if (valueProblem) report(at, `invalid label value ${show(value)}: ${valueProblem}`);
    }
  }
}

function isGroupSize(value: unknown): value is number {
  return isNonNegativeInteger(value) && value <= MAX_GROUP_SIZE;
}

function checkSizes(min: unknown, max: unknown, report: Report): void {
  const minOK = min === undefined || isGroupSize(min);
  const maxOK = max === undefined || isGroupSize(max);
  const want = `a whole number from 0 to at most ${MAX_GROUP_SIZE}`;
  if (!minOK) report('spec.minSize', `must be ${want} (got ${show(min)})`);
  if (!maxOK) report('spec.maxSize', `must be ${want} (got ${show(max)})`);
  if (minOK && maxOK && typeof min === 'number' && typeof max === 'number' && min > max) {
    report('spec.minSize', `${min} is greater than spec.maxSize ${max}`);
  }
}

/** The group's subnets and zones must name what the cluster has. */
function checkPlacement(ig: InstanceGroup, subnetZones: Map<string, string | undefined> | undefined, report: Report): void {
  const { subnets, zones } = ig.spec ?? {};
  if (subnets === undefined && zones === undefined) {
    report('spec.subnets', "missing (name the cluster's subnets this group runs in)");
    return;
  }
  optionalList(subnets, 'spec.subnets', report).forEach((subnet, i) => {
    if (typeof subnet !== 'string') report(`spec.subnets[${i}]`, `must be a subnet name (got ${show(subnet)})`);
    else if (subnetZones && !subnetZones.has(subnet)) report(`spec.subnets[${i}]`, `no subnet ${show(subnet)} in the cluster`);
  });
  const clusterZones = new Set(subnetZones?.values());
  optionalList(zones, 'spec.zones', report).forEach((zone, i) => {
    if (typeof zone !== 'string') report(`spec.zones[${i}]`, `must be a zone name (got ${show(zone)})`);
    else if (subnetZones && !clusterZones.has(zone)) report(`spec.zones[${i}]`, `no subnet in zone ${show(zone)} in the cluster`);
  });
}
