// The local cloud's commands: `mooring local-cloud up|env|status|down`, the
// hidden daemons it starts (`_serve`, `_forward`, `_instance`), and the
// instance commands `get instances`, `ssh` and `delete instance` (registered
// by main.ts under `get`, at the top and under `delete`).
import { Command, Option } from 'commander';
import { ExitCode, UserError } from '../../../../shared/errors.js';
import { configureLogging, logger } from '../../../../shared/log.js';
import { isRunningAsSingleBinary } from '../../../../shared/single-binary.js';
import type { Cluster } from '../../../../shared/api/types.js';
import type { StateStore } from '../../../../shared/store/types.js';
import type { CliIO } from '../../io.js';
import type { NeedsSubcommands } from '../../subcommands.js';
import type * as Output from '../../output.js';
import type { InstanceView, LocalCloud } from './cloud.js';
import { CloudLayout, DEFAULT_CLOUD_DIR } from './plan.js';

/** Ends the command with this exit code and prints nothing more (`ssh` passes the command's code on). */
export class ExitWith extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

const DIR_HELP = 'the local cloud\'s folder (default $MOORING_LOCAL_CLOUD or /var/lib/mooring/local)';

// Everything below loads on demand: `mooring` commands that never touch the local cloud must not pay for it (s3rver, execa),
// and --help must not pay for the table module's YAML parser.
const output = (): Promise<typeof Output> => import('../../output.js');

async function cloudOf(io: CliIO, dir?: string): Promise<LocalCloud> {
  const { LocalCloud } = await import('./cloud.js');
  // Its event lines are for the daemons' logs; the operator reads the command's own output.
  if (!io.env.MOORING_LOG_LEVEL) configureLogging({ level: 'warn' });
  return new LocalCloud(dir ?? io.env.MOORING_LOCAL_CLOUD ?? DEFAULT_CLOUD_DIR, logger('local-cloud'));
}

/** The single binary: the daemons and the instances run this very executable. */
function selfBinary(): string {
  if (!isRunningAsSingleBinary()) {
    throw new UserError('the local cloud runs the built single binary (its daemons, and the agent its instances download): run dist/bin/mooring (make build)', ExitCode.Usage);
  }
  return process.execPath;
}

function exports(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `export ${k}=${v}\n`).join('');
}

function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export async function formatInstances(instances: InstanceView[]): Promise<string> {
  const { table } = await output();
  return table(
    ['ID', 'INSTANCE GROUP', 'ROLE', 'ZONE', 'ADDRESS', 'STATE', 'BOOTS', 'AGE'],
    instances.map((i) => [i.id, i.instanceGroup, i.role, i.zone, i.address, i.state, String(i.processes.boots), age(i.createdAt)]),
  );
}

