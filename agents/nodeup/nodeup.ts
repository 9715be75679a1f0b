// One nodeup run: inputs → host detection → model → engine → report.
import { resolve } from 'node:path';
import { UserError } from '../../shared/errors.js';
import { configureLogging, logger } from '../../shared/log.js';
import { readEmbeddedText } from '../../bootstrap/embedded-text.js';
import { detectHost, type Arch, type HostInfo } from './host/os-release.js';
import { NodeRoot } from './host/fs.js';
import { NODE_CREDENTIAL_NAMES } from '../../shared/pki/node-credentials.js';
import { loadCACertificates, loadInputs, readBootConfig, refusingCASource, storeCASource, storeKeypairSource, type NodeInputs, type StoreOpener } from './inputs.js';
import { buildTasks } from './model/index.js';
import { openStore } from '../../shared/store/index.js';
import { formatFailures, formatPlan, progressLine, reportJSON, summaryLine } from './engine/report.js';
import { runTasks, type RunReport } from './engine/run.js';
import { DEFAULT_RETRY } from './engine/retry.js';
import type { Task } from './engine/task.js';
import { ServiceTask } from './tasks/service.js';

export interface NodeupOptions {
  conf: string;
  root: string;
  dryRun: boolean;
  output: 'text' | 'json';
  installSystemdUnit: boolean;
  /** Node path of the asset cache (resolved under root). */
  cache: string;
  /** Whose release files to install (default: this machine's CPU). */
  arch?: Arch;
  retries: number;
  retryBaseMs?: number;
  concurrency?: number;
  timeoutMs?: number;
  /** A state-store request that gets no byte for this long fails (default 30 s). */
  storeTimeoutMs?: number;
  /** A download that gets no byte for this long moves on to the next mirror (default 30 s). */
  assetStallTimeoutMs?: number;
  /** Opens the boot config's state store (default: openStore); a test hook. */
  openStore?: StoreOpener;
}

export interface NodeupIO {
  out(text: string): void;
  err(text: string): void;
}

export { DEFAULT_CACHE } from './defaults.js';

export interface PreparedRun {
  tasks: Task[];
  host: HostInfo;
}

/** Reads every input and builds the task list; no side effect. */
export async function prepare(options: NodeupOptions): Promise<PreparedRun> {
  const boot = await readBootConfig(options.conf);
  const inputs = await loadInputs(boot, options.openStore ?? ((url) => openStore(url, { timeoutMs: options.storeTimeoutMs })));
  const fs = new NodeRoot(options.root);
  const host = await detectHost(fs, options.arch);
  const tasks = options.installSystemdUnit
    ? [new ServiceTask({ name: 'mooring-nodeup.service', unit: readEmbeddedText('systemd/mooring-nodeup.service'), noBlock: true })]
    : await modelTasks(inputs, host);
  // A root whose links lead out of it is refused as a whole, before any task reads or writes through them.
  await fs.check([`${options.cache}/`, ...tasks.flatMap((task) => task.paths ?? [])]);
  return { tasks, host };
}

async function modelTasks(inputs: NodeInputs, host: HostInfo): Promise<Task[]> {
  const nc = inputs.nodeConfig;
  // CA certificates come from the public copies; only the control plane may read a CA's private key.
  const caCerts = await loadCACertificates(inputs.store, Object.keys(nc.keypairIDs).filter((name) => !NODE_CREDENTIAL_NAMES.includes(name)));
  const controlPlane = nc.instanceGroupRole === 'ControlPlane' || nc.instanceGroupRole === 'Master';
  const ca = controlPlane ? storeCASource(inputs.store) : refusingCASource(nc.instanceGroupRole);
  const keypairs = storeKeypairSource(inputs.store, nc.keypairIDs);
  const serviceAccount = controlPlane ? await ca('service-account') : undefined;
  return buildTasks({ ...inputs, host, ca, keypairs, caCerts, ...(serviceAccount ? { serviceAccount } : {}) });
}

export async function runNodeup(options: NodeupOptions, io: NodeupIO): Promise<{ code: number; report?: RunReport }> {
  const root = resolve(options.root);
  configureLogging({ write: (line) => io.err(line + '\n') });
  const log = logger('nodeup');
  const { tasks, host } = await prepare({ ...options, root });
  const report = await runTasks(tasks, {
    root,
    dryRun: options.dryRun,
    host,
    cache: options.cache,
    log,
    retry: { ...DEFAULT_RETRY, retries: options.retries, ...(options.retryBaseMs !== undefined ? { baseDelayMs: options.retryBaseMs } : {}) },
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.assetStallTimeoutMs !== undefined ? { assetStallTimeoutMs: options.assetStallTimeoutMs } : {}),
    progress: options.dryRun ? undefined : (r, done, total) => io.err(`nodeup: ${progressLine(r, done, total, false)}\n`),
  });
  if (options.output === 'json') io.out(reportJSON(report, options.dryRun, !options.dryRun));
  else if (options.dryRun) io.out(formatPlan(report));
  else {
    io.out(summaryLine(report) + '\n');
    if (report.failed.length > 0) io.out(formatFailures(report) + '\n');
  }
  return { code: report.failed.length > 0 ? 1 : 0, report };
}

export function requireRoot(root: string): string {
  if (!root.startsWith('/')) throw new UserError(`--root must be an absolute path, got ${root}`);
  return root;
}
