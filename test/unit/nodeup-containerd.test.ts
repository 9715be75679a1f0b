// containerd's config.toml from spec.containerd, as kOps' nodeup writes it: the
// config version by containerd release, the 2.x plugin names, mirrors, the
// user's configAdditions, and every spec string escaped.
import t from 'tap';
import { containerdConfigToml, containerdFlags } from '../../agents/nodeup/model/containerd.js';
import type { ModelInput } from '../../agents/nodeup/model/context.js';
import { toToml } from '../../agents/nodeup/model/toml.js';

function input(version: string, containerd: Record<string, unknown> = {}, assets: string[] = []): ModelInput {
  return {
    nodeConfig: { containerdVersion: version, assets: { amd64: assets, arm64: [] } },
    cluster: { spec: { containerd: { version, sandboxImage: 'registry.k8s.io/pause:3.10.1', ...containerd } } },
    host: { arch: 'amd64' },
  } as unknown as ModelInput;
}

t.test('config version and plugin names by containerd release', async (t) => {
  const v4 = containerdConfigToml(input('2.3.4'));
  t.match(v4, /^version = 4$/m, 'containerd 2.3 and later: version 4');
  t.match(v4, /\[plugins\."io\.containerd\.cri\.v1\.images"\.pinned_images\]\n {2}sandbox = "registry\.k8s\.io\/pause:3\.10\.1"/, 'the sandbox image is a pinned image');
  t.match(v4, /\[plugins\."io\.containerd\.cri\.v1\.runtime"\.containerd\.runtimes\.runc\.options\]\n {2}SystemdCgroup = true/);
  t.match(containerdConfigToml(input('2.1.5')), /^version = 3$/m, 'containerd 2.0 to 2.2: version 3 (they refuse 4)');
  const v2 = containerdConfigToml(input('1.7.24'));
  t.match(v2, /^version = 2$/m, 'containerd 1.x: version 2');
  t.match(v2, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\]\n {2}sandbox_image = "registry\.k8s\.io\/pause:3\.10\.1"/);
  t.match(containerdConfigToml(input('2.3.4'), false), /^version = 2$/m, "the distro's containerd (no release tarball): version 2, which every containerd reads");
  t.equal(containerdConfigToml(input('2.3.4', { configOverride: 'version = 3\n' })), 'version = 3\n', 'configOverride replaces it all');
});

t.test("mirrors, the user's additions, NRI, flags", async (t) => {
  const toml = containerdConfigToml(input('2.3.4', {
    registryMirrors: { 'docker.io': ['https://mirror.example.com'] },
    configAdditions: { 'plugins."io.containerd.cri.v1.images".image_pull_progress_timeout': '5m', 'plugins.x.enabled': 'true', 'plugins.x.count': 3 },
    nri: { enabled: true, pluginRequestTimeout: '2s' },
  }));
  t.match(toml, /\[plugins\."io\.containerd\.cri\.v1\.images"\.registry\]\n {2}config_path = "\/etc\/containerd\/certs\.d"/);
  t.match(toml, /image_pull_progress_timeout = "5m"/, 'a string addition');
  t.match(toml, /\[plugins\.x\]\n {2}count = 3\n {2}enabled = true/, "numbers and kOps' true/false words keep their TOML types");
  t.match(toml, /\[plugins\."io\.containerd\.nri\.v1\.nri"\]\n {2}disable = false\n {2}plugin_request_timeout = "2s"/);
  t.same(containerdFlags(input('2.3.4', { logLevel: 'debug' })), ['--address=/run/containerd/containerd.sock', '--log-level=debug']);
});

t.test('a spec string can never leave its TOML string', async (t) => {
  const toml = containerdConfigToml(input('2.3.4', { sandboxImage: 'pause"\n[plugins.evil]\nx = "1' }));
  t.notMatch(toml, /^\[plugins\.evil\]/m, 'no new table');
  t.match(toml, /sandbox = "pause\\"\\n\[plugins\.evil\]\\nx = \\"1"/, 'quotes and newlines escaped');
  t.equal(toToml({ 'a b': { 'c.d': 'x' } }), '[a b]\n'.replace('a b', '"a b"') + '  "c.d" = "x"\n', 'keys that are not bare are quoted');
});
