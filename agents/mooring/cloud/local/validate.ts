// `mooring validate cluster NAME` on the local cloud: each instance's progress
// (booting → user-data → nodeup → etcd-manager → etcd members and health), read
// from inside the instance (nsenter) with systemctl and with etcdctl over TLS,
// using the API server's etcd client certificate that nodeup wrote. The host
// itself never talks to an instance's address.
import { execa } from 'execa';
import type { Cluster } from '../../../../shared/api/types.js';
import type { InstanceView, LocalCloud } from './cloud.js';

export interface EtcdView {
  unit: string;
  /** This instance's member name, when etcd answers. */
  member?: string;
  members?: number;
  healthy?: boolean;
}

export interface InstanceProgress {
  id: string;
  instanceGroup: string;
  address: string;
  state: string;
  systemd: string;
  userData: string;
  nodeup: string;
  etcd: Record<string, EtcdView>;
}

/** One shell round trip per instance: key=value lines. */
function probeScript(address: string, etcd: Array<{ name: string; port: number }>): string {
  const lines = [
    'ctl() { systemctl is-active "$1" 2>/dev/null | head -1; }',
    'echo "systemd=$(systemctl is-system-running 2>/dev/null | head -1)"',
    'echo "userData=$(ctl mooring-cloud-init.service)"',
    'echo "nodeup=$(ctl mooring-nodeup.service)"',
    'etcdctl=$(ls /opt/etcd/*/etcdctl 2>/dev/null | head -1)',
    'pki=/srv/kubernetes/kube-apiserver',
  ];
  for (const { name, port } of etcd) {
    lines.push(`echo "${name}.unit=$(ctl etcd-manager@${name}.service)"`);
    lines.push(`if [ -n "$etcdctl" ] && [ -f $pki/etcd-client.key ]; then`);
    const cmd = `ETCDCTL_API=3 timeout 5 "$etcdctl" --endpoints https://${address}:${port} --cacert $pki/etcd-ca.crt --cert $pki/etcd-client.crt --key $pki/etcd-client.key --command-timeout=3s`;
    lines.push(`  echo "${name}.health=$(${cmd} endpoint health >/dev/null 2>&1 && echo yes || echo no)"`);
    lines.push(`  echo "${name}.status=$(${cmd} endpoint status -w simple 2>/dev/null | head -1)"`);
    lines.push(`  echo "${name}.members=$(${cmd} member list -w simple 2>/dev/null | tr '\\n' '|')"`);
    lines.push('fi');
  }
  return lines.join('\n') + '\n';
}

function etcdPorts(cluster: Cluster): Array<{ name: string; port: number }> {
  return (cluster.spec.etcdClusters ?? []).map((e) => ({ name: e.name, port: e.clientPort ?? (e.name === 'events' ? 4002 : 4001) }));
}

export async function probeInstance(instance: InstanceView, cluster: Cluster): Promise<InstanceProgress> {
  const progress: InstanceProgress = {
    id: instance.id, instanceGroup: instance.instanceGroup, address: instance.address, state: instance.state,
    systemd: '', userData: '', nodeup: '', etcd: {},
  };
  const leader = instance.processes.leader;
  if (instance.state !== 'running' || !leader) return progress;
  const ports = etcdPorts(cluster);
  const result = await execa('nsenter', ['-t', String(leader.pid), '-a', '--', 'bash', '-c', probeScript(instance.address, ports)], { reject: false, timeout: 30_000 });
  const values = new Map<string, string>();
  for (const line of String(result.stdout).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq), line.slice(eq + 1));
  }
  progress.systemd = values.get('systemd') ?? '';
  progress.userData = values.get('userData') ?? '';
  progress.nodeup = values.get('nodeup') ?? '';
  for (const { name } of ports) {
    const view: EtcdView = { unit: values.get(`${name}.unit`) ?? '' };
    if (values.has(`${name}.health`)) view.healthy = values.get(`${name}.health`) === 'yes';
    // `endpoint status -w simple`: "<endpoint>, <member id hex>, <version>, …"; `member list -w simple`: "<id hex>, <status>, <name>, …" per member.
    const selfID = (values.get(`${name}.status`) ?? '').split(', ')[1];
    const members = (values.get(`${name}.members`) ?? '').split('|').filter((l) => l.trim() !== '').map((l) => l.split(', '));
    if (members.length > 0) {
      view.members = members.length;
      view.member = members.find((m) => m[0] === selfID)?.[2];
    }
    progress.etcd[name] = view;
  }
  return progress;
}

/** Where the instance is on its way, in a few words. */
export function phaseOf(p: InstanceProgress, memberCount: Record<string, number>): string {
  if (p.state !== 'running') return p.state === 'pending' ? 'booting' : p.state;
  if (p.systemd === '' || p.systemd === 'initializing' || p.systemd === 'offline') return 'booting';
  if (p.userData !== 'active') return p.userData === 'failed' ? 'user-data failed' : 'user-data';
  if (p.nodeup !== 'active') return p.nodeup === 'failed' ? 'nodeup failed' : 'nodeup';
  const parts = Object.entries(p.etcd).map(([name, e]) => {
    if (e.unit !== 'active') return `${name}: etcd-manager ${e.unit || 'not started'}`;
    if (!e.healthy || e.members === undefined) return `${name}: forming`;
    return `${name}: member ${e.member ?? '?'}, ${e.members}/${memberCount[name] ?? '?'} members, healthy`;
  });
  return parts.join('; ');
}

export function isReady(p: InstanceProgress, memberCount: Record<string, number>): boolean {
  return p.state === 'running' && p.nodeup === 'active' && Object.entries(p.etcd).every(([name, e]) => e.unit === 'active' && e.healthy === true && e.members === memberCount[name]);
}

export interface ValidateOptions {
  waitMs: number;
  /** A line per instance whose phase changed. */
  say: (line: string) => void;
}

/** Probes until every instance is ready (true) or the wait is over (false). */
export async function validateCluster(cloud: LocalCloud, cluster: Cluster, options: ValidateOptions): Promise<{ ok: boolean; instances: InstanceProgress[] }> {
  const name = cluster.metadata.name;
  const memberCount = Object.fromEntries((cluster.spec.etcdClusters ?? []).map((e) => [e.name, e.etcdMembers.length]));
  const deadline = Date.now() + options.waitMs;
  const last = new Map<string, string>();
  const started = Date.now();
  for (;;) {
    const instances = await cloud.instances(name);
    const progress = await Promise.all(instances.map((i) => probeInstance(i, cluster)));
    for (const p of progress) {
      const phase = phaseOf(p, memberCount);
      if (last.get(p.id) !== phase) {
        last.set(p.id, phase);
        options.say(`${String(Math.round((Date.now() - started) / 1000)).padStart(4)}s  ${p.id}  ${p.instanceGroup.padEnd(24)} ${phase}`);
      }
    }
    const ok = progress.length > 0 && progress.every((p) => isReady(p, memberCount));
    if (ok || Date.now() >= deadline) return { ok, instances: progress };
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
