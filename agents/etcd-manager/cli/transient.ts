// A command that waits on the store for minutes polls it hundreds of times; a
// passing failure of one poll (a connection cut, a timeout, an object caught
// while the leader rewrites it: some S3-compatible servers, s3rver among them,
// let a GET see that) must not end the wait. Such failures are tolerated
// until they have lasted TRANSIENT_LIMIT_MS without one good read; access
// denied, a bad URL and anything else fail at once.
import { StoreError } from '../../../shared/store/types.js';
import { RequestFormatError } from '../control/requests.js';

export const TRANSIENT_LIMIT_MS = 30_000;

export function isTransient(err: unknown): boolean {
  return err instanceof RequestFormatError || (err instanceof StoreError && (err.kind === 'Unreachable' || err.kind === 'Other'));
}

export class TransientFailures {
  private since: number | undefined;

  constructor(private readonly now: () => number, private readonly limitMs = TRANSIENT_LIMIT_MS) {}

  /** A good read: the clock of failures starts again. */
  ok(): void {
    this.since = undefined;
  }

  /** Rethrows err unless it is transient and failures have not yet lasted the limit. */
  failed(err: unknown): void {
    if (!isTransient(err)) throw err;
    this.since ??= this.now();
    if (this.now() - this.since >= this.limitMs) throw err;
  }
}
