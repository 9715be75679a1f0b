// etcd-manager's operator commands (issue 8, item 3) given careless or hostile
// input: an unknown or damaged backup, names that climb out of the store, bad
// store URLs, a store nobody answers on, bad -o, member counts and versions,
// missing arguments, a group-readable or wrong key. Each: one clear line, the
// documented exit code, no key material printed, and nothing changed in the
// world (temp files go to a TMPDIR inside it, so a leftover would show).
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { formatKeySecret, parseKeyMaterial } from '../../../agents/etcd-manager/backup/encryption.js';
import { markClusterCreated } from '../../../agents/etcd-manager/control/cluster-created.js';
import { openStore } from '../../../shared/store/index.js';
import { makeBackup } from '../../harness/em-cli.js';
import type { HostileCase, Invocation, World } from '../case.js';

const GOOD = '2026-11-30T08:00:00Z-000001';

function backupStore(w: World): string {
  return `${w.storeURL}/${w.cluster}/backups/etcd/main`;
}

/** The command with the world's backup store and a TMPDIR inside the world. */
function em(w: World, args: string[], env: Record<string, string> = {}): Invocation {
  const tmp = join(w.dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  return { args: [...args, `--backup-store=${backupStore(w)}`], env: { TMPDIR: tmp, ...env } };
}

async function withBackup(w: World, options: Parameters<typeof makeBackup>[2] = {}): Promise<void> {
  await makeBackup(openStore(backupStore(w)), GOOD, options);
}

async function flipByte(w: World): Promise<void> {
  const store = openStore(backupStore(w));
  const data = await store.read(`${GOOD}/etcd.backup.gz`);
  data[Math.floor(data.length / 2)] ^= 0x08;
  await store.write(`${GOOD}/etcd.backup.gz`, data);
}

/** An http:// endpoint on 127.0.0.1 where nothing listens (connection refused). */
function closedEndpoint(): Promise<string> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(`http://127.0.0.1:${port}`));
    });
  });
}

const key = randomBytes(32);
const wrongKey = randomBytes(32);
const KEY_TEXTS = [key, wrongKey].flatMap((k) => [k.toString('hex'), k.toString('base64')]).map((s) => new RegExp(s.replace(/[+/=]/g, '\\$&')));

