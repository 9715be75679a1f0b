// All model builders, in one place: (cluster, node config, host) → tasks.
// Workers get no control-plane material: no static pods but kube-proxy, no
// etcd, no keys beyond their own kubeconfigs; their protokube only follows
// the control plane's addresses into /etc/hosts (names-only).
import type { Task } from '../engine/task.js';
import { baseTasks } from './base.js';
import { containerdTasks } from './containerd.js';
import { isControlPlaneRole, type ModelInput } from './context.js';
import { controlPlaneTasks } from './control-plane.js';
import { etcdTasks } from './etcd.js';
import { kubeProxyTasks } from './kube-proxy.js';
import { kubeletTasks } from './kubelet.js';
import { protokubeTasks } from './protokube.js';

export type { ModelInput } from './context.js';

export function buildTasks(input: ModelInput): Task[] {
  const tasks = [...baseTasks(input), ...containerdTasks(input), ...kubeletTasks(input), ...kubeProxyTasks(input), ...protokubeTasks(input)];
  if (isControlPlaneRole(input.nodeConfig)) tasks.push(...controlPlaneTasks(input), ...etcdTasks(input));
  return tasks;
}
