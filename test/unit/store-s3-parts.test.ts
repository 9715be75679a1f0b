// uploadInParts (shared/store/s3-parts.ts) against a recording S3 double: the
// parts put together are the body whatever its chunking; a part's bytes never
// change while its upload is in flight (the two buffers are reused); a body
// under one part is one PUT; any failure aborts the upload after the part in
// flight settled and never completes it. The real S3 calls run against s3rver
// in test/integration/store.test.ts.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { uploadInParts, type PartTarget } from '../../shared/store/s3-parts.js';

interface Recorded {
  calls: string[];
  parts: Map<number, Buffer>;
  put?: Buffer;
  completed?: Array<{ PartNumber: number; ETag: string }>;
  /** Parts whose body changed between the call and the moment its upload finished. */
  overwritten: number[];
  mostInFlight: number;
}

/** Uploads take `delayMs` (so the next part fills meanwhile); `failPart` rejects that part. */
function recordingTarget(o: { delayMs?: number; failPart?: number; failCreate?: boolean } = {}): { target: PartTarget; rec: Recorded } {
  const rec: Recorded = { calls: [], parts: new Map(), overwritten: [], mostInFlight: 0 };
  let inFlight = 0;
  const target: PartTarget = {
    async put(body) {
      rec.calls.push('put');
      rec.put = Buffer.from(body);
    },
    async create() {
      rec.calls.push('create');
      if (o.failCreate) throw new Error('create refused');
      return 'upload-1';
    },
    async uploadPart(uploadId, partNumber, body) {
      rec.calls.push(`part ${partNumber}`);
      const copy = Buffer.from(body);
      inFlight++;
      rec.mostInFlight = Math.max(rec.mostInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, o.delayMs ?? 5));
      inFlight--;
      if (!copy.equals(body)) rec.overwritten.push(partNumber);
      if (partNumber === o.failPart) throw new Error(`part ${partNumber} refused`);
      rec.parts.set(partNumber, copy);
      return `"etag-${uploadId}-${partNumber}"`;
    },
    async complete(_uploadId, parts) {
      rec.calls.push('complete');
      rec.completed = parts;
    },
    async abort() {
      rec.calls.push(`abort (in flight: ${inFlight})`);
    },
  };
  return { target, rec };
}

function chunked(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length];
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('parts put together are the body, in order, and none changes in flight', async (t) => {
  const partSize = 64 * 1024;
  for (const [bytes, sizes] of [[10 * partSize + 123, [1000, 77_777, 5]], [3 * partSize, [partSize]], [partSize + 1, [partSize * 2]]] as Array<[number, number[]]>) {
    const data = randomBytes(bytes);
    const { target, rec } = recordingTarget();
    t.equal(await uploadInParts(Readable.from(chunked(data, sizes)), target, partSize), bytes, 'returns the bytes read');
    const expectedParts = Math.ceil(bytes / partSize);
    t.same(rec.completed?.map((p) => p.PartNumber), Array.from({ length: expectedParts }, (_, i) => i + 1), `${expectedParts} parts, numbered 1..n`);
    t.same(rec.completed?.map((p) => p.ETag), rec.completed?.map((p) => `"etag-upload-1-${p.PartNumber}"`), 'each part\'s own ETag');
    const joined = Buffer.concat([...rec.parts.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b));
    t.equal(sha(joined), sha(data), 'the parts are the body');
    t.ok([...rec.parts.entries()].every(([n, b]) => n === expectedParts || b.length === partSize), 'every part but the last is full');
    t.same(rec.overwritten, [], 'no part\'s bytes changed while it was uploading');
    t.ok(rec.mostInFlight <= 1, 'one part upload at a time');
    t.equal(rec.calls[0], 'create');
    t.equal(rec.calls.at(-1), 'complete');
  }
});

t.test('a body under one part is a single PUT', async (t) => {
  for (const bytes of [0, 1, 1000]) {
    const data = randomBytes(bytes);
    const { target, rec } = recordingTarget();
    t.equal(await uploadInParts(Readable.from(chunked(data, [7])), target, 4096), bytes);
    t.same(rec.calls, ['put'], `${bytes} bytes: one PUT, no multipart upload`);
    t.ok(rec.put?.equals(data), 'with the body');
  }
});

t.test('a refused part aborts the upload once nothing is in flight, and never completes it', async (t) => {
  const { target, rec } = recordingTarget({ failPart: 3, delayMs: 20 });
  await t.rejects(uploadInParts(Readable.from(chunked(randomBytes(10 * 4096), [1000])), target, 4096), /part 3 refused/);
  t.notOk(rec.calls.includes('complete'), 'not completed');
  t.equal(rec.calls.at(-1), 'abort (in flight: 0)', 'aborted last, after the part in flight settled');
});

t.test('a failing source aborts the upload', async (t) => {
  const { target, rec } = recordingTarget({ delayMs: 20 });
  async function* broken() {
    yield randomBytes(3 * 4096);
    throw new Error('snapshot stream broke');
  }
  await t.rejects(uploadInParts(broken(), target, 4096), /snapshot stream broke/);
  t.notOk(rec.calls.includes('complete'));
  t.equal(rec.calls.at(-1), 'abort (in flight: 0)');
});

t.test('a refused create is the error, and there is nothing to abort', async (t) => {
  const { target, rec } = recordingTarget({ failCreate: true });
  await t.rejects(uploadInParts(Readable.from([randomBytes(8192)]), target, 4096), /create refused/);
  t.same(rec.calls, ['create']);
});
