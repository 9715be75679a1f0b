// protokube given bad settings, bad channels and bad files: each ends with its
// exit code and one clear line naming what is wrong, and changes nothing (no
// hosts file, no status file, no store object is written).
import { createHash } from 'node:crypto';
import type { HostileCase, World } from '../case.js';

const CLUSTER_ARGS = (w: World) => [`--cluster=${w.cluster}`, `--config-base=${w.storeURL}/${w.cluster}`, `--hosts-file=${w.dir}/hosts`, `--status-file=${w.dir}/status.json`, '--status-port=0'];

/** A channel file in kOps' shape, with one addon whose fields are given. */
function channel(w: World, addon: Record<string, unknown>): string {
  const lines = Object.entries(addon).map(([k, v]) => `    ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return w.file('channel.yaml', `kind: Addons\nmetadata:\n  name: bootstrap\nspec:\n  addons:\n  - name: a.example.com\n${lines.join('\n')}\n`);
}

const manifest = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: kube-system}\n';
const sha = createHash('sha256').update(manifest).digest('hex');

export const cases: HostileCase[] = [
  {
    name: 'protokube with a PROTOKUBE_* setting it does not know (a typo in /etc/sysconfig/protokube)',
    program: 'protokube',
    prepare: (w) => ({ args: CLUSTER_ARGS(w), env: { PROTOKUBE_POL_INTERVAL: '5s' } }),
    exit: 2,
    message: /^protokube: environment: PROTOKUBE_POL_INTERVAL is not a protokube setting \(see --help\)$/m,
  },
  {
    name: 'protokube with a registration TTL shorter than its poll interval',
    program: 'protokube',
    prepare: (w) => ({ args: [...CLUSTER_ARGS(w), '--poll-interval=30s', '--registration-ttl=10s'] }),
    exit: 2,
    message: /^protokube: --registration-ttl \(10s\) must be longer than --poll-interval \(30s\), or live instances would drop out between polls$/m,
  },
  {
    name: 'protokube with an address that would put a second line into the hosts file',
    program: 'protokube',
    prepare: (w) => ({ args: [...CLUSTER_ARGS(w), '--address=10.0.0.1\n10.6.6.6 evil.example.com'] }),
    exit: 2,
    message: /^protokube: --address: "10\.0\.0\.1\\n10\.6\.6\.6 evil\.example\.com" is not an IP address$/m,
  },
  {
    name: 'protokube with a seed address that is not an address (environment)',
    program: 'protokube',
    prepare: (w) => ({ args: [...CLUSTER_ARGS(w), '--names-only'], env: { PROTOKUBE_SEED_ADDRESS: '10.0.0.1,api.example.com' } }),
    exit: 2,
    message: /^protokube: PROTOKUBE_SEED_ADDRESS \(env\): "api\.example\.com" is not an IP address$/m,
  },
  {
    name: 'protokube with an instance name that would make another store key',
    program: 'protokube',
    prepare: (w) => ({ args: [...CLUSTER_ARGS(w), '--instance-name=../../pki/private/x', '--address=10.0.0.1'] }),
    exit: 2,
    message: /^protokube: --instance-name: "\.\.\/\.\.\/pki\/private\/x": want letters, digits/,
  },
  {
    name: 'protokube with a taint kubelet would refuse',
    program: 'protokube',
    prepare: (w) => ({ args: [...CLUSTER_ARGS(w), '--node-taint=dedicated=cp:Sometimes'] }),
    exit: 2,
    message: /^protokube: --node-taint: "dedicated=cp:Sometimes": unknown effect "Sometimes"/,
  },
  {
    name: 'protokube with an unknown command',
    program: 'protokube',
    prepare: () => ({ args: ['channel', 'apply', 'x'] }),
    exit: 2,
    message: /^protokube: unknown command "channel" \(this build has: run, status, channels apply\)$/m,
  },
  {
    name: 'protokube channels apply without a channel',
    program: 'protokube',
    prepare: () => ({ args: ['channels', 'apply'] }),
    exit: 2,
    message: /^protokube: channels apply needs the channel: a file or a URL$/m,
  },
  {
    name: 'protokube channels apply of a channel that does not exist',
    program: 'protokube',
    prepare: (w) => ({ args: ['channels', 'apply', `${w.dir}/no-such-channel.yaml`] }),
    exit: 4,
    message: /^protokube: .*no-such-channel\.yaml: no such file$/m,
  },
  {
    name: 'protokube channels apply of a channel in the state store that does not exist',
    program: 'protokube',
    prepare: (w) => ({ args: ['channels', 'apply', `${w.storeURL}/${w.cluster}/addons/missing-channel.yaml`] }),
    exit: 4,
    message: /^protokube: file:\/\/.*\/addons\/missing-channel\.yaml: no such file$/m,
  },
  {
    name: 'protokube channels apply of a channel with a manifestHash that is not a sha256',
    program: 'protokube',
    prepare: (w) => ({ args: ['channels', 'apply', channel(w, { manifest: 'a.yaml', manifestHash: 'deadbeef' })] }),
    exit: 3,
    message: /^protokube: .*channel\.yaml:8: spec\.addons\[0\]\.manifestHash: "deadbeef" is not a sha256 \(64 lowercase hex digits\)$/m,
  },
  {
    name: 'protokube channels apply of a channel whose addon has no manifestHash',
    program: 'protokube',
    prepare: (w) => ({ args: ['channels', 'apply', channel(w, { manifest: 'a.yaml' })] }),
    exit: 3,
    message: /^protokube: .*channel\.yaml:6: spec\.addons\[0\]\.manifestHash: missing: protokube applies only manifests whose sha256 it can check$/m,
  },
  {
    name: 'protokube channels apply of a YAML alias bomb',
    program: 'protokube',
    prepare: (w) => ({
      args: ['channels', 'apply', w.file('bomb.yaml', 'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\nkind: Addons\n')],
    }),
    exit: 3,
    message: /too many YAML aliases: they would expand past 100 copies/,
  },
  {
    name: 'protokube channels apply of an ftp:// channel',
    program: 'protokube',
    prepare: () => ({ args: ['channels', 'apply', 'ftp://mirror.example.com/channel.yaml'] }),
    exit: 2,
    message: /^protokube: channel "ftp:\/\/mirror\.example\.com\/channel\.yaml": want an s3:\/\/, file:\/\/, memfs:\/\/, http\(s\):\/\/ URL or an absolute path$/m,
  },
  {
    name: 'protokube channels apply with a kubeconfig that does not exist',
    program: 'protokube',
    prepare: (w) => {
      w.file('a.yaml', manifest);
      return { args: ['channels', 'apply', channel(w, { manifest: 'a.yaml', manifestHash: sha }), `--kubeconfig=${w.dir}/no-kubeconfig`] };
    },
    exit: 1,
    message: /^protokube: kubeconfig .*no-kubeconfig: ENOENT/,
    timeoutMs: 30_000,
  },
  {
    name: 'protokube status with no status file yet',
    program: 'protokube',
    prepare: (w) => ({ args: ['status', `--status-file=${w.dir}/no-status.json`] }),
    exit: 4,
    message: /^protokube: .*no-status\.json: no status yet \(protokube has not run on this node, or --status-file points elsewhere\)$/m,
  },
  {
    name: 'protokube status of a file that is not a status',
    program: 'protokube',
    prepare: (w) => ({ args: ['status', `--status-file=${w.file('status.json', '{"kind":"Something"}')}`] }),
    exit: 1,
    message: /^protokube: .*status\.json: not a protokube status document$/m,
  },
];
