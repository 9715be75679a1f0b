// Errors an operator reads: one line, naming what failed. The CLI prints
// `error: <message>` and exits with the code of the error's kind.

export const ExitCode = {
  OK: 0,
  Failure: 1,
  Usage: 2,
  InvalidSpec: 3,
  NotFound: 4,
  StoreUnavailable: 5,
  Conflict: 6,
  /** Another writer holds the cluster's lock; nothing was written. */
  Locked: 7,
  /** Stopped by SIGINT (Ctrl-C) or SIGTERM: 128 + SIGINT, as a shell reports it. */
  Interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class UserError extends Error {
  constructor(message: string, readonly exitCode: ExitCodeValue = ExitCode.Failure, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}
