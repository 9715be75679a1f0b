// What user-data names must be reachable from the instances that run it. On a
// cloud (aws) an instance shares nothing with the operator's machine: a file://
// or memfs:// store and a file:// agent URL exist only here. The `local` cloud's
// instances (systemd-nspawn on this host) see the host's paths, so it keeps them.
import { cloudOf } from '../../shared/api/cloud.js';
import type { Cluster } from '../../shared/api/types.js';
import { ExitCode, UserError } from '../../shared/errors.js';
import type { AgentBinary } from './agent-binary.js';

/** Clouds whose instances read the host's own files. */
const HOST_LOCAL_CLOUDS = new Set(['local']);

function scheme(url: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  return m ? m[1].toLowerCase() : url.startsWith('/') ? 'file' : '';
}

/** Instances read the state store and etcd backups over S3, and nothing else. */
function storeProblem(url: string, cloud: string): string | undefined {
  const s = scheme(url);
  return s === 's3' ? undefined : `instances on ${cloud} cannot read a ${s === '' ? 'relative' : `${s}://`} store`;
}

/**
 * Refuses, before anything is written (and in a dry run too), user-data that
 * would point a cloud instance at something only this machine has. Errors name
 * what to set: a flag (exit 2) or a spec field (exit 3).
 */
export function checkReachableFromInstances(cluster: Cluster, storeURL: string, agent: AgentBinary): void {
  const cloud = cloudOf(cluster);
  if (HOST_LOCAL_CLOUDS.has(cloud)) return;
  const spec = cluster.spec;
  if (spec.configBase !== undefined) {
    const problem = storeProblem(spec.configBase, cloud);
    if (problem) throw new UserError(`spec.configBase ${spec.configBase}: ${problem}; set it to an s3:// URL (the state store the instances read)`, ExitCode.InvalidSpec);
  } else if (scheme(storeURL) !== 's3') {
    throw new UserError(
      `instances on ${cloud} cannot read the ${scheme(storeURL)}:// state store ${storeURL}: use an s3:// store (--state or MOORING_STATE_STORE), ` +
        'or set spec.configBase to the s3:// URL the instances should read',
      ExitCode.Usage,
    );
  }
  (spec.etcdClusters ?? []).forEach((etcd, i) => {
    const backupStore = etcd.backups?.backupStore;
    const problem = backupStore === undefined ? undefined : storeProblem(backupStore, cloud);
    if (backupStore !== undefined && problem) {
      throw new UserError(`spec.etcdClusters[${i}].backups.backupStore ${backupStore}: ${problem}; set it to an s3:// URL or remove it (default: under spec.configBase)`, ExitCode.InvalidSpec);
    }
  });
  const unreachable = agent.urls.find((url) => !/^https?:\/\//i.test(url));
  if (unreachable === undefined) return;
  if (agent.source === 'self') {
    throw new UserError(
      `no --agent-url: the default, this binary at ${unreachable}, cannot be downloaded by instances on ${cloud}; ` +
        'pass --agent-url https://… and --agent-sha256 (or set MOORING_AGENT_URLS and MOORING_AGENT_SHA256) naming a copy they can fetch',
      ExitCode.Usage,
    );
  }
  const name = agent.source === 'flag' ? '--agent-url' : 'MOORING_AGENT_URLS';
  const fix = agent.source === 'flag' ? 'pass --agent-url https://…' : 'set MOORING_AGENT_URLS to https:// URLs';
  throw new UserError(`${name} ${unreachable}: instances on ${cloud} cannot download from ${scheme(unreachable)}://; ${fix} of a mirror they can reach`, ExitCode.Usage);
}
