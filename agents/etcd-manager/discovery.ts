// Peer discovery through the backup store: each manager writes one JSON
// record, discovery/<member>.json, with its endpoints, and re-writes it every
// poll; reading the folder lists the peers. A record is a hint, not a vote:
// nothing here decides leadership. The leader prunes the records of managers
// that neither answer nor re-register for a long time (instances gone for good),
// so /etc/hosts and every peer's polling stop carrying them.
import type { StateStore } from '../../shared/store/types.js';
import { compareNames } from './order.js';

export interface PeerRecord {
  member: string;
  instanceId: string;
  address: string;
  dnsName: string;
  grpcEndpoint: string;
  peerURLs: string[];
  clientURLs: string[];
  updatedAt: string;
}

const FOLDER = 'discovery';

export async function registerPeer(store: StateStore, record: PeerRecord): Promise<void> {
  await store.write(`${FOLDER}/${record.member}.json`, JSON.stringify(record, null, 2) + '\n');
}

export async function unregisterPeer(store: StateStore, member: string): Promise<void> {
  await store.delete(`${FOLDER}/${member}.json`);
}

/** Every readable record, by member name; unreadable ones are skipped (a peer mid-write is not an error). */
export async function listPeers(store: StateStore): Promise<PeerRecord[]> {
  const names = (await store.listChildren(FOLDER)).filter((n) => n.endsWith('.json'));
  const records: PeerRecord[] = [];
  for (const name of names) {
    const data = await store.readIfExists(`${FOLDER}/${name}`);
    if (!data) continue;
    try {
      const rec = JSON.parse(data.toString('utf8')) as PeerRecord;
      if (typeof rec.member === 'string' && typeof rec.address === 'string') records.push(rec);
    } catch {
      // torn or foreign file: ignore, the owner rewrites it on its next poll
    }
  }
  return records.sort((a, b) => compareNames(a.member, b.member));
}

/** How long a silent manager's record is kept: long enough for any reboot or restore, yet not forever. */
export function recordTTLms(discoveryPollIntervalMs: number): number {
  return Math.max(10 * 60_000, 20 * discoveryPollIntervalMs);
}

/** Deletes the records not rewritten for ttlMs whose manager did not answer; returns their member names. */
export async function pruneStaleRecords(store: StateStore, records: PeerRecord[], answered: ReadonlySet<string>, ttlMs: number, now = Date.now()): Promise<string[]> {
  const stale = records.filter((r) => !answered.has(r.member) && !(now - Date.parse(r.updatedAt) < ttlMs));
  for (const r of stale) await unregisterPeer(store, r.member);
  return stale.map((r) => r.member);
}
