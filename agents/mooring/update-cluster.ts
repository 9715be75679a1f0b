// `mooring update cluster`: complete the user's spec and derive everything the
// instances need (completed spec, PKI, node configs, etcd control specs, user-data).
import YAML from 'yaml';
import { resolveNodeAssets, type ResolveOptions } from '../../shared/api/assets.js';
import { completeCluster, type CompletedObjects } from '../../shared/api/complete.js';
import { renderWarnings } from '../../shared/api/component-render.js';
import { buildBootConfig, buildNodeConfig, groupKubelet, serializeNodeConfig, type NodeAssets } from '../../shared/api/nodeconfig.js';
import { stringifyObjects } from '../../shared/api/parse.js';
import { isSchedulerConfiguration, stringifyAdditionalObjects, type AdditionalObject } from '../../shared/api/additional-objects.js';
import { StorePaths, type Cluster, type InstanceGroup } from '../../shared/api/types.js';
import { clusterKeysetNames, ensureClusterPKI, planClusterPKI } from '../../shared/pki/cluster-pki.js';
import { loadKeyset, planIssuedRepairs, primaryKeypair, repairIssuedKeysets } from '../../shared/pki/keyset.js';
import { ensureNodeCredentials, NODE_CREDENTIAL_NAMES, planNodeCredentials } from '../../shared/pki/node-credentials.js';
import type { StateStore } from '../../shared/store/types.js';
import { ExitCode, UserError } from '../../shared/errors.js';
import { encodeUserData, renderUserData } from '../../bootstrap/render-userdata.js';
import type { AgentBinary } from './agent-binary.js';
import { requireValid } from './validation.js';
import type { StoredCluster } from './cluster-repository.js';
import { applyPlan, diffAgainstStore, type DesiredObject, type PlanEntry } from './store-plan.js';

/** Keypair ids not yet known in a dry run (the CA is created only with --yes). */
const PENDING_ID = 'pending-creation';

export interface UpdateResult {
  entries: PlanEntry[];
  pkiToCreate: string[];
  applied: boolean;
  /** One line each, for stderr. */
  warnings: string[];
  /** The completed spec the plan was made from (a cloud creates its parts from it). */
  completed: { cluster: Cluster; instanceGroups: InstanceGroup[] };
}

export async function updateCluster(
  clusterStore: StateStore,
  stored: StoredCluster,
  agent: AgentBinary,
  apply: boolean,
  /** How asset hashes are read (the local cloud reads its mirror's files). */
  assetOptions: ResolveOptions = {},
): Promise<UpdateResult> {
  requireValid(stored.cluster, stored.instanceGroups);
  const completed = completeCluster(
    stored.cluster.object,
    stored.instanceGroups.map((p) => p.object),
    { configBase: clusterStore.baseURL },
  );
  // Asset hashes first: a version not in the known table whose hash cannot be read fails the update before anything is written.
  const assets = await resolveNodeAssets(completed.cluster, completed.instanceGroups, assetOptions);
  const warnings = [
    ...completed.settings.notes.map((note) => `note: ${note}`),
    ...assets.lookedUp.map((url) => `note: ${url} is not a release in Mooring's table of known hashes; its sha256 was read from ${url}.sha256`),
    ...renderWarnings(completed.cluster, completed.instanceGroups),
    ...completed.instanceGroups.flatMap((ig) =>
      groupKubelet(completed.cluster, ig).refusedTaints.map(
        (t) => `warning: instance group "${ig.metadata.name}": taint ${JSON.stringify(t)} has no effect kubelet takes (NoSchedule, PreferNoSchedule, NoExecute); its nodes register without it`,
      ),
    ),
  ];
  const etcdNames = (completed.cluster.spec.etcdClusters ?? []).map((e) => e.name);
  const keysetNames = clusterKeysetNames(etcdNames);
  const pki = await planClusterPKI(clusterStore, keysetNames);
  const credentials = await planNodeCredentials(clusterStore);
  const credentialsToWrite = [...credentials.toCreate, ...credentials.toReissue.map((r) => r.name)];

  const allKeysets = [...keysetNames, ...NODE_CREDENTIAL_NAMES];
  const kept = allKeysets.filter((n) => !pki.toCreate.includes(n) && !credentialsToWrite.includes(n));

  // With --yes the CAs, then the node credentials they sign, are made first: node configs carry their ids.
  // Then every issued copy that does not match its private keyset (a writer crashed between the two
  // writes) is rewritten from the private one, which is authoritative.
  const keypairIDs = apply
    ? { ...(await ensureClusterPKI(clusterStore, keysetNames)), ...(await ensureNodeCredentials(clusterStore)) }
    : await existingKeypairIDs(clusterStore, kept, [...pki.toCreate, ...credentialsToWrite]);
  const repairs = apply ? await repairIssuedKeysets(clusterStore, allKeysets) : await planIssuedRepairs(clusterStore, kept);

  // Instances read their configuration where the completed spec says: spec.configBase when the user set it.
  const configBase = completed.cluster.spec.configBase ?? clusterStore.baseURL;
  const desired = desiredObjects(completed, keypairIDs, configBase, agent, assets.byGroup, stored.additionalObjects);
  const obsolete = await obsoleteGroupObjects(clusterStore, desired);
  const entries = await diffAgainstStore(clusterStore, desired, obsolete);
  const keysetEntry = (name: string, action: 'create' | 'modify'): PlanEntry[] => [
    { path: StorePaths.keyset(name), action, secret: true },
    { path: StorePaths.issued(name), action, secret: false },
  ];
  const pkiEntries: PlanEntry[] = [
    ...pki.toCreate.flatMap((name) => keysetEntry(name, 'create')),
    ...credentials.toCreate.flatMap((name) => keysetEntry(name, 'create')),
    ...credentials.toReissue.flatMap((r) => keysetEntry(r.name, 'modify')),
    ...repairs.map((r): PlanEntry => ({ path: StorePaths.issued(r.name), action: r.reason === 'missing' ? 'create' : 'modify', secret: false })),
  ];
  for (const r of credentials.toReissue) warnings.push(`keyset ${r.name} ${apply ? 'was' : 'will be'} re-issued from kubernetes-ca: ${r.reason}`);
  for (const r of repairs) {
    warnings.push(`warning: ${clusterStore.urlOf(StorePaths.issued(r.name))} does not match pki/private/${r.name} (${r.reason}); ${apply ? 'rewrote' : 'will rewrite'} it from pki/private`);
  }
  if (apply) await applyPlan(clusterStore, entries);
  return { entries: [...pkiEntries, ...entries], pkiToCreate: [...pki.toCreate, ...credentials.toCreate], applied: apply, warnings, completed };
}

