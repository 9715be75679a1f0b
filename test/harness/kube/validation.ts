// The validation the real API server applies that addon manifests and node
// labels can trip over, with its exact wording: object names (DNS-1123 label or
// subdomain, DNS-1035 label, RBAC path segments), label and annotation keys and
// label values (k8s.io/apimachinery/pkg/util/validation), and a few per-kind
// rules (workload selectors and templates, immutable selectors, roleRef, Service
// ports, ConfigMap keys). It is a subset: what is not checked here is accepted.
import type { FieldError } from './status.js';
import { deepEqual, isObject, type Json, type JsonObject } from './json.js';

export type NameRule = 'dns1123-subdomain' | 'dns1123-label' | 'dns1035-label' | 'path-segment';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

const maxLen = (n: number) => `must be no more than ${n} characters`;

export const DNS1123_LABEL_MESSAGE =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
export const DNS1123_SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MESSAGE =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MESSAGE =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MESSAGE =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_MESSAGE =
  "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/** The messages IsDNS1123Label & co. return for a name (empty when valid). */
export function nameProblems(rule: NameRule, name: string): string[] {
  const out: string[] = [];
  switch (rule) {
    case 'dns1123-label':
      if (name.length > 63) out.push(maxLen(63));
      if (!DNS1123_LABEL.test(name)) out.push(DNS1123_LABEL_MESSAGE);
      break;
    case 'dns1123-subdomain':
      if (name.length > 253) out.push(maxLen(253));
      if (!DNS1123_SUBDOMAIN.test(name)) out.push(DNS1123_SUBDOMAIN_MESSAGE);
      break;
    case 'dns1035-label':
      if (name.length > 63) out.push(maxLen(63));
      if (!DNS1035_LABEL.test(name)) out.push(DNS1035_LABEL_MESSAGE);
      break;
    case 'path-segment':
      if (name === '.' || name === '..') out.push(`may not be '${name}'`);
      for (const bad of ['/', '%']) if (name.includes(bad)) out.push(`may not contain '${bad}'`);
      break;
  }
  return out;
}