export function localCloudCommand(io: CliIO, inherit: (c: Command) => Command, needs: NeedsSubcommands): Command {
  const group = inherit(new Command('local-cloud')).description(
    'the local cloud: instances booted with systemd-nspawn on this machine, with a state store (S3), metadata service and asset mirror of their own (see --cloud local)',
  ).addHelpText('after', `
Example (root; make image first):
  eval "$(mooring local-cloud up)"
  mooring create cluster dev.local --cloud local --zones local-a,local-b,local-c --control-plane-count 3 --node-count 0
  mooring update cluster dev.local --yes
  mooring validate cluster dev.local --wait 10m
  mooring get instances dev.local
  mooring delete cluster dev.local --yes && mooring local-cloud down --purge`);
  if (!needs('local-cloud')) return group;
  group.addCommand(
    inherit(new Command('up'))
      .description('start the local cloud (bridge namespace, S3 state store, metadata service, mirror) and print the environment that reaches its store')
      .option('--local-cloud <dir>', DIR_HELP)
      .option('--image <dir>', 'the cached Debian 12 rootfs instances boot (default $MOORING_IMAGE_DIR or /var/cache/mooring/debian12-rootfs; make image builds it)')
      .action(async (o: { localCloud?: string; image?: string }) => {
        const cloud = await cloudOf(io, o.localCloud);
        const record = await cloud.up({ binary: selfBinary(), imageDir: o.image ?? io.env.MOORING_IMAGE_DIR });
        io.err(`local cloud up in ${cloud.layout.dir}; its state store is s3://mooring. Use it with:\n`);
        io.out(exports(cloud.operatorEnv(record)));
      }),
  );
  group.addCommand(
    inherit(new Command('env'))
      .description('print the environment that reaches the running local cloud\'s state store (eval "$(mooring local-cloud env)")')
      .option('--local-cloud <dir>', DIR_HELP)
      .action(async (o: { localCloud?: string }) => {
        const cloud = await cloudOf(io, o.localCloud);
        io.out(exports(cloud.operatorEnv(await cloud.requireUp())));
      }),
  );
  group.addCommand(
    inherit(new Command('status'))
      .description('show the local cloud\'s daemons, clusters and instances')
      .option('--local-cloud <dir>', DIR_HELP)
      .action(async (o: { localCloud?: string }) => {
        const cloud = await cloudOf(io, o.localCloud);
        const record = await cloud.record();
        if (!record) throw new UserError(`no local cloud in ${cloud.layout.dir} (start one with: mooring local-cloud up)`, ExitCode.NotFound);
        const { isAlive } = await import('./procs.js');
        const { table } = await output();
        io.out(table(['DAEMON', 'PID', 'STATE'], [
          ['servers', String(record.servers?.pid ?? ''), isAlive(record.servers) ? 'running' : 'stopped'],
          ['forwarder', String(record.forwarder?.pid ?? ''), isAlive(record.forwarder) ? `running on 127.0.0.1:${record.s3Port}` : 'stopped'],
        ]));
        const instances = await cloud.instances();
        if (instances.length > 0) io.out('\n' + (await formatInstances(instances)));
      }),
  );
  group.addCommand(
    inherit(new Command('down'))
      .description('take the local cloud down: every cluster\'s instances, volumes and namespaces, the daemons and the bridge; --purge also deletes its folder (the state store\'s data)')
      .option('--local-cloud <dir>', DIR_HELP)
      .option('--purge', 'also delete the folder, with the S3 data', false)
      .action(async (o: { localCloud?: string; purge: boolean }) => {
        const cloud = await cloudOf(io, o.localCloud);
        const released = await cloud.down({ purge: o.purge });
        for (const r of released) io.out(`released ${r}\n`);
        io.out(`local cloud in ${cloud.layout.dir} is down${o.purge ? ' and its folder deleted' : ''}\n`);
      }),
  );
  // The daemons `up` and `update cluster --yes` start; not for people.
  group.addCommand(
    inherit(new Command('_serve'), )
      .requiredOption('--local-cloud <dir>')
      .action(async (o: { localCloud: string }) => (await import('./servers.js')).runServers(new CloudLayout(o.localCloud), logger('local-cloud-servers'))),
    { hidden: true },
  );
  group.addCommand(
    inherit(new Command('_forward'))
      .requiredOption('--local-cloud <dir>')
      .action(async (o: { localCloud: string }) => {
        const layout = new CloudLayout(o.localCloud);
        await (await import('./servers.js')).runForwarder(layout.s3Socket, 0, `${layout.runDir}/forwarder.port`, logger('local-cloud-forwarder'));
      }),
    { hidden: true },
  );
  group.addCommand(
    inherit(new Command('_instance'))
      .requiredOption('--local-cloud <dir>')
      .argument('<cluster>')
      .argument('<id>')
      .action(async (cluster: string, id: string, o: { localCloud: string }) => {
        const code = await (await import('./instance.js')).superviseInstance(new CloudLayout(o.localCloud), cluster, id, logger('local-cloud-instance'));
        if (code !== 0) throw new ExitWith(code);
      }),
    { hidden: true },
  );
  return group;
}