async function existingKeypairIDs(store: StateStore, existing: string[], pending: string[]): Promise<Record<string, string>> {
  const ids: Record<string, string> = {};
  for (const name of existing) {
    const keyset = await loadKeyset(store, name);
    if (keyset) ids[name] = primaryKeypair(keyset).id;
  }
  for (const name of pending) ids[name] = PENDING_ID;
  return ids;
}

/**
 * Ordered for crash safety: per-group configs and user-data before the completed
 * spec, so the completed spec never points at node configs that are not there yet.
 */
function desiredObjects(
  completed: CompletedObjects,
  keypairIDs: Record<string, string>,
  configBase: string,
  agent: AgentBinary,
  assets: Map<string, NodeAssets>,
  additionalObjects: AdditionalObject[],
): DesiredObject[] {
  const { cluster, instanceGroups, settings } = completed;
  const kubeSchedulerConfig = schedulerConfiguration(additionalObjects);
  const objects: DesiredObject[] = [];
  for (const etcd of cluster.spec.etcdClusters ?? []) {
    const spec = { memberCount: etcd.etcdMembers.length, etcdVersion: etcd.version ?? '' };
    objects.push({ path: StorePaths.etcdClusterSpec(etcd.name), content: JSON.stringify(spec) });
  }
  for (const ig of instanceGroups) {
    const nodeConfig = serializeNodeConfig(buildNodeConfig(cluster, ig, keypairIDs, assets.get(ig.metadata.name), { settings, kubeSchedulerConfig }));
    objects.push({ path: StorePaths.nodeupConfig(ig.spec.role, ig.metadata.name), content: nodeConfig });
    const bootConfig = buildBootConfig(cluster, ig, nodeConfig, configBase);
    const userData = renderUserData({
      bootConfigYAML: YAML.stringify(bootConfig),
      agentURLs: agent.urls,
      agentSHA256: agent.sha256,
    });
    // What is stored is what a cloud accepts: gzip+base64 once past AWS's 16 KiB, an error past that.
    objects.push({ path: StorePaths.userData(ig.metadata.name), content: encodeUserData(userData).body });
  }
  // The cluster's other additional objects go to nodes' addon channel, as kOps applies them (cluster-addons.kops.k8s.io).
  const toApply = additionalObjects.filter((o) => o !== kubeSchedulerConfig);
  if (toApply.length > 0) objects.push({ path: StorePaths.clusterAddonsManifest, content: stringifyAdditionalObjects(toApply) });
  objects.push({ path: StorePaths.completedSpec, content: stringifyObjects([cluster], 'yaml') });
  return objects;
}

/** kOps: a KubeSchedulerConfiguration among the cluster's objects configures kube-scheduler instead of being applied. */
function schedulerConfiguration(objects: AdditionalObject[]): AdditionalObject | undefined {
  const found = objects.filter(isSchedulerConfiguration);
  if (found.length > 1) {
    throw new UserError('found several KubeSchedulerConfiguration objects with the cluster; expected at most one', ExitCode.InvalidSpec);
  }
  return found[0];
}

/** Node configs and user-data of groups that no longer exist. */
async function obsoleteGroupObjects(store: StateStore, desired: DesiredObject[]): Promise<string[]> {
  const wanted = new Set(desired.map((d) => d.path));
  const existing = [...(await store.list('igconfig/')), ...(await store.list('userdata/'))];
  return existing.filter((path) => !wanted.has(path));
}
