// Kubernetes' syntax for values that reach command lines and environment files.
import t from 'tap';
import {
  endpointURLProblem,
  envNameProblem,
  etcdOverrideProblem,
  flagNameProblem,
  hostNameProblem,
  ipAddressProblem,
  labelKeyProblem,
  labelValueProblem,
  parseTaint,
  releaseVersionProblem,
  storeURLProblem,
} from '../../shared/api/k8s-syntax.js';

const ok = (problem: string | undefined) => problem === undefined;

t.test('label keys: [DNS-1123 subdomain prefix /] name of at most 63', async (t) => {
  for (const key of [
    'workload', 'a', 'A_b.c-D', 'kops.k8s.io/instancegroup', 'node-role.kubernetes.io/control-plane',
    `${'a'.repeat(63)}`, `${'p'.repeat(63)}.${'q'.repeat(63)}.${'r'.repeat(63)}.${'s'.repeat(61)}/${'n'.repeat(63)}`,
  ]) {
    t.ok(ok(labelKeyProblem(key)), `${key.slice(0, 40)} is a label key`);
  }
  for (const [key, why] of [
    ['', /empty/],
    ['bad key', /name part/],
    ['-x', /name part/],
    ['x-', /name part/],
    ['a'.repeat(64), /64 characters \(at most 63\)/],
    ['Example.COM/x', /prefix "Example\.COM"/],
    ['/x', /prefix ""/],
    ['a/b/c', /prefix "a\/b"/],
    ['example.com/', /name part is empty/],
    [`${'p'.repeat(63)}.${'q'.repeat(63)}.${'r'.repeat(63)}.${'s'.repeat(62)}/n`, /prefix/],
    ['a=b', /name part/],
    ['a,b', /name part/],
    ['a\nb', /name part/],
  ] as const) {
    t.match(labelKeyProblem(key), why, `${JSON.stringify(key.slice(0, 40))} is refused`);
  }
});

t.test('label values: empty, or at most 63 of [A-Za-z0-9-_.] starting and ending alphanumeric', async (t) => {
  for (const value of ['', 'x', 'nodes-local-a', 'A.b_c-9', 'v'.repeat(63)]) t.ok(ok(labelValueProblem(value)), JSON.stringify(value));
  for (const value of [
    'a --authorization-mode=AlwaysAllow --anonymous-auth=true', 'v'.repeat(64), '-a', 'a-', 'a b', 'a,b=c', 'a/b', 'a"b', '$HOME', 'a\tb', 'ü',
  ]) {
    t.notOk(ok(labelValueProblem(value)), `${JSON.stringify(value)} is refused`);
  }
  t.match(labelValueProblem('v'.repeat(64)), /64 characters \(at most 63\)/);
});

