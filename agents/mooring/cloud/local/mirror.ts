// The asset mirror: a plain HTTP file server over <dir>/mirror, in the upstream
// path layout (kOps' RemapFile), each file beside its `.sha256`. What it holds:
// the agent binary (content-addressed: agent/<sha256>/mooring) and an etcd
// release tarball made from Debian's etcd binaries. Kubernetes' own binaries
// cannot be fetched here, so they are left out, and the host answers "left
// out" for them when `update cluster` resolves hashes (from the files on disk:
// the host never sends a packet to the mirror's address).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join, normalize, sep } from 'node:path';
import { execa } from 'execa';
import { etcdAssetName } from '../../../../shared/api/assets.js';
import type { Logger } from '../../../../shared/log.js';
import { MIRROR_URL } from './plan.js';

export const ETCD_VERSION = '3.4.23';
/** Debian's etcd-server / etcd-client binaries, which `make setup` installs. */
export const DEBIAN_ETCD = { etcd: '/usr/bin/etcd', etcdctl: '/usr/bin/etcdctl' };

export const LEFT_OUT_REASON = 'not in the local mirror (Kubernetes binaries cannot be fetched on this machine)';

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Writes `<file>` (already in place) and its `<file>.sha256`, the sha256sum format. */
async function writeHashFile(file: string): Promise<string> {
  const sha = await sha256OfFile(file);
  await writeFile(`${file}.sha256.tmp`, `${sha}  ${file.split(sep).pop()}\n`);
  await rename(`${file}.sha256.tmp`, `${file}.sha256`);
  return sha;
}

export function etcdTarballPath(version = ETCD_VERSION, arch = 'amd64'): string {
  return `etcd-io/etcd/releases/download/v${version}/${etcdAssetName(version, arch)}`;
}

/**
 * etcd-v<ver>-linux-amd64.tar.gz as upstream lays it out (one top folder with
 * etcd and etcdctl), made reproducibly from Debian's binaries: same bytes for
 * the same binaries, so its hash (and every node config) stays put.
 */
export async function publishEtcdTarball(mirrorDir: string): Promise<void> {
  const rel = etcdTarballPath();
  const target = join(mirrorDir, rel);
  if (await exists(`${target}.sha256`)) return;
  const version = (await execa(DEBIAN_ETCD.etcd, ['--version'], { reject: false })).stdout;
  if (!version.includes(`etcd Version: ${ETCD_VERSION}`)) {
    throw new Error(`${DEBIAN_ETCD.etcd} is not etcd ${ETCD_VERSION} (make setup installs Debian's etcd-server and etcd-client)`);
  }
  const staging = await mkdtemp(join(mirrorDir, '.etcd-'));
  try {
    const top = `etcd-v${ETCD_VERSION}-linux-amd64`;
    await mkdir(join(staging, top));
    for (const [name, path] of Object.entries(DEBIAN_ETCD)) await copyFile(path, join(staging, top, name));
    await writeFile(join(staging, top, 'README-mooring.md'), `etcd ${ETCD_VERSION} from Debian's etcd-server and etcd-client packages, packed in the upstream release layout by the local cloud.\n`);
    const tar = await execa('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '-C', staging, top], { encoding: 'buffer', reject: false });
    if (tar.exitCode !== 0) throw new Error(`tar: ${Buffer.from(tar.stderr).toString().trim()}`);
    const gz = await execa('gzip', ['-n', '-1'], { input: Buffer.from(tar.stdout), encoding: 'buffer' });
    await mkdir(dirname(target), { recursive: true });
    await writeFile(`${target}.tmp`, Buffer.from(gz.stdout));
    await rename(`${target}.tmp`, target);
    await writeHashFile(target);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Copies the agent binary to agent/<sha256>/mooring; returns its instance-side URL and hash. */
/** The agent binary on the mirror; `knownSha256` saves hashing the file again when the caller already did. */
export async function publishAgent(mirrorDir: string, binary: string, knownSha256?: string): Promise<{ url: string; sha256: string }> {
  const sha256 = knownSha256 ?? (await sha256OfFile(binary));
  const rel = `agent/${sha256}/mooring`;
  const target = join(mirrorDir, rel);
  if (!(await exists(`${target}.sha256`))) {
    await mkdir(dirname(target), { recursive: true });
    await copyFile(binary, `${target}.tmp`);
    await rename(`${target}.tmp`, target);
    await writeHashFile(target);
  }
  return { url: `${MIRROR_URL}/${rel}`, sha256 };
}

/** The mirror file a URL of this mirror names, or undefined when the URL is not the mirror's. */
export function mirrorFileOf(mirrorDir: string, url: string): string | undefined {
  if (!url.startsWith(`${MIRROR_URL}/`)) return undefined;
  const rel = normalize(decodeURIComponent(url.slice(MIRROR_URL.length + 1)));
  if (rel.startsWith('..') || rel.startsWith(sep)) return undefined;
  return join(mirrorDir, rel);
}

/** Host side of asset resolution: the hash from `<file>.sha256` on disk, or why the file is not there. */
export async function mirrorHash(mirrorDir: string, url: string): Promise<{ sha256: string } | { leftOut: string }> {
  const file = mirrorFileOf(mirrorDir, url);
  if (!file) throw new Error(`${url} is not a URL of the local mirror ${MIRROR_URL}`);
  const text = await readFile(`${file}.sha256`, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return { leftOut: LEFT_OUT_REASON };
  const sha256 = text.trim().split(/\s+/)[0] ?? '';
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`${file}.sha256 holds no sha256`);
  return { sha256 };
}

/** GET/HEAD of files under the mirror folder; nothing else. */
export function mirrorHandler(mirrorDir: string, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
      const fields = { event: 'mirror-request', method: req.method, path, source: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '') };
      const rel = normalize(path).replace(/^\/+/, '');
      const file = join(mirrorDir, rel);
      const info = rel.startsWith('..') || rel.split(sep).some((p) => p.startsWith('.')) ? undefined : await stat(file).catch(() => undefined);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end();
        return;
      }
      if (!info?.isFile()) {
        log.info('mirror: not found', { ...fields, status: 404 });
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n');
        return;
      }
      log.info('mirror: served', { ...fields, status: 200, bytes: info.size });
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': info.size });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      createReadStream(file).on('error', () => res.destroy()).pipe(res);
    })().catch((err: unknown) => {
      log.error('mirror handler failed', { event: 'mirror-error', err });
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
}
