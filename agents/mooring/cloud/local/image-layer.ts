// What a cloud image bakes in for the local cloud, written into an instance's
// overlay before its first boot (through the mounted overlay, never into the
// upper folder behind its back). See README.md "The image and the AMI layer".
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IMDS_ENDPOINT, REGION, S3_ENDPOINT } from './plan.js';

/** Loop device nodes created at boot: LOOP_CTL_GET_FREE hands out the lowest free index, machine-wide. */
export const LOOP_NODES = 256;

export const CLOUD_INIT_UNIT = 'mooring-cloud-init.service';
export const CLOUD_INIT_LOG = '/var/log/mooring-cloud-init.log';

/**
 * The cloud-init stand-in: once per instance id (cloud-init's per-instance
 * semaphore), fetch the user-data with an IMDSv2 token, gunzip it when it is
 * gzip (as cloud-init does), run it, and keep its exit status.
 */
const CLOUD_INIT_SCRIPT = `#!/bin/bash
# mooring local cloud: cloud-init's user-data step, nothing more.
set -o nounset -o pipefail
imds="\${AWS_EC2_METADATA_SERVICE_ENDPOINT:-${IMDS_ENDPOINT}}"
state=/var/lib/mooring-cloud-init
log() { printf '%s mooring-cloud-init: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
token=""
for attempt in $(seq 1 120); do
  if token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 600' --connect-timeout 2 --max-time 5 "\${imds}/latest/api/token"); then break; fi
  token=""
  sleep 1
done
if [[ -z "\${token}" ]]; then log "no metadata service answered at \${imds}"; exit 1; fi
get() { curl -fsS -H "X-aws-ec2-metadata-token: \${token}" --connect-timeout 2 --max-time 30 "$@"; }
id=$(get "\${imds}/latest/meta-data/instance-id") || { log "cannot read instance-id"; exit 1; }
mkdir -p "\${state}"
if [[ -e "\${state}/\${id}.done" ]]; then log "user-data of \${id} already ran ($(cat "\${state}/\${id}.done"))"; exit 0; fi
get -o "\${state}/user-data.raw" "\${imds}/latest/user-data" || { log "cannot read user-data"; exit 1; }
if [[ "$(head -c 2 "\${state}/user-data.raw" | od -An -tx1 | tr -d ' ')" == 1f8b ]]; then
  gunzip -c "\${state}/user-data.raw" >"\${state}/user-data"
else
  cp "\${state}/user-data.raw" "\${state}/user-data"
fi
chmod 0700 "\${state}/user-data"
log "running user-data of \${id}"
rc=0
"\${state}/user-data" || rc=$?
echo "exit \${rc} at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"\${state}/\${id}.done"
log "user-data of \${id} exited \${rc}"
exit "\${rc}"
`;

const CLOUD_INIT_UNIT_TEXT = `# mooring local cloud: runs the instance's user-data once, like cloud-init.
[Unit]
Description=Mooring local cloud: run user-data (cloud-init stand-in)
Wants=network-online.target
After=network-online.target systemd-tmpfiles-setup-dev.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/mooring/cloud-init
StandardOutput=append:${CLOUD_INIT_LOG}
StandardError=append:${CLOUD_INIT_LOG}
TimeoutStartSec=20min

[Install]
WantedBy=multi-user.target
`;

function tmpfilesLoopDevices(): string {
  const lines = ['# mooring local cloud: loop device nodes (nspawn gives instances a private /dev without them)', 'c! /dev/loop-control 0660 root disk - 10:237'];
  for (let i = 0; i < LOOP_NODES; i++) lines.push(`b! /dev/loop${i} 0660 root disk - 7:${i}`);
  return lines.join('\n') + '\n';
}

/** The AWS SDK's own variables, for every unit systemd starts. */
export function cloudEnvironment(): Record<string, string> {
  return { AWS_EC2_METADATA_SERVICE_ENDPOINT: IMDS_ENDPOINT, AWS_ENDPOINT_URL_S3: S3_ENDPOINT, AWS_REGION: REGION };
}

export function layerFiles(instanceId: string): Array<{ path: string; content: string; mode?: number }> {
  const env = Object.entries(cloudEnvironment()).map(([k, v]) => `${k}=${v}`).join(' ');
  return [
    { path: 'etc/hostname', content: `${instanceId}\n` },
    { path: 'etc/systemd/system.conf.d/50-mooring-local-cloud.conf', content: `# mooring local cloud: where the metadata service and S3 are.\n[Manager]\nDefaultEnvironment=${env}\n` },
    { path: 'etc/tmpfiles.d/mooring-loop-devices.conf', content: tmpfilesLoopDevices() },
    { path: 'usr/local/lib/mooring/cloud-init', content: CLOUD_INIT_SCRIPT, mode: 0o755 },
    { path: `etc/systemd/system/${CLOUD_INIT_UNIT}`, content: CLOUD_INIT_UNIT_TEXT },
  ];
}

/** Writes the layer under `root` (the mounted overlay) and enables the cloud-init unit. */
export async function writeLayer(root: string, instanceId: string): Promise<void> {
  for (const file of layerFiles(instanceId)) {
    const target = join(root, file.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.content, { mode: file.mode ?? 0o644 });
  }
  const wants = join(root, 'etc/systemd/system/multi-user.target.wants');
  await mkdir(wants, { recursive: true });
  await symlink(`/etc/systemd/system/${CLOUD_INIT_UNIT}`, join(wants, CLOUD_INIT_UNIT)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}
