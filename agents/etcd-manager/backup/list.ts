// Listing backups: ONE recursive list() of the backup store per call (kOps
// walks the tree folder by folder: ~700 S3 list calls a run, kopeio#356).
// A backup is a top-level folder holding `_etcd_backup.meta`; a folder with
// objects but no meta is an incomplete backup (a run cut off, or one being
// written right now): never listed as a backup, reported apart for retention.
import type { StateStore } from '../../../shared/store/types.js';
import { JsonpbError } from './jsonpb.js';
import { DATA_FILE, META_FILE, metaPath, NOT_BACKUPS, SIDECAR_FILE, sidecarPath, checkBackupName } from './layout.js';
import { parseBackupMeta, type BackupMeta } from './meta.js';
import { parseBackupName } from './names.js';
import { parseSidecar, type BackupSidecar } from './sidecar.js';

export interface ListedBackup {
  name: string;
  /** The time the name carries; undefined for names not of kOps' form (kept, never deleted by retention). */
  time?: Date;
  /** The folder also holds our sidecar (a backup of ours, or at least one with our facts). */
  hasSidecar: boolean;
  /** The folder holds the data object (a meta without data cannot be restored). */
  hasData: boolean;
  /** Every object in the folder, as store paths (what deleting the backup removes). */
  objects: string[];
}

export interface IncompleteBackup {
  name: string;
  time?: Date;
  /** Every object in the folder, as store paths (what deleting it removes). */
  objects: string[];
}

export interface BackupListing {
  /** Complete backups, oldest first (names sort by time). */
  backups: ListedBackup[];
  /** Folders without a meta. */
  incomplete: IncompleteBackup[];
}

/** Sorts the one listing of the store into backups and incomplete folders. Exported for tests and for callers that already listed. */
export function sortListing(paths: string[]): BackupListing {
  const folders = new Map<string, string[]>();
  for (const path of paths) {
    const slash = path.indexOf('/');
    if (slash <= 0) continue; // objects at the top level are not backups
    const folder = path.slice(0, slash);
    if (NOT_BACKUPS.has(folder)) continue;
    let objects = folders.get(folder);
    if (!objects) folders.set(folder, (objects = []));
    objects.push(path);
  }
  const backups: ListedBackup[] = [];
  const incomplete: IncompleteBackup[] = [];
  for (const [name, objects] of folders) {
    const time = parseBackupName(name)?.time;
    const has = (file: string) => objects.includes(`${name}/${file}`);
    if (has(META_FILE)) backups.push({ name, ...(time ? { time } : {}), hasSidecar: has(SIDECAR_FILE), hasData: has(DATA_FILE), objects });
    else incomplete.push({ name, ...(time ? { time } : {}), objects });
  }
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { backups: backups.sort(byName), incomplete: incomplete.sort(byName) };
}

/**
 * The newest complete backup by the time in its name (names that carry no time
 * are skipped): what "time of the last backup" is after a leader change.
 */
export function newestBackup(listing: BackupListing): ListedBackup | undefined {
  let newest: ListedBackup | undefined;
  for (const b of listing.backups) if (b.time && (!newest || b.name > newest.name)) newest = b;
  return newest;
}

/** One recursive listing of the backup store. */
export async function listBackups(store: StateStore): Promise<BackupListing> {
  return sortListing(await store.list());
}

export interface BackupInfo {
  name: string;
  meta: BackupMeta;
  /** Absent for backups written by kOps' etcd-manager (or other tools). */
  sidecar?: BackupSidecar;
}

export class BackupNotFoundError extends Error {}
export class BackupFormatError extends Error {}

/** Reads one backup's meta and sidecar (two GETs). BackupNotFoundError when it has no meta. */
export async function loadBackupInfo(store: StateStore, name: string): Promise<BackupInfo> {
  checkBackupName(name);
  const [metaBytes, sidecarBytes] = await Promise.all([store.readIfExists(metaPath(name)), store.readIfExists(sidecarPath(name))]);
  if (metaBytes === undefined) throw new BackupNotFoundError(`backup ${name} not found: ${store.urlOf(metaPath(name))} does not exist (an incomplete or missing backup)`);
  try {
    const meta = parseBackupMeta(metaBytes.toString('utf8'), store.urlOf(metaPath(name)));
    const sidecar = sidecarBytes === undefined ? undefined : parseSidecar(sidecarBytes.toString('utf8'), store.urlOf(sidecarPath(name)));
    return { name, meta, ...(sidecar ? { sidecar } : {}) };
  } catch (err) {
    if (err instanceof JsonpbError) throw new BackupFormatError(err.message, { cause: err });
    throw err;
  }
}
