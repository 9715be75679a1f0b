// The local cloud's fixed plan (addresses, ports, names) and where each of its
// objects is recorded on disk. Nothing here touches the system.
import { join, resolve } from 'node:path';
import { sha256Hex } from '../../../../shared/lazy-crypto.js';

/** The bridge's address: servers listen here, inside the bridge namespace only. */
export const BRIDGE_ADDRESS = '198.18.0.1';
export const PREFIX_LENGTH = 16;
export const IMDS_PORT = 80;
export const S3_PORT = 4566;
export const MIRROR_PORT = 8080;
export const BUCKET = 'mooring';
export const REGION = 'local';
/** s3rver's fixed keys; handed to instances as their IAM role's credentials. */
export const S3_KEYS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const ROLE_NAME = 'mooring-local-instance';

export const IMDS_ENDPOINT = `http://${BRIDGE_ADDRESS}`;
export const S3_ENDPOINT = `http://${BRIDGE_ADDRESS}:${S3_PORT}`;
export const MIRROR_URL = `http://${BRIDGE_ADDRESS}:${MIRROR_PORT}`;

export const DEFAULT_CLOUD_DIR = '/var/lib/mooring/local';
export const DEFAULT_IMAGE_DIR = '/var/cache/mooring/debian12-rootfs';
/** Where etcd-manager looks for `local` volumes by default; the cluster's volume folder is bound here. */
export const INSTANCE_VOLUME_DIR = '/var/lib/etcd-manager/volumes';

/** Instance addresses: 198.18.1.1 upwards, 250 per /24, never the bridge's. */
export function instanceAddress(index: number): string {
  return `198.18.${1 + Math.floor(index / 250)}.${1 + (index % 250)}`;
}

/** Where a local cloud keeps everything, and the names of its kernel objects. */
export class CloudLayout {
  readonly dir: string;
  /** 8 hex digits of the folder's path: names its namespaces, so two local clouds never share one. */
  readonly id: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.id = sha256Hex(this.dir).slice(0, 8);
  }

  get stateFile(): string { return join(this.dir, 'cloud.json'); }
  get runDir(): string { return join(this.dir, 'run'); }
  get logDir(): string { return join(this.dir, 'log'); }
  get s3Socket(): string { return join(this.runDir, 's3.sock'); }
  get s3Data(): string { return join(this.dir, 's3'); }
  get mirrorDir(): string { return join(this.dir, 'mirror'); }
  get opensslConf(): string { return join(this.dir, 'openssl.cnf'); }
  get bridgeNetns(): string { return `mlc-${this.id}-br`; }
  get clustersDir(): string { return join(this.dir, 'clusters'); }

  clusterDir(cluster: string): string { return join(this.clustersDir, cluster); }
  volumeDir(cluster: string): string { return join(this.clusterDir(cluster), 'volumes'); }
  instancesDir(cluster: string): string { return join(this.clusterDir(cluster), 'instances'); }
  instanceDir(cluster: string, id: string): string { return join(this.instancesDir(cluster), id); }
  instanceNetns(id: string): string { return `mlc-${this.id}-${id.slice(2)}`; }
}

/** In the bridge namespace only: 15 characters at most. */
export function vethName(instanceId: string): string {
  return `v${instanceId.slice(-12)}`;
}

export function instancePaths(dir: string) {
  return {
    record: join(dir, 'instance.json'),
    processes: join(dir, 'processes.json'),
    userData: join(dir, 'user-data'),
    upper: join(dir, 'upper'),
    work: join(dir, 'work'),
    root: join(dir, 'root'),
    console: join(dir, 'console.log'),
  };
}
