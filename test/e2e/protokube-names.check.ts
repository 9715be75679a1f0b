// The end-to-end check of protokube's names, for the local cloud's e2e tests
// (`make e2e`), ready to be called once a cluster is up: inside every instance,
// `api.internal.<cluster>` resolves (glibc's files backend, through getent,
// which returns every matching line of /etc/hosts) to exactly the live
// control-plane addresses, the hosts file holds one protokube block; and after
// a control-plane instance is replaced, every instance follows: the new
// address in, the old one out.
//
// It is not a *.test.ts file: test/e2e/local-cloud.test.ts calls it with its
// own handles (a booted cluster adapted to LocalCloud below), around the
// replacement of its "instance loss" step.
import type { Test } from 'tap';
import { findBlocks } from '../../shared/hosts.js';
import { protokubeMarkers } from '../../agents/protokube/names/hosts-block.js';
import { waitFor } from '../harness/net.js';

export interface Instance {
  name: string;
  /** The address other instances reach it at (what its protokube registers). */
  address: string;
  role: 'control-plane' | 'node';
  /** Runs a command inside the instance (its own namespaces), to the end. */
  exec(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

export interface LocalCloud {
  /** The cluster's name (api.internal.<cluster>). */
  cluster: string;
  /** The instances running now. */
  instances(): Promise<Instance[]>;
  /** Replaces one instance (a new one in its group, the old one gone); returns the new one. */
  replace(name: string): Promise<Instance>;
}

export interface CheckOptions {
  /** How long names may take to settle (default 3 minutes: boot, nodeup, protokube's polls and TTL). */
  timeoutMs?: number;
}

/** The addresses an instance resolves the name to, sorted. */
async function resolved(instance: Instance, name: string): Promise<string[]> {
  const r = await instance.exec(['getent', 'ahostsv4', name]);
  if (r.code !== 0) throw new Error(`${instance.name}: getent ahostsv4 ${name} exited ${r.code}: ${r.stderr.trim()}`);
  return [...new Set(r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((a) => a !== ''))].sort();
}

/** The addresses of protokube's block in the instance's /etc/hosts; throws unless there is exactly one block. */
async function blockOf(instance: Instance, cluster: string, name: string): Promise<string[]> {
  const r = await instance.exec(['cat', '/etc/hosts']);
  if (r.code !== 0) throw new Error(`${instance.name}: cat /etc/hosts: ${r.stderr.trim()}`);
  const blocks = findBlocks(r.stdout, protokubeMarkers(cluster), [name]);
  if (blocks.length !== 1) throw new Error(`${instance.name}: ${blocks.length} protokube blocks in /etc/hosts`);
  return blocks[0].map((line) => line.split(/\s+/)[0]).sort();
}

/** Waits until every instance resolves the name to exactly the live control-plane addresses. */
async function expectEverywhere(t: Test, cloud: LocalCloud, what: string, timeoutMs: number): Promise<string[]> {
  const name = `api.internal.${cloud.cluster}`;
  let want: string[] = [];
  await waitFor(what, async () => {
    const instances = await cloud.instances();
    want = instances.filter((i) => i.role === 'control-plane').map((i) => i.address).sort();
    for (const instance of instances) {
      const got = await resolved(instance, name);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${instance.name} resolves ${name} to ${got.join(', ') || 'nothing'}, want ${want.join(', ')}`);
      const block = await blockOf(instance, cloud.cluster, name);
      if (JSON.stringify(block) !== JSON.stringify(want)) throw new Error(`${instance.name}: protokube's block lists ${block.join(', ')}, want ${want.join(', ')}`);
    }
    return true;
  }, timeoutMs, 2000);
  t.pass(`${what}: every instance resolves ${name} to ${want.join(', ')}`);
  return want;
}

export async function checkApiInternalNames(t: Test, cloud: LocalCloud, options: CheckOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 180_000;
  const before = await expectEverywhere(t, cloud, 'names settled', timeoutMs);
  const controlPlane = (await cloud.instances()).filter((i) => i.role === 'control-plane');
  t.ok(controlPlane.length > 0, 'the cluster has a control plane');
  const old = controlPlane[0];
  const fresh = await cloud.replace(old.name);
  t.not(fresh.address, old.address, 'the replacement has another address');
  const after = await expectEverywhere(t, cloud, `after replacing ${old.name}`, timeoutMs);
  t.ok(after.includes(fresh.address), 'the new instance\'s address is in');
  t.notOk(after.includes(old.address), 'the old instance\'s address is out');
  t.equal(after.length, before.length, 'as many control-plane addresses as before');
}
