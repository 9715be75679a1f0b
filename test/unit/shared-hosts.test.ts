// The guarded-block writer every agent shares (shared/hosts.ts): one block,
// where it stood; hand damage repaired without taking anyone's line; every
// other byte kept; written atomically with the file's mode; read back.
import t from 'tap';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBlocks, renderHostsBlock, updateHostsBlock } from '../../shared/hosts.js';
import { tempDir } from '../harness/tmp.js';

const M = { begin: '# Begin test block', end: '# End test block' };
const entries = [{ address: '10.0.0.2', names: ['api.internal.c'] }, { address: '10.0.0.1', names: ['api.internal.c'] }];
const ours = `${M.begin}\n10.0.0.1\tapi.internal.c\n10.0.0.2\tapi.internal.c\n${M.end}\n`;

t.test('rendering', async (t) => {
  t.equal(renderHostsBlock('127.0.0.1 localhost\n', M, entries), `127.0.0.1 localhost\n${ours}`, 'added at the end when there is none');
  t.equal(renderHostsBlock(`a\n${M.begin}\n1.1.1.1 api.internal.c\n${M.end}\nb\n`, M, entries), `a\n${ours}b\n`, 'replaced where it stood');
  t.equal(renderHostsBlock(`a\n${M.begin}\n1.1.1.1 x\n${M.end}\nb\n${M.begin}\n2.2.2.2 y\n${M.end}\n`, M, entries), `a\n${ours}b\n`, 'duplicates collapse into the first');
  t.equal(renderHostsBlock(`a\n${M.begin}\n1.1.1.1\tapi.internal.c\n9.9.9.9 someone-else\nb\n`, M, entries), `a\n${ours}9.9.9.9 someone-else\nb\n`, 'a torn block takes only lines of names it owns');
  t.equal(renderHostsBlock(`a\n${M.end}\nb\n`, M, entries), `a\nb\n${ours}`, 'a stray end marker goes');
  t.equal(renderHostsBlock(`a\r\n  ${M.begin}  \r\nold\r\n${M.end}\r\nb\r\n`, M, entries), `a\r\n${ours}b\r\n`, 'markers found with blanks and CRs around them; other lines keep their CRs');
  t.equal(renderHostsBlock(`a\n${ours}b`, M, []), 'a\nb\n', 'no entries: the block goes, the rest stays');
  t.equal(renderHostsBlock('', M, []), '');
  t.same(findBlocks(`${ours}${ours}`, M), [['10.0.0.1\tapi.internal.c', '10.0.0.2\tapi.internal.c'], ['10.0.0.1\tapi.internal.c', '10.0.0.2\tapi.internal.c']]);
});

t.test('updating a real file: atomic, mode kept, read back, reports what it did', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'hosts');
  writeFileSync(path, `127.0.0.1 localhost\n${M.begin}\nold\n${M.end}\n${M.begin}\nolder\n${M.end}\n`, { mode: 0o640 });
  const first = await updateHostsBlock(path, M, entries);
  t.same(first, { changed: true, blocksFound: 2, repaired: false, retries: 0 });
  t.equal(readFileSync(path, 'utf8'), `127.0.0.1 localhost\n${ours}`);
  t.equal(statSync(path).mode & 0o777, 0o640, 'mode kept');
  t.same(await updateHostsBlock(path, M, entries), { changed: false, blocksFound: 1, repaired: false, retries: 0 }, 'nothing to change: not written');
  t.same(readdirSync(dir), ['hosts'], 'no temp file left');
  const missing = join(dir, 'new-hosts');
  await updateHostsBlock(missing, M, entries);
  t.equal(readFileSync(missing, 'utf8'), ours, 'a missing file is created');
});
