// Certificates and keys, as PEM strings, over @peculiar/x509 and Node's WebCrypto.
// Keys are RSA 2048 by default (what kOps generates and what every consumer of a
// kOps state store accepts); ECDSA P-256 is there for tests and callers that want
// fast key generation (~1 ms against ~300 ms). Private keys leave this module as
// PKCS#8 PEM ("PRIVATE KEY"), which kOps' parser reads as well as its PKCS#1.
// tsyringe (inside @peculiar/x509) needs the Reflect metadata API at import time.
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

// Node-only readers, here too for the callers that issue as well (inspect.ts says why they are apart).
export { toPKCS8PEM, verifyIssuedBy } from './inspect.js';

const subtle = webcrypto.subtle;
// Set once for the process; every @peculiar/x509 call below uses it by default.
x509.cryptoProvider.set(webcrypto as Crypto);

/** Backdating notBefore tolerates clocks that lag (fresh instances before NTP); kOps uses 48 h. */
const CLOCK_SKEW_ALLOWANCE_MS = 48 * 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

export type KeyAlgorithm = 'RSA-2048' | 'ECDSA-P256';
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = 'RSA-2048';

const KEY_GEN_PARAMS: Record<KeyAlgorithm, RsaHashedKeyGenParams | EcKeyGenParams> = {
  'RSA-2048': { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
  'ECDSA-P256': { name: 'ECDSA', namedCurve: 'P-256' },
};
const SIGNING_PARAMS: Record<KeyAlgorithm, Algorithm | EcdsaParams> = {
  'RSA-2048': { name: 'RSASSA-PKCS1-v1_5' },
  'ECDSA-P256': { name: 'ECDSA', hash: 'SHA-256' },
};

export interface CertificateAndKey {
  certPEM: string;
  /** PKCS#8 PEM. */
  keyPEM: string;
}

export type CertificateUsage = 'server' | 'client' | 'peer';

export interface IssueRequest {
  commonName: string;
  organization?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  /** peer = server + client (etcd peers authenticate both ways). */
  usage: CertificateUsage;
  validityDays: number;
  /** The new certificate's key; the CA's key type decides the signature. Default RSA-2048. */
  keyAlgorithm?: KeyAlgorithm;
}

export interface CertificateInfo {
  subjectCN: string;
  /** Subject O values, in order. */
  subjectOrganization: string[];
  issuerCN: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
  /** Lower-case hex, no leading zero byte. */
  serialHex: string;
  /** The serial in decimal: the form kOps uses as a keyset item id. */
  serialDecimal: string;
  isCA: boolean;
}

export function generateKeyPair(algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM): Promise<CryptoKeyPair> {
  return subtle.generateKey(KEY_GEN_PARAMS[algorithm], true, ['sign', 'verify']);
}

/**
 * A positive 128-bit serial: 64 bits of wall-clock nanoseconds, then 64 random bits.
 * The time prefix keeps kOps' rule that a larger keyset id is a newer key
 * (upup/pkg/fi/ca.go KeysetItemIdOlder); the random half keeps serials unguessable.
 */
export function newSerialHex(now: Date = new Date()): string {
  const nanos = BigInt(now.getTime()) * 1_000_000n;
  return nanos.toString(16).padStart(16, '0') + randomBytes(8).toString('hex');
}

export async function createCA(
  commonName: string,
  validityDays: number,
  options: { keyAlgorithm?: KeyAlgorithm } = {},
): Promise<CertificateAndKey> {
  requireValidity(validityDays);
  const algorithm = options.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM;
  const keys = await generateKeyPair(algorithm);
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerialHex(now),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now.getTime() - CLOCK_SKEW_ALLOWANCE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    keys,
    signingAlgorithm: SIGNING_PARAMS[algorithm],
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPEM: certToPEM(cert), keyPEM: await privateKeyToPEM(keys.privateKey) };
}

