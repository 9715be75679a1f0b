// Inputs that were already handled cleanly before the hardening issue; kept so they stay that way.
import type { HostileCase } from '../case.js';

export const cases: HostileCase[] = [
  {
    name: 'create a cluster whose name climbs out of the store',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'create', 'cluster', '../../etc', '--cloud', 'local'] }),
    exit: 2,
    message: /error: .*\.\.\/\.\.\/etc/,
  },
  {
    name: 'create -f of a file that does not exist',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'create', '-f', `${w.dir}/nope.yaml`] }),
    exit: 2,
    message: /cannot read .*nope\.yaml/,
  },
  {
    name: 'an unknown flag',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'get', 'clusters', '--bogus'] }),
    exit: 2,
    message: /unknown option '--bogus'/,
  },
  {
    name: 'nodeup without --conf',
    program: 'nodeup',
    prepare: () => ({ args: ['--dry-run'] }),
    exit: 2,
    message: /--conf BOOTCONFIG is required/,
  },
  {
    name: 'etcd-manager with an unknown flag',
    program: 'etcd-manager',
    prepare: () => ({ args: ['--no-such-flag=1'] }),
    exit: 2,
    message: /unknown flag --no-such-flag/,
  },
];
