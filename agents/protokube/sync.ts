// One sync pass on the control plane: wait for the API server, apply every
// channel, then the node's labels and taints. Loaded by the daemon's first
// sync pass only (it brings @kubernetes/client-node with it).
import { access } from 'node:fs/promises';
import { applyChannel, type AddonOutcome } from './channels/apply.js';
import { parseChannel } from './channels/channel.js';
import { ResourceReader } from './channels/source.js';
import type { SyncHost } from './daemon.js';
import { connectKube, KubeCallError } from './kube/api.js';
import { CONTROL_PLANE_LABELS, ensureNodeLabels } from './node-labels.js';

const API_EVENTS = { failed: 'apiserver-unavailable', recovered: 'apiserver-ready' };
const ADDON_EVENTS = { failed: 'addon-failed', recovered: 'addon-recovered' };
const CHANNEL_EVENTS = { failed: 'channel-failed', recovered: 'channel-recovered' };
const NODE_EVENTS = { failed: 'node-labels-failed', recovered: 'node-labels-recovered' };

function apiDown(host: SyncHost, reason: string): number {
  host.setApiReady(false);
  host.board.set('apiserver', false, reason, API_EVENTS);
  host.metrics.set('protokube_apiserver_ready', '1 while the API server answers', 0);
  return host.backoff();
}

export async function syncPass(host: SyncHost): Promise<number> {
  try {
    return await pass(host);
  } finally {
    host.metrics.set('protokube_last_sync_timestamp_seconds', 'when the last sync pass ended (unix seconds)', Math.floor(Date.now() / 1000));
    await host.saveStatus();
  }
}

async function pass(host: SyncHost): Promise<number> {
  const { config, board, metrics, log } = host;
  let kube = host.getKube();
  if (!kube) {
    // Until nodeup has written the kubeconfig there is nothing to connect with, and no reason to load the client.
    try {
      await access(config.kubeconfig);
    } catch {
      return apiDown(host, `waiting for the kubeconfig ${config.kubeconfig} (nodeup writes it)`);
    }
    try {
      kube = await connectKube(config.kubeconfig);
      host.setKube(kube);
    } catch (err) {
      return apiDown(host, (err as Error).message);
    }
  }
  if (!host.apiReady()) {
    try {
      await kube.ping();
    } catch (err) {
      return apiDown(host, `waiting for the API server: ${(err as Error).message}`);
    }
    const first = board.get('apiserver') === undefined;
    host.setApiReady(true);
    board.set('apiserver', true, undefined, API_EVENTS, { server: kube.server });
    metrics.set('protokube_apiserver_ready', '1 while the API server answers', 1);
    if (first) log.info('the API server answers', { event: 'apiserver-ready', server: kube.server });
  }

  const reader = new ResourceReader([host.store], { storeTimeoutMs: config.storeTimeoutMs });
  for (const location of config.channels) {
    const channelCheck = `channel ${location}`;
    let outcomes: AddonOutcome[];
    try {
      const channel = parseChannel((await reader.read(location)).toString('utf8'), location);
      board.set(channelCheck, true, undefined, CHANNEL_EVENTS, { addons: channel.addons.length });
      outcomes = await applyChannel(channel, { kube, reader, log, dryRun: false });
    } catch (err) {
      board.set(channelCheck, false, `cannot read the channel: ${(err as Error).message}`, CHANNEL_EVENTS);
      continue;
    }
    const seen = new Set<string>();
    for (const o of outcomes) {
      const check = `addon ${o.addon}`;
      seen.add(check);
      const labels = { addon: o.addon };
      if (o.action === 'failed') {
        metrics.inc('protokube_addon_failures_total', 'addon passes that failed', labels);
        metrics.set('protokube_addon_ok', '1 when the addon is applied as its channel says', 0, labels);
        board.set(check, false, o.reason, ADDON_EVENTS, { addon: o.addon, namespace: o.namespace, id: o.id, manifestHash: o.manifestHash });
      } else {
        if (o.action === 'applied') metrics.inc('protokube_addon_applies_total', 'times an addon was applied', labels);
        metrics.set('protokube_addon_ok', '1 when the addon is applied as its channel says', 1, labels);
        board.set(check, true, o.action === 'applied' ? `applied (${o.reason})` : 'up to date', ADDON_EVENTS, {
          addon: o.addon,
          namespace: o.namespace,
          id: o.id,
          manifestHash: o.manifestHash,
          ...(o.needsRollingUpdate ? { needsRollingUpdate: o.needsRollingUpdate } : {}),
        });
      }
      if (o.unreachable) return apiDown(host, `the API server stopped answering: ${o.reason ?? ''}`);
    }
    for (const check of host.addonChecks.get(location) ?? []) {
      if (!seen.has(check)) {
        board.remove(check);
        metrics.forget('protokube_addon_ok', { addon: check.slice('addon '.length) });
      }
    }
    host.addonChecks.set(location, seen);
  }

  try {
    const result = await ensureNodeLabels(kube, config.nodeName, CONTROL_PLANE_LABELS, config.nodeTaints);
    if (result.state === 'not-registered') {
      board.set('node', false, `node ${config.nodeName} is not registered yet (kubelet registers it)`, NODE_EVENTS);
      metrics.set('protokube_node_labels_ok', '1 when this node carries its labels and taints', 0);
    } else {
      if (result.changes.length > 0) log.info('node labels and taints applied', { event: 'node-labels-applied', node: config.nodeName, changes: result.changes });
      board.set('node', true, undefined, NODE_EVENTS, { node: config.nodeName });
      metrics.set('protokube_node_labels_ok', '1 when this node carries its labels and taints', 1);
    }
  } catch (err) {
    if (err instanceof KubeCallError && err.unreachable) return apiDown(host, `the API server stopped answering: ${err.message}`);
    board.set('node', false, (err as Error).message, NODE_EVENTS);
    metrics.set('protokube_node_labels_ok', '1 when this node carries its labels and taints', 0);
  }
  return config.syncIntervalMs;
}
