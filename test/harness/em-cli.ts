// For tests of etcd-manager's operator commands: backups made by the library
// from synthetic snapshots (a database of whole pages followed by its sha256,
// as etcd streams one), backups in kOps' exact layout (gzip of the snapshot
// and kOps' meta bytes, no sidecar), and the commands run in-process with an
// injected clock, output and leader status.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { takeBackup, type TakenBackup } from '../../agents/etcd-manager/backup/take.js';
import type { BackupKey } from '../../agents/etcd-manager/backup/encryption.js';
import type { SnapshotSource } from '../../agents/etcd-manager/backup/snapshot-stream.js';
import type { CommandDeps } from '../../agents/etcd-manager/cli/types.js';
import type { LeaderStatusView } from '../../agents/etcd-manager/cli/leader-status.js';
import { main } from '../../agents/etcd-manager/main.js';
import type { StateStore } from '../../shared/store/types.js';

/** A database of `pages` random 4 KiB pages followed by its sha256: what etcd's snapshot stream sends. */
export function syntheticSnapshot(pages: number): Buffer {
  const db = randomBytes(pages * 4096);
  return Buffer.concat([db, createHash('sha256').update(db).digest()]);
}

export function syntheticSource(snapshot: Buffer, revision = '42'): SnapshotSource {
  return {
    async open() {
      const chunks: Buffer[] = [];
      for (let i = 0; i < snapshot.length; i += 16 * 1024) chunks.push(snapshot.subarray(i, i + 16 * 1024));
      return { origin: { clusterId: '11', memberId: '22', endpoint: 'https://127.0.0.1:4001', revision, version: '3.4.23' }, data: Readable.from(chunks) };
    },
  };
}

/** A backup written by the library (data, sidecar, meta), as our managers write them. */
export async function makeBackup(store: StateStore, name: string, options: { pages?: number; key?: BackupKey; reason?: string; memberCount?: number } = {}): Promise<TakenBackup> {
  return takeBackup({
    store, name, snapshot: syntheticSource(syntheticSnapshot(options.pages ?? 4)), key: options.key, reason: options.reason,
    clusterSpec: { memberCount: options.memberCount ?? 3, etcdVersion: '3.4.23' },
  });
}

/** kOps' AddBackup: gzip of the snapshot, then jsonpb of BackupInfo (Indent "  ", int64 as a string, no trailing newline). */
export async function makeKopsBackup(store: StateStore, name: string, snapshot: Buffer): Promise<void> {
  await store.write(`${name}/etcd.backup.gz`, gzipSync(snapshot));
  await store.write(`${name}/_etcd_backup.meta`, '{\n  "etcdVersion": "3.4.23",\n  "timestamp": "1796026500",\n  "clusterSpec": {\n    "memberCount": 1,\n    "etcdVersion": "3.4.23"\n  }\n}');
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliHarness {
  run(args: string[]): Promise<CliRun>;
  /** The injected clock (ms); sleep() advances it. */
  now(): number;
  advance(ms: number): void;
  /** Called at every sleep of a command (a fake leader's step). */
  onSleep?: () => Promise<void> | void;
  /** What readLeaderStatus returns. */
  status?: LeaderStatusView;
  /** Whether /usr/bin/etcdctl "exists" (default: no, so synthetic databases are not opened). */
  etcdctl: boolean;
  /** Ctrl-C at the n-th sleep (counting from 1). */
  interruptAtSleep?: number;
  errIsTTY: boolean;
}

/** Runs `etcd-manager <args>` in-process; a fresh abort signal per run. */
export function cliHarness(start = Date.parse('2026-11-30T12:00:00Z')): CliHarness {
  let clock = start;
  let draws = 0;
  const h: CliHarness = {
    etcdctl: false,
    errIsTTY: false,
    now: () => clock,
    advance: (ms) => void (clock += ms),
    async run(args) {
      let stdout = '';
      let stderr = '';
      const abort = new AbortController();
      let sleeps = 0;
      const deps: CommandDeps = {
        io: { out: (s) => void (stdout += s), err: (s) => void (stderr += s), errIsTTY: h.errIsTTY },
        env: {},
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
          sleeps++;
          if (h.interruptAtSleep === sleeps) abort.abort();
          await h.onSleep?.();
        },
        randomInt: (below) => draws++ % below,
        interrupted: abort.signal,
        readLeaderStatus: async () => h.status,
        requestedBy: 'ops@test-host',
        fileExists: (path) => (path === '/usr/bin/etcdctl' ? h.etcdctl : existsSync(path)),
      };
      const code = await main(args, deps);
      return { code, stdout, stderr };
    },
  };
  return h;
}
