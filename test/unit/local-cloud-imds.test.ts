// The local cloud's metadata service speaks IMDSv2 as the clients on an
// instance expect it: etcd-manager's own IMDS client (the aws provider's) and
// the AWS SDK's instance-metadata credential provider both work against it,
// unchanged, and it refuses what EC2's refuses (no token, bad TTL). Served on
// 127.0.0.1 here; the instance is known by that source address.
import t from 'tap';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromInstanceMetadata } from '@smithy/credential-provider-imds';
import { InstanceMetadata } from '../../agents/etcd-manager/volumes/aws-imds.js';
import { metadataHandler } from '../../agents/mooring/cloud/local/imds.js';
import { ROLE_NAME, S3_KEYS } from '../../agents/mooring/cloud/local/plan.js';
import type { InstanceRecord } from '../../agents/mooring/cloud/local/records.js';
import { configureLogging, logger } from '../../shared/log.js';

configureLogging({ write: () => undefined });

const record: InstanceRecord = {
  id: 'i-0123456789abcdef0', cluster: 'c.example.com', instanceGroup: 'control-plane-local-a', role: 'ControlPlane',
  zone: 'local-a', address: '127.0.0.1', netns: 'unused', veth: 'unused', imageDir: '/unused', createdAt: new Date().toISOString(),
};

t.test('IMDSv2 for one instance, known by its source address', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mooring-imds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const userData = join(dir, 'user-data');
  writeFileSync(userData, '#!/bin/bash\necho hello\n');
  const server = createServer(metadataHandler({ instanceAt: async (a) => (a === record.address ? { record, userDataPath: userData } : undefined) }, logger('test')));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const port = (server.address() as { port: number }).port;
  const endpoint = `http://127.0.0.1:${port}`;

  const noToken = await fetch(`${endpoint}/latest/meta-data/instance-id`);
  t.equal(noToken.status, 401, 'no IMDSv1: a GET without a token is refused');
  const badTTL = await fetch(`${endpoint}/latest/api/token`, { method: 'PUT' });
  t.equal(badTTL.status, 400, 'a token needs its TTL header');
  const token = await (await fetch(`${endpoint}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
  const get = async (path: string) => fetch(`${endpoint}${path}`, { headers: { 'X-aws-ec2-metadata-token': token } });
  t.equal(await (await get('/latest/meta-data/local-ipv4')).text(), '127.0.0.1');
  t.equal(await (await get('/latest/user-data')).text(), '#!/bin/bash\necho hello\n', 'user-data byte for byte');
  t.match(await (await get('/latest/meta-data/')).text(), /^instance-id$/m, 'a listing of the metadata');
  t.equal((await get('/latest/meta-data/no-such-thing')).status, 404);
  t.equal((await fetch(`${endpoint}/latest/meta-data/instance-id`, { headers: { 'X-aws-ec2-metadata-token': 'forged' } })).status, 401, 'an unknown token is refused');

  // etcd-manager's client, as the aws volume provider uses it.
  const identity = await new InstanceMetadata({ endpoint }).identity();
  t.same(identity, { instanceId: record.id, availabilityZone: 'local-a', region: 'local' });

  // The AWS SDK's credential chain step for EC2 instances finds the role's credentials.
  const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = endpoint;
  t.teardown(() => {
    if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
  });
  const credentials = await fromInstanceMetadata({ timeout: 2000, maxRetries: 0 })();
  t.equal(credentials.accessKeyId, S3_KEYS.accessKeyId);
  t.equal(credentials.secretAccessKey, S3_KEYS.secretAccessKey);
  t.ok(credentials.expiration && credentials.expiration.getTime() > Date.now(), 'with an expiry in the future');
  t.equal(await (await get('/latest/meta-data/iam/security-credentials/')).text(), ROLE_NAME);
});

t.test('an address that is no instance gets nothing', async (t) => {
  const server = createServer(metadataHandler({ instanceAt: async () => undefined }, logger('test')));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const port = (server.address() as { port: number }).port;
  const r = await fetch(`http://127.0.0.1:${port}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } });
  t.equal(r.status, 404);
});
