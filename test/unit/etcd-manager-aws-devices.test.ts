// Device-name helpers of the aws volume provider, and the IMDS endpoint choice.
import t from 'tap';
import { devicePaths, deviceSlot, firstFreeDevice, nvmeByIdPath } from '../../agents/etcd-manager/volumes/aws-devices.js';
import { metadataEndpoint } from '../../shared/aws-imds.js';

t.test('device slots treat sdX and xvdX as one attachment point', async (t) => {
  t.equal(deviceSlot('/dev/xvdu'), 'u');
  t.equal(deviceSlot('/dev/sdu'), 'u');
  t.equal(deviceSlot('xvdu'), 'u');
  t.equal(deviceSlot('/dev/nvme1n1'), 'nvme1n1');
  t.equal(firstFreeDevice(['/dev/xvda']), '/dev/xvdu');
  t.equal(firstFreeDevice(['/dev/xvda', '/dev/sdu']), '/dev/xvdv');
  t.equal(firstFreeDevice(['/dev/xvdu'], ['/dev/xvdv']), '/dev/xvdw');
  t.equal(firstFreeDevice(['u', 'v', 'w', 'x', 'y', 'z'].map((l) => `/dev/sd${l}`)), undefined);
});

t.test('where an attachment shows up: NVMe by-id first, then the name and its alias', async (t) => {
  t.equal(nvmeByIdPath('/dev', 'vol-0123abcd'), '/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123abcd');
  t.same(devicePaths('/dev', 'vol-0123abcd', '/dev/xvdu'), [
    '/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123abcd', '/dev/xvdu', '/dev/sdu',
  ]);
  t.same(devicePaths('/tmp/d', 'vol-1', '/dev/sdv'), ['/tmp/d/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol1', '/tmp/d/sdv', '/tmp/d/xvdv']);
});

t.test('the IMDS endpoint follows the SDK\'s settings', async (t) => {
  t.equal(metadataEndpoint(undefined, {}), 'http://169.254.169.254');
  t.equal(metadataEndpoint(undefined, { AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE: 'IPv6' }), 'http://[fd00:ec2::254]');
  t.equal(metadataEndpoint(undefined, { AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:1234/' }), 'http://127.0.0.1:1234');
  t.equal(metadataEndpoint('http://127.0.0.1:9', { AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:1234' }), 'http://127.0.0.1:9');
  t.throws(() => metadataEndpoint(undefined, { AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE: 'v5' }), /want IPv4 or IPv6/);
});
