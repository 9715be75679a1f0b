// protokube's names from the state store: registrations named by
// instance@address@zone and judged by the store's clock; the one published
// object workers poll; what each poll costs (counted on a memfs store).
import t from 'tap';
import { clearMemfs, MemfsStore } from '../../shared/store/index.js';
import { logger } from '../../shared/log.js';
import { Metrics } from '../../agents/protokube/metrics.js';
import { ControlPlaneNames, PublishedNames, type Clock } from '../../agents/protokube/names/pollers.js';
import { parsePublished, PUBLISHED_PATH, renderPublished } from '../../agents/protokube/names/published.js';
import {
  parseRegistrationName,
  REGISTRATION_FOLDER,
  registrationName,
  sortAddresses,
  viewRegistrations,
} from '../../agents/protokube/names/registry.js';
import { countingStore } from '../harness/counting-store.js';

const log = logger('test');

t.test('registration names carry instance, address and zone; anything else is not a registration', async (t) => {
  for (const id of [{ name: 'cp-a', address: '10.0.0.1', zone: 'us-east-1a' }, { name: 'ip-10-0-0-2.ec2.internal', address: 'fd00::2', zone: '' }]) {
    t.same(parseRegistrationName(registrationName(id)), id, registrationName(id));
  }
  t.equal(registrationName({ name: 'cp-a', address: '10.0.0.1', zone: '' }), 'cp-a@10.0.0.1@-');
  for (const bad of ['cp-a@10.0.0.1', 'cp-a@10.0.0.300@-', 'cp a@10.0.0.1@-', '@10.0.0.1@-', 'cp-a@10.0.0.1@-@x', 'cp-a@10.0.0.1\napi.internal@-', '.hidden@10.0.0.1@-', 'names.json']) {
    t.equal(parseRegistrationName(bad), undefined, JSON.stringify(bad));
  }
});

t.test('live, silent and expired are judged against the store time, not the reader\'s clock', async (t) => {
  const self = { name: 'cp-a', address: '10.0.0.1', zone: 'a' };
  const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s));
  const listed = [
    { name: 'cp-a@10.0.0.1@a', modified: at(100) },
    { name: 'cp-b@10.0.0.2@b', modified: at(95) },
    { name: 'cp-c@10.0.0.3@c', modified: at(85) },
    { name: 'cp-d@10.0.0.4@c', modified: at(-20) },
    { name: 'cp-a@10.0.0.9@a', modified: at(10) },
    { name: 'not a registration', modified: at(100) },
  ].map((o) => ({ ...o, path: `${REGISTRATION_FOLDER}/${o.name}`, size: 10 }));
  const view = viewRegistrations(listed, self, at(100), 10_000, at(50));
  t.same(view.live.map((r) => r.name).sort(), ['cp-a', 'cp-b'], 'heard from within 10 s of the reference');
  t.same(view.silent.map((r) => r.name), ['cp-c'], 'silent past the TTL');
  t.same(view.expired.map((r) => r.name), ['cp-d'], 'silent past 10 × the TTL');
  t.same(view.pastSelf.map((r) => r.address), ['10.0.0.9'], 'this instance under an older address, before this process registered');
  t.same(view.foreign, ['not a registration']);
  t.same(sortAddresses(['10.0.0.10', 'fd00::1', '10.0.0.9', '9.0.0.1']), ['9.0.0.1', '10.0.0.9', '10.0.0.10', 'fd00::1']);
});

