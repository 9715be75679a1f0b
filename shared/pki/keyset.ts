// kOps keysets (`kind: Keyset`, kops.k8s.io/v1alpha2), the files under pki/ in the
// state store. Format from kOps pkg/apis/kops/v1alpha2/keyset.go and
// upup/pkg/fi/vfs_castore.go: publicMaterial/privateMaterial are Go []byte, so the
// YAML holds base64 of the PEM text; item ids are decimal serial numbers; the
// v1alpha2 field is `primaryId`. In memory this module holds the decoded PEM.
//
// Each keyset is stored twice: pki/private/<name> (0600, certificates and keys:
// the authoritative copy) and pki/issued/<name> (certificates only, for nodes
// that must not read keys). Two objects cannot be written in one atomic step, so
// the private copy is always written first and the issued copy derived from it;
// issuedMismatch tells when the issued copy no longer holds the private copy's
// certificates (a writer crashed between the two writes, or, before writers
// were locked, two writers interleaved), and `mooring update cluster` rewrites
// it from the private copy. Within one file, a private key that does not belong
// to its certificate makes the keyset invalid (parseKeyset refuses it).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import YAML from 'yaml';
import { API_VERSION, StorePaths } from '../api/types.js';
import { UserError } from '../errors.js';
import type { StateStore } from '../store/types.js';
import { toPKCS8PEM } from './inspect.js';

export interface KeysetItem {
  /** Decimal string, normally the certificate's serial number; larger = newer. */
  id: string;
  /** Certificate PEM. */
  publicMaterial?: string;
  /** Private key PEM (PKCS#8 when we wrote it; kOps writes PKCS#1). */
  privateMaterial?: string;
  /** RFC 3339; a distrusted item is never primary. */
  distrustTimestamp?: string;
}

export interface Keyset {
  name: string;
  creationTimestamp?: string;
  /** `Keypair` for everything this project writes; kOps also knows `Secret`. */
  type: string;
  primaryId: string;
  keys: KeysetItem[];
}

export interface Keypair {
  id: string;
  certPEM: string;
  /** PKCS#8 PEM, whatever form the store held. */
  keyPEM: string;
}

const KEYSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Keyset names become path segments: refuse anything that could leave pki/private/. */
export function requireKeysetName(name: string): void {
  if (!KEYSET_NAME.test(name)) throw new UserError(`invalid keyset name ${JSON.stringify(name)}`);
}

