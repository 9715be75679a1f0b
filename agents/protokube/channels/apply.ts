// One pass over a channel, addon by addon (find → diff → apply):
// - find: the annotation addons.k8s.io/<addon> on the addon's namespace;
// - diff: kOps' rule: apply when the id or the manifest hash differs, or the
//   annotation predates prune (systemGeneration);
// - apply: read the manifest, check its sha256 against the channel (a
//   mismatch applies nothing), server-side apply every object (field manager
//   protokube, force), prune objects of the listed kinds that left the
//   manifest, and only then write the annotation. An addon that fails keeps
//   its old annotation, so the next pass tries it again; the others go on.
// A dry run reads the same things, asks the server to apply with dryRun=All
// (so conflicts and invalid objects still show) and writes nothing.
import type { Logger } from '../../../shared/log.js';
import { describeRef, KubeCallError, type KubeAPI, type ManifestObject, type ObjectRef } from '../kube/api.js';
import { ANNOTATION_PREFIX, decodeChannelVersion, encodeChannelVersion, updateReason, type Addon, type Channel, type PruneKind } from './channel.js';
import { groupOf, parseManifest, verifyManifest } from './manifest.js';
import type { ResourceReader } from './source.js';

export type AddonAction = 'unchanged' | 'applied' | 'would-apply' | 'failed';

export interface AddonOutcome {
  addon: string;
  namespace: string;
  action: AddonAction;
  /** Why it was (or would be) applied, or why it failed. */
  reason?: string;
  /** The API server could not be reached (the daemon goes back to waiting for it). */
  unreachable?: boolean;
  applied: string[];
  pruned: string[];
  /** The addon asks for a rolling update of these nodes after a change (reported, not acted on). */
  needsRollingUpdate?: string;
  id: string;
  manifestHash: string;
}

export interface ApplyDeps {
  kube: KubeAPI;
  reader: ResourceReader;
  log: Logger;
  dryRun: boolean;
}

export async function applyChannel(channel: Channel, deps: ApplyDeps): Promise<AddonOutcome[]> {
  const outcomes: AddonOutcome[] = [];
  // Most addons share kube-system: its annotations are read once a pass, again only after a write.
  const annotations = new Map<string, Promise<Record<string, string> | undefined>>();
  const kube: KubeAPI = {
    ...deps.kube,
    namespaceAnnotations: (name) => {
      let read = annotations.get(name);
      if (!read) {
        read = deps.kube.namespaceAnnotations(name);
        read.catch(() => annotations.delete(name));
        annotations.set(name, read);
      }
      return read;
    },
    annotateNamespace: async (name, values) => {
      annotations.delete(name);
      await deps.kube.annotateNamespace(name, values);
    },
    apply: async (object, dryRun) => {
      if (object.kind === 'Namespace') annotations.delete(object.metadata.name);
      await deps.kube.apply(object, dryRun);
    },
  };
  for (const addon of channel.addons) {
    const outcome = await applyAddon(channel, addon, { ...deps, kube });
    outcomes.push(outcome);
    // Without the API server every other addon would fail the same way: stop here, try all again later.
    if (outcome.unreachable) break;
  }
  return outcomes;
}

function baseOutcome(addon: Addon): AddonOutcome {
  return { addon: addon.name, namespace: addon.namespace, action: 'unchanged', applied: [], pruned: [], id: addon.id, manifestHash: addon.manifestHash };
}

async function applyAddon(channel: Channel, addon: Addon, deps: ApplyDeps): Promise<AddonOutcome> {
  const outcome = baseOutcome(addon);
  const log = deps.log.child({ addon: addon.name });
  try {
    const annotations = await deps.kube.namespaceAnnotations(addon.namespace);
    const installed = decodeChannelVersion(annotations?.[`${ANNOTATION_PREFIX}${addon.name}`]);
    const reason = updateReason(addon, installed);
    if (reason === undefined) {
      log.debug('addon up to date', { event: 'addon-unchanged', id: addon.id, manifestHash: addon.manifestHash });
      return outcome;
    }
    outcome.reason = reason;
    const data = await deps.reader.read(addon.manifestURL);
    verifyManifest(addon.manifestURL, data, addon.manifestHash);
    const objects = parseManifest(data.toString('utf8'), addon.manifestURL);
    for (const object of objects) {
      await deps.kube.apply(object, deps.dryRun);
      outcome.applied.push(describeRef(object));
    }
    for (const kind of addon.prune?.kinds ?? []) {
      for (const ref of await pruneCandidates(kind, objects, deps.kube)) {
        if (!deps.dryRun) {
          await deps.kube.remove(ref);
          log.info('pruned an object that left the manifest', { event: 'addon-pruned', object: describeRef(ref) });
        }
        outcome.pruned.push(describeRef(ref));
      }
    }
    if (deps.dryRun) {
      outcome.action = 'would-apply';
      return outcome;
    }
    if ((await deps.kube.namespaceAnnotations(addon.namespace)) === undefined) {
      throw new Error(`namespace ${addon.namespace} does not exist after applying the manifest, so the addon cannot be recorded as applied`);
    }
    await deps.kube.annotateNamespace(addon.namespace, { [`${ANNOTATION_PREFIX}${addon.name}`]: encodeChannelVersion(channel.location, addon) });
    outcome.action = 'applied';
    if (installed !== undefined && addon.needsRollingUpdate) outcome.needsRollingUpdate = addon.needsRollingUpdate;
    log.info('addon applied', {
      event: 'addon-applied',
      channel: channel.location,
      why: reason,
      id: addon.id,
      manifestHash: addon.manifestHash,
      objects: outcome.applied.length,
      pruned: outcome.pruned.length,
      ...(outcome.needsRollingUpdate ? { needsRollingUpdate: outcome.needsRollingUpdate } : {}),
    });
    return outcome;
  } catch (err) {
    outcome.action = 'failed';
    outcome.reason = err instanceof Error ? err.message : String(err);
    outcome.unreachable = err instanceof KubeCallError && err.unreachable;
    return outcome;
  }
}

/** Objects of a prune kind, in its namespaces and selectors, that the manifest no longer has. */
async function pruneCandidates(kind: PruneKind, objects: ManifestObject[], kube: KubeAPI): Promise<ObjectRef[]> {
  const ofKind = objects.filter((o) => o.kind === kind.kind && groupOf(o.apiVersion) === kind.group);
  // The manifest's own apiVersion for the kind, else the version the server prefers.
  const apiVersion = ofKind[0]?.apiVersion ?? (kind.group === '' ? await kube.preferredVersion('') : `${kind.group}/${await kube.preferredVersion(kind.group)}`);
  const keep = new Set(ofKind.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`));
  const selectors = { label: kind.labelSelector, field: kind.fieldSelector };
  const found = kind.namespaces.length === 0
    ? await kube.list(apiVersion, kind.kind, undefined, selectors)
    : (await Promise.all(kind.namespaces.map((ns) => kube.list(apiVersion, kind.kind, ns, selectors)))).flat();
  // A namespaced object the manifest gives no namespace was applied to "default" (the client's default).
  const kept = (ref: ObjectRef) => keep.has(`${ref.namespace ?? ''}/${ref.name}`) || (ref.namespace === 'default' && keep.has(`/${ref.name}`));
  return found.filter((ref) => !kept(ref));
}
