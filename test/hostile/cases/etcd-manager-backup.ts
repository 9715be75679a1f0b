// etcd-manager's backup settings, refused at start with one line naming the flag
// (exit 2), before anything is touched: an encryption key file others can read
// or that holds no AES-256 key (its content never echoed), retention bands out of
// order, ages that are no durations or out of range.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostileCase, Invocation, World } from '../case.js';

const KEY_TEXT = 'my secret passphrase, not a key';

/** Flags that keep everything inside the world; the control spec names an etcd that does not exist, so nothing could start. */
function etcdManager(w: World, overrides: Record<string, string>, env: Record<string, string> = {}): Invocation {
  const backups = `${w.storeDir}/${w.cluster}/backups/etcd/main`;
  writeFileSync(join(backups, 'control/etcd-cluster-spec'), JSON.stringify({ memberCount: 1, etcdVersion: '9.9.9' }));
  const flags: Record<string, string> = {
    'cluster-name': 'etcd', 'backup-store': `file://${backups}`, 'volume-provider': 'static', 'data-dir': `${w.root}/volume`,
    'instance-id': 'hostile-1', address: '127.0.0.1', insecure: 'true', 'peer-urls': 'http://__address__:32380',
    'client-urls': 'http://__address__:32379', 'quarantine-client-urls': 'http://__address__:32378', 'pki-dir': `${w.root}/pki`,
    'hosts-file': `${w.root}/hosts`, 'etcd-binary-dir': `${w.root}/no-etcd`,
    ...overrides,
  };
  return { args: Object.entries(flags).map(([k, v]) => `--${k}=${v}`), env };
}

export const cases: HostileCase[] = [
  {
    name: 'etcd-manager --backup-encryption-key-file readable by everyone',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'backup-encryption-key-file': w.file('backup.key', 'ab'.repeat(32), 0o644) }),
    exit: 2,
    message: /^etcd-manager: --backup-encryption-key-file: .*backup\.key: the backup encryption key file is readable by group or others \(mode 644\); chmod 600 it$/m,
    never: [/(ab){32}/],
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --backup-encryption-key-file holding a passphrase, not a key',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'backup-encryption-key-file': w.file('backup.key', KEY_TEXT, 0o600) }),
    exit: 2,
    message: /^etcd-manager: --backup-encryption-key-file: .*backup\.key: not an AES-256 key \(31 bytes; want exactly 32 raw bytes, 64 hex digits, or the base64 of 32 bytes\)$/m,
    never: [/secret passphrase/],
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --backup-encryption-key-file naming nothing',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'backup-encryption-key-file': `${w.dir}/missing.key` }),
    exit: 2,
    message: /^etcd-manager: --backup-encryption-key-file: .*missing\.key: cannot read the backup encryption key file: ENOENT$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager hourly retention shorter than the keep-all band',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'all-backups-retention': '2h', 'hourly-backups-retention': '1h' }),
    exit: 2,
    message: /^etcd-manager: --hourly-backups-retention \(1h\) is shorter than --all-backups-retention \(2h\): the hourly band must not end before the keep-all band$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'ETCD_MANAGER_DAILY_BACKUPS_RETENTION=forever (kOps\' variable, not a duration)',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, {}, { ETCD_MANAGER_DAILY_BACKUPS_RETENTION: 'forever' }),
    exit: 2,
    message: /^etcd-manager: ETCD_MANAGER_DAILY_BACKUPS_RETENTION \(env\): "forever" is not a duration like 12h, 7d or 1y$/m,
    timeoutMs: 8_000,
  },
  {
    name: 'etcd-manager --trash-retention=1000y',
    program: 'etcd-manager',
    prepare: (w) => etcdManager(w, { 'trash-retention': '1000y' }),
    exit: 2,
    message: /^etcd-manager: --trash-retention: "1000y" is out of range: want 0s to 100y$/m,
    timeoutMs: 8_000,
  },
];
