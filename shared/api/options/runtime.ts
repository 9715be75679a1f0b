// containerd, cluster DNS and cloud settings (kOps pkg/model/components/
// containerd.go, kubedns.go, cloudconfiguration.go, aws.go, awsebscsidriver.go).
import { nthAddressOf } from '../cidr.js';
import type { Cluster } from '../types.js';
import { isIPv6Only } from './apiserver.js';
import type { OptionsContext } from './context.js';
import { child, isObject } from './merge.js';

export const DEFAULT_CONTAINERD_VERSION = '2.3.4';
export const DEFAULT_RUNC_VERSION = '1.4.3';
export const DEFAULT_SANDBOX_IMAGE = 'registry.k8s.io/pause:3.10.1';
export const DEFAULT_EBS_CSI_DRIVER_VERSION = 'v1.58.0';

export function buildContainerdOptions(cluster: Cluster, ctx: OptionsContext): void {
  const containerd = child(cluster.spec, 'containerd');
  if (!containerd.version) {
    containerd.version = DEFAULT_CONTAINERD_VERSION;
    containerd.runc = { version: DEFAULT_RUNC_VERSION };
  }
  containerd.logLevel = 'info';
  if (!containerd.sandboxImage) containerd.sandboxImage = ctx.remapImage(DEFAULT_SANDBOX_IMAGE);
  const gpu = containerd.nvidiaGPU;
  if (isObject(gpu) && gpu.enabled === true) {
    if (!gpu.package) gpu.package = 'nvidia-driver-535-server';
    if (!gpu.image) gpu.image = 'nvcr.io/nvidia/k8s-device-plugin:v0.17.3';
  }
  const gvisor = containerd.gvisor;
  if (isObject(gvisor) && gvisor.enabled === true && !gvisor.platform) gvisor.platform = 'systrap';
}

export function buildKubeDNSOptions(cluster: Cluster, ctx: OptionsContext): void {
  const spec = cluster.spec;
  const dns = child(spec, 'kubeDNS');
  if (!dns.provider) dns.provider = 'CoreDNS';
  if (!dns.cacheMaxSize) dns.cacheMaxSize = 1000;
  if (!dns.cacheMaxConcurrent) dns.cacheMaxConcurrent = 150;
  if (!dns.serverIP) dns.serverIP = nthAddressOf(String(spec.serviceClusterIPRange), 10);
  if (!dns.domain) dns.domain = spec.clusterDNSDomain;
  if (!dns.memoryRequest) dns.memoryRequest = '70Mi';
  if (!dns.cpuRequest) dns.cpuRequest = '100m';
  if (!dns.memoryLimit) dns.memoryLimit = '170Mi';
  if (isIPv6Only(cluster) && ctx.cloud === 'aws' && !(Array.isArray(dns.upstreamNameservers) && dns.upstreamNameservers.length > 0)) {
    dns.upstreamNameservers = ['fd00:ec2::253'];
  }
  const nodeLocal = child(dns, 'nodeLocalDNS');
  if (nodeLocal.enabled === undefined) nodeLocal.enabled = false;
  if (nodeLocal.enabled === true && !nodeLocal.localIP) nodeLocal.localIP = isIPv6Only(cluster) ? 'fd00:90de:d95::1' : '169.254.20.10';
  if (nodeLocal.enabled === true && nodeLocal.forwardToKubeDNS === undefined) nodeLocal.forwardToKubeDNS = false;
  if (!nodeLocal.memoryRequest) nodeLocal.memoryRequest = '5Mi';
  if (!nodeLocal.cpuRequest) nodeLocal.cpuRequest = '25m';
  if (nodeLocal.image === undefined) nodeLocal.image = 'registry.k8s.io/dns/k8s-dns-node-cache:1.26.0';
}

export function buildCloudConfigOptions(cluster: Cluster, ctx: OptionsContext): void {
  const cloudConfig = child(cluster.spec, 'cloudConfig');
  if (cloudConfig.manageStorageClasses === undefined) cloudConfig.manageStorageClasses = true;
  if (ctx.cloud !== 'aws') return;
  if (isIPv6Only(cluster) && !(Array.isArray(cloudConfig.nodeIPFamilies) && cloudConfig.nodeIPFamilies.length > 0)) {
    cloudConfig.nodeIPFamilies = ['ipv6', 'ipv4'];
  }
  const ebs = child(cloudConfig, 'awsEBSCSIDriver');
  if (ebs.version === undefined) ebs.version = DEFAULT_EBS_CSI_DRIVER_VERSION;
}
