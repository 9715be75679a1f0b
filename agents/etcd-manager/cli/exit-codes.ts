// The one mapping from a failure to the documented exit codes (README: 1
// failure, 2 bad usage, 3 invalid control file, 4 not found, 5 store
// unreachable or access denied, 6 already exists). Light on purpose: the
// dispatcher loads it on every error path.
import { ExitCode, UserError, type ExitCodeValue } from '../../../shared/errors.js';
import { StoreError } from '../../../shared/store/types.js';

export function exitCodeOf(err: unknown): ExitCodeValue {
  if (err instanceof UserError) return err.exitCode;
  if (err instanceof StoreError) {
    switch (err.kind) {
      case 'NotFound':
        return ExitCode.NotFound;
      case 'InvalidURL':
        return ExitCode.Usage;
      case 'AccessDenied':
      case 'Unreachable':
        return ExitCode.StoreUnavailable;
      default:
        return ExitCode.Failure;
    }
  }
  return ExitCode.Failure;
}