export function getInstancesCommand(io: CliIO, inherit: (c: Command) => Command): Command {
  return inherit(new Command('instances'))
    .description('list the instances of a cluster on the local cloud, with their state (pending, running, stopped)')
    .argument('<name>', 'cluster name')
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--local-cloud <dir>', DIR_HELP)
    .action(async (name: string, o: { output: string; localCloud?: string }) => {
      const format = (await output()).parseOutputFormat(o.output, 'table');
      const instances = await (await cloudOf(io, o.localCloud)).instances(name);
      if (format === 'table') {
        if (instances.length === 0) io.err(`no instances of cluster "${name}" in the local cloud\n`);
        else io.out(await formatInstances(instances));
        return;
      }
      const items = instances.map((i) => ({
        id: i.id, cluster: i.cluster, instanceGroup: i.instanceGroup, role: i.role, zone: i.zone, address: i.address,
        state: i.state, boots: i.processes.boots, createdAt: i.createdAt, netns: i.netns, pid: i.processes.leader?.pid,
      }));
      io.out(format === 'json' ? JSON.stringify({ items }, null, 2) + '\n' : (await import('yaml')).stringify({ items }));
    });
}

export function sshCommand(io: CliIO, inherit: (c: Command) => Command): Command {
  return inherit(new Command('ssh'))
    .description('run a shell, or a command, inside an instance of the local cloud (nsenter into all its namespaces); exits with the command\'s code')
    .argument('<name>', 'cluster name')
    .argument('<instance>', 'instance id (mooring get instances NAME)')
    .argument('[command...]', 'command and arguments (after --); default an interactive login shell')
    .option('--local-cloud <dir>', DIR_HELP)
    .action(async (name: string, instance: string, command: string[], o: { localCloud?: string }) => {
      const found = await (await cloudOf(io, o.localCloud)).instance(name, instance);
      const { isAlive } = await import('./procs.js');
      if (found.state !== 'running' || !found.processes.leader || !isAlive(found.processes.leader)) {
        throw new UserError(`instance "${instance}" is ${found.state}, not running`, ExitCode.Failure);
      }
      const argv = command.length > 0 ? command : ['/bin/bash', '-l'];
      const { spawnSync } = await import('node:child_process');
      const result = spawnSync('nsenter', ['-t', String(found.processes.leader.pid), '-a', '--', ...argv], { stdio: 'inherit', env: { ...io.env, TERM: io.env.TERM ?? 'xterm' } });
      if (result.error) throw new UserError(`nsenter: ${result.error.message}`, ExitCode.Failure);
      const code = result.status ?? 128 + 9;
      if (code !== 0) throw new ExitWith(code);
    });
}

export function deleteInstanceCommand(io: CliIO, inherit: (c: Command) => Command): Command {
  return inherit(new Command('instance'))
    .description('terminate one instance of the local cloud (its volumes stay, released for a replacement: "update cluster --yes" boots one)')
    .argument('<name>', 'cluster name')
    .argument('<instance>', 'instance id')
    .option('--yes', 'really terminate', false)
    .addOption(new Option('--force', 'kill it at once instead of a clean shutdown (what losing the machine looks like)').default(false))
    .option('--local-cloud <dir>', DIR_HELP)
    .action(async (name: string, instance: string, o: { yes: boolean; force: boolean; localCloud?: string }) => {
      const cloud = await cloudOf(io, o.localCloud);
      const found = await cloud.instance(name, instance);
      if (!o.yes) {
        io.out(`Will terminate instance ${found.id} (${found.instanceGroup}, ${found.address}, ${found.state}) of cluster "${name}".\n\nMust specify --yes to terminate: mooring delete instance ${name} ${instance} --yes\n`);
        return;
      }
      await cloud.terminate(name, instance, { force: o.force });
      io.out(`terminated instance ${instance} of cluster "${name}"\n`);
    });
}

