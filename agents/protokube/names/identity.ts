// Who this control-plane instance is, for its registration: its name, address
// and zone, from the flags, else (--cloud=aws) the instance metadata service,
// else the host: the first non-loopback IPv4 address of its interfaces, which
// in a local-cloud instance (its own network namespace, one link) is its address.
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ExitCode, UserError } from '../../../shared/errors.js';
import { registrationPartProblem, type ProtokubeConfig } from '../config.js';
import type { InstanceIdentity } from './registry.js';

/** The first non-internal IPv4 address, interfaces in name order. */
export function hostAddress(interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): string | undefined {
  for (const name of Object.keys(interfaces).sort()) {
    for (const info of interfaces[name] ?? []) {
      if (!info.internal && info.family === 'IPv4') return info.address;
    }
  }
  return undefined;
}

export async function resolveIdentity(config: ProtokubeConfig, options: { metadataEndpoint?: string } = {}): Promise<InstanceIdentity> {
  let address = config.address;
  let zone = config.zone ?? '';
  if (config.cloud === 'aws' && (address === undefined || zone === '')) {
    const { InstanceMetadata } = await import('../../../shared/aws-imds.js');
    const metadata = new InstanceMetadata(options.metadataEndpoint ? { endpoint: options.metadataEndpoint } : {});
    try {
      address ??= await metadata.get('local-ipv4');
      if (zone === '') zone = await metadata.get('placement/availability-zone');
    } catch (err) {
      throw new UserError(`cannot learn this instance's address and zone (set --address and --zone): ${(err as Error).message}`, ExitCode.Failure);
    }
    // What the metadata service says goes into a store key and the hosts file: checked like the flags.
    if (isIP(address) === 0) throw new UserError(`instance metadata: local-ipv4 ${JSON.stringify(address)} is not an IP address (set --address)`, ExitCode.Failure);
    if (zone !== '' && registrationPartProblem(zone)) throw new UserError(`instance metadata: zone ${JSON.stringify(zone)}: ${registrationPartProblem(zone)} (set --zone)`, ExitCode.Failure);
  }
  address ??= hostAddress();
  if (address === undefined) throw new UserError('this host has no non-loopback IPv4 address to register: set --address', ExitCode.Usage);
  return { name: config.instanceName, address, zone };
}
