// Conditional writes for the local cloud's state store. s3rver accepts
// `If-None-Match: *` and `If-Match: <etag>` on PUT and DELETE and then writes
// anyway, so mooring's writer lock (shared/store/lock.ts) could not keep two
// writers apart on it, and `update cluster --yes` rightly refuses such a store.
// AWS S3 honours them; so does this layer, in front of s3rver's router: a
// conditional PUT or DELETE of an object checks its precondition and performs
// the write while holding that key's turn, so two conditional writers of one
// key are served one after the other, as S3 serializes them.
import type { S3rverContext, S3rverMiddleware, S3rverStore } from 's3rver';

/** The object's ETag (quoted, as S3 sends it), or undefined when there is no such object. */
async function currentETag(store: S3rverStore, bucket: string, key: string): Promise<string | undefined> {
  try {
    return (await store.getMetadata(bucket, key)).etag;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** An ETag as a client may quote it (`"abc"`, `W/"abc"`, `abc`), reduced to its value. */
function etagValue(etag: string): string {
  return etag.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** Why the precondition fails, or undefined when the write may go ahead. */
export function preconditionProblem(
  headers: { ifNoneMatch?: string; ifMatch?: string },
  etag: string | undefined,
): { status: 412 | 404; code: string; message: string; condition?: string } | undefined {
  if (headers.ifNoneMatch !== undefined) {
    // S3 takes only `*` here: create the object if, and only if, there is none.
    if (headers.ifNoneMatch.trim() !== '*') return { status: 412, code: 'NotImplemented', message: 'If-None-Match takes only *' };
    if (etag !== undefined) return { status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold', condition: 'If-None-Match' };
  }
  if (headers.ifMatch !== undefined) {
    if (etag === undefined) return { status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.' };
    const wanted = headers.ifMatch.split(',').map(etagValue);
    if (!wanted.includes('*') && !wanted.includes(etagValue(etag))) {
      return { status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold', condition: 'If-Match' };
    }
  }
  return undefined;
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Bucket and key of a path-style object URL (`/bucket/key...`), or undefined for anything else. */
function objectOf(path: string): { bucket: string; key: string } | undefined {
  const m = /^\/([^/]+)\/(.+)$/.exec(path);
  if (!m) return undefined;
  try {
    return { bucket: decodeURIComponent(m[1]!), key: decodeURIComponent(m[2]!) };
  } catch {
    return undefined; // a malformed escape: s3rver answers it
  }
}

/** The middleware; insert it into s3rver's stack before its router (after the virtual-host rewrite). */
export function conditionalWrites(store: S3rverStore): S3rverMiddleware {
  // The last turn taken per key: each conditional write waits for the one before it.
  const turns = new Map<string, Promise<void>>();
  return async (ctx: S3rverContext, next: () => Promise<void>): Promise<void> => {
    const ifNoneMatch = ctx.get('if-none-match') || undefined;
    const ifMatch = ctx.get('if-match') || undefined;
    const object = (ctx.method === 'PUT' || ctx.method === 'DELETE') && (ifNoneMatch !== undefined || ifMatch !== undefined) ? objectOf(ctx.path) : undefined;
    // The AWS SDK names the operation in `x-id`; any other query (a multipart part, ACLs, tagging) is not an object write.
    if (!object || Object.keys(ctx.query).some((k) => k !== 'x-id')) return next();
    const id = `${object.bucket}/${object.key}`;
    const before = turns.get(id) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const chained = before.then(() => mine);
    turns.set(id, chained);
    try {
      await before;
      const problem = preconditionProblem({ ifNoneMatch, ifMatch }, await currentETag(store, object.bucket, object.key));
      if (problem) {
        ctx.status = problem.status;
        ctx.type = 'application/xml';
        ctx.body =
          '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' +
          `<Code>${problem.code}</Code><Message>${xmlEscape(problem.message)}</Message>` +
          (problem.condition ? `<Condition>${problem.condition}</Condition>` : '') +
          `<Key>${xmlEscape(object.key)}</Key></Error>`;
        return;
      }
      await next();
    } finally {
      done();
      if (turns.get(id) === chained) turns.delete(id);
    }
  };
}
