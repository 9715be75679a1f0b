// --etcd-binary-dir with two (and more) version directories made from Debian's
// etcd 3.4.23 (test/harness/etcd-binary-dirs.ts), the way the version-change
// end-to-end tests move a cluster between versions:
//  - the lookup finds <dir>/<version>/{etcd,etcdctl,etcdutl}, the manager's own
//    lookup runs the directory's etcd, and the check made before a change asks
//    every tool its version: a directory whose binaries say another version than
//    its name is refused, naming the file;
//  - real data moves between them: etcd of "3.4.23" writes, etcd of "3.5.17" on
//    the same data directory reads it (in place); a snapshot taken with 3.5.17's
//    etcdctl is restored with its etcdutl and read by 3.4.23's etcd (restore).
// Every etcd listens on its own 127.0.x.y, with mutual TLS, and is stopped by PID.
import t from 'tap';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { resolveEtcdBinary } from '../../agents/etcd-manager/etcd/binary.js';
import { checkBinaries, findEtcdBinaries, installedVersions, toolVersion } from '../../agents/etcd-manager/versions/binaries.js';
import { decideTransition } from '../../agents/etcd-manager/versions/transition.js';
import { parseEtcdVersion } from '../../agents/etcd-manager/versions/version.js';
import { binaryDirSkipReason, makeEtcdBinaryDir } from '../harness/etcd-binary-dirs.js';
import { loopbackNet } from '../harness/net.js';
import { tempDir } from '../harness/tmp.js';
import { makeTestPKI, startTestEtcd, type TestPKI } from '../harness/v2-etcd.js';

const OLD = '3.4.23';
const NEW = '3.5.17';

const tls = (pki: TestPKI) => [`--cacert=${pki.client.caFile}`, `--cert=${pki.client.certFile}`, `--key=${pki.client.keyFile}`];

