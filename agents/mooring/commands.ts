// The operations behind each `mooring` command. Every one validates everything
// before it writes anything, so bad input leaves the store exactly as it was.
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import YAML from 'yaml';
import { buildBootConfig } from '../../shared/api/nodeconfig.js';
import { newClusterObjects } from '../../shared/api/complete.js';
import { unknownFields } from '../../shared/api/known-fields.js';
import { additionalObjectProblems, describeAdditionalObject, stringifyAdditionalObjects, type AdditionalObject } from '../../shared/api/additional-objects.js';
import { MAX_SPEC_BYTES, parseObjects, parseSpecFile, SpecError, stringifyObjects, tooLarge, type ParsedObject, type ParsedSpecFile } from '../../shared/api/parse.js';
import { StorePaths, type Cluster, type InstanceGroup } from '../../shared/api/types.js';
import { MAX_GROUP_SIZE } from '../../shared/api/validate-util.js';
import { ExitCode, UserError } from '../../shared/errors.js';
import type { StateStore } from '../../shared/store/types.js';
import { resolveAgentBinary, type AgentBinary, type AgentBinaryOptions } from './agent-binary.js';
import { ClusterRepository, type StoredCluster } from './cluster-repository.js';
import type { CliIO } from './io.js';
import { cloudName, formatInstanceGroups, parseOutputFormat, table, zonesOf } from './output.js';
import { formatPlan, hasChanges } from './store-plan.js';
import { requireValid } from './validation.js';
import { checkReachableFromInstances } from './reachability.js';
import { LOCK_PATH, withWriterLock } from './writer-lock.js';
import type { WriterLockSettings } from './writer-lock-flags.js';

export interface CreateClusterOptions {
  zones?: string;
  controlPlaneCount: string;
  nodeCount: string;
  cloud: string;
  kubernetesVersion?: string;
}

export async function createCluster(store: StateStore, io: CliIO, name: string, o: CreateClusterOptions, lock: WriterLockSettings): Promise<void> {
  if (o.cloud !== 'aws' && o.cloud !== 'local') {
    throw new UserError(`--cloud: unknown cloud "${o.cloud}" (want aws or local)`, ExitCode.Usage);
  }
  const zones = (o.zones ?? (o.cloud === 'local' ? 'local-a' : '')).split(',').map((z) => z.trim()).filter(Boolean);
  if (zones.length === 0) throw new UserError('--zones is required (e.g. --zones us-east-1a,us-east-1b)', ExitCode.Usage);
  const objects = newClusterObjects({
    name,
    zones,
    controlPlaneCount: parseCount('--control-plane-count', o.controlPlaneCount, MAX_CONTROL_PLANE_COUNT),
    nodeCount: parseCount('--node-count', o.nodeCount, MAX_GROUP_SIZE),
    cloud: o.cloud,
    kubernetesVersion: o.kubernetesVersion,
  });
  await createObjects(store, io, [objects.cluster, ...objects.instanceGroups], lock);
}

/** One etcd member per control-plane instance: etcd advises at most 7. */
const MAX_CONTROL_PLANE_COUNT = 7;

function parseCount(flag: string, value: string, max: number): number {
  if (!/^\d+$/.test(value)) throw new UserError(`${flag}: "${value}" is not a whole number`, ExitCode.Usage);
  // Compared as digits first: a long string of them is no number a count can be.
  if (value.replace(/^0+(?=\d)/, '').length > String(max).length || Number(value) > max) {
    throw new UserError(`${flag}: ${value} is too many (at most ${max})`, ExitCode.Usage);
  }
  return Number(value);
}

export interface ObjectsFileOptions {
  /** Refuse fields neither kOps nor Mooring knows, instead of warning. */
  strict?: boolean;
}