t.test('the published object: addresses only, checked before anything is believed', async (t) => {
  const text = renderPublished({ cluster: 'c.example.com', addresses: ['10.0.0.2', '10.0.0.1'] });
  t.equal(text, '{"apiVersion":"mooring.dev/v1alpha1","kind":"ControlPlaneAddresses","cluster":"c.example.com","addresses":["10.0.0.1","10.0.0.2"]}\n', 'the same view, the same bytes');
  t.same(parsePublished(Buffer.from(text), 'c.example.com').addresses, ['10.0.0.1', '10.0.0.2']);
  const doc = (o: object) => Buffer.from(JSON.stringify({ apiVersion: 'mooring.dev/v1alpha1', kind: 'ControlPlaneAddresses', cluster: 'c.example.com', addresses: ['10.0.0.1'], ...o }));
  t.throws(() => parsePublished(doc({ cluster: 'other.example.com' }), 'c.example.com'), /cluster: "other\.example\.com" is not this node's cluster/);
  t.throws(() => parsePublished(doc({ addresses: ['10.0.0.1\n1.2.3.4 evil.example.com'] }), 'c.example.com'), /addresses\[0\]: .* is not an IP address/, 'no line can be smuggled into the hosts file');
  t.throws(() => parsePublished(doc({ addresses: 'x' }), 'c.example.com'), /addresses: want a list/);
  t.throws(() => parsePublished(Buffer.from('{'), 'c.example.com'), /not JSON/);
  t.throws(() => parsePublished(Buffer.alloc(70 * 1024, 0x20), 'c.example.com'), /more than the 65536/);
});

class FakeClock implements Clock {
  ms = 0;
  now(): Date {
    return new Date(Date.UTC(2030, 0, 1) + this.ms);
  }
  monotonic(): number {
    return this.ms;
  }
}

t.test('a control-plane poll: one listing; its registration renewed every third of the TTL; published only on a change', async (t) => {
  clearMemfs('names-cp');
  const store = countingStore(new MemfsStore('memfs://names-cp/c.example.com'));
  const clock = new FakeClock();
  const a = new ControlPlaneNames(store, { name: 'cp-a', address: '10.0.0.1', zone: '' }, { cluster: 'c.example.com', ttlMs: 9000, log, metrics: new Metrics(), clock });
  t.same(await a.poll(), ['10.0.0.1']);
  t.same(
    { write: store.calls.write, listObjects: store.calls.listObjects, readIfChanged: store.calls.readIfChanged, createIfAbsent: store.calls.createIfAbsent, read: store.calls.read },
    { write: 1, listObjects: 1, readIfChanged: 1, createIfAbsent: 1, read: 0 },
    'first poll: register, read the published object, list, publish',
  );
  store.reset();
  clock.ms += 1000;
  t.same(await a.poll(), ['10.0.0.1']);
  t.same(
    { write: store.calls.write, listObjects: store.calls.listObjects, readIfChanged: store.calls.readIfChanged, replaceIfVersion: store.calls.replaceIfVersion },
    { write: 0, listObjects: 1, readIfChanged: 1, replaceIfVersion: 0 },
    'a quiet poll: one listing and one conditional read, no write',
  );
  clock.ms += 3000;
  store.reset();
  await a.poll();
  t.equal(store.calls.write, 1, 'renewed once a third of the TTL has passed');
  // Another instance registers (as its own process would).
  await store.write(`${REGISTRATION_FOLDER}/cp-b@10.0.0.2@-`, '{}');
  store.reset();
  t.same(await a.poll(), ['10.0.0.1', '10.0.0.2'], 'the new instance is live at the next poll');
  t.equal(store.calls.replaceIfVersion, 1, 'and the change is published, at the version read');
  t.same(JSON.parse((await store.read(PUBLISHED_PATH)).toString()).addresses, ['10.0.0.1', '10.0.0.2']);
  await a.deregister();
  t.notOk(await store.exists(`${REGISTRATION_FOLDER}/cp-a@10.0.0.1@-`), 'a clean stop removes the registration');
});

t.test('an instance whose listing is older than another\'s publish does not overwrite it', async (t) => {
  clearMemfs('names-race');
  const clock = new FakeClock();
  const options = { cluster: 'c.example.com', ttlMs: 9000, log, metrics: new Metrics(), clock };
  const b = new ControlPlaneNames(new MemfsStore('memfs://names-race/c'), { name: 'cp-b', address: '10.0.0.2', zone: '' }, options);
  let interleave: (() => Promise<void>) | undefined;
  const inner = new MemfsStore('memfs://names-race/c');
  // cp-a's store: right after cp-a has listed, cp-b registers and publishes (it sees both).
  const slow = Object.assign(Object.create(inner) as MemfsStore, {
    listObjects: async (prefix?: string) => {
      const listed = await inner.listObjects(prefix);
      const run = interleave;
      interleave = undefined;
      await run?.();
      return listed;
    },
  });
  const a = new ControlPlaneNames(slow, { name: 'cp-a', address: '10.0.0.1', zone: '' }, options);
  await a.poll();
  // Published: a and an instance gone since (no registration). cp-a will want to publish just itself.
  await inner.write(PUBLISHED_PATH, renderPublished({ cluster: 'c.example.com', addresses: ['10.0.0.1', '10.0.0.3'] }));
  interleave = async () => void (await b.poll());
  t.same(await a.poll(), ['10.0.0.1'], 'cp-a\'s listing predates cp-b');
  t.same(JSON.parse((await inner.read(PUBLISHED_PATH)).toString()).addresses, ['10.0.0.1', '10.0.0.2'], 'cp-b\'s newer view stays published');
  t.same(await a.poll(), ['10.0.0.1', '10.0.0.2'], 'and cp-a agrees at its next poll');
});

t.test('a worker poll: one conditional read; unchanged costs no body; a bad object is refused once and kept refused', async (t) => {
  clearMemfs('names-w');
  const store = countingStore(new MemfsStore('memfs://names-w/c.example.com'));
  const w = new PublishedNames(store, { cluster: 'c.example.com', metrics: new Metrics() });
  await t.rejects(w.poll(), /names\.json does not exist \(yet\)/);
  await store.write(PUBLISHED_PATH, renderPublished({ cluster: 'c.example.com', addresses: ['10.0.0.1'] }));
  store.reset();
  t.same(await w.poll(), ['10.0.0.1']);
  t.same(await w.poll(), ['10.0.0.1']);
  t.same(store.calls.readIfChanged, 2);
  t.equal(store.calls.read + store.calls.readIfExists + store.calls.list + store.calls.listObjects + store.calls.listChildren, 0, 'never a listing, never a plain read');
  await store.write(PUBLISHED_PATH, '{"apiVersion":"mooring.dev/v1alpha1","kind":"ControlPlaneAddresses","cluster":"c.example.com","addresses":["nope"]}');
  await t.rejects(w.poll(), /addresses\[0\]: "nope" is not an IP address/);
  await t.rejects(w.poll(), /addresses\[0\]/, 'still refused (the same bytes are not parsed again)');
});
