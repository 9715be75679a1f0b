// `mooring`: the minimal provisioning CLI. It keeps the user's Cluster and
// InstanceGroup objects in the state store and, on `update cluster`, derives
// what instances boot from.
import { Command, CommanderError, Option } from 'commander';
import type * as StoreModule from '../../shared/store/index.js';
import { StoreError, type StateStore } from '../../shared/store/types.js';
import { storeTimeoutMs } from '../../shared/store/timeout.js';
import { ExitCode, UserError } from '../../shared/errors.js';
import { MAX_SPEC_SIZE_TEXT } from '../../shared/api/limits.js';
import { VERSION } from '../../shared/version.js';
import type * as Commands from './commands.js';
import { deleteInstanceCommand, ExitWith, getInstancesCommand, getVolumesCommand, localCloudCommand, sshCommand, validateCommand } from './cloud/local/cli.js';
import { commanderOutput, processIO, type CliIO } from './io.js';
import { subcommandsNamedIn } from './subcommands.js';
import { ALLOW_UNSERIALIZED_HELP, DEFAULT_LOCK_TIMEOUT, LOCK_TIMEOUT_HELP, lockSettings, type WriterLockFlags } from './writer-lock-flags.js';

const STORE_HELP = 'state store URL: file:///dir, s3://bucket/prefix or memfs://name (default $MOORING_STATE_STORE)';
const STRICT_HELP = 'refuse fields that kOps (v1alpha2) and Mooring do not know, instead of warning and keeping them';

export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const program = buildProgram(io, argv);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.OK;
  } catch (err) {
    return reportError(err, io);
  }
}