async function readObjectsFile(io: CliIO, file: string, options: ObjectsFileOptions): Promise<ParsedSpecFile> {
  const source = file === '-' ? '<stdin>' : file;
  let bytes: Buffer;
  try {
    bytes = file === '-' ? await readCapped(process.stdin, source) : await readFileCapped(file);
  } catch (err) {
    if (err instanceof SpecError) throw err;
    throw new UserError(`cannot read ${file}: ${(err as Error).message}`, ExitCode.Usage, { cause: err });
  }
  const parsed = parseSpecFile(bytes.toString('utf8'), source);
  // Additional objects alone: say what they lack, not that the file is empty.
  checkAdditionalObjects(parsed);
  if (parsed.objects.length === 0) throw new UserError(`${file}: no Cluster or InstanceGroup objects found`, ExitCode.InvalidSpec);
  checkUnknownFields(io, parsed.objects, options.strict ?? false);
  return parsed;
}

/** kOps: additional objects belong to the one cluster the file creates or replaces; its own rules for them. */
function checkAdditionalObjects(parsed: ParsedSpecFile): void {
  if (parsed.additional.length === 0) return;
  const clusters = parsed.objects.filter((o) => o.object.kind === 'Cluster');
  const first = parsed.additional[0];
  if (clusters.length !== 1) {
    const why = clusters.length === 0 ? 'the file holds no Cluster' : 'the file holds several Clusters';
    throw new SpecError(`${first.object.kind}: additional objects go with exactly one Cluster in the same file (${why})`, {
      source: first.source,
      path: 'kind',
      line: first.lineOf('kind'),
    });
  }
  const problems = parsed.additional.flatMap((a) =>
    additionalObjectProblems(a.object).map((p) => new SpecError(`${a.object.kind}: ${p.reason}`, { source: a.source, path: p.path, line: a.lineOf(p.path) })),
  );
  if (problems.length > 0) throw new UserError(problems.map((e) => e.message).join('\n'), ExitCode.InvalidSpec);
}

/** A spec file, refused by its size before it is read (and, for a pipe or device, once too much has come). */
async function readFileCapped(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const { size, isFile } = await handle.stat().then((st) => ({ size: st.size, isFile: st.isFile() }));
    if (isFile && size > MAX_SPEC_BYTES) throw tooLarge(file, size);
    return await readCapped(handle.createReadStream({ autoClose: false }), file);
  } finally {
    await handle.close();
  }
}

