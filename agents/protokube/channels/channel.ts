// Addon channels in kOps' format (channels/pkg/api/channel.go): `kind:
// Addons`, `spec.addons[]` with name, namespace, selector, manifest (a URL,
// relative to the channel's own), manifestHash (sha256 of the manifest's
// bytes), id, needsRollingUpdate and prune.kinds[]. And what an addon's
// namespace records once it is applied: the annotation addons.k8s.io/<name>,
// JSON {channel, id, manifestHash, systemGeneration}, the same bytes kOps'
// channels tool writes, so each reads what the other applied.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { labelKeyProblem, labelValueProblem } from '../../../shared/api/k8s-syntax.js';
import { isDNSLabel } from '../../../shared/api/names.js';
import { CheckedDocument } from '../../../shared/api/checked-doc.js';
import { parseYamlDocuments, SpecError } from '../../../shared/api/parse.js';

export const ANNOTATION_PREFIX = 'addons.k8s.io/';
/** kOps' CurrentSystemGeneration: 1 since prune came (an older annotation means "apply again"). */
export const SYSTEM_GENERATION = 1;
const NEEDS_ROLLING_UPDATE = ['control-plane', 'workers', 'all'] as const;

export interface PruneKind {
  /** '' is the core group. */
  group: string;
  kind: string;
  /** Only these namespaces; empty: every namespace (and cluster-scoped kinds). */
  namespaces: string[];
  labelSelector?: string;
  fieldSelector?: string;
}

export interface Addon {
  name: string;
  /** Where the annotation lives (kOps: kube-system unless given). */
  namespace: string;
  selector: Record<string, string>;
  /** As written in the channel. */
  manifest: string;
  /** The manifest's absolute location. */
  manifestURL: string;
  /** Lowercase hex sha256 of the manifest's bytes. */
  manifestHash: string;
  id: string;
  needsRollingUpdate?: (typeof NEEDS_ROLLING_UPDATE)[number];
  version?: string;
  prune?: { kinds: PruneKind[] };
}

export interface Channel {
  /** Where it was read from (an absolute URL). */
  location: string;
  name: string;
  addons: Addon[];
}

/** What an addon's namespace annotation says was applied. */
export interface ChannelVersion {
  channel?: string;
  id?: string;
  manifestHash?: string;
  systemGeneration?: number;
}

/** A path or URL as an absolute URL (a path, relative to the working directory or not, is a file://). */
export function absoluteLocation(location: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location)) return location;
  return pathToFileURL(resolve(location)).href;
}

/** A manifest's location: an absolute URL as written, a relative one against the channel's. */
export function resolveManifest(channelLocation: string, manifest: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(manifest)) return manifest;
  if (manifest.startsWith('/')) return pathToFileURL(manifest).href;
  return new URL(manifest, absoluteLocation(channelLocation)).href;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Reads a channel file; every problem is one SpecError naming the field and line (exit 3). */
