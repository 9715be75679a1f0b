// The boot config user-data writes to /opt/kops/conf/kube_env.yaml (kOps'
// kube_env): just enough to find the node config in the state store, plus the
// node config's hash so nodeup refuses any other bytes.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { ExitCode, UserError } from '../errors.js';
import { CheckedDocument } from './checked-doc.js';
import { cloudOf } from './cloud.js';
import { isDNSName } from './names.js';
import { parseYamlDocuments, SpecError } from './parse.js';
import { INSTANCE_GROUP_ROLES, type Cluster, type InstanceGroup, type InstanceGroupRole } from './types.js';

export interface BootConfig {
  cloudProvider: string;
  clusterName: string;
  configBase: string;
  instanceGroupName: string;
  instanceGroupRole: InstanceGroupRole;
  /** `sha256:<hex>` of the exact node config bytes. */
  nodeupConfigHash: string;
  apiServerIPs?: string[];
}

const HASH = /^sha256:[0-9a-f]{64}$/;

export function nodeConfigHash(nodeConfigBytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(nodeConfigBytes).digest('hex')}`;
}

export function buildBootConfig(completed: Cluster, ig: InstanceGroup, nodeConfigBytes: Buffer | string, configBase: string): BootConfig {
  return {
    cloudProvider: cloudOf(completed),
    clusterName: completed.metadata.name,
    configBase,
    instanceGroupName: ig.metadata.name,
    instanceGroupRole: ig.spec.role,
    nodeupConfigHash: nodeConfigHash(nodeConfigBytes),
  };
}

/** Throws (exit code InvalidSpec) unless the bytes are the ones the boot config names. */
export function verifyNodeConfigHash(boot: BootConfig, nodeConfigBytes: Buffer | string, source: string): void {
  const actual = nodeConfigHash(nodeConfigBytes);
  if (actual !== boot.nodeupConfigHash) {
    throw new UserError(`${source}: node config hash ${actual} does not match the boot config's ${boot.nodeupConfigHash}`, ExitCode.InvalidSpec);
  }
}

export function parseBootConfig(text: string, source: string): BootConfig {
  const docs = parseYamlDocuments(text, source);
  if (docs.length !== 1) throw new SpecError(`expected one boot config document, found ${docs.length}`, { source });
  const d = new CheckedDocument(docs[0]);
  d.record('');
  for (const key of ['cloudProvider', 'clusterName', 'configBase', 'instanceGroupName']) d.string(key);
  // Both name store paths nodeup reads.
  for (const key of ['clusterName', 'instanceGroupName']) {
    const value = d.string(key);
    if (!isDNSName(value)) d.fail(key, `invalid value ${JSON.stringify(value)} (want a lowercase DNS name)`);
  }
  d.oneOf('instanceGroupRole', INSTANCE_GROUP_ROLES);
  if (!HASH.test(d.string('nodeupConfigHash'))) d.fail('nodeupConfigHash', 'must be sha256:<64 lowercase hex digits>');
  // They go into /etc/hosts.
  if (d.at('apiServerIPs') !== undefined) {
    d.stringList('apiServerIPs').forEach((ip, i) => {
      if (isIP(ip) === 0) d.fail(`apiServerIPs[${i}]`, `invalid IP address ${JSON.stringify(ip)}`);
    });
  }
  return docs[0].value as BootConfig;
}
