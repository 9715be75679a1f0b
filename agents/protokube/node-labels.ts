// The control-plane node's labels and taints (find → diff → apply), checked on
// every pass so that one removed by hand comes back:
// - labels: node-role.kubernetes.io/control-plane and
//   node.kubernetes.io/exclude-from-external-load-balancers (kubelet may not
//   set node-role labels itself), merge-patched when missing or different;
// - taints: the group's, each by key and effect. spec.taints is one atomic
//   list, so a change sends the whole list (the node's own taints kept, ours
//   added or corrected) guarded by the resourceVersion it was read at: a
//   controller that changed the list meanwhile makes the patch fail with 409,
//   and the pass reads again. Server-side apply would own the whole list and
//   drop the taints the node controller sets (not-ready, unreachable).
import type { Taint } from '../../shared/api/k8s-syntax.js';
import type { KubeAPI, NodeState, NodeTaint } from './kube/api.js';
import { KubeCallError } from './kube/api.js';

export const CONTROL_PLANE_LABELS: Readonly<Record<string, string>> = {
  'node-role.kubernetes.io/control-plane': '',
  'node.kubernetes.io/exclude-from-external-load-balancers': '',
};

export interface NodeChange {
  labels: Record<string, string>;
  taints?: NodeTaint[];
  /** One line per change, for the log. */
  changes: string[];
}

function sameTaint(a: { key: string; effect: string }, b: { key: string; effect: string }): boolean {
  return a.key === b.key && a.effect === b.effect;
}

/** What must change on the node; undefined when it already has every label and taint. */
export function nodeDiff(node: NodeState, labels: Readonly<Record<string, string>>, taints: readonly Taint[]): NodeChange | undefined {
  const change: NodeChange = { labels: {}, changes: [] };
  for (const [key, value] of Object.entries(labels)) {
    if (node.labels[key] !== value) {
      change.labels[key] = value;
      change.changes.push(node.labels[key] === undefined ? `label ${key} added` : `label ${key} set to ${JSON.stringify(value)}`);
    }
  }
  let list = [...node.taints];
  let taintsChanged = false;
  for (const taint of taints) {
    const existing = list.find((t) => sameTaint(t, taint));
    if (existing && (existing.value ?? '') === (taint.value ?? '')) continue;
    list = list.filter((t) => !sameTaint(t, taint));
    list.push({ key: taint.key, ...(taint.value !== undefined ? { value: taint.value } : {}), effect: taint.effect });
    change.changes.push(`${existing ? 'taint corrected' : 'taint added'} ${taint.key}${taint.value !== undefined ? `=${taint.value}` : ''}:${taint.effect}`);
    taintsChanged = true;
  }
  if (taintsChanged) change.taints = list;
  return change.changes.length === 0 ? undefined : change;
}

export type NodeResult = { state: 'ok'; changes: string[] } | { state: 'not-registered' };

/** Makes the node carry the labels and taints; a concurrent change of its taints is retried once. */
export async function ensureNodeLabels(kube: KubeAPI, nodeName: string, labels: Readonly<Record<string, string>>, taints: readonly Taint[]): Promise<NodeResult> {
  for (let attempt = 1; ; attempt++) {
    const node = await kube.node(nodeName);
    if (node === undefined) return { state: 'not-registered' };
    const change = nodeDiff(node, labels, taints);
    if (change === undefined) return { state: 'ok', changes: [] };
    try {
      await kube.patchNode(nodeName, {
        ...(Object.keys(change.labels).length > 0 ? { labels: change.labels } : {}),
        ...(change.taints ? { taints: change.taints, resourceVersion: node.resourceVersion } : {}),
      });
      return { state: 'ok', changes: change.changes };
    } catch (err) {
      if (err instanceof KubeCallError && err.code === 409 && attempt < 3) continue;
      throw err;
    }
  }
}