export function parseChannel(text: string, location: string): Channel {
  const docs = parseYamlDocuments(text, location);
  if (docs.length !== 1) throw new SpecError(`expected one Addons document, found ${docs.length}`, { source: location });
  const d = new CheckedDocument(docs[0]);
  d.record('');
  if (d.at('kind') !== 'Addons') d.fail('kind', `${d.at('kind') === undefined ? 'missing' : `unknown kind ${JSON.stringify(d.at('kind'))}`} (want Addons)`);
  const name = d.at('metadata.name');
  if (name !== undefined && typeof name !== 'string') d.fail('metadata.name', 'must be a string');
  const list = d.at('spec.addons') === undefined ? [] : d.list('spec.addons');
  const seen = new Set<string>();
  const addons = list.map((_, i) => {
    const at = (field: string) => `spec.addons[${i}]${field === '' ? '' : `.${field}`}`;
    d.record(at(''));
    const addonName = d.string(at('name'));
    const keyProblem = labelKeyProblem(`${ANNOTATION_PREFIX}${addonName}`);
    if (keyProblem) d.fail(at('name'), `${JSON.stringify(addonName)} cannot name the annotation ${ANNOTATION_PREFIX}<name>: ${keyProblem}`);
    if (seen.has(addonName)) d.fail(at('name'), `${JSON.stringify(addonName)} is listed twice`);
    seen.add(addonName);
    const namespace = d.at(at('namespace')) === undefined ? 'kube-system' : d.string(at('namespace'));
    if (!isDNSLabel(namespace)) d.fail(at('namespace'), `${JSON.stringify(namespace)} is not a namespace name (a DNS label)`);
    const selector = d.at(at('selector')) === undefined || d.at(at('selector')) === null ? {} : d.stringRecord(at('selector'));
    for (const [key, value] of Object.entries(selector)) {
      const problem = labelKeyProblem(key) ?? labelValueProblem(value);
      if (problem) d.fail(`${at('selector')}[${JSON.stringify(key)}]`, problem);
    }
    const manifest = d.string(at('manifest'));
    let manifestURL: string;
    try {
      manifestURL = resolveManifest(location, manifest);
    } catch {
      d.fail(at('manifest'), `${JSON.stringify(manifest)} is not a URL or a path relative to the channel`);
    }
    if (d.at(at('manifestHash')) === undefined) d.fail(at('manifestHash'), 'missing: protokube applies only manifests whose sha256 it can check');
    const manifestHash = d.string(at('manifestHash'));
    if (!SHA256_HEX.test(manifestHash)) d.fail(at('manifestHash'), `${JSON.stringify(manifestHash)} is not a sha256 (64 lowercase hex digits)`);
    const id = d.at(at('id')) === undefined ? '' : d.string(at('id'));
    const needs = d.at(at('needsRollingUpdate'));
    if (needs !== undefined && needs !== '' && !(NEEDS_ROLLING_UPDATE as readonly unknown[]).includes(needs)) {
      d.fail(at('needsRollingUpdate'), `unknown value ${JSON.stringify(needs)} (want ${NEEDS_ROLLING_UPDATE.join(', ')})`);
    }
    // kOps' Verify(): a bootstrap addon applies whatever the Kubernetes version is.
    if (d.at(at('kubernetesVersion')) !== undefined && d.at(at('kubernetesVersion')) !== '') d.fail(at('kubernetesVersion'), 'addons in a channel protokube applies must not have a kubernetesVersion (kOps refuses it too)');
    const version = d.at(at('version'));
    const addon: Addon = {
      name: addonName,
      namespace,
      selector,
      manifest,
      manifestURL: manifestURL!,
      manifestHash,
      id,
      ...(typeof needs === 'string' && needs !== '' ? { needsRollingUpdate: needs as Addon['needsRollingUpdate'] } : {}),
      ...(typeof version === 'string' && version !== '' ? { version } : {}),
    };
    if (d.at(at('prune')) !== undefined && d.at(at('prune')) !== null) {
      d.record(at('prune'));
      const kinds = d.at(at('prune.kinds')) === undefined ? [] : d.list(at('prune.kinds'));
      addon.prune = {
        kinds: kinds.map((_k, j) => {
          const kat = (field: string) => at(`prune.kinds[${j}]${field === '' ? '' : `.${field}`}`);
          d.record(kat(''));
          const group = d.at(kat('group')) === undefined ? '' : String(d.at(kat('group')));
          if (group !== '' && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(group)) d.fail(kat('group'), `${JSON.stringify(group)} is not an API group`);
          const kind = d.string(kat('kind'));
          if (!/^[A-Z][A-Za-z0-9]*$/.test(kind)) d.fail(kat('kind'), `${JSON.stringify(kind)} is not a kind`);
          const namespaces = d.at(kat('namespaces')) === undefined ? [] : d.stringList(kat('namespaces'));
          namespaces.forEach((ns, n) => {
            if (!isDNSLabel(ns)) d.fail(`${kat('namespaces')}[${n}]`, `${JSON.stringify(ns)} is not a namespace name`);
          });
          const labelSelector = d.at(kat('labelSelector'));
          const fieldSelector = d.at(kat('fieldSelector'));
          if (labelSelector !== undefined && typeof labelSelector !== 'string') d.fail(kat('labelSelector'), 'must be a string');
          if (fieldSelector !== undefined && typeof fieldSelector !== 'string') d.fail(kat('fieldSelector'), 'must be a string');
          return {
            group,
            kind,
            namespaces,
            ...(typeof labelSelector === 'string' && labelSelector !== '' ? { labelSelector } : {}),
            ...(typeof fieldSelector === 'string' && fieldSelector !== '' ? { fieldSelector } : {}),
          };
        }),
      };
    }
    return addon;
  });
  return { location: absoluteLocation(location), name: typeof name === 'string' ? name : '', addons };
}

/** The annotation value for an addon as protokube applies it (kOps' ChannelVersion JSON, same field order). */
export function encodeChannelVersion(channel: string, addon: Addon): string {
  const version: ChannelVersion = { channel, ...(addon.id ? { id: addon.id } : {}), manifestHash: addon.manifestHash, systemGeneration: SYSTEM_GENERATION };
  return JSON.stringify(version);
}

/** The installed version from an annotation value; undefined when absent or unreadable (then it is applied again). */
export function decodeChannelVersion(value: string | undefined): ChannelVersion | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    const v = parsed as Record<string, unknown>;
    return {
      ...(typeof v.channel === 'string' ? { channel: v.channel } : {}),
      ...(typeof v.id === 'string' ? { id: v.id } : {}),
      ...(typeof v.manifestHash === 'string' ? { manifestHash: v.manifestHash } : {}),
      ...(typeof v.systemGeneration === 'number' ? { systemGeneration: v.systemGeneration } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Why the addon must be applied, or undefined when what is installed is what the channel says (kOps' replaces()). */
export function updateReason(addon: Addon, installed: ChannelVersion | undefined): string | undefined {
  if (installed === undefined) return 'not installed';
  if ((installed.id ?? '') !== addon.id) return `id ${JSON.stringify(installed.id ?? '')} → ${JSON.stringify(addon.id)}`;
  if ((installed.manifestHash ?? '') !== addon.manifestHash) return `manifest ${short(installed.manifestHash)} → ${short(addon.manifestHash)}`;
  const generation = installed.systemGeneration ?? 0;
  if (generation < SYSTEM_GENERATION) return `applied by an older channels tool (systemGeneration ${generation})`;
  return undefined;
}

function short(hash: string | undefined): string {
  return hash ? `sha256:${hash.slice(0, 12)}` : 'none';
}
