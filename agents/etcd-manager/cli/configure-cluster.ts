// `etcd-manager configure-cluster --member-count N --etcd-version V`: sets the
// cluster's wanted shape, control/etcd-cluster-spec, in kOps' form (jsonpb, as
// kOps' etcd-manager-ctl writes it). Desired (the flags over the current
// spec) is diffed against actual and shown; only --yes writes it, with a
// compare-and-swap against what was read, so a spec changed meanwhile (by
// `mooring update cluster`, say) is never overwritten blind.
import { ExitCode, UserError } from '../../../shared/errors.js';
import { CLUSTER_SPEC_PATH, formatClusterSpec, parseClusterSpec, ControlFileError, type EtcdClusterSpec } from '../control/cluster-spec.js';
import { ringDoorbell } from '../control/requests.js';
import { decideTransition, describeTransition } from '../versions/transition.js';
import { VersionError } from '../versions/version.js';
import { flagBool, flagString, openStores, outputFormat, usage } from './context.js';
import { json } from './output.js';
import type { CommandContext, SubcommandModule } from './types.js';

export const MAX_MEMBERS = 7;

interface Change {
  field: keyof EtcdClusterSpec;
  from: string | number | null;
  to: string | number;
}

function memberCountFlag(ctx: CommandContext): number | undefined {
  const raw = flagString(ctx, 'member-count');
  if (raw === '') return undefined;
  const n = Number(raw); // parseFlags made sure it is digits
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_MEMBERS) throw usage(`--member-count ${raw}: want 1 to ${MAX_MEMBERS} (members of the etcd cluster)`);
  return n;
}

function etcdVersionFlag(ctx: CommandContext): string | undefined {
  const raw = flagString(ctx, 'etcd-version');
  if (raw === '' && !ctx.flags.sources.has('etcd-version')) return undefined;
  if (!/^3\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,3})$/.test(raw)) throw usage(`--etcd-version ${JSON.stringify(raw)}: want a full etcd 3 version like 3.4.23`);
  return raw;
}

async function run(ctx: CommandContext): Promise<number> {
  const format = outputFormat(ctx);
  const memberCount = memberCountFlag(ctx);
  const etcdVersion = etcdVersionFlag(ctx);
  if (memberCount === undefined && etcdVersion === undefined) throw usage('configure-cluster: give --member-count, --etcd-version or both');
  const yes = flagBool(ctx, 'yes');
  const { backups: store } = await openStores(ctx);
  const { io } = ctx.deps;
  const url = store.urlOf(CLUSTER_SPEC_PATH);

  const current = await store.readVersioned(CLUSTER_SPEC_PATH);
  let actual: EtcdClusterSpec | undefined;
  let unreadable: string | undefined;
  if (current) {
    try {
      actual = parseClusterSpec(current.data.toString('utf8'), url);
    } catch (err) {
      if (!(err instanceof ControlFileError)) throw err;
      unreadable = err.message;
    }
  }
  const base = actual;
  if ((memberCount === undefined || etcdVersion === undefined) && !base) {
    const missing = memberCount === undefined ? '--member-count' : '--etcd-version';
    throw usage(`configure-cluster: ${current ? `${url} cannot be read (${unreadable})` : `there is no ${url} yet`}, so ${missing} is needed too`);
  }
  const desired: EtcdClusterSpec = { memberCount: memberCount ?? base!.memberCount, etcdVersion: etcdVersion ?? base!.etcdVersion };
  const changes: Change[] = (['memberCount', 'etcdVersion'] as const)
    .filter((f) => !actual || actual[f] !== desired[f])
    .map((f) => ({ field: f, from: actual ? actual[f] : null, to: desired[f] }));
  const content = formatClusterSpec(desired);
  const upToDate = changes.length === 0 && current !== undefined && actual !== undefined;

  let written = false;
  if (yes && !upToDate) {
    const version = current
      ? await store.replaceIfVersion(CLUSTER_SPEC_PATH, content, current.version)
      : await store.createIfAbsent(CLUSTER_SPEC_PATH, content);
    if (version === undefined) throw new UserError(`${url} changed while this ran (another writer): nothing written; run configure-cluster again`, ExitCode.Failure);
    written = true;
    await ringDoorbell(store, 'cluster-spec', ctx.deps.now());
  }

  if (format === 'json') {
    io.out(json({ path: url, current: actual ?? null, ...(unreadable ? { currentError: unreadable } : {}), desired, changes, content, written, upToDate }));
    return 0;
  }
  if (upToDate) {
    io.out(`${url} already says ${desired.memberCount} member${desired.memberCount === 1 ? '' : 's'}, etcd ${desired.etcdVersion}: nothing to change\n`);
    return 0;
  }
  const versionChange = changes.find((c) => c.field === 'etcdVersion');
  const lines = [
    `${url}${current ? '' : ' (new)'}:`,
    ...(unreadable ? [`  the current file cannot be read and is replaced: ${unreadable}`] : []),
    ...(['memberCount', 'etcdVersion'] as const).map((f) => {
      const change = changes.find((c) => c.field === f);
      return change ? `  ${f}: ${change.from ?? '(none)'} -> ${change.to}` : `  ${f}: ${desired[f]} (unchanged)`;
    }),
    ...(versionChange && typeof versionChange.from === 'string' ? [`  how: ${howVersionChanges(versionChange.from, String(versionChange.to))}`] : []),
    'new content:',
    ...content.split('\n').map((l) => `  ${l}`),
  ];
  io.out(lines.join('\n') + '\n');
  io.err(written ? `written; the leader applies it at its next pass\n` : `not written: run again with --yes to write it\n`);
  return 0;
}

