// `etcd-manager migrate-v2` given careless or hostile input: one clear line, the
// documented exit code, nothing written, and no credential echoed back. These
// fail before any etcd is asked anything (no target answers in the world: the
// --to address is a closed port on 127.0.0.1).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { HostileCase } from '../case.js';

const TO = ['--to', 'http://127.0.0.1:1'];

export const cases: HostileCase[] = [
  {
    name: 'migrate-v2 with no source',
    program: 'etcd-manager',
    prepare: () => ({ args: ['migrate-v2', ...TO] }),
    exit: 2,
    message: /^etcd-manager: migrate-v2: --from is required/,
  },
  {
    name: 'migrate-v2 with a password in the source URL: refused, never echoed',
    program: 'etcd-manager',
    prepare: () => ({ args: ['migrate-v2', '--from', 'https://root:s3cr3t-pw@127.0.0.1:2379', ...TO] }),
    exit: 2,
    message: /--from: a URL with user:password@ is refused \(not echoed here\)/,
    never: [/s3cr3t-pw/],
  },
  {
    name: 'migrate-v2 with a password in the target URL: refused, never echoed',
    program: 'etcd-manager',
    prepare: () => ({ args: ['migrate-v2', '--from', 'http://127.0.0.1:1', '--to', 'http://admin:hunter2-pw@127.0.0.1:2379'] }),
    exit: 2,
    message: /--to: a URL with user:password@ is refused/,
    never: [/hunter2-pw/],
  },
  {
    name: 'migrate-v2 pointed at the v2 keys path instead of the endpoint',
    program: 'etcd-manager',
    prepare: () => ({ args: ['migrate-v2', '--from', 'http://127.0.0.1:2379/v2/keys/registry', ...TO] }),
    exit: 2,
    message: /--from: "http:\/\/127\.0\.0\.1:2379\/v2\/keys\/registry": want scheme:\/\/host:port and nothing else/,
  },
  {
    name: 'migrate-v2 with a backup that is not there',
    program: 'etcd-manager',
    prepare: (w) => ({ args: ['migrate-v2', '--from', join(w.dir, 'no-such-backup'), ...TO] }),
    exit: 4,
    message: /--from .*no-such-backup: no such file or directory/,
  },
  {
    name: 'migrate-v2 with a folder that is neither a kOps backup nor an etcd data directory',
    program: 'etcd-manager',
    prepare: (w) => {
      mkdirSync(join(w.dir, 'random-folder', 'member'), { recursive: true });
      w.file('random-folder/notes.txt', 'not a backup');
      return { args: ['migrate-v2', '--from', join(w.dir, 'random-folder'), ...TO] };
    },
    exit: 4,
    message: /holds neither etcd\.backup\.gz \(a kOps backup folder\) nor member\/wal \(an etcd data directory\)/,
  },
  {
    name: 'migrate-v2 asked for 2^40 operations per transaction',
    program: 'etcd-manager',
    prepare: () => ({ args: ['migrate-v2', '--from', 'http://127.0.0.1:1', ...TO, '--max-txn-ops', String(2 ** 40)] }),
    exit: 2,
    message: /--max-txn-ops: "1099511627776" is out of range: want 2 to 100000/,
  },
  {
    name: 'migrate-v2 with an unknown backup reader',
    program: 'etcd-manager',
    prepare: () => ({ args: ['migrate-v2', '--from', 'http://127.0.0.1:1', ...TO, '--backup-reader=guess'] }),
    exit: 2,
    message: /--backup-reader: "guess": want auto or etcd/,
  },
  {
    name: 'migrate-v2 -o yaml',
    program: 'etcd-manager',
    prepare: () => ({ args: ['migrate-v2', '--from', 'http://127.0.0.1:1', ...TO, '-o', 'yaml'] }),
    exit: 2,
    message: /-o\/--output: unknown format "yaml" \(want table or json\)/,
  },
];
