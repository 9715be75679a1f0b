// Backup encryption at rest: AES-256-GCM over the gzip stream, one random
// 12-byte IV per backup, the 16-byte tag and the IV in the sidecar. The key
// comes from `--backup-encryption-key-file` or from the state store's
// `secrets/etcd-backup-encryption-key` (kOps' secret form, `{"Data":"<base64>"}`).
//
// Key material, in a file or in the secret's Data, is one of:
//   - exactly 32 bytes: the key itself (raw);
//   - 64 hex digits (surrounding whitespace ignored);
//   - base64 of 32 bytes (44 characters with its `=`; surrounding whitespace ignored).
// Anything else is refused, naming where the key came from and the accepted forms.
// The key id is the first 16 hex digits of sha256("mooring etcd backup key id\0" + key):
// it names the key in the sidecar without revealing anything usable about it.
import { createCipheriv, createDecipheriv, createHash, randomBytes, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { StateStore } from '../../../shared/store/types.js';
import { isRecord } from './jsonpb.js';

export const ALGORITHM = 'AES-256-GCM';
/** The state store object (relative to the state store root) holding the key, in kOps' secret form. */
export const KEY_SECRET_PATH = 'secrets/etcd-backup-encryption-key';

export interface BackupKey {
  /** 32 bytes. Never logged. */
  readonly key: Buffer;
  /** Short public name of the key (keyIdOf). */
  readonly id: string;
  /** Where it came from, for messages (a file path or a store URL). */
  readonly source: string;
}

export class BackupKeyError extends Error {}

const FORMS = 'want exactly 32 raw bytes, 64 hex digits, or the base64 of 32 bytes';

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('mooring etcd backup key id\0').update(key).digest('hex').slice(0, 16);
}

/** Decodes key material in one of the accepted forms; BackupKeyError naming `source` otherwise. */
export function parseKeyMaterial(material: Buffer, source: string): BackupKey {
  let key: Buffer | undefined;
  if (material.length === 32) key = Buffer.from(material);
  else {
    const text = material.toString('latin1').trim();
    if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, 'hex');
    else if (/^[A-Za-z0-9+/]{43}=$/.test(text)) {
      const decoded = Buffer.from(text, 'base64');
      if (decoded.length === 32 && decoded.toString('base64') === text) key = decoded;
    }
  }
  if (!key) throw new BackupKeyError(`${source}: not an AES-256 key (${material.length} bytes; ${FORMS})`);
  return { key, id: keyIdOf(key), source };
}

/** Reads `--backup-encryption-key-file`. A key file that others can read is refused (it must be 0600 or stricter). */
export async function loadKeyFile(path: string): Promise<BackupKey> {
  let material: Buffer;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new BackupKeyError(`${path}: the backup encryption key file is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    material = await readFile(path);
  } catch (err) {
    if (err instanceof BackupKeyError) throw err;
    throw new BackupKeyError(`${path}: cannot read the backup encryption key file: ${(err as Error).message}`);
  }
  return parseKeyMaterial(material, path);
}

/** The key in the state store's secrets, or undefined when there is none. `state` is the state store (the cluster's folder). */
export async function loadKeySecret(state: StateStore): Promise<BackupKey | undefined> {
  const data = await state.readIfExists(KEY_SECRET_PATH);
  if (data === undefined) return undefined;
  const source = state.urlOf(KEY_SECRET_PATH);
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch {
    throw new BackupKeyError(`${source}: not a kOps secret (want JSON {"Data":"<base64>"})`);
  }
  if (!isRecord(doc) || typeof doc.Data !== 'string') throw new BackupKeyError(`${source}: not a kOps secret (want JSON {"Data":"<base64>"})`);
  return parseKeyMaterial(Buffer.from(doc.Data, 'base64'), source);
}

/** The content of a kOps secret holding this key material (what `loadKeySecret` reads). */
export function formatKeySecret(material: Buffer): string {
  return JSON.stringify({ Data: material.toString('base64') });
}

export function newIV(): Buffer {
  return randomBytes(12);
}

export function encryptor(key: BackupKey, iv: Buffer): CipherGCM {
  return createCipheriv('aes-256-gcm', key.key, iv);
}

/** A decipher that fails at its end unless the data and tag are exactly what `encryptor` made with this key. */
export function decryptor(key: BackupKey, iv: Buffer, authTag: Buffer): DecipherGCM {
  const d = createDecipheriv('aes-256-gcm', key.key, iv);
  d.setAuthTag(authTag);
  return d;
}
