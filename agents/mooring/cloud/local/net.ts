// Network namespaces, the bridge and the veth pairs, through iproute2. Every
// interface is created inside a namespace this module made: the veth's bridge
// end is made in the bridge namespace and its peer moved straight into the
// instance's, so nothing ever appears in the host namespace. No namespace gets
// a default route: only the on-link 198.18.0.0/16.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { BRIDGE_ADDRESS, PREFIX_LENGTH } from './plan.js';

const BRIDGE = 'br0';

async function ip(args: string[]): Promise<string> {
  const result = await execa('ip', args, { reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) throw new Error(`ip ${args.join(' ')}: ${String(result.stderr).trim() || `exit ${result.exitCode}`}`);
  return String(result.stdout);
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

export async function createNetns(name: string): Promise<void> {
  if (!netnsExists(name)) await ip(['netns', 'add', name]);
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);
}

/** Deletes the namespace (and with it every interface inside); missing is fine. */
export async function deleteNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  await ip(['netns', 'del', name]);
}

export async function ensureBridge(netns: string): Promise<void> {
  await createNetns(netns);
  const links = await ip(['-n', netns, '-o', 'link', 'show']);
  if (!new RegExp(`^\\d+: ${BRIDGE}[:@]`, 'm').test(links)) await ip(['-n', netns, 'link', 'add', BRIDGE, 'type', 'bridge']);
  const addrs = await ip(['-n', netns, '-o', 'addr', 'show', 'dev', BRIDGE]);
  if (!addrs.includes(` ${BRIDGE_ADDRESS}/${PREFIX_LENGTH} `)) await ip(['-n', netns, 'addr', 'add', `${BRIDGE_ADDRESS}/${PREFIX_LENGTH}`, 'dev', BRIDGE]);
  await ip(['-n', netns, 'link', 'set', BRIDGE, 'up']);
}

/** Joins an instance namespace to the bridge: eth0 inside with its address, the other end on br0. */
export async function connectInstance(bridgeNetns: string, instanceNetns: string, veth: string, address: string): Promise<void> {
  await createNetns(instanceNetns);
  const links = await ip(['-n', instanceNetns, '-o', 'link', 'show']);
  if (!/^\d+: eth0[:@]/m.test(links)) {
    // A half-made pair from a crashed run: remove the bridge end and start over.
    await ip(['-n', bridgeNetns, 'link', 'del', veth]).catch(() => undefined);
    await ip(['-n', bridgeNetns, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', instanceNetns]);
  }
  await ip(['-n', bridgeNetns, 'link', 'set', veth, 'master', BRIDGE, 'up']);
  const addrs = await ip(['-n', instanceNetns, '-o', 'addr', 'show', 'dev', 'eth0']);
  if (!addrs.includes(` ${address}/${PREFIX_LENGTH} `)) await ip(['-n', instanceNetns, 'addr', 'add', `${address}/${PREFIX_LENGTH}`, 'dev', 'eth0']);
  await ip(['-n', instanceNetns, 'link', 'set', 'eth0', 'up']);
}

/** `ip route show default` in the namespace: '' when there is none, as the network rule wants. */
export async function defaultRoute(netns: string): Promise<string> {
  return (await ip(['-n', netns, 'route', 'show', 'default'])).trim();
}

/** Namespaces whose names start with the prefix (for cleanup and the leftovers check). */
export async function netnsWithPrefix(prefix: string): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}
