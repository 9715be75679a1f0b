// Cluster values that nodeup renders into command lines, static pods,
// environment files and /etc/hosts: each must have the syntax its consumer
// expects (shared/api/k8s-syntax.ts), so that no value can become a second
// flag, a second line or a second server.
import {
  endpointURLProblem,
  etcdOverrideProblem,
  flagNameProblem,
  hostNameProblem,
  ipAddressProblem,
  isPort,
  mirrorURLProblem,
  releaseVersionProblem,
  storeURLProblem,
} from './k8s-syntax.js';
import { flagValueProblems } from './component-render.js';
import type { Cluster } from './types.js';
import { isRecord, optionalList, show, type Report } from './validate-util.js';

type Problem = (value: string) => string | undefined;

/** An optional string field with a syntax; reports a wrong type or a bad value. */
export function checkSyntax(value: unknown, path: string, problem: Problem, what: string, report: Report): void {
  if (value === undefined || value === null) return;
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const reason = problem(value);
  if (reason) report(path, `invalid ${what} ${show(value)} (${reason})`);
}

function checkObject(value: unknown, path: string, report: Report): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) {
    report(path, 'must be an object');
    return undefined;
  }
  return value;
}

export function checkComponents(cluster: Cluster, reportTo: Report): void {
  const spec = cluster.spec;
  const reported = new Set<string>();
  const report: Report = (path, reason) => {
    reported.add(path);
    reportTo(path, reason);
  };
  checkSyntax(spec.configBase, 'spec.configBase', storeURLProblem, 'state store URL', report);
  checkSyntax(spec.masterInternalName, 'spec.masterInternalName', hostNameProblem, 'name', report);
  checkSyntax(spec.masterPublicName, 'spec.masterPublicName', hostNameProblem, 'name', report);
  checkSyntax(spec.clusterDNSDomain, 'spec.clusterDNSDomain', hostNameProblem, 'name', report);
  const api = checkObject(spec.api, 'spec.api', report);
  checkSyntax(api?.publicName, 'spec.api.publicName', hostNameProblem, 'name', report);

  const apiServer = checkObject(spec.kubeAPIServer, 'spec.kubeAPIServer', report);
  if (apiServer) {
    optionalList(apiServer.etcdServers, 'spec.kubeAPIServer.etcdServers', report).forEach((server, i) =>
      checkSyntax(server, `spec.kubeAPIServer.etcdServers[${i}]`, endpointURLProblem, 'URL', report),
    );
    optionalList(apiServer.etcdServersOverrides, 'spec.kubeAPIServer.etcdServersOverrides', report).forEach((entry, i) =>
      checkSyntax(entry, `spec.kubeAPIServer.etcdServersOverrides[${i}]`, etcdOverrideProblem, 'override', report),
    );
    if (apiServer.securePort !== undefined && !isPort(apiServer.securePort)) {
      report('spec.kubeAPIServer.securePort', `must be a port number 1-65535 (got ${show(apiServer.securePort)})`);
    }
    if (apiServer.allowPrivileged !== undefined && typeof apiServer.allowPrivileged !== 'boolean') {
      report('spec.kubeAPIServer.allowPrivileged', `must be true or false (got ${show(apiServer.allowPrivileged)})`);
    }
  }
  const controllerManager = checkObject(spec.kubeControllerManager, 'spec.kubeControllerManager', report);
  checkSyntax(controllerManager?.clusterName, 'spec.kubeControllerManager.clusterName', flagNameProblem, 'name', report);
  checkObject(spec.kubeProxy, 'spec.kubeProxy', report);

  for (const key of ['kubelet', 'masterKubelet', 'controlPlaneKubelet'] as const) {
    const kubelet = checkObject(spec[key], `spec.${key}`, report);
    checkSyntax(kubelet?.clusterDNS, `spec.${key}.clusterDNS`, ipAddressProblem, 'IP address', report);
    checkSyntax(kubelet?.clusterDomain, `spec.${key}.clusterDomain`, hostNameProblem, 'name', report);
  }
  const kubeDNS = checkObject(spec.kubeDNS, 'spec.kubeDNS', report);
  checkSyntax(kubeDNS?.serverIP, 'spec.kubeDNS.serverIP', ipAddressProblem, 'IP address', report);
  checkSyntax(kubeDNS?.domain, 'spec.kubeDNS.domain', hostNameProblem, 'name', report);

  const assets = checkObject(spec.assets, 'spec.assets', report);
  checkSyntax(assets?.fileRepository === '' ? undefined : assets?.fileRepository, 'spec.assets.fileRepository', mirrorURLProblem, 'mirror URL', report);

  // Every component setting must have the format its flag or config field takes (durations,
  // quantities, lists); a field the checks above already reported is not reported twice.
  for (const key of ['kubeAPIServer', 'kubeControllerManager', 'kubeScheduler', 'kubeProxy', 'kubelet', 'masterKubelet', 'controlPlaneKubelet', 'containerd'] as const) {
    const value = spec[key];
    if (!isRecord(value)) continue;
    for (const { field, reason } of flagValueProblems(key === 'controlPlaneKubelet' ? 'masterKubelet' : key, value)) {
      const path = `spec.${key}.${field}`;
      if (!reported.has(path)) report(path, reason);
    }
  }

  // The version is part of containerd's install folder, hence of its unit's ExecStart.
  const containerd = checkObject(spec.containerd, 'spec.containerd', report);
  checkSyntax(containerd?.version, 'spec.containerd.version', releaseVersionProblem, 'version', report);
}
