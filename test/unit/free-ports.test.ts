// Free ports for etcd: freePorts (product: the migration's throwaway etcd)
// gives distinct ports in one call, and the test harness's freePort never
// gives a port twice to one process. One at a time, the kernel hands ports it
// gave before out again (CI run 27: an etcd's client and quarantine ports were
// the same, 36457); 400 plain probes on one address repeat a port most of the time.
import t from 'tap';
import { freePorts } from '../../agents/etcd-manager/etcd/free-ports.js';
import { freePort, loopbackNet } from '../harness/net.js';

t.test('freePorts: distinct ports in one call, each free', async (t) => {
  const host = loopbackNet()(1);
  const ports = await freePorts(host, 50);
  t.equal(ports.length, 50);
  t.equal(new Set(ports).size, 50, 'all distinct');
  const again = await freePorts(host, 1);
  t.equal(again.length, 1, 'the listeners were closed: the address still hands out ports');
});

t.test('the harness freePort: never the same port twice in one process', async (t) => {
  const host = loopbackNet()(2);
  const ports: number[] = [];
  for (let i = 0; i < 400; i++) ports.push(await freePort(host));
  t.equal(new Set(ports).size, ports.length, `400 ports, all distinct`);
});
