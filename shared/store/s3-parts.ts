// Streaming a body of unknown length into S3 in parts, with two part buffers
// allocated once and reused: one fills while the other uploads.
//
// Why not @aws-sdk/lib-storage's Upload: it joins the stream's chunks into a new
// buffer for every part (Buffer.concat), so a 600 MiB backup left ~75 dead 8 MiB
// buffers behind it. V8 only collects those when its external-memory limit
// (~64 MiB) is crossed, so the backup library's RSS rose by ~60 MiB during a
// 1.2 GB backup into S3 against ~11 MiB into a file:// store (the binary's
// `__backup-footprint`, 2026-12-01; agents/etcd-manager/README.md, "Backups and restores").
// Here the parts are copies into the same 2 × partSize bytes, whatever the size.
//
// Contract, as StateStore.writeStream promises: the object appears whole or not
// at all. A body smaller than one part is a single PUT; a longer one a multipart
// upload that is completed only after every byte was read and every part stored,
// and aborted (after the part in flight has settled, as S3 asks) on any failure.

/** The S3 calls a parted upload makes, bound to one bucket and key. */
export interface PartTarget {
  /** PutObject of the whole body (it fitted in one part). */
  put(body: Buffer): Promise<void>;
  /** CreateMultipartUpload; resolves to the upload id. */
  create(): Promise<string>;
  /** UploadPart; resolves to the part's ETag. `body` is reused once this settles. */
  uploadPart(uploadId: string, partNumber: number, body: Buffer): Promise<string>;
  complete(uploadId: string, parts: Array<{ PartNumber: number; ETag: string }>): Promise<void>;
  abort(uploadId: string): Promise<void>;
}

/**
 * S3's smallest part (but the last): 5 MiB, so the two part buffers hold 10 MiB.
 * 8 MiB parts (16 MiB of buffers) made a backup's RSS peak ~9 MiB higher (a 615 MiB
 * snapshot into s3rver, 2 runs each: +37 MiB over the process's start against +28)
 * at the same speed. 10,000 parts of 5 MiB: up to ~48 GiB stored, against etcd's
 * 8 GiB largest database.
 */
export const PART_SIZE = 5 * 1024 * 1024;

/** Reads `source` to its end into `target`; resolves to the bytes stored. */
export async function uploadInParts(source: AsyncIterable<Buffer>, target: PartTarget, partSize = PART_SIZE): Promise<number> {
  const buffers = [Buffer.allocUnsafe(partSize), Buffer.allocUnsafe(partSize)];
  let current = 0;
  let filled = 0;
  let total = 0;
  let uploadId: string | undefined;
  const etags: string[] = [];
  let inFlight: Promise<void> | undefined;

  /** Hands the current buffer's bytes to S3 as the next part, once the other buffer's upload is done. */
  const sendPart = async (): Promise<void> => {
    await inFlight;
    uploadId ??= await target.create();
    const partNumber = etags.length + 1;
    etags.push('');
    const body = buffers[current].subarray(0, filled);
    inFlight = target.uploadPart(uploadId, partNumber, body).then((etag) => {
      etags[partNumber - 1] = etag;
    });
    inFlight.catch(() => undefined); // awaited before the next part, at the end, or before an abort
    current ^= 1;
    filled = 0;
  };

  try {
    for await (const chunk of source) {
      total += chunk.length;
      for (let at = 0; at < chunk.length; ) {
        const copied = chunk.copy(buffers[current], filled, at);
        filled += copied;
        at += copied;
        if (filled === partSize) await sendPart();
      }
    }
    if (etags.length === 0) {
      // It all fitted in one buffer: one PUT, no multipart upload.
      await target.put(buffers[current].subarray(0, filled));
      return total;
    }
    if (filled > 0) await sendPart();
    await inFlight;
    await target.complete(uploadId as string, etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })));
    return total;
  } catch (err) {
    await inFlight?.catch(() => undefined);
    if (uploadId !== undefined) await target.abort(uploadId).catch(() => undefined);
    throw err;
  }
}
