// The two offline snapshot tools of etcd 3.4's etcdctl (3.5 moved them to
// etcdutl, 3.6 dropped them from etcdctl; `tool` says which binary and flavour).
// They run with ETCDCTL_API=3 and none of our own ETCD*/ETCDCTL* variables, so
// a stray variable cannot redirect them.
import { execa } from 'execa';

export interface SnapshotTool {
  /** Path of etcdctl (3.4) or etcdutl (3.5+). */
  binary: string;
  kind: 'etcdctl' | 'etcdutl';
}

export const SYSTEM_ETCDCTL: SnapshotTool = { binary: '/usr/bin/etcdctl', kind: 'etcdctl' };

export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

export interface RestoreTarget {
  /** Must not exist: the tool creates it. */
  dataDir: string;
  memberName: string;
  /** This member's peer URLs (ETCD_INITIAL_ADVERTISE_PEER_URLS). */
  peerURLs: string[];
  /** Every member → its peer URLs, this one included. */
  initialCluster: Record<string, string[]>;
  /** A NEW token: the restored cluster is a new cluster, which old members must not join. */
  clusterToken: string;
}

export class SnapshotToolError extends Error {}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ETCD')) env[k] = v;
  env.ETCDCTL_API = '3';
  return env;
}

async function run(tool: SnapshotTool, args: string[], timeoutMs: number): Promise<string> {
  const result = await execa(tool.binary, args, { env: cleanEnv(), extendEnv: false, reject: false, stdin: 'ignore', timeout: timeoutMs, all: true });
  if (result.exitCode !== 0 || result.failed) {
    const output = String(result.all ?? '').trim().split('\n').filter((l) => l.trim() !== '');
    const why = result.timedOut ? `timed out after ${Math.round(timeoutMs / 1000)} s` : result.exitCode !== undefined ? `exit ${result.exitCode}` : String(result.signal ?? result.shortMessage);
    throw new SnapshotToolError(`${tool.binary} ${args.slice(0, 2).join(' ')}: ${why}${output.length ? `: ${output.at(-1)}` : ''}`);
  }
  return String(result.stdout);
}

/** `snapshot status -w json`: opens the database read-only and hashes every bucket (a corrupt db fails here). */
export async function snapshotStatus(tool: SnapshotTool, file: string, timeoutMs = 10 * 60_000): Promise<SnapshotStatus> {
  const out = await run(tool, ['snapshot', 'status', file, '-w', 'json'], timeoutMs);
  let doc: unknown;
  try {
    doc = JSON.parse(out);
  } catch {
    throw new SnapshotToolError(`${tool.binary} snapshot status ${file}: unreadable output ${JSON.stringify(out.slice(0, 200))}`);
  }
  const d = doc as Record<string, unknown>;
  for (const k of ['hash', 'revision', 'totalKey', 'totalSize']) {
    if (typeof d[k] !== 'number') throw new SnapshotToolError(`${tool.binary} snapshot status ${file}: no ${k} in ${JSON.stringify(out.slice(0, 200))}`);
  }
  return { hash: d.hash as number, revision: d.revision as number, totalKey: d.totalKey as number, totalSize: d.totalSize as number };
}

/**
 * `snapshot restore` into a data dir that must not exist. etcdctl checks etcd's
 * trailing hash by reading the whole file again, unless `trailingHashChecked`:
 * the caller hashed these very bytes as it wrote them (readBackup), and a
 * read right after that write comes from the page cache, so the second pass
 * (2.9 s of CPU per 1.2 GB here) could only find what the first already ruled out.
 */
export async function snapshotRestore(tool: SnapshotTool, file: string, target: RestoreTarget, options: { trailingHashChecked?: boolean; timeoutMs?: number } = {}): Promise<void> {
  const initialCluster = Object.entries(target.initialCluster)
    .flatMap(([name, urls]) => urls.map((u) => `${name}=${u}`))
    .join(',');
  await run(
    tool,
    [
      'snapshot', 'restore', file,
      `--data-dir=${target.dataDir}`,
      `--name=${target.memberName}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${target.clusterToken}`,
      `--initial-advertise-peer-urls=${target.peerURLs.join(',')}`,
      ...(options.trailingHashChecked ? ['--skip-hash-check'] : []),
    ],
    options.timeoutMs ?? 60 * 60_000,
  );
}