/** How the acting manager will carry a version change out (versions/transition.ts), for the operator before --yes. */
function howVersionChanges(from: string, to: string): string {
  try {
    const t = decideTransition(from, to);
    if (t.kind === 'restore' || t.kind === 'migrate-v2') return `${describeTransition(t)}; a new cluster, writes after the backup are not in it`;
    return describeTransition(t);
  } catch (err) {
    if (err instanceof VersionError) return `refused by the manager: ${err.message}`;
    throw err;
  }
}

export const command: SubcommandModule = {
  args: [],
  flags: ['backup-store', 'store-timeout', 'env-file', 'output', 'member-count', 'etcd-version', 'yes'],
  description: `
Sets the shape the managers give the etcd cluster: control/etcd-cluster-spec
in --backup-store, {"memberCount": N, "etcdVersion": "V"} in kOps' form (what
kOps' etcd-manager-ctl configure-cluster writes, and what \`mooring update
cluster\` writes from the Cluster spec). A flag left out keeps the current
value; with no spec yet both are needed. --member-count is 1 to 7,
--etcd-version a full etcd 3 version (3.4.23). Bad values exit 2 with nothing
read or written.

Without --yes it only shows the change (each field, old -> new, and the new
file) and writes nothing. With --yes it writes the file, only if it still
holds what was read (compare-and-swap; exit 1 if another writer changed it
meanwhile), and rings the doorbell. An unchanged spec is not rewritten. A
current file that cannot be parsed is shown as such and replaced.

A new --etcd-version is carried out by the acting manager: in place for a
patch release or the next 3.x minor (a backup first, then one member at a
time); a downgrade or a skipped minor by a backup, then a restore of it into
the new version (a new cluster with the same members; writes made between the
backup and the restore's stop are left out of it, and kept in the restore's
own pre-restore backup); etcd 2.x to 3.x the same way, with the etcd2 backup
first migrated into a backup of the new version (every key under its path, TTLs
kept as leases, verified) off the live cluster. The line "how:" says which. get
shows where a change stands, why it waits, or why the manager refused it.

-o json prints {"path", "current" ({"memberCount", "etcdVersion"} or null),
"currentError", "desired", "changes": [{"field", "from", "to"}], "content",
"written", "upToDate"}.`,
  run,
};
