// A local cloud: bring it up (bridge namespace, servers daemon, forwarder,
// mirror), tell the operator how to reach its state store, launch and
// terminate instances, and take all of it down again, also after a crash.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ExitCode, UserError } from '../../../../shared/errors.js';
import type { Logger } from '../../../../shared/log.js';
import { createLocalVolume, listLocalVolumes } from '../../../../shared/volumes/local-images.js';
import { clusterImages, detachImages, instanceState, launchInstance, terminateInstance, type InstanceState, type LaunchSpec } from './instance.js';
import { publishAgent, publishEtcdTarball } from './mirror.js';
import { deleteNetns, ensureBridge, netnsWithPrefix } from './net.js';
import { BUCKET, CloudLayout, DEFAULT_CLOUD_DIR, DEFAULT_IMAGE_DIR, REGION, S3_KEYS } from './plan.js';
import { isAlive, spawnDetached, stopRecorded } from './procs.js';
import { instanceDirOf, listClusters, listInstances, readJSON, writeJSON, type CloudRecord, type InstanceProcesses, type InstanceRecord } from './records.js';

export interface InstanceView extends InstanceRecord {
  state: InstanceState;
  processes: InstanceProcesses;
}

export interface VolumeSpec {
  id: string;
  tags: Record<string, string>;
  availabilityZone?: string;
}