export function getVolumesCommand(io: CliIO, inherit: (c: Command) => Command): Command {
  return inherit(new Command('volumes'))
    .description('list the etcd volumes of a cluster on the local cloud: tags, zone and the instance holding each')
    .argument('<name>', 'cluster name')
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--local-cloud <dir>', DIR_HELP)
    .action(async (name: string, o: { output: string; localCloud?: string }) => {
      const { parseOutputFormat, table } = await output();
      const format = parseOutputFormat(o.output, 'table');
      const volumes = await (await cloudOf(io, o.localCloud)).volumes(name);
      if (format !== 'table') {
        const items = volumes.map((v) => ({ id: v.id, availabilityZone: v.availabilityZone, tags: v.tags, holder: v.claim?.holder }));
        io.out(format === 'json' ? JSON.stringify({ items }, null, 2) + '\n' : (await import('yaml')).stringify({ items }));
        return;
      }
      if (volumes.length === 0) io.err(`no volumes of cluster "${name}" in the local cloud\n`);
      else io.out(table(['ID', 'ZONE', 'ETCD MEMBER', 'HELD BY'], volumes.map((v) => [
        v.id, v.availabilityZone ?? '', Object.entries(v.tags).filter(([k]) => k.startsWith('k8s.io/etcd/')).map(([k, val]) => `${k.slice('k8s.io/etcd/'.length)}: ${val}`).join(' '), v.claim?.holder ?? '',
      ])));
    });
}

function parseWait(value: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(value);
  const ms = m ? Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']) : NaN;
  if (!Number.isFinite(ms) || ms > 24 * 3_600_000) throw new UserError(`--wait: "${value}" is not a duration like 90s or 5m (at most 24h)`, ExitCode.Usage);
  return ms;
}

export function validateCommand(io: CliIO, inherit: (c: Command) => Command, store: () => StateStore, needs: NeedsSubcommands): Command {
  const validate = inherit(new Command('validate')).description('check that a cluster\'s instances are up and working');
  if (!needs('validate')) return validate;
  validate.addCommand(
    inherit(new Command('cluster'))
      .description('local cloud: every instance booted, its user-data and nodeup done, etcd-manager running, and etcd main and events with all their members healthy (checked inside the instances with etcdctl over TLS); prints each instance\'s progress as it changes')
      .argument('<name>', 'cluster name')
      .option('--wait <duration>', 'keep checking until the cluster is ready or this long has passed (e.g. 5m)', '0s')
      .option('--local-cloud <dir>', DIR_HELP)
      .action(async (name: string, o: { wait: string; localCloud?: string }) => {
        const waitMs = parseWait(o.wait);
        const { ClusterRepository } = await import('../../cluster-repository.js');
        const { parseObjects } = await import('../../../../shared/api/parse.js');
        const { StorePaths } = await import('../../../../shared/api/types.js');
        const cs = new ClusterRepository(store()).clusterStore(name);
        const text = await cs.readIfExists(StorePaths.completedSpec);
        if (text === undefined) throw new UserError(`no completed spec for cluster "${name}" in ${cs.baseURL}: run "mooring update cluster ${name} --yes" first`, ExitCode.NotFound);
        const cluster = parseObjects(text.toString('utf8'), cs.urlOf(StorePaths.completedSpec)).find((p) => p.object.kind === 'Cluster')?.object as Cluster | undefined;
        if (!cluster) throw new UserError(`${cs.urlOf(StorePaths.completedSpec)}: no Cluster object`, ExitCode.InvalidSpec);
        const { validateCluster } = await import('./validate.js');
        const result = await validateCluster(await cloudOf(io, o.localCloud), cluster, { waitMs, say: (line) => io.out(`${line}\n`) });
        if (result.ok) {
          io.out(`Cluster "${name}" is ready: ${result.instances.length} instances, etcd ${Object.keys(result.instances[0]?.etcd ?? {}).join(' and ')} healthy with all members.\n`);
          return;
        }
        throw new UserError(`cluster "${name}" is not ready${waitMs > 0 ? ` after ${o.wait}` : ''} (see the lines above)`, ExitCode.Failure);
      }),
  );
  return validate;
}