/** IsQualifiedName: `[prefix/]name` as label and annotation keys are. */
function qualifiedNameProblems(key: string): string[] {
  const parts = key.split('/');
  let name = key;
  const out: string[] = [];
  if (parts.length === 2) {
    const [prefix, rest] = parts;
    name = rest;
    if (prefix.length === 0) out.push('prefix part must be non-empty');
    else for (const msg of nameProblems('dns1123-subdomain', prefix)) out.push(`prefix part ${msg}`);
  } else if (parts.length > 2) {
    return [
      "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ];
  }
  if (name.length === 0) out.push('name part must be non-empty');
  else if (name.length > 63) out.push(`name part ${maxLen(63)}`);
  if (name.length > 0 && !QUALIFIED_NAME.test(name)) out.push(QUALIFIED_NAME_MESSAGE);
  return out;
}

/** ValidateObjectMeta's name, label and annotation checks. */
export function validateObjectMeta(meta: JsonObject, rule: NameRule): FieldError[] {
  const errors: FieldError[] = [];
  const name = meta.name;
  if (typeof name !== 'string' || name === '') {
    errors.push({ type: 'FieldValueRequired', field: 'metadata.name', detail: 'name or generateName is required' });
  } else {
    for (const msg of nameProblems(rule, name)) errors.push({ type: 'FieldValueInvalid', field: 'metadata.name', detail: msg, badValue: name });
  }
  const labels = meta.labels;
  if (isObject(labels)) {
    for (const [key, value] of Object.entries(labels)) {
      for (const msg of qualifiedNameProblems(key)) errors.push({ type: 'FieldValueInvalid', field: 'metadata.labels', detail: msg, badValue: key });
      const v = typeof value === 'string' ? value : '';
      if (v.length > 63) errors.push({ type: 'FieldValueInvalid', field: 'metadata.labels', detail: maxLen(63), badValue: v });
      if (!LABEL_VALUE.test(v)) errors.push({ type: 'FieldValueInvalid', field: 'metadata.labels', detail: LABEL_VALUE_MESSAGE, badValue: v });
    }
  }
  const annotations = meta.annotations;
  if (isObject(annotations)) {
    for (const key of Object.keys(annotations)) {
      for (const msg of qualifiedNameProblems(key.toLowerCase())) {
        errors.push({ type: 'FieldValueInvalid', field: 'metadata.annotations', detail: msg, badValue: key });
      }
    }
  }
  return errors;
}

function at(obj: Json | undefined, ...path: string[]): Json | undefined {
  let cur = obj;
  for (const key of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

/** Go's map[string]string{"k":"v"} rendering, as the selector/labels mismatch message prints it. */
function goStringMap(value: Json | undefined): string {
  if (!isObject(value)) return 'map[string]string(nil)';
  const entries = Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(value[k])}`);
  return `map[string]string{${entries.join(', ')}}`;
}

function selectorMatches(selector: JsonObject, labels: Json | undefined): boolean {
  const have = isObject(labels) ? labels : {};
  const matchLabels = selector.matchLabels;
  if (isObject(matchLabels)) {
    for (const [k, v] of Object.entries(matchLabels)) if (have[k] !== v) return false;
  }
  const exprs = selector.matchExpressions;
  if (Array.isArray(exprs)) {
    for (const e of exprs) {
      if (!isObject(e) || typeof e.key !== 'string') continue;
      const values = Array.isArray(e.values) ? e.values : [];
      const value = have[e.key];
      const present = Object.hasOwn(have, e.key);
      if (e.operator === 'In' && !(present && values.includes(value))) return false;
      if (e.operator === 'NotIn' && present && values.includes(value)) return false;
      if (e.operator === 'Exists' && !present) return false;
      if (e.operator === 'DoesNotExist' && present) return false;
    }
  }
  return true;
}

function validatePodTemplateSpec(template: Json | undefined, prefix: string): FieldError[] {
  const errors: FieldError[] = [];
  const containers = at(template, 'spec', 'containers');
  if (!Array.isArray(containers) || containers.length === 0) {
    errors.push({ type: 'FieldValueRequired', field: `${prefix}.spec.containers`, detail: '' });
    return errors;
  }
  containers.forEach((c, i) => {
    const field = `${prefix}.spec.containers[${i}]`;
    if (!isObject(c) || typeof c.name !== 'string' || c.name === '') errors.push({ type: 'FieldValueRequired', field: `${field}.name`, detail: '' });
    if (!isObject(c) || typeof c.image !== 'string' || c.image === '') errors.push({ type: 'FieldValueRequired', field: `${field}.image`, detail: '' });
  });
  return errors;
}

/** Deployment, DaemonSet, StatefulSet: a selector that selects the template, containers with names and images. */
export function validateWorkload(obj: JsonObject, old: JsonObject | undefined): FieldError[] {
  const errors: FieldError[] = [];
  const selector = at(obj, 'spec', 'selector');
  const template = at(obj, 'spec', 'template');
  if (!isObject(selector)) {
    errors.push({ type: 'FieldValueRequired', field: 'spec.selector', detail: '' });
  } else if (!selectorMatches(selector, at(template, 'metadata', 'labels'))) {
    errors.push({
      type: 'FieldValueInvalid',
      field: 'spec.template.metadata.labels',
      detail: '`selector` does not match template `labels`',
      badValue: goStringMap(at(template, 'metadata', 'labels')),
    });
  }
  errors.push(...validatePodTemplateSpec(template, 'spec.template'));
  const oldSelector = at(old, 'spec', 'selector');
  if (old && !deepEqual(oldSelector, selector)) {
    errors.push({ type: 'FieldValueInvalid', field: 'spec.selector', detail: 'field is immutable', badValue: selector ?? null });
  }
  return errors;
}

/** ClusterRoleBinding, RoleBinding: roleRef cannot change (the classic addon-upgrade trap). */
export function validateBinding(obj: JsonObject, old: JsonObject | undefined): FieldError[] {
  const roleRef = obj.roleRef;
  if (!isObject(roleRef)) return [{ type: 'FieldValueRequired', field: 'roleRef', detail: '' }];
  if (old && !deepEqual(old.roleRef, roleRef)) {
    return [{ type: 'FieldValueInvalid', field: 'roleRef', detail: 'cannot change roleRef', badValue: roleRef }];
  }
  return [];
}

export function validateService(obj: JsonObject): FieldError[] {
  const spec = at(obj, 'spec');
  const type = at(spec, 'type');
  const clusterIP = at(spec, 'clusterIP');
  const ports = at(spec, 'ports');
  if (type === 'ExternalName' || clusterIP === 'None') return [];
  if (!Array.isArray(ports) || ports.length === 0) return [{ type: 'FieldValueRequired', field: 'spec.ports', detail: '' }];
  return [];
}

export function validateConfigMap(obj: JsonObject): FieldError[] {
  const errors: FieldError[] = [];
  for (const field of ['data', 'binaryData']) {
    const data = obj[field];
    if (!isObject(data)) continue;
    for (const key of Object.keys(data)) {
      if (!CONFIG_KEY.test(key)) errors.push({ type: 'FieldValueInvalid', field: `${field}[${key}]`, detail: CONFIG_KEY_MESSAGE, badValue: key });
    }
  }
  return errors;
}
