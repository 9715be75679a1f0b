// Which fields of a Cluster or InstanceGroup kOps (or Mooring) knows: a typo
// such as `typo_cidr` or `nodeLable` is reported by path, and kept as written
// (the design keeps unknown fields; `--strict` refuses them). kOps' field names
// come from kops.k8s.io/v1alpha2 (kops-fields.generated.ts); the objects'
// metadata and Mooring's own additions are listed here.
import { joinPath } from './fieldpath.js';
import { KOPS_V1ALPHA2_TYPES } from './kops-fields.generated.js';
import type { ApiObject } from './types.js';
import { isRecord } from './validate-util.js';

type Fields = Readonly<Record<string, string>>;

/** metav1.ObjectMeta, as `kops get -o yaml` writes it. */
const OBJECT_META: Fields = {
  name: '', generateName: '', namespace: '', selfLink: '', uid: '', resourceVersion: '', generation: '',
  creationTimestamp: '', deletionTimestamp: '', deletionGracePeriodSeconds: '', labels: '', annotations: '',
  ownerReferences: '', finalizers: '', managedFields: '',
};

/** Fields Mooring reads that kOps v1alpha2 does not have. */
const MOORING_ADDITIONS: Record<string, Fields> = {
  // Ports completion fills in (kOps derives them in code).
  EtcdClusterSpec: { clientPort: '', peerPort: '', grpcPort: '', quarantineClientPort: '' },
  // kOps v1alpha3's names, read as well.
  ClusterSpec: { controlPlaneKubelet: 'KubeletConfigSpec' },
  APISpec: { publicName: '' },
};

function typeTable(additions: Record<string, Fields>): Readonly<Record<string, Fields>> {
  const types: Record<string, Fields> = { ...KOPS_V1ALPHA2_TYPES, ObjectMeta: OBJECT_META };
  for (const [name, extra] of Object.entries(additions)) types[name] = { ...types[name], ...extra };
  types.Cluster = { apiVersion: '', kind: '', metadata: 'ObjectMeta', spec: 'ClusterSpec' };
  types.InstanceGroup = { apiVersion: '', kind: '', metadata: 'ObjectMeta', spec: 'InstanceGroupSpec' };
  return types;
}

const TYPES = typeTable(MOORING_ADDITIONS);
const KOPS_TYPES = typeTable({});

/** Paths of every field of the object that neither kOps nor Mooring knows, in document order. */
export function unknownFields(object: ApiObject): string[] {
  const found: string[] = [];
  walk(TYPES, object, object.kind, '', found);
  return found;
}

/**
 * Paths of every field kOps' v1alpha2 does not define, Mooring's additions included:
 * what a completed spec must not hold (kOps' objects carry only kOps' fields).
 */
export function fieldsKopsDoesNotDefine(object: ApiObject): string[] {
  const found: string[] = [];
  walk(KOPS_TYPES, object, object.kind, '', found);
  return found;
}

/** shape: '' anything; 'T' a known struct; '[]…' a list of; '{}…' a map of. A wrong type is validation's business. */
function walk(types: Readonly<Record<string, Fields>>, value: unknown, shape: string, path: string, found: string[]): void {
  if (shape === '') return;
  if (shape.startsWith('[]')) {
    if (Array.isArray(value)) value.forEach((item: unknown, i) => walk(types, item, shape.slice(2), joinPath(path, i), found));
    return;
  }
  if (!isRecord(value)) return;
  if (shape.startsWith('{}')) {
    for (const [key, item] of Object.entries(value)) walk(types, item, shape.slice(2), joinPath(path, key), found);
    return;
  }
  const fields = Object.hasOwn(types, shape) ? types[shape] : {};
  for (const [key, item] of Object.entries(value)) {
    const at = joinPath(path, key);
    if (Object.hasOwn(fields, key)) walk(types, item, fields[key], at, found);
    else found.push(at);
  }
}