/** Parses and checks a keyset file; every error names `source` (a path or URL). */
export function parseKeyset(text: string, source: string): Keyset {
  const fail = (why: string): never => {
    throw new UserError(`${source}: invalid keyset: ${why}`);
  };
  let doc: unknown;
  try {
    // intAsBigInt: an unquoted id is a 128-bit integer, beyond a double's precision.
    doc = YAML.parse(text, { intAsBigInt: true });
  } catch (err) {
    fail(`not YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (!isRecord(doc)) return fail('not a YAML mapping');
  if (doc.kind !== 'Keyset') fail(`kind is ${JSON.stringify(doc.kind)}, want "Keyset"`);
  if (typeof doc.apiVersion !== 'string' || !doc.apiVersion.startsWith('kops.k8s.io/')) {
    fail(`apiVersion is ${JSON.stringify(doc.apiVersion)}, want "${API_VERSION}"`);
  }
  const metadata = isRecord(doc.metadata) ? doc.metadata : {};
  const spec = isRecord(doc.spec) ? doc.spec : fail('no spec');
  const rawKeys = spec.keys ?? [];
  if (!Array.isArray(rawKeys)) return fail('spec.keys is not a list');

  const keys = rawKeys.map((raw, index) => parseItem(raw, `spec.keys[${index}]`, fail));
  // Accept the internal-API spelling `primaryID` too; write `primaryId` only.
  const primaryId = spec.primaryId ?? spec.primaryID ?? '';
  return {
    name: typeof metadata.name === 'string' ? metadata.name : '',
    creationTimestamp: typeof metadata.creationTimestamp === 'string' ? metadata.creationTimestamp : undefined,
    type: typeof spec.type === 'string' ? spec.type : 'Keypair',
    primaryId: String(primaryId),
    keys,
  };
}

function parseItem(raw: unknown, where: string, fail: (why: string) => never): KeysetItem {
  if (!isRecord(raw)) return fail(`${where} is not a mapping`);
  // Ids are decimal strings, but a hand-edited file may hold an unquoted number.
  if (typeof raw.id !== 'string' && typeof raw.id !== 'number' && typeof raw.id !== 'bigint') fail(`${where}.id is missing`);
  const id = String(raw.id);
  const item: KeysetItem = { id };
  if (raw.publicMaterial !== undefined && raw.publicMaterial !== null) {
    const pem = decodeMaterial(raw.publicMaterial, `${where}.publicMaterial`, fail);
    try {
      new X509Certificate(pem);
    } catch (err) {
      fail(`${where}.publicMaterial (id ${id}) is not a PEM certificate: ${(err as Error).message}`);
    }
    item.publicMaterial = pem;
  }
  if (raw.privateMaterial !== undefined && raw.privateMaterial !== null) {
    const pem = decodeMaterial(raw.privateMaterial, `${where}.privateMaterial`, fail);
    try {
      createPrivateKey(pem);
    } catch {
      // The key's bytes are never echoed into a message.
      fail(`${where}.privateMaterial (id ${id}) is not a PEM private key`);
    }
    item.privateMaterial = pem;
  }
  if (item.publicMaterial !== undefined && item.privateMaterial !== undefined && !keyMatchesCertificate(item.publicMaterial, item.privateMaterial)) {
    fail(`${where} (id ${id}): the private key does not belong to the certificate`);
  }
  if (typeof raw.distrustTimestamp === 'string') item.distrustTimestamp = raw.distrustTimestamp;
  return item;
}

function keyMatchesCertificate(certPEM: string, keyPEM: string): boolean {
  try {
    return new X509Certificate(certPEM).checkPrivateKey(createPrivateKey(keyPEM));
  } catch {
    return false;
  }
}

function decodeMaterial(value: unknown, where: string, fail: (why: string) => never): string {
  if (typeof value !== 'string') return fail(`${where} is not a base64 string`);
  const compact = value.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) fail(`${where} is not valid base64`);
  return Buffer.from(compact, 'base64').toString('utf8');
}

/**
 * kOps' layout: apiVersion, kind, metadata, spec with keys sorted oldest first
 * and fields in the order Go's serializer writes them (alphabetical).
 */
export function serializeKeyset(ks: Keyset, options: { includePrivate: boolean }): string {
  const keys = [...ks.keys].sort((a, b) => compareKeysetIds(a.id, b.id)).map((item) => {
    const out: Record<string, string> = { id: item.id };
    if (item.distrustTimestamp) out.distrustTimestamp = item.distrustTimestamp;
    if (options.includePrivate && item.privateMaterial) out.privateMaterial = encodeMaterial(item.privateMaterial);
    if (item.publicMaterial) out.publicMaterial = encodeMaterial(item.publicMaterial);
    return out;
  });
  const metadata: Record<string, string | YAML.Scalar> = {};
  if (ks.creationTimestamp) metadata.creationTimestamp = quoted(ks.creationTimestamp);
  metadata.name = ks.name;
  const doc = {
    apiVersion: API_VERSION,
    kind: 'Keyset',
    metadata,
    spec: { keys, primaryId: ks.primaryId, type: ks.type },
  };
  // lineWidth 0: base64 material stays on one line; indentSeq false: lists as Go's YAML writes them.
  return YAML.stringify(doc, { lineWidth: 0, indentSeq: false });
}

/** Quoted like Kubernetes writes times, so YAML 1.1 readers do not take it for a timestamp. */
function quoted(value: string): YAML.Scalar {
  const scalar = new YAML.Scalar(value);
  scalar.type = YAML.Scalar.QUOTE_DOUBLE;
  return scalar;
}

function encodeMaterial(pem: string): string {
  return Buffer.from(pem, 'utf8').toString('base64');
}

/** kOps' KeysetItemIdOlder as a sort comparator: numeric ids by value, after non-numeric ones. */
export function compareKeysetIds(a: string, b: string): number {
  const na = /^\d+$/.test(a) ? BigInt(a) : undefined;
  const nb = /^\d+$/.test(b) ? BigInt(b) : undefined;
  if (na !== undefined && nb !== undefined) return na < nb ? -1 : na > nb ? 1 : 0;
  if (na !== undefined) return 1;
  if (nb !== undefined) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The item used for signing, chosen as kOps does (clientset_castore.go FindPrimary):
 * never a distrusted or non-numeric id; `primaryId` if it names one, else the newest.
 */
export function findPrimaryItem(ks: Keyset): KeysetItem | undefined {
  const candidates = ks.keys.filter((k) => !k.distrustTimestamp && /^\d+$/.test(k.id));
  return (
    candidates.find((k) => k.id === ks.primaryId) ??
    candidates.sort((a, b) => compareKeysetIds(a.id, b.id)).at(-1)
  );
}

export function primaryKeypair(ks: Keyset): Keypair {
  const item = findPrimaryItem(ks);
  if (!item) throw new UserError(`keyset ${ks.name}: no trusted primary keypair`);
  return toKeypair(ks.name, item);
}

/** One item as a keypair; both halves must be there. */
export function toKeypair(keysetName: string, item: KeysetItem): Keypair {
  if (!item.publicMaterial) throw new UserError(`keyset ${keysetName}: keypair ${item.id} has no certificate`);
  if (!item.privateMaterial) throw new UserError(`keyset ${keysetName}: keypair ${item.id} has no private key`);
  return { id: item.id, certPEM: item.publicMaterial, keyPEM: toPKCS8PEM(item.privateMaterial) };
}

/** The private keyset (the authoritative copy), or undefined if the store has none. */
export async function loadKeyset(store: StateStore, name: string): Promise<Keyset | undefined> {
  requireKeysetName(name);
  const path = StorePaths.keyset(name);
  const data = await store.readIfExists(path);
  if (data === undefined) return undefined;
  const ks = parseKeyset(data.toString('utf8'), store.urlOf(path));
  return { ...ks, name: ks.name || name };
}

/**
 * Writes pki/private/<name>/keyset.yaml (0600, has keys) and then the public-only
 * pki/issued copy derived from it. A crash between the two leaves the issued copy
 * stale, never the private one: issuedMismatch finds it and writeIssuedKeyset repairs it.
 */
export async function writeKeyset(store: StateStore, ks: Keyset): Promise<void> {
  requireKeysetName(ks.name);
  primaryKeypair(ks); // as kOps' StoreKeyset: refuse a keyset nothing could sign with
  await store.write(StorePaths.keyset(ks.name), serializeKeyset(ks, { includePrivate: true }), { mode: 0o600 });
  await writeIssuedKeyset(store, ks);
}

/** Writes the public-only pki/issued copy of a (private) keyset. */
export async function writeIssuedKeyset(store: StateStore, ks: Keyset): Promise<void> {
  requireKeysetName(ks.name);
  await store.write(StorePaths.issued(ks.name), serializeKeyset(ks, { includePrivate: false }));
}

/**
 * Why pki/issued/<name> does not hold the certificates of the private keyset ks
 * (missing, unreadable, a different primary, a different certificate under an id,
 * ids added or missing, key material where none belongs), or undefined when it does.
 */
export async function issuedMismatch(store: StateStore, ks: Keyset): Promise<string | undefined> {
  const path = StorePaths.issued(ks.name);
  const data = await store.readIfExists(path);
  if (data === undefined) return 'missing';
  let issued: Keyset;
  try {
    issued = parseKeyset(data.toString('utf8'), store.urlOf(path));
  } catch (err) {
    return (err as Error).message;
  }
  if (issued.keys.some((k) => k.privateMaterial !== undefined)) return 'holds private key material';
  if (issued.primaryId !== ks.primaryId) return `primary id is ${issued.primaryId || '(none)'}, pki/private says ${ks.primaryId}`;
  const publicHalf = (k: KeysetItem) => `${(k.publicMaterial ?? '').trim()}|${k.distrustTimestamp ?? ''}`;
  const want = new Map(ks.keys.map((k) => [k.id, publicHalf(k)]));
  const have = new Map(issued.keys.map((k) => [k.id, publicHalf(k)]));
  for (const [id, half] of want) {
    if (!have.has(id)) return `keypair ${id} is missing`;
    if (have.get(id) !== half) return `keypair ${id} holds a different certificate than pki/private`;
  }
  for (const id of have.keys()) if (!want.has(id)) return `keypair ${id} is not in pki/private`;
  return undefined;
}

/** Issued copies of existing private keysets that need rewriting, with why. */
export async function planIssuedRepairs(store: StateStore, names: string[]): Promise<Array<{ name: string; reason: string }>> {
  const repairs: Array<{ name: string; reason: string }> = [];
  for (const name of names) {
    const ks = await loadKeyset(store, name);
    if (!ks) continue;
    const reason = await issuedMismatch(store, ks);
    if (reason !== undefined) repairs.push({ name, reason });
  }
  return repairs;
}

/** Rewrites the issued copies planIssuedRepairs finds (from the private copies) and returns what it rewrote. */
export async function repairIssuedKeysets(store: StateStore, names: string[]): Promise<Array<{ name: string; reason: string }>> {
  const repairs = await planIssuedRepairs(store, names);
  for (const { name } of repairs) await writeIssuedKeyset(store, (await loadKeyset(store, name))!);
  return repairs;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The primary certificate from the public copy (pki/issued/<name>/keyset.yaml),
 * or undefined if the store has none. Never reads pki/private/: what nodes that
 * must not hold a CA's key use to trust it.
 */
export async function loadIssuedCertificate(store: StateStore, name: string): Promise<{ id: string; certPEM: string } | undefined> {
  requireKeysetName(name);
  const path = StorePaths.issued(name);
  const data = await store.readIfExists(path);
  if (data === undefined) return undefined;
  const ks = parseKeyset(data.toString('utf8'), store.urlOf(path));
  const item = findPrimaryItem(ks);
  if (!item?.publicMaterial) throw new UserError(`${store.urlOf(path)}: no trusted primary certificate`);
  return { id: item.id, certPEM: item.publicMaterial };
}