t.test('version directories made from Debian\'s etcd 3.4.23', { skip: binaryDirSkipReason, timeout: 240_000 }, async (t) => {
  const dir = tempDir(t, 'etcd-binary-dirs-');
  const bins = await makeEtcdBinaryDir(join(dir, 'bins'), [OLD, NEW, '3.6.4', '3.5.16'], { '3.5.16': { reports: NEW } });

  await t.test('lookup and the check before a change', async (t) => {
    t.same((await installedVersions(bins)).map((v) => v.text), [OLD, '3.5.16', NEW, '3.6.4']);
    t.same(await findEtcdBinaries(NEW, bins), { version: NEW, etcd: join(bins, NEW, 'etcd'), etcdctl: join(bins, NEW, 'etcdctl'), etcdutl: join(bins, NEW, 'etcdutl') });
    t.same(await findEtcdBinaries(OLD, bins), { version: OLD, etcd: join(bins, OLD, 'etcd'), etcdctl: join(bins, OLD, 'etcdctl') }, 'no etcdutl before 3.5');
    t.equal(await resolveEtcdBinary(NEW, bins), join(bins, NEW, 'etcd'), 'the manager runs the directory\'s etcd');
    for (const [tool, version] of [['etcd', NEW], ['etcdctl', NEW], ['etcdutl', NEW], ['etcd', OLD], ['etcdctl', OLD]] as const) {
      t.equal(await toolVersion(tool, join(bins, version, tool), parseEtcdVersion(version)), version, `${version}/${tool} says ${version}`);
    }
    t.equal(await toolVersion('etcd', '/usr/bin/etcd', parseEtcdVersion(OLD)), OLD, 'and the real one says what it is');

    // Each transition's tools, asked for real.
    const upgrade = await checkBinaries(decideTransition(OLD, NEW), bins);
    t.equal(upgrade.get(NEW)?.etcd, join(bins, NEW, 'etcd'), 'in place 3.4 → 3.5: the new etcd');
    const downgrade = await checkBinaries(decideTransition(NEW, OLD), bins);
    t.equal(downgrade.get(OLD)?.etcdctl, join(bins, OLD, 'etcdctl'), 'restore 3.5 → 3.4: etcd and etcdctl of 3.4');
    const skip = await checkBinaries(decideTransition(OLD, '3.6.4'), bins);
    t.equal(skip.get('3.6.4')?.etcdutl, join(bins, '3.6.4', 'etcdutl'), 'restore 3.4 → 3.6 (a skipped minor): etcdutl of 3.6');
    // A directory whose binaries are another version is refused before anything moves.
    await t.rejects(checkBinaries(decideTransition('3.4.23', '3.5.16'), bins), { name: 'VersionError', kind: 'no-binary', message: `no etcd 3.5.16 for the members after the change: ${join(bins, '3.5.16', 'etcd')} says it is ${NEW}` });
    const noUtl = await makeEtcdBinaryDir(join(dir, 'no-utl'), ['3.6.4'], { '3.6.4': { without: ['etcdutl'] } });
    await t.rejects(checkBinaries(decideTransition(OLD, '3.6.4'), noUtl), { kind: 'no-binary', message: `no etcdutl 3.6.4 for the snapshot restore: ${join(noUtl, '3.6.4', 'etcdutl')} is missing` });
  });

  await t.test('real data moves between the two directories: in place, and by snapshot restore', async (t) => {
    const ip = loopbackNet();
    const pki = await makeTestPKI(join(dir, 'pki'), [ip(1), ip(2)]);
    const dataDir = join(dir, 'member-a');
    const etcdctl = async (version: string, endpoint: string, args: string[]) =>
      execa(join(bins, version, 'etcdctl'), [`--endpoints=${endpoint}`, ...tls(pki), ...args], { env: { ETCDCTL_API: '3' }, timeout: 60_000 });

    const old = await startTestEtcd(t, { name: 'a', ip: ip(1), dataDir, pki, binary: join(bins, OLD, 'etcd') });
    t.equal(readlinkSync(`/proc/${old.pid}/exe`), '/usr/bin/etcd', 'the PID started is etcd itself (the scripts exec), so it can be stopped by PID');
    for (let i = 0; i < 20; i++) await etcdctl(OLD, old.endpoint, ['put', `/registry/k${i}`, `value ${i} of ${OLD}`]);
    const snapshot = join(dir, 'snap.db');
    await etcdctl(OLD, old.endpoint, ['snapshot', 'save', snapshot]);
    await old.stop();

    // In place: the same data directory under the "new" version's etcd.
    const moved = await startTestEtcd(t, { name: 'a', ip: ip(1), dataDir, pki, binary: join(bins, NEW, 'etcd') });
    const got = await etcdctl(NEW, moved.endpoint, ['get', '/registry/', '--prefix', '--print-value-only']);
    t.equal(got.stdout.split('\n').filter(Boolean).length, 20, `${NEW}'s etcd reads the ${OLD} data in place`);
    await etcdctl(NEW, moved.endpoint, ['put', '/registry/after', NEW]);
    await moved.stop();

    // Restore: the snapshot restored by 3.5.17's etcdutl into a new directory, served by 3.4.23's etcd.
    const restored = join(dir, 'member-b');
    const peer = `http://${ip(2)}:2380`;
    const status = await execa(join(bins, NEW, 'etcdutl'), ['snapshot', 'status', snapshot, '-w', 'json'], { timeout: 60_000 });
    t.match(JSON.parse(status.stdout), { totalKey: Number }, 'etcdutl snapshot status');
    await execa(join(bins, NEW, 'etcdutl'), ['snapshot', 'restore', snapshot, `--data-dir=${restored}`, '--name=b', `--initial-cluster=b=${peer}`, `--initial-advertise-peer-urls=${peer}`, '--initial-cluster-token=restored'], { timeout: 60_000 });
    const back = await startTestEtcd(t, { name: 'b', ip: ip(2), dataDir: restored, pki, binary: join(bins, OLD, 'etcd') });
    const values = (await etcdctl(OLD, back.endpoint, ['get', '/registry/', '--prefix', '--print-value-only'])).stdout.split('\n').filter(Boolean);
    t.equal(values.length, 20, 'the snapshot\'s 20 keys, restored');
    t.notOk(values.includes(NEW), 'and not what was written after it');
    await back.stop();
  });
});
