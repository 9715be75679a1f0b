// How long the aws volume provider takes to give up on an endpoint that never
// answers, against the least that its settings allow, measured in the same run:
//   a. claim() with EC2 silent (accepts connections, never replies), at
//      requestTimeoutMs 500 and maxAttempts 2;
//   b. identity() with the instance metadata service silent, at timeoutMs 500
//      and attempts 2;
// reference for both: two bare fetch() attempts, each cut off by a 500 ms
// AbortSignal.timeout, at the same kind of silent listener. The ratio is what
// the provider adds on top: the SDK's retry backoff, IMDS' jittered backoff,
// the token and identity requests before EC2 is reached. (The tests check the
// mechanism, attempt counts and error kinds; this is the only place the time is.)
// Everything listens on 127.0.0.1; the listeners are closed at the end.
// Run: node_modules/.bin/tsx bench/aws-volumes.ts   (MOORING_BENCH_REPS=5)
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { AwsVolumeProvider } from '../agents/etcd-manager/volumes/aws.js';
import { InstanceMetadata } from '../shared/aws-imds.js';
import { configureLogging, logger } from '../shared/log.js';
import { startEC2Server, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY } from '../test/harness/ec2-server.js';

const REPS = Number(process.env.MOORING_BENCH_REPS ?? 5);
const TIMEOUT_MS = 500;
const ATTEMPTS = 2;

/** A listener that accepts every connection and never writes a byte. */
async function silentListener(): Promise<{ url: string; close: () => void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      for (const sock of sockets) sock.destroy();
      server.close();
    },
  };
}

async function timeToFailure(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  const outcome = await run().then(() => 'succeeded', () => 'failed');
  if (outcome !== 'failed') throw new Error('bench: expected a failure against a silent endpoint');
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

configureLogging({ format: 'json', write: () => undefined });
const ec2 = await startEC2Server();
const silent = await silentListener();
try {
  const instance = await ec2.addInstance({ availabilityZone: `${TEST_REGION}a` });
  const subjects: { label: string; run: () => Promise<unknown> }[] = [
    {
      label: `reference: ${ATTEMPTS} bare fetch attempts, ${TIMEOUT_MS} ms timeout each`,
      run: async () => {
        for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
          await fetch(silent.url, { method: 'POST', body: 'x', signal: AbortSignal.timeout(TIMEOUT_MS) }).catch((err: unknown) => {
            if (attempt === ATTEMPTS) throw err;
          });
        }
      },
    },
    {
      label: `a. claim(), EC2 silent (requestTimeoutMs ${TIMEOUT_MS}, maxAttempts ${ATTEMPTS})`,
      run: async () => {
        const provider = new AwsVolumeProvider({
          kubernetesClusterName: 'bench.example.com', tagFilters: [], nameTag: 'k8s.io/etcd/main', mountRoot: '/nonexistent/mnt',
          log: logger('bench'), endpoint: silent.url, region: TEST_REGION,
          credentials: { accessKeyId: TEST_ACCESS_KEY, secretAccessKey: TEST_SECRET_KEY },
          metadata: { endpoint: instance.imdsEndpoint, timeoutMs: 1000 },
          requestTimeoutMs: TIMEOUT_MS, maxAttempts: ATTEMPTS,
        });
        try {
          await provider.claim();
        } finally {
          provider.destroy();
        }
      },
    },
    {
      label: `b. identity(), IMDS silent (timeoutMs ${TIMEOUT_MS}, attempts ${ATTEMPTS})`,
      run: () => new InstanceMetadata({ endpoint: silent.url, timeoutMs: TIMEOUT_MS, attempts: ATTEMPTS }).identity(),
    },
  ];
  const samples = new Map(subjects.map((s) => [s, [] as number[]]));
  // One warm-up round (loads the SDK), then REPS rounds, interleaved so machine load hits all alike.
  for (let round = 0; round <= REPS; round++) {
    for (const subject of subjects) {
      const ms = await timeToFailure(subject.run);
      if (round > 0) samples.get(subject)?.push(ms);
    }
  }
  const reference = median(samples.get(subjects[0]) ?? []);
  console.log(`give-up time against a silent endpoint, median of ${REPS} (after one warm-up round):`);
  for (const subject of subjects) {
    const ms = median(samples.get(subject) ?? []);
    console.log(`  ${subject.label.padEnd(66)} ${ms.toFixed(0).padStart(6)} ms  ${(ms / reference).toFixed(2)}x reference`);
  }
} finally {
  silent.close();
  await ec2.close();
}