export async function issueCertificate(ca: CertificateAndKey, request: IssueRequest): Promise<CertificateAndKey> {
  requireValidity(request.validityDays);
  for (const ip of request.ipAddresses ?? []) {
    if (isIP(ip) === 0) throw new Error(`issuing certificate for ${request.commonName}: ${JSON.stringify(ip)} is not an IP address`);
  }
  const caCert = new x509.X509Certificate(ca.certPEM);
  const { key: caKey, algorithm } = await importSigningKey(ca.keyPEM);
  const keyAlgorithm = request.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM;
  const keys = await generateKeyPair(keyAlgorithm);
  const now = new Date();
  const notAfter = new Date(Math.min(now.getTime() + request.validityDays * DAY_MS, caCert.notAfter.getTime()));

  const subject: x509.JsonName = [];
  if (request.organization?.length) subject.push({ O: [...request.organization] });
  subject.push({ CN: [request.commonName] });

  const sans: x509.JsonGeneralName[] = [
    ...(request.dnsNames ?? []).map((value): x509.JsonGeneralName => ({ type: 'dns', value })),
    ...(request.ipAddresses ?? []).map((value): x509.JsonGeneralName => ({ type: 'ip', value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(leafKeyUsage(request.usage, keyAlgorithm), true),
    new x509.ExtendedKeyUsageExtension(extendedKeyUsages(request.usage)),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await authorityKeyIdentifier(caCert),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerialHex(now),
    subject,
    // The CA's own encoded name, so Go's byte-wise issuer/subject match finds the CA.
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_ALLOWANCE_MS),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: algorithm,
    extensions,
  });
  return { certPEM: certToPEM(cert), keyPEM: await privateKeyToPEM(keys.privateKey) };
}

export function parseCertificate(pem: string): CertificateInfo {
  const cert = new x509.X509Certificate(pem);
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  return {
    subjectCN: cert.subjectName.getField('CN')[0] ?? '',
    subjectOrganization: cert.subjectName.getField('O'),
    issuerCN: cert.issuerName.getField('CN')[0] ?? '',
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    serialHex: cert.serialNumber.toLowerCase(),
    serialDecimal: BigInt(`0x${cert.serialNumber}`).toString(10),
    isCA: cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
  };
}

function requireValidity(validityDays: number): void {
  if (!Number.isFinite(validityDays) || validityDays <= 0) {
    throw new Error(`certificate validity must be a positive number of days, got ${validityDays}`);
  }
}

function leafKeyUsage(usage: CertificateUsage, algorithm: KeyAlgorithm): x509.KeyUsageFlags {
  // kOps: client = DigitalSignature; server and clientServer add KeyEncipherment,
  // which only means something for RSA key exchange (RFC 5480 forbids it for EC keys).
  return usage === 'client' || algorithm !== 'RSA-2048'
    ? x509.KeyUsageFlags.digitalSignature
    : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;
}

function extendedKeyUsages(usage: CertificateUsage): string[] {
  switch (usage) {
    case 'server':
      return [x509.ExtendedKeyUsage.serverAuth];
    case 'client':
      return [x509.ExtendedKeyUsage.clientAuth];
    case 'peer':
      return [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  }
}

async function authorityKeyIdentifier(caCert: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  // Reuse the CA's own SKI when it has one, so the two always agree.
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
  return x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
}

/** Imports a CA key (ours, or RSA/EC from a kOps store) for signing with SHA-256. */
async function importSigningKey(keyPEM: string): Promise<{ key: CryptoKey; algorithm: Algorithm | EcdsaParams }> {
  const keyObject = createPrivateKey(keyPEM);
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  if (keyObject.asymmetricKeyType === 'rsa') {
    const algorithm: RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { key: await subtle.importKey('pkcs8', der, algorithm, false, ['sign']), algorithm };
  }
  if (keyObject.asymmetricKeyType === 'ec') {
    const namedCurve = { prime256v1: 'P-256', secp384r1: 'P-384' }[keyObject.asymmetricKeyDetails?.namedCurve ?? ''];
    if (namedCurve) {
      const key = await subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve }, false, ['sign']);
      return { key, algorithm: { name: 'ECDSA', hash: 'SHA-256' } };
    }
  }
  throw new Error(`unsupported CA key type ${keyObject.asymmetricKeyType ?? 'unknown'} (want RSA, or EC P-256/P-384)`);
}

async function privateKeyToPEM(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function certToPEM(cert: x509.X509Certificate): string {
  const pem = cert.toString('pem').replace(/\r\n/g, '\n');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
