// Label selectors (k8s.io/apimachinery/pkg/labels grammar: `a=b`, `a==b`,
// `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, comma = and) and the field
// selectors every resource supports (metadata.name, metadata.namespace).
import { badRequest } from './status.js';

export type Requirement =
  | { key: string; op: 'exists' | 'notexists' }
  | { key: string; op: 'in' | 'notin'; values: string[] };

export type Selector = Requirement[];

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const c of text) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

export function parseLabelSelector(text: string): Selector {
  if (text.trim() === '') return [];
  return splitTopLevel(text).map((raw) => {
    const part = raw.trim();
    let m = /^!\s*([^\s!=(),]+)$/.exec(part);
    if (m) return { key: m[1], op: 'notexists' };
    m = /^([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part);
    if (m) {
      const values = m[3].split(',').map((v) => v.trim());
      return { key: m[1], op: m[2] === 'in' ? 'in' : 'notin', values };
    }
    m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(part);
    if (m) return { key: m[1], op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]] };
    m = /^([^\s!=(),]+)$/.exec(part);
    if (m) return { key: m[1], op: 'exists' };
    throw badRequest(`unable to parse requirement: found '${part}', expected: identifier, '!', 'in', 'notin', '=', '==' or '!='`);
  });
}

export function labelsMatch(selector: Selector, labels: Record<string, string>): boolean {
  return selector.every((r) => {
    const present = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return present;
      case 'notexists':
        return !present;
      case 'in':
        return present && r.values.includes(labels[r.key]);
      case 'notin':
        return !present || !r.values.includes(labels[r.key]);
    }
  });
}

export interface FieldRequirement {
  field: 'metadata.name' | 'metadata.namespace';
  equals: boolean;
  value: string;
}

export function parseFieldSelector(text: string): FieldRequirement[] {
  if (text.trim() === '') return [];
  return text.split(',').map((raw) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!m) throw badRequest(`invalid selector: '${raw}'; can't understand '${raw}'`);
    if (m[1] !== 'metadata.name' && m[1] !== 'metadata.namespace') throw badRequest(`field label not supported: ${m[1]}`);
    return { field: m[1], equals: m[2] !== '!=', value: m[3] };
  });
}

export function fieldsMatch(reqs: FieldRequirement[], name: string, namespace: string): boolean {
  return reqs.every((r) => ((r.field === 'metadata.name' ? name : namespace) === r.value) === r.equals);
}
