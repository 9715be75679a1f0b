// control/etcd-cluster-spec: the cluster's wanted shape, a kOps ClusterSpec.
// `mooring update cluster` writes `{"memberCount":N,"etcdVersion":"3.x.y"}`;
// kOps' etcd-manager-ctl writes jsonpb (indented, and may spell fields
// member_count/etcd_version or give numbers as strings). Both read here; we
// write kOps' jsonpb form, which both kOps and our older readers accept.
import type { StateStore } from '../../../shared/store/types.js';
import { formatJsonpb, JsonpbError, parseObject } from '../backup/jsonpb.js';
import { clusterSpecFields, readClusterSpec, type ClusterSpec } from '../backup/meta.js';

export const CLUSTER_SPEC_PATH = 'control/etcd-cluster-spec';

/** A spec that can drive a cluster: a member count ≥ 1 and an etcd version like 3.4.23. */
export interface EtcdClusterSpec {
  memberCount: number;
  etcdVersion: string;
}

export class ControlFileError extends Error {}

export function parseClusterSpec(text: string, source: string): EtcdClusterSpec {
  let spec: ClusterSpec;
  try {
    spec = readClusterSpec(parseObject(text, source), source);
  } catch (err) {
    if (err instanceof JsonpbError) throw new ControlFileError(err.message);
    throw err;
  }
  if (spec.memberCount === undefined || spec.memberCount < 1) throw new ControlFileError(`${source}: memberCount must be 1 or more (got ${spec.memberCount ?? 'none'})`);
  if (spec.etcdVersion === undefined || !/^\d+\.\d+\.\d+$/.test(spec.etcdVersion)) throw new ControlFileError(`${source}: etcdVersion must be like 3.4.23 (got ${JSON.stringify(spec.etcdVersion ?? null)})`);
  return { memberCount: spec.memberCount, etcdVersion: spec.etcdVersion };
}

/** The spec, or undefined when the file does not exist. ControlFileError naming the URL when it is malformed. */
export async function readClusterSpecFile(store: StateStore): Promise<EtcdClusterSpec | undefined> {
  const data = await store.readIfExists(CLUSTER_SPEC_PATH);
  return data === undefined ? undefined : parseClusterSpec(data.toString('utf8'), store.urlOf(CLUSTER_SPEC_PATH));
}

export function formatClusterSpec(spec: EtcdClusterSpec): string {
  return formatJsonpb(clusterSpecFields(spec));
}

export async function writeClusterSpecFile(store: StateStore, spec: EtcdClusterSpec): Promise<void> {
  parseClusterSpec(JSON.stringify(spec), 'the new cluster spec'); // refuse what we would refuse to read
  await store.write(CLUSTER_SPEC_PATH, formatClusterSpec(spec));
}
