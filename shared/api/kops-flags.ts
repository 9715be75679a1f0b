// Turning a component section of the completed spec (kubeAPIServer,
// kubeControllerManager, kubeScheduler, kubeProxy, kubelet, containerd) into
// the command-line flags nodeup gives the component, in kOps' formats
// (pkg/flagbuilder): one `--name=value` per set field that has a flag tag,
// sorted; a list joined by commas (or the flag repeated, for tags marked
// `repeat`), a map as sorted `k=v` pairs joined by commas, a duration in Go's
// form (1m0s), a quantity as its decimal (3140m → 3.140), a value equal to the
// tag's "flag-empty" left out. Which field has which flag is data
// (kops-flags.generated.ts, from kOps' `flag` tags); this module is the formats.
import { durationFlagValue, quantityFlagValue } from './k8s-values.js';
import { KOPS_COMPONENT_FIELDS } from './kops-flags.generated.js';

export interface KopsFieldFacts {
  /** string, bool, int, float, duration, quantity, stringList, stringMap, leaderElection, envList or other. */
  kind: string;
  pointer: boolean;
  /** The flag name; "-" = deliberately not a flag; absent = no flag tag. */
  flag?: string;
  repeat?: boolean;
  flagEmpty?: string;
  includeEmpty?: boolean;
  /** kOps' conversion from v1alpha2 drops this field: nodes never see it. */
  dropped?: boolean;
  /** A path in the component's config file (kube-scheduler's qps and burst). */
  config?: string;
}

/** The component sections of a Cluster spec whose fields nodeup renders, by their Go struct. */
export const COMPONENT_STRUCTS = {
  kubeAPIServer: 'KubeAPIServerConfig',
  kubeControllerManager: 'KubeControllerManagerConfig',
  kubeScheduler: 'KubeSchedulerConfig',
  kubeProxy: 'KubeProxyConfig',
  kubelet: 'KubeletConfigSpec',
  masterKubelet: 'KubeletConfigSpec',
  controlPlaneKubelet: 'KubeletConfigSpec',
  containerd: 'ContainerdConfig',
} as const;

export type ComponentStruct = (typeof COMPONENT_STRUCTS)[keyof typeof COMPONENT_STRUCTS] | 'LeaderElectionConfiguration';

export function componentFields(struct: ComponentStruct): Readonly<Record<string, KopsFieldFacts>> {
  const fields = KOPS_COMPONENT_FIELDS[struct];
  if (!fields) throw new Error(`no field table for ${struct}`);
  return fields;
}

export function fieldFacts(struct: ComponentStruct, field: string): KopsFieldFacts | undefined {
  const fields = componentFields(struct);
  return Object.hasOwn(fields, field) ? fields[field] : undefined;
}

export class FlagValueError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'FlagValueError';
  }
}

function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/** One field's flags in kOps' formats ([] when it renders to nothing). */
export function flagsOf(field: string, facts: KopsFieldFacts, value: unknown): string[] {
  const name = facts.flag;
  if (name === undefined || name === '-' || value === undefined || value === null) return [];
  const fail = (why: string): never => {
    throw new FlagValueError(field, why);
  };
  switch (facts.kind) {
    case 'stringList': {
      if (!Array.isArray(value)) return fail('must be a list of strings');
      const items = value.map((v) => scalarText(v) ?? fail('must be a list of strings'));
      if (items.length === 0) return [];
      return facts.repeat ? items.map((v) => `--${name}=${v}`) : [`--${name}=${items.join(',')}`];
    }
    case 'stringMap': {
      if (typeof value !== 'object' || Array.isArray(value)) return fail('must be a map of strings');
      const pairs = Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}=${scalarText(v) ?? fail('must be a map of strings')}`)
        .sort();
      return pairs.length === 0 ? [] : [`--${name}=${pairs.join(',')}`];
    }
    case 'duration': {
      const text = scalarText(value) ?? fail('must be a duration such as 1m0s');
      let rendered: string;
      try {
        rendered = durationFlagValue(text);
      } catch (err) {
        return fail((err as Error).message);
      }
      return rendered === facts.flagEmpty ? [] : [`--${name}=${rendered}`];
    }
    case 'quantity': {
      const text = scalarText(value) ?? fail('must be a quantity such as 100m');
      let rendered: string;
      try {
        rendered = quantityFlagValue(text);
      } catch (err) {
        return fail((err as Error).message);
      }
      return rendered === facts.flagEmpty ? [] : [`--${name}=${rendered}`];
    }
    case 'string': {
      const text = scalarText(value) ?? fail('must be a string');
      if (text === facts.flagEmpty) return [];
      if (text === '' && !(facts.pointer && facts.includeEmpty)) return [];
      return [`--${name}=${text}`];
    }
    case 'bool':
    case 'int':
    case 'float': {
      const text = scalarText(value);
      if (text === undefined || typeof value === 'string') return fail(facts.kind === 'bool' ? 'must be true or false' : 'must be a number');
      return text === facts.flagEmpty ? [] : [`--${name}=${text}`];
    }
    default:
      return fail(`kOps has no flag format for a value of kind ${facts.kind}`);
  }
}

export interface RenderedFlags {
  /** Sorted, as kOps sorts them. */
  flags: string[];
  /** Set fields (paths under the section) that no flag, config file or model renders. */
  unrendered: string[];
}

/**
 * The flags of a component section. `handled` names the fields the caller renders
 * another way (images, resources, config files, paths nodeup sets itself); every
 * other set field without a flag tag is reported as unrendered.
 */
export function renderComponentFlags(
  struct: ComponentStruct,
  section: Record<string, unknown> | undefined,
  handled: ReadonlySet<string> = new Set(),
  prefix = '',
): RenderedFlags {
  const flags: string[] = [];
  const unrendered: string[] = [];
  for (const [field, value] of Object.entries(section ?? {})) {
    if (value === undefined || value === null || handled.has(field)) continue;
    const facts = fieldFacts(struct, field);
    const path = `${prefix}${field}`;
    if (!facts || facts.dropped) {
      unrendered.push(path);
      continue;
    }
    if (facts.kind === 'leaderElection' && typeof value === 'object' && !Array.isArray(value)) {
      const nested = renderComponentFlags('LeaderElectionConfiguration', value as Record<string, unknown>, new Set(), `${path}.`);
      flags.push(...nested.flags);
      unrendered.push(...nested.unrendered);
      continue;
    }
    if (facts.flag === undefined || facts.flag === '-') {
      unrendered.push(path);
      continue;
    }
    flags.push(...flagsOf(path, facts, value));
  }
  return { flags: flags.sort(), unrendered };
}
