// Following NextToken: the end of a Describe call is a reply without a token,
// never a short page; a repeated token is an error, not an endless loop.
import t from 'tap';
import { allPages, type Page } from '../../agents/etcd-manager/volumes/aws-pages.js';

/** Replies in order, recording the token each request carried. */
function replies<T>(pages: Page<T>[]): { fetch: (token: string | undefined) => Promise<Page<T>>; asked: (string | undefined)[] } {
  const asked: (string | undefined)[] = [];
  let next = 0;
  return {
    asked,
    fetch: async (token) => {
      asked.push(token);
      const page = pages[next++];
      if (!page) throw new Error(`asked for page ${next} of ${pages.length}`);
      return page;
    },
  };
}

t.test('follows every token, through short and empty pages, to the reply without one', async (t) => {
  const r = replies([
    { items: ['a', 'b'], nextToken: 't1' },
    { items: [], nextToken: 't2' },
    { items: ['c'], nextToken: 't3' },
    { items: [] },
  ]);
  t.same(await allPages('test', r.fetch), ['a', 'b', 'c']);
  t.same(r.asked, [undefined, 't1', 't2', 't3'], 'each request carried the previous reply\'s token');
});

t.test('an empty-string token ends the listing like an absent one', async (t) => {
  const r = replies([{ items: [1], nextToken: 't1' }, { items: [2], nextToken: '' }]);
  t.same(await allPages('test', r.fetch), [1, 2]);
  t.equal(r.asked.length, 2);
});

t.test('a token the endpoint already gave is refused instead of looping', async (t) => {
  const r = replies([{ items: [1], nextToken: 'x' }, { items: [2], nextToken: 'y' }, { items: [3], nextToken: 'x' }]);
  await t.rejects(allPages('aws volumes: EC2 DescribeVolumes at http://ec2.test', r.fetch), {
    message: 'aws volumes: EC2 DescribeVolumes at http://ec2.test: the reply repeated an earlier NextToken (after 3 pages); stopping instead of looping',
  });
  t.equal(r.asked.length, 3, 'no fourth request');
});

t.test('a failing page fails the whole listing', async (t) => {
  let calls = 0;
  await t.rejects(allPages('test', async (token) => {
    calls++;
    if (token === 't1') throw new Error('InvalidParameterValue: the token is invalid');
    return { items: [1], nextToken: 't1' };
  }), /the token is invalid/);
  t.equal(calls, 2);
});
