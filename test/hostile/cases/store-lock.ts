// Writers that meet the cluster's writer lock (issue 7, item 1): a lock held by
// another live writer, a lock object that is not a lock, and bad --lock-timeout
// values. Each must end with its exit code and one clear line, and write nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostileCase, World } from '../case.js';

/** A live lock, as another mooring on another machine holds it (expiring in an hour). */
function plantLiveLock(w: World): void {
  const now = Date.now();
  w.file(
    `state/${w.cluster}/mooring.lock`,
    JSON.stringify({
      kind: 'MooringWriterLock',
      apiVersion: 1,
      owner: { id: 'c'.repeat(32), host: 'other-host', pid: 4242, command: `mooring update cluster ${w.cluster} --yes` },
      acquiredAt: new Date(now - 10_000).toISOString(),
      renewedAt: new Date(now - 1000).toISOString(),
      expiresAt: new Date(now + 3600_000).toISOString(),
    }),
  );
}

const LOCKED = /^error: cluster "hostile\.example\.com" is locked by pid 4242 on other-host \(mooring update cluster hostile\.example\.com --yes\) since \S+ \(lease expires \S+ unless renewed\); gave up after 0s \(--lock-timeout\), nothing was written$/m;

export const cases: HostileCase[] = [
  {
    name: 'update cluster --yes while another live writer holds the cluster lock',
    program: 'mooring',
    prepare: (w) => {
      plantLiveLock(w);
      return { args: ['--state', w.storeURL, 'update', 'cluster', w.cluster, '--yes', '--lock-timeout', '0'] };
    },
    exit: 7,
    message: LOCKED,
  },
  {
    name: 'update cluster --yes waits for a live lock, with a progress line, then gives up',
    program: 'mooring',
    prepare: (w) => {
      plantLiveLock(w);
      return { args: ['--state', w.storeURL, 'update', 'cluster', w.cluster, '--yes', '--lock-timeout', '1s'] };
    },
    exit: 7,
    maxLines: 2,
    message: /^waiting for the lock of cluster "hostile\.example\.com": held by pid 4242 on other-host .* waiting up to 1s \(--lock-timeout\)\nerror: cluster "hostile\.example\.com" is locked by .* gave up after 1s \(--lock-timeout\), nothing was written\n$/,
  },
  {
    name: 'delete cluster --yes while another live writer holds the cluster lock',
    program: 'mooring',
    prepare: (w) => {
      plantLiveLock(w);
      return { args: ['--state', w.storeURL, 'delete', 'cluster', w.cluster, '--yes', '--lock-timeout', '0'] };
    },
    exit: 7,
    message: LOCKED,
  },
  {
    name: 'replace -f while another live writer holds the cluster lock',
    program: 'mooring',
    prepare: (w) => {
      plantLiveLock(w);
      const spec = w.file('spec.yaml', readFileSync(join(w.storeDir, w.cluster, 'config')));
      return { args: ['--state', w.storeURL, 'replace', '-f', spec, '--lock-timeout', '0'] };
    },
    exit: 7,
    message: LOCKED,
  },
  {
    name: 'a cluster lock object that is not a lock',
    program: 'mooring',
    prepare: (w) => {
      w.file(`state/${w.cluster}/mooring.lock`, '{"kind": "Something", "owner": 1}');
      return { args: ['--state', w.storeURL, 'update', 'cluster', w.cluster, '--yes'] };
    },
    exit: 1,
    message: /^error: file:\/\/\S+\/hostile\.example\.com\/mooring\.lock is not a mooring lock \(not a MooringWriterLock\); if no mooring command is writing cluster "hostile\.example\.com", delete that object$/m,
  },
  {
    name: '--lock-timeout that is not a duration',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'update', 'cluster', w.cluster, '--yes', '--lock-timeout', 'soon'] }),
    exit: 2,
    message: /^error: --lock-timeout: "soon" is not a duration from 0 to 24h/m,
  },
  {
    name: '--lock-timeout beyond the 24h bound',
    program: 'mooring',
    prepare: (w) => ({ args: ['--state', w.storeURL, 'delete', 'cluster', w.cluster, '--yes', '--lock-timeout', '25h'] }),
    exit: 2,
    message: /^error: --lock-timeout: "25h" is not a duration from 0 to 24h/m,
  },
];