async function readCapped(stream: Readable, source: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > MAX_SPEC_BYTES) {
      stream.destroy();
      throw tooLarge(source, undefined);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Every field kOps and Mooring do not know: a warning each (the field is kept), or with --strict an error each. */
function checkUnknownFields(io: CliIO, objects: ParsedObject[], strict: boolean): void {
  const found = objects.flatMap((parsed) =>
    unknownFields(parsed.object).map((path) => new SpecError(strict ? 'unknown field (refused by --strict)' : 'unknown field (kept as written; --strict refuses it)', {
      source: parsed.source,
      path,
      line: parsed.lineOf(path),
    })),
  );
  if (strict && found.length > 0) throw new UserError(found.map((e) => e.message).join('\n'), ExitCode.InvalidSpec);
  for (const warning of found) io.err(`warning: ${warning.message}\n`);
}

/** Groups objects by the cluster they belong to (a group names its cluster by label, or the file's only cluster). */
function byCluster(file: ParsedSpecFile): Map<string, ClusterPart> {
  const objects = file.objects;
  const clusters = objects.filter((o) => o.object.kind === 'Cluster');
  const fallback = clusters.length === 1 ? clusters[0]?.object.metadata.name : undefined;
  const result = new Map<string, ClusterPart>();
  const entry = (name: string) => {
    let e = result.get(name);
    if (!e) result.set(name, (e = { groups: [] }));
    return e;
  };
  for (const parsed of objects) {
    if (parsed.object.kind === 'Cluster') {
      const e = entry(parsed.object.metadata.name);
      if (e.cluster) throw new UserError(`${parsed.source}: cluster "${parsed.object.metadata.name}" appears twice`, ExitCode.InvalidSpec);
      e.cluster = parsed;
    } else {
      const name = parsed.object.metadata.labels?.['kops.k8s.io/cluster'] ?? fallback;
      if (!name) {
        throw new UserError(
          `${parsed.source}: instance group "${parsed.object.metadata.name}" has no metadata.labels."kops.k8s.io/cluster" and the file holds no single cluster`,
          ExitCode.InvalidSpec,
        );
      }
      entry(name).groups.push(parsed);
    }
  }
  // checkAdditionalObjects made sure there is exactly one cluster when there are any.
  if (file.additional.length > 0 && fallback) entry(fallback).additional = file.additional.map((a) => a.object);
  return result;
}

export async function createFromFile(store: StateStore, io: CliIO, file: string, lock: WriterLockSettings, options: ObjectsFileOptions = {}): Promise<void> {
  const parsed = await readObjectsFile(io, file, options);
  await createObjects(store, io, parsed, lock);
}

async function createObjects(store: StateStore, io: CliIO, input: ParsedSpecFile | Array<Cluster | InstanceGroup>, lock: WriterLockSettings): Promise<void> {
  const file: ParsedSpecFile = Array.isArray(input) ? { objects: input.map(asParsed), additional: [] } : input;
  await validateThenSave(store, io, file, 'created', lock, (name, part, current) => {
    if (part.cluster && current) throw new UserError(`cluster "${name}" already exists in ${store.baseURL}; use replace -f to change it`, ExitCode.Conflict);
    for (const g of part.groups) {
      if (current?.instanceGroups.some((c) => c.object.metadata.name === g.object.metadata.name)) {
        throw new UserError(`instance group "${g.object.metadata.name}" already exists in cluster "${name}"; use replace -f to change it`, ExitCode.Conflict);
      }
    }
  });
}

export async function replaceFromFile(store: StateStore, io: CliIO, file: string, force: boolean, lock: WriterLockSettings, options: ObjectsFileOptions = {}): Promise<void> {
  const parsed = await readObjectsFile(io, file, options);
  await validateThenSave(store, io, parsed, 'replaced', lock, (name, part, current) => {
    if (!current && !(force && part.cluster)) {
      throw new UserError(`cluster "${name}" not found in ${store.baseURL}; use create -f (or replace --force)`, ExitCode.NotFound);
    }
    for (const g of part.groups) {
      if (!force && !current?.instanceGroups.some((c) => c.object.metadata.name === g.object.metadata.name)) {
        throw new UserError(`instance group "${g.object.metadata.name}" not found in cluster "${name}"; use create -f (or replace --force)`, ExitCode.NotFound);
      }
    }
  });
}

type ClusterPart = { cluster?: ParsedObject; groups: ParsedObject[]; additional?: AdditionalObject[] };

/**
 * Checks and validates every cluster the input touches (the stored objects merged with
 * the new ones) and only then writes anything, so bad input leaves the store as it was.
 * Reads and writes happen under the writer lock of every cluster touched.
 */
async function validateThenSave(
  root: StateStore,
  io: CliIO,
  file: ParsedSpecFile,
  verb: 'created' | 'replaced',
  lock: WriterLockSettings,
  check: (name: string, part: ClusterPart, current: StoredCluster | undefined) => void,
): Promise<void> {
  const parts = byCluster(file);
  await withWriterLock(root, [...parts.keys()], io, lock, (store) => validateThenSaveLocked(store, io, parts, verb, check));
}

async function validateThenSaveLocked(
  store: StateStore,
  io: CliIO,
  parts: Map<string, ClusterPart>,
  verb: 'created' | 'replaced',
  check: (name: string, part: ClusterPart, current: StoredCluster | undefined) => void,
): Promise<void> {
  const repo = new ClusterRepository(store);
  const writes: Array<() => Promise<void>> = [];
  for (const [name, part] of parts) {
    const current = (await repo.exists(name)) ? await repo.load(name) : undefined;
    check(name, part, current);
    const cluster = part.cluster ?? current?.cluster;
    if (!cluster) throw new UserError(`cluster "${name}" not found in ${store.baseURL}; create the cluster first`, ExitCode.NotFound);
    const incoming = new Set(part.groups.map((g) => g.object.metadata.name));
    const kept = (current?.instanceGroups ?? []).filter((g) => !incoming.has(g.object.metadata.name));
    requireValid(cluster, [...kept, ...part.groups]);
    writes.push(async () => {
      await repo.save(name, {
        cluster: part.cluster?.object as Cluster | undefined,
        instanceGroups: part.groups.map((g) => g.object as InstanceGroup),
        additionalObjects: part.additional,
      });
      io.out(describeWrite(verb, name, part.cluster !== undefined, part.groups, part.additional ?? []));
    });
  }
  for (const write of writes) await write();
}

function describeWrite(verb: string, cluster: string, wroteCluster: boolean, groups: ParsedObject[], additional: AdditionalObject[]): string {
  const parts: string[] = [];
  if (wroteCluster) parts.push(`cluster "${cluster}"`);
  for (const g of groups) parts.push(`instance group "${g.object.metadata.name}"`);
  if (additional.length > 0) parts.push(`${additional.length} additional object${additional.length === 1 ? '' : 's'}`);
  return `${verb} ${parts.join(', ')}${wroteCluster ? '' : ` in cluster "${cluster}"`}\n`;
}

function asParsed(o: ParsedObject | Cluster | InstanceGroup): ParsedObject {
  if ('object' in o && 'source' in o) return o as ParsedObject;
  const object = o as Cluster | InstanceGroup;
  return { object, source: `generated ${object.kind} "${object.metadata.name}"`, lineOf: () => undefined };
}

export async function getClusters(store: StateStore, io: CliIO, output?: string): Promise<void> {
  const format = parseOutputFormat(output, 'table');
  const repo = new ClusterRepository(store);
  const clusters: Cluster[] = [];
  for (const name of await repo.listClusters()) clusters.push((await repo.load(name)).cluster.object);
  if (format !== 'table') {
    io.out(stringifyObjects(clusters, format));
    return;
  }
  if (clusters.length === 0) {
    io.err(`no clusters found in ${store.baseURL}\n`);
    return;
  }
  io.out(table(['NAME', 'CLOUD', 'ZONES'], clusters.map((c) => [c.metadata.name, cloudName(c), zonesOf(c)])));
}

export async function getCluster(store: StateStore, io: CliIO, name: string, output: string | undefined, withGroups: boolean): Promise<void> {
  const format = parseOutputFormat(output, 'table');
  const stored = await new ClusterRepository(store).load(name);
  const cluster = stored.cluster.object;
  if (format === 'table') {
    io.out(table(['NAME', 'CLOUD', 'ZONES'], [[cluster.metadata.name, cloudName(cluster), zonesOf(cluster)]]));
    if (withGroups) io.out('\n' + formatInstanceGroups(stored.instanceGroups.map((g) => g.object), 'table'));
    if (withGroups && stored.additionalObjects.length > 0) {
      io.out('\n' + table(['ADDITIONAL OBJECT'], stored.additionalObjects.map((o) => [describeAdditionalObject(o)])));
    }
    return;
  }
  const objects = withGroups ? [cluster, ...stored.instanceGroups.map((g) => g.object)] : [cluster];
  // `get all` lists the additional objects too, so its output can be given back to create/replace -f.
  const additional = withGroups ? stored.additionalObjects : [];
  if (format === 'yaml') {
    io.out([stringifyObjects(objects, 'yaml'), ...(additional.length > 0 ? [stringifyAdditionalObjects(additional)] : [])].join('---\n'));
    return;
  }
  const all: unknown[] = [...objects, ...additional];
  io.out(`${JSON.stringify(all.length === 1 ? all[0] : { apiVersion: 'v1', kind: 'List', items: all }, null, 2)}\n`);
}

export async function getInstanceGroups(store: StateStore, io: CliIO, name: string, output?: string): Promise<void> {
  const format = parseOutputFormat(output, 'table');
  const stored = await new ClusterRepository(store).load(name);
  io.out(formatInstanceGroups(stored.instanceGroups.map((g) => g.object), format));
}

/**
 * The boot config an instance group's user-data carries, derived from the stored
 * node config (its hash covers exactly those bytes), for debugging and tests.
 */
export async function getBootConfig(store: StateStore, io: CliIO, name: string, ig: string): Promise<void> {
  const repo = new ClusterRepository(store);
  const stored = await repo.load(name);
  const group = stored.instanceGroups.find((g) => g.object.metadata.name === ig)?.object;
  if (!group) throw new UserError(`instance group "${ig}" not found in cluster "${name}"`, ExitCode.NotFound);
  const cs = repo.clusterStore(name);
  const nodeConfig = await cs.readIfExists(StorePaths.nodeupConfig(group.spec.role, ig));
  const completedText = await cs.readIfExists(StorePaths.completedSpec);
  if (nodeConfig === undefined || completedText === undefined) {
    throw new UserError(`no node config for instance group "${ig}" yet: run "mooring update cluster ${name} --yes" first`, ExitCode.NotFound);
  }
  const completed = parseObjects(completedText.toString('utf8'), cs.urlOf(StorePaths.completedSpec)).find((o) => o.object.kind === 'Cluster');
  if (!completed) throw new UserError(`${cs.urlOf(StorePaths.completedSpec)}: no Cluster object`, ExitCode.InvalidSpec);
  // The configBase user-data names: the completed spec's (spec.configBase when set, else this store).
  const completedCluster = completed.object as Cluster;
  io.out(YAML.stringify(buildBootConfig(completedCluster, group, nodeConfig, completedCluster.spec.configBase ?? cs.baseURL)));
}

export async function getUserData(store: StateStore, io: CliIO, name: string, ig: string): Promise<void> {
  await getRendered(store, io, name, ig, StorePaths.userData(ig), 'user-data');
}

async function getRendered(store: StateStore, io: CliIO, name: string, ig: string, path: string, what: string): Promise<void> {
  const repo = new ClusterRepository(store);
  const stored = await repo.load(name);
  if (!stored.instanceGroups.some((g) => g.object.metadata.name === ig)) {
    throw new UserError(`instance group "${ig}" not found in cluster "${name}"`, ExitCode.NotFound);
  }
  const content = await repo.clusterStore(name).readIfExists(path);
  if (content === undefined) {
    throw new UserError(`no ${what} for instance group "${ig}" yet: run "mooring update cluster ${name} --yes" first`, ExitCode.NotFound);
  }
  io.out(content.toString('utf8'));
}

export async function runUpdateCluster(
  store: StateStore,
  io: CliIO,
  name: string,
  options: AgentBinaryOptions & { yes: boolean },
  lock: WriterLockSettings,
): Promise<void> {
  // A cluster that does not exist is reported before anything (even a lock) is written for it.
  if (!(await new ClusterRepository(store).exists(name))) throw new UserError(`cluster "${name}" not found in ${store.baseURL}`, ExitCode.NotFound);
  const agent = await resolveAgentBinary(options, io.env);
  if (!options.yes) {
    await updateClusterIn(store, io, name, agent, false); // a dry run writes nothing and takes no lock
    return;
  }
  await withWriterLock(store, [name], io, lock, (locked) => updateClusterIn(locked, io, name, agent, true));
}

async function updateClusterIn(store: StateStore, io: CliIO, name: string, resolvedAgent: AgentBinary, yes: boolean): Promise<void> {
  const repo = new ClusterRepository(store);
  let stored = await repo.load(name);
  // Loaded on demand, like update-cluster.js below.
  const localCloud = await import('./cloud/local/update.js');
  const local = localCloud.isLocalCluster(stored.cluster.object) ? await localCloud.prepareLocalUpdate(store, io, stored, resolvedAgent) : undefined;
  const target = local && !('note' in local) ? local : undefined;
  if (target) stored = target.stored;
  const agent = target?.agent ?? resolvedAgent;
  const clusterStore = repo.clusterStore(name);
  checkReachableFromInstances(stored.cluster.object, clusterStore.baseURL, agent);
  const configBase = stored.cluster.object.spec.configBase;
  if (configBase && configBase.replace(/\/+$/, '') !== clusterStore.baseURL) {
    io.err(`warning: spec.configBase is ${configBase} but this cluster is stored at ${clusterStore.baseURL}; instances will read their configuration from ${configBase}\n`);
  }
  // Loaded on demand: the PKI and X.509 stack costs start-up time every other command would pay.
  const { updateCluster } = await import('./update-cluster.js');
  const result = await updateCluster(clusterStore, stored, agent, yes, target ? { mirrorHash: target.mirrorHash } : {});
  for (const warning of result.warnings) io.err(`${warning}\n`);
  io.out(formatPlan(clusterStore.baseURL, result.entries, result.applied));
  if (!hasChanges(result.entries)) {
    io.out('No changes needed.\n');
  } else if (!yes) {
    io.out(`\nMust specify --yes to apply changes: mooring update cluster ${name} --yes\n`);
  } else {
    io.out(`\nCluster "${name}" updated in ${clusterStore.baseURL}.\n`);
  }
  if (target) await localCloud.updateLocalCluster(target, clusterStore, result.completed, yes, io);
  // Last, once the store is written: a plan or an error reads the same on every cloud.
  if (yes && local && 'note' in local) io.err(`${local.note}\n`);
}

/** The top-level paths of kOps' layout that `delete cluster` removes; anything else is left alone. */
const CLUSTER_LAYOUT = ['config', 'cluster-completed.spec', 'instancegroup/', 'clusteraddons/', 'pki/', 'secrets/', 'igconfig/', 'addons/', 'manifests/', 'userdata/'];
const BACKUPS = 'backups/';

export async function deleteCluster(
  store: StateStore,
  io: CliIO,
  name: string,
  o: { yes: boolean; includeBackups: boolean },
  lock: WriterLockSettings,
): Promise<void> {
  const repo = new ClusterRepository(store);
  // The local cloud's instances and volumes go first (under the lock), also when a crashed run left them behind
  // without a spec: its records, not the store, say what it holds, so there is then no cluster to lock.
  const releaseLocal = async (s: StateStore) => (await import('./cloud/local/update.js')).deleteLocalCluster(s, name, io);
  if (!(await repo.exists(name))) {
    if (o.yes && (await releaseLocal(store))) return;
    throw new UserError(`cluster "${name}" not found in ${store.baseURL}`, ExitCode.NotFound);
  }
  if (!o.yes) {
    await deleteClusterIn(store, io, name, o);
    return;
  }
  await withWriterLock(store, [name], io, lock, async (locked) => {
    await releaseLocal(locked);
    await deleteClusterIn(locked, io, name, o);
  });
}

async function deleteClusterIn(store: StateStore, io: CliIO, name: string, o: { yes: boolean; includeBackups: boolean }): Promise<void> {
  const repo = new ClusterRepository(store);
  const cs = repo.clusterStore(name);
  // The lock is the writers' own (released, and so removed, when this command ends), not the cluster's.
  const all = (await cs.list('')).filter((p) => p !== LOCK_PATH);
  const inLayout = (p: string) => CLUSTER_LAYOUT.some((l) => (l.endsWith('/') ? p.startsWith(l) : p === l));
  const doomed = all.filter((p) => inLayout(p) || (o.includeBackups && p.startsWith(BACKUPS)));
  const kept = all.filter((p) => !doomed.includes(p));
  // The cluster's config goes last, so an interrupted delete can be run again.
  doomed.sort((a, b) => Number(a === 'config') - Number(b === 'config') || a.localeCompare(b));
  if (!o.yes) {
    io.out(`Will delete ${doomed.length} objects of cluster "${name}" from ${cs.baseURL}:\n`);
    for (const p of doomed) io.out(`  ${p}\n`);
    io.out(`\nMust specify --yes to delete: mooring delete cluster ${name} --yes\n`);
  } else {
    for (const p of doomed) await cs.delete(p);
    io.out(`Deleted cluster "${name}" (${doomed.length} objects) from ${cs.baseURL}\n`);
  }
  const keptBackups = kept.filter((p) => p.startsWith(BACKUPS)).length;
  if (keptBackups > 0) io.err(`kept ${keptBackups} objects under backups/ (etcd backups); pass --include-backups to delete them too\n`);
  if (kept.length > keptBackups) io.err(`kept ${kept.length - keptBackups} objects that are not part of the cluster layout\n`);
}