/** Enables DES (s3rver encrypts list continuation tokens with it) without a Node flag. */
const OPENSSL_CONF = `nodejs_conf = nodejs_init
[nodejs_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function cloudDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env.MOORING_LOCAL_CLOUD ?? DEFAULT_CLOUD_DIR;
}

async function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class LocalCloud {
  readonly layout: CloudLayout;

  constructor(dir: string, private readonly log: Logger) {
    this.layout = new CloudLayout(dir);
  }

  async record(): Promise<CloudRecord | undefined> {
    return readJSON<CloudRecord>(this.layout.stateFile);
  }

  /** The record of a cloud whose daemons run; a clear error otherwise. */
  async requireUp(): Promise<CloudRecord> {
    const record = await this.record();
    if (!record || !isAlive(record.servers) || !isAlive(record.forwarder) || record.s3Port === undefined) {
      throw new UserError(`no local cloud is running in ${this.layout.dir} (start it with: mooring local-cloud up)`, ExitCode.Failure);
    }
    return record;
  }

  /** The environment that points the AWS SDK (and so `mooring --state s3://mooring`) at this cloud's store. */
  operatorEnv(record: CloudRecord): Record<string, string> {
    return {
      MOORING_STATE_STORE: `s3://${BUCKET}`,
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${record.s3Port}`,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey,
      MOORING_LOCAL_CLOUD: this.layout.dir,
    };
  }

  /** True when `storeURL` with this environment is this cloud's state store. */
  async servesStore(storeURL: string, env: NodeJS.ProcessEnv): Promise<boolean> {
    const record = await this.record();
    if (!record?.s3Port || !(storeURL === `s3://${BUCKET}` || storeURL.startsWith(`s3://${BUCKET}/`))) return false;
    const endpoint = (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || '').replace(/\/+$/, '');
    return endpoint === `http://127.0.0.1:${record.s3Port}`;
  }

  async up(options: { binary: string; imageDir?: string }): Promise<CloudRecord> {
    const { layout, log } = this;
    const imageDir = options.imageDir ?? DEFAULT_IMAGE_DIR;
    if (!existsSync(join(imageDir, '.mooring-image'))) {
      throw new UserError(`no Debian 12 image at ${imageDir} (build it with: make image)`, ExitCode.Failure);
    }
    for (const dir of [layout.dir, layout.runDir, layout.logDir, layout.mirrorDir, layout.clustersDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(layout.opensslConf, OPENSSL_CONF);
    const previous = await this.record();
    const record: CloudRecord = { ...previous, binary: options.binary, imageDir, createdAt: previous?.createdAt ?? new Date().toISOString() };
    await writeJSON(layout.stateFile, record);
    await ensureBridge(layout.bridgeNetns);
    await publishEtcdTarball(layout.mirrorDir);
    await publishAgent(layout.mirrorDir, options.binary);

    const daemonEnv = { ...process.env, MOORING_LOG_FORMAT: 'json', OPENSSL_CONF: layout.opensslConf };
    if (!isAlive(record.servers)) {
      await rm(layout.s3Socket, { force: true });
      record.servers = spawnDetached('nsenter', [`--net=/run/netns/${layout.bridgeNetns}`, '--', options.binary, 'local-cloud', '_serve', '--local-cloud', layout.dir], {
        logFile: join(layout.logDir, 'servers.log'),
        env: daemonEnv,
      });
      await writeJSON(layout.stateFile, record);
      await this.waitFor('the servers daemon', record.servers, () => socketAnswers(layout.s3Socket), join(layout.logDir, 'servers.log'));
    }
    if (!isAlive(record.forwarder)) {
      const portFile = join(layout.runDir, 'forwarder.port');
      await rm(portFile, { force: true });
      record.forwarder = spawnDetached(options.binary, ['local-cloud', '_forward', '--local-cloud', layout.dir], {
        logFile: join(layout.logDir, 'forwarder.log'),
        env: daemonEnv,
      });
      await writeJSON(layout.stateFile, record);
      await this.waitFor('the forwarder', record.forwarder, async () => existsSync(portFile), join(layout.logDir, 'forwarder.log'));
      record.s3Port = Number((await readFile(portFile, 'utf8')).trim());
    }
    await writeJSON(layout.stateFile, record);
    log.info('local cloud up', { event: 'cloud-up', dir: layout.dir, s3Port: record.s3Port });
    return record;
  }

  private async waitFor(what: string, process: CloudRecord['servers'], ready: () => Promise<boolean>, logFile: string): Promise<void> {
    for (let i = 0; i < 300; i++) {
      if (await ready()) return;
      if (!isAlive(process)) break;
      await sleep(100);
    }
    const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
    throw new Error(`${what} did not become ready (log ${logFile}):\n${tail}`);
  }

  /** Takes every cluster down, stops the daemons and deletes the bridge namespace; `purge` also deletes the folder (the store's data). */
  async down(options: { purge: boolean }): Promise<string[]> {
    const { layout } = this;
    const released: string[] = [];
    for (const cluster of await listClusters(layout)) released.push(...(await this.deleteCluster(cluster)));
    const record = await this.record();
    for (const [name, process] of [['forwarder', record?.forwarder], ['servers', record?.servers]] as const) {
      if (isAlive(process)) {
        await stopRecorded(process, 10_000);
        released.push(`process ${name} (pid ${process?.pid})`);
      }
    }
    // Instance namespaces of this cloud left by a crash before their record was written, then the bridge.
    for (const netns of await netnsWithPrefix(`mlc-${layout.id}-`)) {
      await deleteNetns(netns);
      released.push(`namespace ${netns}`);
    }
    await rm(layout.runDir, { recursive: true, force: true });
    if (record) await writeJSON(layout.stateFile, { ...record, servers: undefined, forwarder: undefined, s3Port: undefined });
    if (options.purge) await rm(layout.dir, { recursive: true, force: true });
    return released;
  }

  async instances(cluster?: string): Promise<InstanceView[]> {
    const views: InstanceView[] = [];
    for (const record of await listInstances(this.layout, cluster)) {
      views.push({ ...record, ...(await instanceState(instanceDirOf(this.layout, record))) });
    }
    return views;
  }

  async instance(cluster: string, id: string): Promise<InstanceView> {
    const found = (await this.instances(cluster)).find((i) => i.id === id);
    if (!found) throw new UserError(`instance "${id}" not found in cluster "${cluster}" of the local cloud in ${this.layout.dir}`, ExitCode.NotFound);
    return found;
  }

  async launch(spec: LaunchSpec): Promise<InstanceRecord> {
    const record = await this.requireUp();
    return launchInstance(this.layout, spec, { imageDir: record.imageDir, binary: record.binary, log: this.log });
  }

  async terminate(cluster: string, id: string, options: { force: boolean }): Promise<void> {
    const found = (await listInstances(this.layout, cluster)).find((i) => i.id === id);
    if (!found) throw new UserError(`instance "${id}" not found in cluster "${cluster}" of the local cloud in ${this.layout.dir}`, ExitCode.NotFound);
    await terminateInstance(this.layout, found, { force: options.force, log: this.log });
  }

  /** Creates the volumes that do not exist yet; returns the ids created. */
  async ensureVolumes(cluster: string, volumes: VolumeSpec[]): Promise<string[]> {
    const dir = this.layout.volumeDir(cluster);
    const existing = new Set((await listLocalVolumes(dir)).map((v) => v.id));
    const created: string[] = [];
    for (const volume of volumes) {
      if (existing.has(volume.id)) continue;
      await createLocalVolume({ volumeDir: dir, id: volume.id, tags: volume.tags, availabilityZone: volume.availabilityZone, kind: 'image', sizeMiB: 1024 });
      created.push(volume.id);
    }
    return created;
  }

  async volumes(cluster: string) {
    return listLocalVolumes(this.layout.volumeDir(cluster));
  }

  /** Terminates every instance (forcefully: the cluster is going away), detaches its loop devices, deletes its volumes and folder. */
  async deleteCluster(cluster: string): Promise<string[]> {
    const released: string[] = [];
    for (const record of await listInstances(this.layout, cluster)) {
      await terminateInstance(this.layout, record, { force: true, log: this.log });
      released.push(`instance ${record.id}`);
    }
    await detachImages(await clusterImages(this.layout, cluster), this.log);
    const dir = this.layout.clusterDir(cluster);
    if (existsSync(dir)) {
      await rm(dir, { recursive: true, force: true });
      released.push(`volumes and folder of cluster ${cluster}`);
    }
    return released;
  }

  async clusters(): Promise<string[]> {
    return listClusters(this.layout);
  }
}
