// The user's objects in the state store, in kOps' layout:
// <cluster>/config and <cluster>/instancegroup/<ig>. Reading always validates.
import { stringifyAdditionalObjects, type AdditionalObject } from '../../shared/api/additional-objects.js';
import { parseObjects, parseSpecFile, stringifyObjects, SpecError, type ParsedObject } from '../../shared/api/parse.js';
import { StorePaths, type Cluster, type InstanceGroup } from '../../shared/api/types.js';
import type { StateStore } from '../../shared/store/types.js';
import { ExitCode, UserError } from '../../shared/errors.js';

export interface StoredCluster {
  cluster: ParsedObject & { object: Cluster };
  instanceGroups: Array<ParsedObject & { object: InstanceGroup }>;
  /** kOps' additional objects kept with the cluster (clusteraddons/default). */
  additionalObjects: AdditionalObject[];
}

export class ClusterRepository {
  constructor(private readonly store: StateStore) {}

  clusterStore(name: string): StateStore {
    return this.store.sub(name);
  }

  async exists(name: string): Promise<boolean> {
    return this.clusterStore(name).exists(StorePaths.config);
  }

  /** Names of the clusters in the store: every top-level folder holding a `config`. */
  async listClusters(): Promise<string[]> {
    const names = await this.store.listChildren('');
    const found: string[] = [];
    for (const name of names) {
      if (await this.exists(name)) found.push(name);
    }
    return found.sort();
  }

  async load(name: string): Promise<StoredCluster> {
    const cs = this.clusterStore(name);
    const configText = await cs.readIfExists(StorePaths.config);
    if (configText === undefined) {
      throw new UserError(`cluster "${name}" not found in ${this.store.baseURL}`, ExitCode.NotFound);
    }
    const cluster = single(parseObjects(configText.toString('utf8'), cs.urlOf(StorePaths.config)), 'Cluster');
    const instanceGroups: StoredCluster['instanceGroups'] = [];
    for (const path of await cs.list(StorePaths.instanceGroupDir)) {
      const text = await cs.read(path);
      instanceGroups.push(single(parseObjects(text.toString('utf8'), cs.urlOf(path)), 'InstanceGroup'));
    }
    instanceGroups.sort((a, b) => a.object.metadata.name.localeCompare(b.object.metadata.name));
    const addonsText = await cs.readIfExists(StorePaths.clusterAddons);
    const addons = addonsText === undefined ? undefined : parseSpecFile(addonsText.toString('utf8'), cs.urlOf(StorePaths.clusterAddons));
    if (addons && addons.objects.length > 0) {
      throw new SpecError('holds a Cluster or InstanceGroup; only additional objects belong here', { source: cs.urlOf(StorePaths.clusterAddons) });
    }
    return { cluster, instanceGroups, additionalObjects: addons?.additional.map((a) => a.object) ?? [] };
  }

  /**
   * Writes the given objects. Instance groups go first and the cluster's config last,
   * so a crash part-way never leaves a `config` that names groups not yet written.
   */
  async save(clusterName: string, objects: { cluster?: Cluster; instanceGroups: InstanceGroup[]; additionalObjects?: AdditionalObject[] }): Promise<void> {
    const cs = this.clusterStore(clusterName);
    // As kOps: a file's additional objects replace the ones kept before.
    if (objects.additionalObjects && objects.additionalObjects.length > 0) {
      await cs.write(StorePaths.clusterAddons, stringifyAdditionalObjects(objects.additionalObjects));
    }
    for (const ig of objects.instanceGroups) {
      await cs.write(StorePaths.instanceGroup(ig.metadata.name), stringifyObjects([ig], 'yaml'));
    }
    if (objects.cluster) await cs.write(StorePaths.config, stringifyObjects([objects.cluster], 'yaml'));
  }
}

function single<K extends 'Cluster' | 'InstanceGroup'>(
  parsed: ParsedObject[],
  kind: K,
): ParsedObject & { object: K extends 'Cluster' ? Cluster : InstanceGroup } {
  const first = parsed[0];
  if (parsed.length !== 1 || first === undefined || first.object.kind !== kind) {
    const source = first?.source ?? 'state store';
    throw new SpecError(`expected exactly one ${kind} object`, { source, path: 'kind' });
  }
  return first as ParsedObject & { object: K extends 'Cluster' ? Cluster : InstanceGroup };
}
