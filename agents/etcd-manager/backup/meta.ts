// kOps' protobuf messages as they appear in the store (etcd-manager
// pkg/apis/etcd/etcdapi.proto):
//   message ClusterSpec { int32 member_count = 1; string etcd_version = 2; }
//   message BackupInfo  { string etcd_version = 1; int64 timestamp = 2; ClusterSpec cluster_spec = 3; }
// `_etcd_backup.meta` is a BackupInfo in jsonpb form. kOps reads it with unknown
// fields refused, so nothing of ours may be added to it: our extra facts live in
// the sidecar (sidecar.ts).
import { field, formatJsonpb, isRecord, JsonpbError, parseObject, readInt32, readInt64, readString, type JsonpbField } from './jsonpb.js';

export interface ClusterSpec {
  /** Members the cluster should have; kOps omits 0 (unset). */
  memberCount?: number;
  /** e.g. "3.4.23"; kOps omits "" (unset). */
  etcdVersion?: string;
}

export interface BackupMeta {
  /** The etcd version that wrote the backup; restore needs it (kOps refuses a meta without it). */
  etcdVersion?: string;
  /** Unix seconds when the backup was taken (kOps: the time AddBackup ran). */
  timestamp?: number;
  clusterSpec?: ClusterSpec;
}

/** kOps' meta of an etcd 2 backup: a tar of a data directory, not a v3 snapshot. */
export function isV2BackupMeta(meta: BackupMeta): boolean {
  return /^v?2\./.test(meta.etcdVersion ?? '');
}

export function clusterSpecFields(spec: ClusterSpec): JsonpbField[] {
  return [
    ['memberCount', { kind: 'int32', value: spec.memberCount }],
    ['etcdVersion', { kind: 'string', value: spec.etcdVersion }],
  ];
}

/** `_etcd_backup.meta` exactly as kOps' etcd-manager writes it. */
export function formatBackupMeta(meta: BackupMeta): string {
  return formatJsonpb([
    ['etcdVersion', { kind: 'string', value: meta.etcdVersion }],
    ['timestamp', { kind: 'int64', value: meta.timestamp === undefined ? undefined : BigInt(meta.timestamp) }],
    ['clusterSpec', { kind: 'message', value: meta.clusterSpec ? clusterSpecFields(meta.clusterSpec) : undefined }],
  ]);
}

/** A ClusterSpec object (already parsed JSON), lenient: both field spellings, numbers or strings. */
export function readClusterSpec(v: unknown, what: string): ClusterSpec {
  if (!isRecord(v)) throw new JsonpbError(`${what}: want a JSON object`);
  const spec: ClusterSpec = {};
  const memberCount = readInt32(field(v, 'memberCount', 'member_count'), `${what}.memberCount`);
  const etcdVersion = readString(field(v, 'etcdVersion', 'etcd_version'), `${what}.etcdVersion`);
  if (memberCount !== undefined) spec.memberCount = memberCount;
  if (etcdVersion !== undefined) spec.etcdVersion = etcdVersion;
  return spec;
}

/** Parses `_etcd_backup.meta` (kOps' or ours); `source` names the object in errors. Throws JsonpbError. */
export function parseBackupMeta(text: string, source: string): BackupMeta {
  const obj = parseObject(text, source);
  const meta: BackupMeta = {};
  const etcdVersion = readString(field(obj, 'etcdVersion', 'etcd_version'), `${source}: etcdVersion`);
  const timestamp = readInt64(field(obj, 'timestamp', 'timestamp'), `${source}: timestamp`);
  const spec = field(obj, 'clusterSpec', 'cluster_spec');
  if (etcdVersion !== undefined) meta.etcdVersion = etcdVersion;
  if (timestamp !== undefined) meta.timestamp = Number(timestamp);
  if (spec !== undefined) meta.clusterSpec = readClusterSpec(spec, `${source}: clusterSpec`);
  return meta;
}
