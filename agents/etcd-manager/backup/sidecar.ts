// `_mooring_backup.json`: what we know about a backup beyond kOps' meta. It is
// written after the data and before the meta; a kOps backup has none, and then
// verify and restore fall back to the checks the data itself carries (gzip's
// CRC and etcd's trailing sha256).
import { isRecord, JsonpbError, parseObject } from './jsonpb.js';

export const SIDECAR_FORMAT = 'mooring.etcd-backup/v1';

export interface SidecarEncryption {
  algorithm: 'AES-256-GCM';
  /** keyIdOf(key): which key encrypted it, so a wrong key is named before any byte is read. */
  keyId: string;
  /** 12-byte GCM nonce, base64. */
  iv: string;
  /** 16-byte GCM tag over the whole stored object, base64. */
  authTag: string;
}

export interface SidecarEtcd {
  /** etcd's cluster id (decimal, as etcd's API gives it). */
  clusterId: string;
  /** The member that served the snapshot (decimal id) and the endpoint it was asked on. */
  memberId: string;
  endpoint: string;
  /**
   * The store revision that member reported just before the snapshot began: the
   * snapshot holds this revision or a later one (etcd's snapshot stream carries no header).
   */
  revision: string;
  /** The serving member's etcd version. */
  version: string;
}

export interface BackupSidecar {
  format: typeof SIDECAR_FORMAT;
  name: string;
  /** ISO time the snapshot was requested. */
  startedAt: string;
  durationMs: number;
  /** Why it was taken (e.g. "scheduled", "on-demand", "before-membership-change"); free text from the caller. */
  reason?: string;
  /** The object in the store (`etcd.backup.gz`): its size and sha256 (hex), as stored (after gzip and encryption). */
  stored: { bytes: number; sha256: string };
  /**
   * The snapshot as `etcdctl snapshot save` writes it (the bolt db then etcd's
   * 32-byte sha256 of it): its size and sha256 (hex), before compression.
   */
  snapshot: { bytes: number; sha256: string };
  compression: 'gzip';
  encryption?: SidecarEncryption;
  etcd: SidecarEtcd;
}

export function formatSidecar(sidecar: BackupSidecar): string {
  return JSON.stringify(sidecar, null, 2) + '\n';
}

const HEX64 = /^[0-9a-f]{64}$/;

function need<T>(ok: boolean, value: T, what: string, source: string): T {
  if (!ok) throw new JsonpbError(`${source}: ${what} is missing or malformed`);
  return value;
}

/** Parses and checks a sidecar; every error names `source`. Unknown fields are ignored (later versions may add some). */
export function parseSidecar(text: string, source: string): BackupSidecar {
  const o = parseObject(text, source);
  need(o.format === SIDECAR_FORMAT, 0, `format (want ${JSON.stringify(SIDECAR_FORMAT)}, got ${JSON.stringify(o.format)})`, source);
  const stored = o.stored;
  const snapshot = o.snapshot;
  const etcd = o.etcd;
  need(isRecord(stored) && Number.isSafeInteger(stored.bytes) && typeof stored.sha256 === 'string' && HEX64.test(stored.sha256), 0, 'stored {bytes, sha256}', source);
  need(isRecord(snapshot) && Number.isSafeInteger(snapshot.bytes) && typeof snapshot.sha256 === 'string' && HEX64.test(snapshot.sha256), 0, 'snapshot {bytes, sha256}', source);
  need(o.compression === 'gzip', 0, 'compression (want "gzip")', source);
  need(typeof o.name === 'string' && typeof o.startedAt === 'string' && typeof o.durationMs === 'number', 0, 'name/startedAt/durationMs', source);
  need(isRecord(etcd) && ['clusterId', 'memberId', 'endpoint', 'revision', 'version'].every((k) => typeof etcd[k] === 'string'), 0, 'etcd {clusterId, memberId, endpoint, revision, version}', source);
  let encryption: SidecarEncryption | undefined;
  if (o.encryption !== undefined) {
    const e = o.encryption;
    need(
      isRecord(e) && e.algorithm === 'AES-256-GCM' && typeof e.keyId === 'string' && typeof e.iv === 'string' && typeof e.authTag === 'string' &&
        Buffer.from(e.iv, 'base64').length === 12 && Buffer.from(e.authTag, 'base64').length === 16,
      0,
      'encryption {algorithm "AES-256-GCM", keyId, iv (12 bytes base64), authTag (16 bytes base64)}',
      source,
    );
    encryption = e as unknown as SidecarEncryption;
  }
  const s = stored as { bytes: number; sha256: string };
  const n = snapshot as { bytes: number; sha256: string };
  const et = etcd as Record<string, string>;
  return {
    format: SIDECAR_FORMAT,
    name: o.name as string,
    startedAt: o.startedAt as string,
    durationMs: o.durationMs as number,
    ...(typeof o.reason === 'string' ? { reason: o.reason } : {}),
    stored: { bytes: s.bytes, sha256: s.sha256 },
    snapshot: { bytes: n.bytes, sha256: n.sha256 },
    compression: 'gzip',
    ...(encryption ? { encryption: { algorithm: 'AES-256-GCM', keyId: encryption.keyId, iv: encryption.iv, authTag: encryption.authTag } } : {}),
    etcd: { clusterId: et.clusterId, memberId: et.memberId, endpoint: et.endpoint, revision: et.revision, version: et.version },
  };
}
