// Control-plane registrations in the state store, one object per instance in
// <config-base>/protokube/control-plane/. The object's *name* carries what
// readers need, `<instance>@<address>@<zone>`, and the store's modification
// time is its heartbeat, so one listing per poll tells every reader who is
// there and who went silent: no object is read (kOps' gossip mesh died at about
// 200 nodes, kops#7427, #13974; a listing plus one read per node would grow
// the same way). The object's body repeats the facts as JSON, for humans.
//
// Times are compared on one clock: every modification time comes from the
// store (S3's clock, or the file system's), and a control-plane instance
// judges the others against its own registration's time plus what its own
// monotonic clock says has passed since it wrote it. Skew between instances'
// clocks does not matter.
import { isIP } from 'node:net';
import type { ListedObject } from '../../../shared/store/types.js';
import { registrationPartProblem } from '../config.js';

export const REGISTRATION_FOLDER = 'protokube/control-plane';

export interface InstanceIdentity {
  name: string;
  address: string;
  /** '' when unknown. */
  zone: string;
}

export interface Registration extends InstanceIdentity {
  /** Path of its object, relative to the cluster's folder. */
  path: string;
  modified: Date;
}

const NO_ZONE = '-';

export function registrationName(id: InstanceIdentity): string {
  return `${id.name}@${id.address}@${id.zone === '' ? NO_ZONE : id.zone}`;
}

export function registrationPath(id: InstanceIdentity): string {
  return `${REGISTRATION_FOLDER}/${registrationName(id)}`;
}

/** The identity in an object name, or undefined for a name that is not a registration (ignored, never trusted). */
export function parseRegistrationName(name: string): InstanceIdentity | undefined {
  const parts = name.split('@');
  if (parts.length !== 3) return undefined;
  const [instance, address, zone] = parts;
  if (registrationPartProblem(instance) !== undefined || isIP(address) === 0) return undefined;
  if (zone !== NO_ZONE && registrationPartProblem(zone) !== undefined) return undefined;
  return { name: instance, address, zone: zone === NO_ZONE ? '' : zone };
}

export function registrationBody(id: InstanceIdentity, cluster: string, at: Date): string {
  return JSON.stringify({ apiVersion: 'mooring.dev/v1alpha1', kind: 'ControlPlaneRegistration', cluster, ...id, registeredAt: at.toISOString() }, null, 2) + '\n';
}

export interface RegistrationView {
  /** Registrations heard from within the TTL (this instance's own always among them), by address. */
  live: Registration[];
  /** Silent past the TTL. */
  silent: Registration[];
  /** Silent so long (10 × TTL) that the instance is surely gone: any control-plane instance may delete them. */
  expired: Registration[];
  /** Older registrations of this very instance under another address (its past self): deleted at once. */
  pastSelf: Registration[];
  /** Another live instance registered under this instance's name (a misconfiguration worth a warning). */
  sameNameOthers: Registration[];
  /** Object names in the folder that are not registrations. */
  foreign: string[];
}

/**
 * Sorts a listing into live and silent registrations, judged against `reference`:
 * the store time that is "now" for this instance (see the header).
 */
export function viewRegistrations(listed: ListedObject[], self: InstanceIdentity, reference: Date, ttlMs: number, selfSince: Date | undefined): RegistrationView {
  const view: RegistrationView = { live: [], silent: [], expired: [], pastSelf: [], sameNameOthers: [], foreign: [] };
  const selfName = registrationName(self);
  for (const object of listed) {
    const id = parseRegistrationName(object.name);
    if (id === undefined) {
      view.foreign.push(object.name);
      continue;
    }
    const registration: Registration = { ...id, path: object.path, modified: object.modified };
    if (object.name === selfName) {
      view.live.push(registration);
      continue;
    }
    if (id.name === self.name && selfSince !== undefined && object.modified.getTime() < selfSince.getTime()) {
      view.pastSelf.push(registration);
      continue;
    }
    const age = reference.getTime() - object.modified.getTime();
    if (age > 10 * ttlMs) view.expired.push(registration);
    else if (age > ttlMs) view.silent.push(registration);
    else {
      view.live.push(registration);
      if (id.name === self.name) view.sameNameOthers.push(registration);
    }
  }
  return view;
}

/** The live addresses, each once, sorted (so equal views give equal bytes). */
export function liveAddresses(view: RegistrationView, self: InstanceIdentity): string[] {
  return sortAddresses([...new Set([self.address, ...view.live.map((r) => r.address)])]);
}

/** IPv4 before IPv6, then by bytes: a stable order for the block and the published object. */
export function sortAddresses(addresses: string[]): string[] {
  const key = (a: string) => `${isIP(a)}:${a.includes(':') ? a : a.split('.').map((n) => n.padStart(3, '0')).join('.')}`;
  return [...addresses].sort((a, b) => key(a).localeCompare(key(b)));
}
