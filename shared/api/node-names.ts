// Names in a node config (and boot config) that nodeup turns into paths,
// unit names and store keys: checked as names when the config is built by
// `mooring update cluster` and again when nodeup reads it, so a value such as
// an etcd cluster named `../../x` never reaches a path.
import { isDNSLabel, isDNSName, KUBERNETES_VERSION } from './names.js';

export interface NameProblem {
  /** Field path in the node config, e.g. `etcdClusters[0].name`. */
  path: string;
  reason: string;
}

/** The parts of a node config these rules look at (the rest is checked elsewhere). */
export interface NamedFields {
  clusterName: string;
  instanceGroupName: string;
  masterInternalName?: string;
  containerdVersion?: string;
  etcdClusters?: Array<{ name: string; version: string; memberNames?: string[]; memberName?: string }>;
  sysctls?: Record<string, string>;
}

/** etcd-manager's --etcd-binary-dir layout is <dir>/<version>: digits and dots only. */
const ETCD_VERSION = /^\d+\.\d+\.\d+$/;
/** A kernel parameter as sysctl names it: words joined by '.' (or '/'), never an empty, '.' or '..' part. */
const SYSCTL_KEY = /^[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)*$/;

const show = (value: string): string => JSON.stringify(value);

/** Every problem, in field order; empty when all names are names. */
export function nodeConfigNameProblems(nc: NamedFields): NameProblem[] {
  const problems: NameProblem[] = [];
  const want = (ok: boolean, path: string, value: string, rule: string): void => {
    if (!ok) problems.push({ path, reason: `invalid value ${show(value)} (want ${rule})` });
  };
  want(isDNSName(nc.clusterName), 'clusterName', nc.clusterName, 'a lowercase DNS name');
  want(isDNSName(nc.instanceGroupName), 'instanceGroupName', nc.instanceGroupName, 'a lowercase DNS name');
  if (nc.masterInternalName !== undefined) want(isDNSName(nc.masterInternalName), 'masterInternalName', nc.masterInternalName, 'a lowercase DNS name');
  if (nc.containerdVersion !== undefined) {
    want(KUBERNETES_VERSION.test(nc.containerdVersion), 'containerdVersion', nc.containerdVersion, 'a release version such as 1.7.24');
  }
  (nc.etcdClusters ?? []).forEach((etcd, i) => {
    const at = `etcdClusters[${i}]`;
    want(isDNSLabel(etcd.name), `${at}.name`, etcd.name, 'a lowercase DNS label such as main');
    want(ETCD_VERSION.test(etcd.version), `${at}.version`, etcd.version, 'an etcd version such as 3.4.23');
    (etcd.memberNames ?? []).forEach((member, j) => want(isDNSLabel(member), `${at}.memberNames[${j}]`, member, 'a lowercase DNS label'));
    if (etcd.memberName !== undefined) want(isDNSLabel(etcd.memberName), `${at}.memberName`, etcd.memberName, 'a lowercase DNS label');
  });
  for (const key of Object.keys(nc.sysctls ?? {})) {
    want(SYSCTL_KEY.test(key), `sysctls[${show(key)}]`, key, "a kernel parameter name such as net.ipv4.ip_forward");
  }
  return problems;
}