function reportError(err: unknown, io: CliIO): number {
  if (err instanceof ExitWith) return err.exitCode;
  if (err instanceof CommanderError) {
    // Commander already printed its message (or the help/version text).
    return err.exitCode === 0 ? ExitCode.OK : ExitCode.Usage;
  }
  if (err instanceof UserError) {
    io.err(`error: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof StoreError) {
    io.err(`error: ${err.message}\n`);
    return storeExitCode(err);
  }
  io.err(`error: ${(err as Error)?.message ?? String(err)}\n`);
  if (io.env.MOORING_DEBUG) io.err(`${(err as Error)?.stack ?? ''}\n`);
  return ExitCode.Failure;
}

function storeExitCode(err: StoreError): number {
  switch (err.kind) {
    case 'NotFound':
      return ExitCode.NotFound;
    case 'InvalidURL':
      return ExitCode.Usage;
    case 'AccessDenied':
    case 'Unreachable':
      return ExitCode.StoreUnavailable;
    default:
      return ExitCode.Failure;
  }
}

/** The options every writing command takes: how long to wait for the cluster lock, and the unsafe-store escape. */
function withLockOptions(command: Command): Command {
  return command
    .option('--lock-timeout <duration>', LOCK_TIMEOUT_HELP, DEFAULT_LOCK_TIMEOUT)
    .option('--allow-unserialized-writes', ALLOW_UNSERIALIZED_HELP, false);
}

function buildProgram(io: CliIO, argv: string[]): Command {
  // Recorded in the cluster lock, so that whoever finds it held knows what holds it.
  const commandLine = ['mooring', ...argv].join(' ').slice(0, 300);
  const locking = (o: WriterLockFlags) => lockSettings(o, commandLine);
  const program = new Command('mooring')
    .description('Keep a kOps-style cluster spec in a state store and render what its instances boot from.')
    .version(VERSION, '--version', 'print the version')
    .option('--state <url>', STORE_HELP)
    .option('--store-timeout <seconds>', 'a state store request that gets no byte for this long fails, so an endpoint that never answers costs seconds, not minutes; 1 to 600 (default $MOORING_STORE_TIMEOUT, else 30)')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput(commanderOutput(io))
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 failure, 2 bad usage, 3 invalid spec, 4 not found, 5 state store unreachable or access denied, 6 already exists,
7 the cluster is locked by another writer (nothing was written), 130 interrupted (Ctrl-C, SIGTERM).

Commands that write a cluster (create, replace, update cluster --yes, delete cluster --yes) hold its lock
(<cluster>/mooring.lock in the state store) while they run; another writer waits up to --lock-timeout.
On a store whose server ignores conditional writes they refuse to write unless --allow-unserialized-writes.

Example:
  export MOORING_STATE_STORE=file:///var/lib/mooring/state
  mooring create cluster demo.example.com --cloud local --zones local-a --control-plane-count 1 --node-count 1
  mooring update cluster demo.example.com --yes
  mooring get userdata demo.example.com --instance-group control-plane-local-a`,
    );

  // The commands and the store backends (YAML, PKI, crypto, streams) load when a
  // command is about to run, not for --help, --version or a usage error.
  let cmd!: typeof Commands;
  let stores!: typeof StoreModule;
  program.hook('preAction', async () => {
    [cmd, stores] = await Promise.all([import('./commands.js'), import('../../shared/store/index.js')]);
  });
  const store = (): StateStore => {
    const opts = program.opts<{ state?: string; storeTimeout?: string }>();
    const timeoutMs = storeTimeoutMs(opts.storeTimeout, io.env);
    return stores.openStore(stores.storeURLFromEnv(opts.state, io.env), { env: io.env, timeoutMs });
  };
  const inherit = (c: Command) => c.exitOverride().configureOutput(commanderOutput(io));
  const needs = subcommandsNamedIn(argv);

  // create (a group's subcommands are built only when it is named: subcommands.ts)
  // The lock flags belong to `create` (commander hands a parent's flags to the parent wherever they
  // appear), and `create cluster` reads them from there and shows them as global options in its help.
  const create = withLockOptions(inherit(new Command('create'))
    .description('create a cluster, or create the objects in a file (create -f FILE)')
    .option('-f, --filename <file>', `YAML or JSON file of Cluster and InstanceGroup objects ("-" for stdin; at most ${MAX_SPEC_SIZE_TEXT})`)
    .option('--strict', STRICT_HELP, false))
    .action(async (o: { filename?: string; strict: boolean } & WriterLockFlags, c: Command) => {
      if (!o.filename) {
        c.help({ error: true });
      }
      await cmd.createFromFile(store(), io, o.filename as string, locking(o), { strict: o.strict });
    });
  if (needs('create')) create.addCommand(
    inherit(new Command('cluster'))
      .configureHelp({ showGlobalOptions: true })
      .description('write a new cluster spec (Cluster + InstanceGroups) to the state store; nothing else is created until "update cluster --yes"')
      .argument('<name>', 'cluster name, a DNS name such as demo.example.com')
      .option('--zones <zones>', 'comma-separated zones, e.g. us-east-1a,us-east-1b (cloud local: default local-a)')
      .option('--control-plane-count <n>', 'number of control-plane instances (1-7)', '1')
      .option('--node-count <n>', 'number of worker nodes (0-5000)', '2')
      .addOption(new Option('--cloud <cloud>', 'cloud provider').choices(['aws', 'local']).default('aws'))
      .option('--kubernetes-version <version>', 'Kubernetes version (default: the completion default)')
      .action(async (name: string, o: Commands.CreateClusterOptions) => cmd.createCluster(store(), io, name, o, locking(create.opts<WriterLockFlags>()))),
  );
  program.addCommand(create);

  program.addCommand(
    withLockOptions(inherit(new Command('replace'))
      .description('replace existing objects with the ones in a file (the whole spec is validated first)')
      .requiredOption('-f, --filename <file>', `YAML or JSON file of Cluster and InstanceGroup objects ("-" for stdin; at most ${MAX_SPEC_SIZE_TEXT})`)
      .option('--force', 'create objects that do not exist yet', false)
      .option('--strict', STRICT_HELP, false))
      .action(async (o: { filename: string; force: boolean; strict: boolean } & WriterLockFlags) => cmd.replaceFromFile(store(), io, o.filename, o.force, locking(o), { strict: o.strict })),
  );

  // get
  const get = inherit(new Command('get')).description('show clusters, instance groups and rendered user-data');
  if (needs('get')) {
    get.addCommand(
      inherit(new Command('clusters'))
        .description('list the clusters in the state store')
        .option('-o, --output <format>', 'table, yaml or json', 'table')
        .action(async (o: { output: string }) => cmd.getClusters(store(), io, o.output)),
    );
    get.addCommand(
      inherit(new Command('cluster'))
        .description("show one cluster's spec as the user wrote it (not the completed spec)")
        .argument('<name>', 'cluster name')
        .option('-o, --output <format>', 'table, yaml or json', 'table')
        .action(async (name: string, o: { output: string }) => cmd.getCluster(store(), io, name, o.output, false)),
    );
    get.addCommand(
      inherit(new Command('all'))
        .description('show a cluster and all its instance groups (-o yaml output can be fed to replace -f)')
        .argument('<name>', 'cluster name')
        .option('-o, --output <format>', 'table, yaml or json', 'table')
        .action(async (name: string, o: { output: string }) => cmd.getCluster(store(), io, name, o.output, true)),
    );
    get.addCommand(
      inherit(new Command('instancegroups'))
        .alias('ig')
        .alias('instancegroup')
        .description("list a cluster's instance groups")
        .argument('<name>', 'cluster name')
        .option('-o, --output <format>', 'table, yaml or json', 'table')
        .action(async (name: string, o: { output: string }) => cmd.getInstanceGroups(store(), io, name, o.output)),
    );
    get.addCommand(
      inherit(new Command('userdata'))
        .description('print the user-data rendered for an instance group by "update cluster --yes"')
        .argument('<name>', 'cluster name')
        .requiredOption('--instance-group <ig>', 'instance group name')
        .action(async (name: string, o: { instanceGroup: string }) => cmd.getUserData(store(), io, name, o.instanceGroup)),
    );
    get.addCommand(
      inherit(new Command('bootconfig'))
        .description("print the boot config an instance group's user-data carries (derived from its stored node config)")
        .argument('<name>', 'cluster name')
        .requiredOption('--instance-group <ig>', 'instance group name')
        .action(async (name: string, o: { instanceGroup: string }) => cmd.getBootConfig(store(), io, name, o.instanceGroup)),
    );
    get.addCommand(getInstancesCommand(io, inherit));
    get.addCommand(getVolumesCommand(io, inherit));
  }
  program.addCommand(get);

  // update
  const update = inherit(new Command('update')).description('bring the state store in line with the spec');
  if (needs('update')) update.addCommand(
    withLockOptions(inherit(new Command('cluster'))
      .description(
        'complete the spec and write the completed spec, PKI, per-group node configs, etcd control specs and user-data; ' +
          'without --yes it only prints what would change and writes nothing (and takes no lock)',
      )
      .argument('<name>', 'cluster name')
      .option('--yes', 'apply the changes', false)
      .option('--agent-url <url...>', 'mirror URL(s) instances download the agent binary from (default $MOORING_AGENT_URLS, comma-separated; or this binary); http(s):// for a cloud (aws) cluster')
      .option('--agent-sha256 <hex>', 'sha256 of the agent binary (default $MOORING_AGENT_SHA256; or the hash of this binary)'))
      .action(async (name: string, o: { yes: boolean; agentUrl?: string[]; agentSha256?: string } & WriterLockFlags) =>
        cmd.runUpdateCluster(store(), io, name, { yes: o.yes, agentURL: o.agentUrl, agentSHA256: o.agentSha256 }, locking(o)),
      ),
  );
  program.addCommand(update);

  // delete
  const del = inherit(new Command('delete')).description('delete a cluster from the state store');
  if (needs('delete')) {
    del.addCommand(
      withLockOptions(inherit(new Command('cluster'))
        .description("delete the cluster's objects of the kOps layout; without --yes it lists them. etcd backups are kept unless --include-backups")
        .argument('<name>', 'cluster name')
        .option('--yes', 'really delete', false)
        .option('--include-backups', 'also delete backups/ (etcd backups and control files)', false))
        .action(async (name: string, o: { yes: boolean; includeBackups: boolean } & WriterLockFlags) => cmd.deleteCluster(store(), io, name, o, locking(o))),
    );
    del.addCommand(deleteInstanceCommand(io, inherit));
  }
  program.addCommand(del);
  program.addCommand(sshCommand(io, inherit));
  program.addCommand(validateCommand(io, inherit, store, needs));
  program.addCommand(localCloudCommand(io, inherit, needs));

  return program;
}

