// etcd cluster checks: names, members on existing control-plane groups, ports.
import { WELL_KNOWN_ETCD_PORTS } from './defaults.js';
import { envNameProblem, storeURLProblem } from './k8s-syntax.js';
import { isDNSLabel } from './names.js';
import type { Cluster, InstanceGroupRole } from './types.js';
import { checkSyntax } from './validate-components.js';
import { isNonNegativeInteger, isRecord, optionalList, requireString, show, type Report } from './validate-util.js';

/** etcd-manager keeps daily backups this many days at most (a century). */
const MAX_RETENTION_DAYS = 36_500;

const CONTROL_PLANE_ROLES: readonly unknown[] = ['ControlPlane', 'Master'] satisfies InstanceGroupRole[];
const PORT_FIELDS = ['clientPort', 'peerPort', 'grpcPort', 'quarantineClientPort'] as const;

interface PortUse {
  path: string;
  port: number;
  owner: string;
  userSet: boolean;
}

/** `groupRoles`: instance group name → role, for the groups that exist. */
export function checkEtcdClusters(cluster: Cluster, groupRoles: Map<string, unknown>, report: Report): void {
  const raw: unknown = cluster.spec.etcdClusters;
  // Absent or empty: completion creates main and events.
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) return;
  if (!Array.isArray(raw)) return report('spec.etcdClusters', 'must be a list');
  const names = new Set<string>();
  const ports: PortUse[] = [];
  raw.forEach((etcd: unknown, i) => {
    const path = `spec.etcdClusters[${i}]`;
    if (!isRecord(etcd)) return report(path, 'must be an object');
    const name = requireString(etcd.name, `${path}.name`, report);
    if (name !== undefined) {
      if (!isDNSLabel(name)) report(`${path}.name`, `invalid name ${show(name)} (want a lowercase DNS label such as main)`);
      else if (names.has(name)) report(`${path}.name`, `duplicate etcd cluster ${show(name)}`);
      names.add(name);
    }
    if (etcd.version !== undefined && (typeof etcd.version !== 'string' || !/^\d+\.\d+\.\d+$/.test(etcd.version))) {
      report(`${path}.version`, `invalid etcd version ${show(etcd.version)} (want e.g. 3.4.23)`);
    }
    checkMembers(etcd.etcdMembers, `${path}.etcdMembers`, groupRoles, report);
    checkBackupSettings(etcd, path, report);
    ports.push(...portUses(etcd, path, name ?? `#${i}`, report));
  });
  if (!names.has('main')) report('spec.etcdClusters', 'no etcd cluster named "main" (the API server keeps its data there)');
  checkPortClashes(ports, report);
}

function checkMembers(raw: unknown, path: string, groupRoles: Map<string, unknown>, report: Report): void {
  if (raw === undefined || raw === null) return report(path, 'missing (list one member per control-plane instance group)');
  if (!Array.isArray(raw)) return report(path, 'must be a list');
  if (raw.length === 0) return report(path, 'at least one member required');
  if (raw.length % 2 === 0) report(path, `${raw.length} members; etcd needs an odd number for quorum`);
  const memberNames = new Set<string>();
  const hostOf = new Map<string, string>();
  raw.forEach((member: unknown, j) => {
    const at = `${path}[${j}]`;
    if (!isRecord(member)) return report(at, 'must be an object');
    const name = requireString(member.name, `${at}.name`, report);
    if (name !== undefined) {
      if (!isDNSLabel(name)) report(`${at}.name`, `invalid member name ${show(name)} (want a lowercase DNS label such as a)`);
      else if (memberNames.has(name)) report(`${at}.name`, `duplicate member ${show(name)}`);
      memberNames.add(name);
    }
    const group = requireString(member.instanceGroup, `${at}.instanceGroup`, report);
    if (group === undefined) return;
    const role = groupRoles.get(group);
    if (!groupRoles.has(group)) return report(`${at}.instanceGroup`, `no instance group ${show(group)}`);
    if (!CONTROL_PLANE_ROLES.includes(role)) {
      return report(`${at}.instanceGroup`, `instance group ${show(group)} has role ${String(role)} (want ControlPlane or Master)`);
    }
    const earlier = hostOf.get(group);
    if (earlier !== undefined) report(`${at}.instanceGroup`, `instance group ${show(group)} already hosts member ${show(earlier)}`);
    else hostOf.set(group, name ?? `#${j}`);
  });
}

function checkBackupSettings(etcd: Record<string, unknown>, path: string, report: Report): void {
  if (etcd.backups !== undefined) {
    if (!isRecord(etcd.backups)) report(`${path}.backups`, 'must be an object');
    // etcd-manager's environment file carries it.
    else checkSyntax(etcd.backups.backupStore, `${path}.backups.backupStore`, storeURLProblem, 'state store URL', report);
  }
  if (etcd.manager !== undefined) {
    if (!isRecord(etcd.manager)) return report(`${path}.manager`, 'must be an object');
    const days = etcd.manager.backupRetentionDays;
    if (days !== undefined && !(isNonNegativeInteger(days) && days <= MAX_RETENTION_DAYS)) {
      report(`${path}.manager.backupRetentionDays`, `must be a whole number of days, at most ${MAX_RETENTION_DAYS} (got ${show(days)})`);
    }
    checkManagerEnv(etcd.manager.env, `${path}.manager.env`, report);
  }
}

/** kOps' extra environment for etcd-manager and etcd: `{name, value}` pairs, one variable each. */
function checkManagerEnv(raw: unknown, path: string, report: Report): void {
  optionalList(raw, path, report).forEach((entry: unknown, i) => {
    const at = `${path}[${i}]`;
    if (!isRecord(entry)) return report(at, 'must be an object with name and value');
    const name = requireString(entry.name, `${at}.name`, report);
    const problem = name === undefined ? undefined : envNameProblem(name);
    if (problem) report(`${at}.name`, `invalid environment variable name ${show(name)} (${problem})`);
    if (entry.value !== undefined && (typeof entry.value !== 'string' || /\p{Cc}/u.test(entry.value))) {
      report(`${at}.value`, `must be a string on one line without control characters (got ${show(entry.value)})`);
    }
  });
}

/** The ports a cluster will use: the user's, else kOps' fixed ones for main and events. */
function portUses(etcd: Record<string, unknown>, path: string, owner: string, report: Report): PortUse[] {
  const known = Object.hasOwn(WELL_KNOWN_ETCD_PORTS, owner) ? WELL_KNOWN_ETCD_PORTS[owner] : undefined;
  const uses: PortUse[] = [];
  for (const field of PORT_FIELDS) {
    const value = etcd[field];
    const at = `${path}.${field}`;
    if (value === undefined) {
      if (known) uses.push({ path: at, port: known[field], owner: `etcd cluster "${owner}" ${field}`, userSet: false });
    } else if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 65535) {
      report(at, `must be a port number 1-65535 (got ${show(value)})`);
    } else {
      uses.push({ path: at, port: value as number, owner: `etcd cluster "${owner}" ${field}`, userSet: true });
    }
  }
  return uses;
}

function checkPortClashes(uses: PortUse[], report: Report): void {
  uses.forEach((use, i) => {
    const other = uses.slice(0, i).find((u) => u.port === use.port);
    if (!other || !(use.userSet || other.userSet)) return;
    const [on, clash] = use.userSet ? [use, other] : [other, use];
    report(on.path, `port ${on.port} is also ${clash.owner}`);
  });
}