t.test("taints: kOps' key[=value]:Effect", async (t) => {
  t.same(parseTaint('dedicated=gpu:NoSchedule'), { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' });
  t.same(parseTaint('spot:NoExecute'), { key: 'spot', effect: 'NoExecute' });
  t.same(parseTaint('node-role.kubernetes.io/control-plane=:NoSchedule'), { key: 'node-role.kubernetes.io/control-plane', value: '', effect: 'NoSchedule' });
  t.same(parseTaint('dedicated=general:PreferNoSchedule'), { key: 'dedicated', value: 'general', effect: 'PreferNoSchedule' });
  t.match(parseTaint('broken'), /no effect/);
  t.match(parseTaint('x=y:Sometimes'), /unknown effect "Sometimes"/);
  t.match(parseTaint('dedicated=a b:NoSchedule'), /value "a b"/);
  t.match(parseTaint('a b=c:NoSchedule'), /key "a b"/);
  t.match(parseTaint('=c:NoSchedule'), /key ""/);
  t.match(parseTaint('a=b=c:NoSchedule'), /value "b=c"/);
  t.match(parseTaint('a:b:NoSchedule'), /key "a:b"/);
});

t.test('names, versions, addresses', async (t) => {
  t.ok(ok(hostNameProblem('api.internal.demo.example.com')));
  for (const bad of ['api.internal x', 'API.example.com', 'a..b', '-a.b', 'a\nb', `${'a'.repeat(64)}.com`]) t.notOk(ok(hostNameProblem(bad)), JSON.stringify(bad));
  t.ok(ok(flagNameProblem('my_cluster.example')));
  for (const bad of ['a --leader-elect=false', '', 'x'.repeat(254), '-x']) t.notOk(ok(flagNameProblem(bad)), JSON.stringify(bad.slice(0, 20)));
  for (const v of ['1.7.24', '3.5.9-rc.0', '10.0.0']) t.ok(ok(releaseVersionProblem(v)), v);
  for (const v of ['1.7.24 --debug', 'v1.7.24', '1.7', '1.7.24/../../x', '1.7.24-']) t.notOk(ok(releaseVersionProblem(v)), v);
  for (const ip of ['100.64.0.10', 'fd00::10']) t.ok(ok(ipAddressProblem(ip)), ip);
  for (const ip of ['100.64.0.10 evil', '100.64.0.256', 'dns.example.com', '']) t.notOk(ok(ipAddressProblem(ip)), ip);
  for (const name of ['ETCD_LISTEN_METRICS_URLS', '_x', 'a1']) t.ok(ok(envNameProblem(name)), name);
  for (const name of ['A B', '1A', 'A-B', 'A=B', '']) t.notOk(ok(envNameProblem(name)), name);
});

t.test('endpoint URLs: one http(s)://host:port, nothing that splits or adds a server', async (t) => {
  for (const url of ['https://127.0.0.1:4001', 'http://etcd-a.internal.example.com:4001', 'https://[fd00::1]:4001', 'https://127.0.0.1:4001/']) {
    t.ok(ok(endpointURLProblem(url)), url);
  }
  for (const url of [
    'https://127.0.0.1:4001 --anonymous-auth=true', 'https://127.0.0.1:4001,https://203.0.113.9:2379', 'https://a:4001;https://b:4001',
    'unix:///run/etcd.sock', 'https://user:pw@127.0.0.1:4001', 'https://127.0.0.1:4001/path', 'https://127.0.0.1:4001?x=1',
    'https://127.0.0.1:99999', '127.0.0.1:4001', 'https://bad_host:4001', 'https://$(id):4001', 'https://a\n:4001',
  ]) {
    t.notOk(ok(endpointURLProblem(url)), JSON.stringify(url));
  }
});

t.test("etcd servers overrides: kube-apiserver's group/resource#url;url", async (t) => {
  for (const v of ['/events#https://127.0.0.1:4002', 'coordination.k8s.io/leases#https://127.0.0.1:4003;https://127.0.0.2:4003']) t.ok(ok(etcdOverrideProblem(v)), v);
  for (const v of ['https://127.0.0.1:4002', '/events#https://127.0.0.1:4002 --x', '/events#https://a:1,https://b:2', '/Events#https://a:1', '/events#']) {
    t.notOk(ok(etcdOverrideProblem(v)), JSON.stringify(v));
  }
});

t.test('state store URLs: s3://, file:///absolute, memfs://, nothing an env file or shell would split', async (t) => {
  for (const url of ['s3://example-kops-state/prod.k8s.example.com', 's3://bucket', 'file:///var/lib/mooring/state/x.example.com', 'memfs://test/a', 's3://b/backups/etcd/main']) {
    t.ok(ok(storeURLProblem(url)), url);
  }
  for (const url of [
    'file:///x\nPROTOKUBE_EVIL=1', 's3://bucket/x ETCD_MANAGER_X=1', 'file:relative', 'file://host/x', 'gs://bucket/x', '/abs/path',
    's3://bucket/"quoted"', 's3://bucket/$HOME', 's3:///nobucket', 's3://b/a\\b', 's3://b/`id`',
  ]) {
    t.notOk(ok(storeURLProblem(url)), JSON.stringify(url));
  }
});
