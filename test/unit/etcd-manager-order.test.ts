// Member names are ordered by UTF-16 code unit (agents/etcd-manager/order.ts),
// as Go's string comparison in kOps' etcd-manager: the same on every machine,
// whatever its locale data, and with no ICU collation loaded.
import t from 'tap';
import { compareNames } from '../../agents/etcd-manager/order.js';

t.test('code-unit order, as Go compares strings', async (t) => {
  t.same(['b', 'a', 'c'].sort(compareNames), ['a', 'b', 'c']);
  t.same(['etcd-b', 'etcd-a', 'etcd-aa'].sort(compareNames), ['etcd-a', 'etcd-aa', 'etcd-b']);
  // Where a locale's collation would differ: upper case before lower case, "_" between them, "-" before digits.
  t.same(['a', 'B', '_x', '1', '-'].sort(compareNames), ['-', '1', 'B', '_x', 'a']);
  t.equal(compareNames('a', 'a'), 0);
  t.ok(compareNames('a', 'b') < 0);
  t.ok(compareNames('b', 'a') > 0);
});
