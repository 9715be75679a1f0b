// Field paths and fieldsV1 in the test API server (test/harness/kube): the
// encoding round-trips the shape real servers write (`.` for a member with
// children, `k:` keys with sorted fields, `v:` set values), paths print as
// conflict messages print them, and an applied object's field set is what
// managedFields records for it.
import t from 'tap';
import { FieldSet, parseElement, pathString, serializeElement, toFieldSet } from '../harness/kube/fieldpath.js';
import type { JsonObject } from '../harness/kube/json.js';

t.test('fieldsV1 decodes and encodes back unchanged', async (t) => {
  // The shape of kube-controller-manager's Update entry on a Deployment, plus a finalizer set.
  const fieldsV1: JsonObject = {
    'f:metadata': {
      'f:annotations': { '.': {}, 'f:deployment.kubernetes.io/revision': {} },
      'f:finalizers': { '.': {}, 'v:"example.com/hold"': {} },
    },
    'f:status': {
      'f:availableReplicas': {},
      'f:conditions': {
        '.': {},
        'k:{"type":"Available"}': { '.': {}, 'f:lastTransitionTime': {}, 'f:message': {}, 'f:status': {}, 'f:type': {} },
        'k:{"type":"Progressing"}': { '.': {}, 'f:lastTransitionTime': {}, 'f:status': {}, 'f:type': {} },
      },
      'f:observedGeneration': {},
    },
  };
  const set = FieldSet.fromFieldsV1(fieldsV1);
  t.equal(set.size, 16, 'one path per leaf, per `.` and per keyed or set item');
  t.same(set.toFieldsV1(), fieldsV1);
  t.same(JSON.stringify(Object.keys(set.toFieldsV1())), JSON.stringify(['f:metadata', 'f:status']), 'fields sorted');
});

t.test('path elements serialise and print like structured-merge-diff', async (t) => {
  const key = parseElement('k:{"protocol":"UDP","containerPort":53}');
  t.equal(serializeElement(key), 'k:{"containerPort":53,"protocol":"UDP"}', 'key fields sorted by name');
  t.equal(
    pathString([
      { kind: 'field', name: 'spec' },
      { kind: 'field', name: 'template' },
      { kind: 'field', name: 'spec' },
      { kind: 'field', name: 'containers' },
      { kind: 'key', fields: [['name', 'dns']] },
      { kind: 'field', name: 'ports' },
      key,
      { kind: 'field', name: 'name' },
    ]),
    '.spec.template.spec.containers[name="dns"].ports[containerPort=53,protocol="UDP"].name',
  );
  t.equal(pathString([{ kind: 'field', name: 'metadata' }, { kind: 'field', name: 'finalizers' }, { kind: 'value', value: 'a/b' }]), '.metadata.finalizers[="a/b"]');
  t.equal(serializeElement({ kind: 'value', value: '<&>' }), 'v:"\\u003c\\u0026\\u003e"', 'HTML characters escaped as Go does');
});

t.test('the field set of an applied Service: keyed ports with the protocol default, atomic selector', async (t) => {
  const set = toFieldSet({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kube-dns', labels: { 'k8s-app': 'kube-dns' } },
    spec: { selector: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'metrics', port: 9153 }] },
  });
  const encoded = set.toFieldsV1();
  t.same(encoded['f:spec'], {
    'f:ports': {
      'k:{"port":53,"protocol":"UDP"}': { '.': {}, 'f:name': {}, 'f:port': {}, 'f:protocol': {} },
      'k:{"port":9153,"protocol":"TCP"}': { '.': {}, 'f:name': {}, 'f:port': {} },
    },
    'f:selector': {},
  });
  t.throws(
    () => toFieldSet({ spec: { ports: [{ name: 'no-port' }] } }),
    { message: '.spec.ports: element 0: associative list with keys has an element that omits key field "port" (and doesn\'t have default value)' },
  );
});