export const cases: HostileCase[] = [
  {
    name: 'etcd-manager verify-backup of a backup that does not exist',
    program: 'etcd-manager',
    prepare: async (w) => (await withBackup(w), em(w, ['verify-backup', '2026-01-01T00:00:00Z-000000'])),
    exit: 4,
    message: /^etcd-manager: no backup 2026-01-01T00:00:00Z-000000 in file:\/\/.* \(etcd-manager list-backups shows the backups\)$/m,
  },
  {
    name: 'etcd-manager restore-backup of a backup that does not exist: nothing queued',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['restore-backup', '2026-01-01T00:00:00Z-000000']),
    exit: 4,
    message: /^etcd-manager: no backup 2026-01-01T00:00:00Z-000000 in /m,
  },
  {
    name: 'etcd-manager restore-backup of a name that climbs out of the backup store',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['restore-backup', '../../pki']),
    exit: 2,
    message: /^etcd-manager: restore-backup: "\.\.\/\.\.\/pki" is not a backup name \(list-backups shows the names\)$/m,
  },
  {
    name: 'etcd-manager restore-backup of control/ (not a backup)',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['restore-backup', 'control', '--skip-verify']),
    exit: 2,
    message: /"control" is not a backup name/,
  },
  {
    name: 'etcd-manager verify-backup of a backup with a flipped byte',
    program: 'etcd-manager',
    prepare: async (w) => (await withBackup(w), await flipByte(w), em(w, ['verify-backup', GOOD])),
    exit: 1,
    message: /^etcd-manager: backup 2026-11-30T08:00:00Z-000001: .*the stored object is damaged or was changed \(check stored-sha256 failed\)$/m,
  },
  {
    name: 'etcd-manager restore-backup of a backup with a flipped byte: refused, nothing queued',
    program: 'etcd-manager',
    prepare: async (w) => (await withBackup(w), await flipByte(w), em(w, ['restore-backup', GOOD])),
    exit: 1,
    message: /\(check stored-sha256 failed\); no restore was queued$/m,
  },
  {
    name: 'etcd-manager list-backups with a store URL of an unknown scheme',
    program: 'etcd-manager',
    prepare: () => ({ args: ['list-backups', '--backup-store=ftp://backups.example.com/etcd/main'] }),
    exit: 2,
    message: /^etcd-manager: --backup-store: ftp:\/\/backups\.example\.com\/etcd\/main: unsupported state store scheme "ftp"/m,
  },
  {
    name: 'etcd-manager list-backups with a relative store path',
    program: 'etcd-manager',
    prepare: () => ({ args: ['list-backups', '--backup-store=backups/etcd/main'] }),
    exit: 2,
    message: /^etcd-manager: --backup-store: backups\/etcd\/main: not a state store URL/m,
  },
  {
    name: 'etcd-manager get with a backup store that is a file',
    program: 'etcd-manager',
    prepare: (w) => ({ args: ['get', `--backup-store=file://${w.file('not-a-dir', 'x')}`] }),
    exit: 2,
    message: /not a directory \(a file:\/\/ state store names a directory\)/,
  },
  {
    name: 'etcd-manager get with a backup store that holds nothing (a typo in the URL)',
    program: 'etcd-manager',
    prepare: (w) => ({ args: ['get', `--backup-store=${w.storeURL}/${w.cluster}/backups/etcd/mian`] }),
    exit: 4,
    message: /^etcd-manager: nothing in file:\/\/.*\/mian: no control\/etcd-cluster-spec, no backups, no managers \(is --backup-store right\?/m,
  },
  {
    name: 'etcd-manager list-backups on an S3 endpoint that refuses connections',
    program: 'etcd-manager',
    prepare: async () => ({
      args: ['list-backups', '--backup-store=s3://backups/c.example.com/backups/etcd/main'],
      env: { AWS_ENDPOINT_URL_S3: await closedEndpoint(), AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'HOSTILE', AWS_SECRET_ACCESS_KEY: 'HOSTILE-SECRET', AWS_EC2_METADATA_DISABLED: 'true' },
    }),
    exit: 5,
    message: /^etcd-manager: s3:\/\/backups\/.*cannot reach/m,
    never: [/HOSTILE-SECRET/],
    timeoutMs: 60_000,
  },
  {
    name: 'etcd-manager list-backups -o yaml',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['list-backups', '-o', 'yaml']),
    exit: 2,
    message: /^etcd-manager: -o\/--output: unknown format "yaml" \(want table or json\)$/m,
  },
  {
    name: 'etcd-manager list-backups without --backup-store',
    program: 'etcd-manager',
    prepare: () => ({ args: ['list-backups'] }),
    exit: 2,
    message: /^etcd-manager: list-backups: --backup-store is required/m,
  },
  {
    name: 'etcd-manager configure-cluster --member-count=0 --yes',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['configure-cluster', '--member-count=0', '--etcd-version=3.4.23', '--yes']),
    exit: 2,
    message: /^etcd-manager: --member-count 0: want 1 to 7 \(members of the etcd cluster\)$/m,
  },
  {
    name: 'etcd-manager configure-cluster with a member count past 2^53',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['configure-cluster', '--member-count=99999999999999999999', '--yes']),
    exit: 2,
    message: /--member-count 99999999999999999999: want 1 to 7/,
  },
  {
    name: 'etcd-manager configure-cluster --member-count=three',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['configure-cluster', '--member-count=three', '--yes']),
    exit: 2,
    message: /^etcd-manager: --member-count: "three" is not a whole number$/m,
  },
  {
    name: 'etcd-manager configure-cluster with a version that carries a shell command',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['configure-cluster', '--etcd-version=3.4.23;rm -rf /', '--yes']),
    exit: 2,
    message: /^etcd-manager: --etcd-version "3\.4\.23;rm -rf \/": want a full etcd 3 version like 3\.4\.23$/m,
  },
  {
    name: 'etcd-manager configure-cluster --etcd-version=2.2.1 (etcd 2)',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['configure-cluster', '--etcd-version=2.2.1', '--yes']),
    exit: 2,
    message: /want a full etcd 3 version/,
  },
  {
    name: 'etcd-manager verify-backup without a name',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['verify-backup']),
    exit: 2,
    message: /^etcd-manager: verify-backup: missing NAME \(usage: etcd-manager verify-backup NAME\)$/m,
  },
  {
    name: 'etcd-manager delete-command without an id',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['delete-command']),
    exit: 2,
    message: /^etcd-manager: delete-command: missing ID/m,
  },
  {
    name: 'etcd-manager delete-command of a command that is not queued',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['delete-command', '2026-11-30T08:00:00Z-000001']),
    exit: 4,
    message: /^etcd-manager: no command 2026-11-30T08:00:00Z-000001 queued in file:\/\/.* \(list-commands shows the queued commands\)$/m,
  },
  {
    name: 'etcd-manager delete-command of an id that climbs out of control/',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['delete-command', '../../../pki/private']),
    exit: 2,
    message: /is not a command id/,
  },
  {
    name: 'etcd-manager backup when no cluster was ever created: no request written',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['backup', '--timeout=5s']),
    exit: 4,
    message: /^etcd-manager: no etcd cluster in file:\/\/.* \(control\/etcd-cluster-created is missing\): no leader would take the backup$/m,
  },
  {
    name: 'etcd-manager backup with a timeout out of range',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['backup', '--timeout=48h']),
    exit: 2,
    message: /^etcd-manager: --timeout: "48h" is out of range: want 1s to 24h$/m,
  },
  {
    name: 'etcd-manager an operator command that does not exist',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['restore']),
    exit: 2,
    message: /^etcd-manager: unknown command "restore" \(commands: run, backup, list-backups, verify-backup, restore-backup, /m,
  },
  {
    name: 'etcd-manager list-backups with --yes (a flag of another command)',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['list-backups', '--yes']),
    exit: 2,
    message: /^etcd-manager: list-backups: --yes is not a flag of this command/m,
  },
  {
    name: 'etcd-manager configure-cluster with ETCD_MANAGER_YES in the environment (an operator choice cannot come from there)',
    program: 'etcd-manager',
    prepare: (w) => em(w, ['configure-cluster', '--member-count=3'], { ETCD_MANAGER_YES: 'true' }),
    exit: 2,
    message: /ETCD_MANAGER_YES is not an etcd-manager setting/,
  },
  {
    name: 'etcd-manager verify-backup with a key file others can read',
    program: 'etcd-manager',
    prepare: async (w) => {
      await withBackup(w, { key: parseKeyMaterial(key, 'k') });
      return em(w, ['verify-backup', GOOD, `--backup-encryption-key-file=${w.file('backup.key', key.toString('hex'), 0o644)}`]);
    },
    exit: 2,
    message: /^etcd-manager: --backup-encryption-key-file: .*backup\.key: the backup encryption key file is readable by group or others \(mode 644\); chmod 600 it$/m,
    never: KEY_TEXTS,
  },
  {
    name: 'etcd-manager verify-backup of an encrypted backup with the wrong key (the right one in the state store is not used over a given file)',
    program: 'etcd-manager',
    prepare: async (w) => {
      await withBackup(w, { key: parseKeyMaterial(key, 'k') });
      await openStore(`${w.storeURL}/${w.cluster}`).write('secrets/etcd-backup-encryption-key', formatKeySecret(key));
      return em(w, ['verify-backup', GOOD, `--backup-encryption-key-file=${w.file('wrong.key', wrongKey.toString('base64'), 0o600)}`]);
    },
    exit: 1,
    message: /is encrypted with key id [0-9a-f]{16}, but the key from .*wrong\.key has id [0-9a-f]{16} \(wrong key\) \(check key failed\)$/m,
    never: KEY_TEXTS,
  },
  {
    name: 'etcd-manager restore-backup while a restore is already queued',
    program: 'etcd-manager',
    prepare: async (w) => {
      await withBackup(w);
      const store = openStore(backupStore(w));
      await markClusterCreated(store, { atMs: Date.parse('2026-11-30T07:00:00Z') });
      await store.write('control/2026-11-30T09:00:00Z-000000/_command.json', `{"timestamp":"1796029200000000000","restoreBackup":{"backup":"${GOOD}"}}`);
      return em(w, ['restore-backup', GOOD, '--skip-verify']);
    },
    exit: 6,
    message: /^etcd-manager: a restore is already queued: command 2026-11-30T09:00:00Z-000000 restores 2026-11-30T08:00:00Z-000001 \(delete-command 2026-11-30T09:00:00Z-000000 first, if it should not run\)$/m,
  },
];
