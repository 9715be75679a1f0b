// The managers' backups and restores with three real managers and etcd 3.4.23
// on the s3rver store (the SDK's multipart uploads, one listing per retention pass counted from its request log): the scenario in test/harness/backup-controller-scenario.ts.
import t from 'tap';
import { existsSync } from 'node:fs';
import { SYSTEM_ETCD } from '../../agents/etcd-manager/etcd/binary.js';
import { SYSTEM_ETCDCTL } from '../../agents/etcd-manager/backup/etcdctl.js';
import { backupControllerScenario } from '../harness/backup-controller-scenario.js';

const skip = !existsSync(SYSTEM_ETCD) ? `${SYSTEM_ETCD} is not installed` : !existsSync(SYSTEM_ETCDCTL.binary) ? `${SYSTEM_ETCDCTL.binary} is not installed` : false;
t.setTimeout(900_000);

t.test('backups, requests, restore and refusal by three managers (s3rver)', { skip, timeout: 840_000 }, (t) => backupControllerScenario(t, 's3'));
