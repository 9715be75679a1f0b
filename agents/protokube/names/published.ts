// The one object workers read: <config-base>/protokube/names.json, the live
// control-plane addresses as the control plane sees them. Written by any
// control-plane instance whose view differs from it (its bytes depend on
// nothing but the addresses, so instances that agree never rewrite it), read
// by every worker with a conditional GET: an unchanged object costs a 304 and
// no body. It carries addresses only: which names point at them is each
// node's own setting, so a forged object cannot put an arbitrary name into a
// node's hosts file.
import { isIP } from 'node:net';
import { sortAddresses } from './registry.js';

export const PUBLISHED_PATH = 'protokube/names.json';
const KIND = 'ControlPlaneAddresses';
const API_VERSION = 'mooring.dev/v1alpha1';
/** Far above any real control plane (kOps allows 7 instances per group); a bigger object is refused unread. */
export const MAX_PUBLISHED_BYTES = 64 * 1024;
const MAX_ADDRESSES = 256;

export interface PublishedAddresses {
  cluster: string;
  addresses: string[];
}

export function renderPublished(value: PublishedAddresses): string {
  return JSON.stringify({ apiVersion: API_VERSION, kind: KIND, cluster: value.cluster, addresses: sortAddresses(value.addresses) }) + '\n';
}

/** Parses and checks the object; throws one line naming what is wrong. */
export function parsePublished(data: Buffer, expectedCluster: string): PublishedAddresses {
  if (data.length > MAX_PUBLISHED_BYTES) throw new Error(`${data.length} bytes, more than the ${MAX_PUBLISHED_BYTES} a list of addresses can need`);
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object');
  const record = doc as Record<string, unknown>;
  if (record.apiVersion !== API_VERSION || record.kind !== KIND) throw new Error(`apiVersion/kind: want ${API_VERSION} ${KIND}`);
  if (record.cluster !== expectedCluster) throw new Error(`cluster: ${JSON.stringify(record.cluster)} is not this node's cluster ${JSON.stringify(expectedCluster)}`);
  if (!Array.isArray(record.addresses)) throw new Error('addresses: want a list');
  if (record.addresses.length > MAX_ADDRESSES) throw new Error(`addresses: ${record.addresses.length} entries, more than ${MAX_ADDRESSES}`);
  const addresses = record.addresses.map((a: unknown, i: number) => {
    if (typeof a !== 'string' || isIP(a) === 0) throw new Error(`addresses[${i}]: ${JSON.stringify(a)} is not an IP address`);
    return a;
  });
  return { cluster: expectedCluster, addresses: sortAddresses([...new Set(addresses)]) };
}
