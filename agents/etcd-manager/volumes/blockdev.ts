// Loop devices, filesystems and mounts now live in shared/volumes/blockdev.ts
// (mooring's local cloud cleans up the same loop devices); kept here so
// etcd-manager's code and tests import them from where they always did.
export * from '../../../shared/volumes/blockdev.js';
