// The test-only hooks of the binary (controller/types.ts TestHooks), from the
// hidden, repeatable `--test-hook=<name>[=<value>]` flag: the one place they
// come from. Production runs give none. Not in --help on purpose; the README
// lists them.
//   stop-before-fence        SIGSTOP once between the leadership check and the etcd fence
//   hang-while-leading       the leader's pass hangs until stop, its peer API answering
//   cert-lifetime=<duration> issue certificates that short-lived (renewed with a third left)
//   hold-backup-upload=<reason>  the on-demand backup requested with this reason holds its
//                            upload half way (10 MiB in, or at its end) until the manager is killed
import { ExitCode, UserError } from '../../shared/errors.js';
import type { TestHooks } from './controller/types.js';
import { parseDuration } from './flags.js';

export function parseTestHooks(values: readonly string[]): TestHooks {
  const hooks: TestHooks = {};
  for (const value of values) {
    const [name, arg] = value.split('=', 2) as [string, string | undefined];
    if (name === 'stop-before-fence' && arg === undefined) hooks.stopBeforeFence = true;
    else if (name === 'hang-while-leading' && arg === undefined) hooks.hangWhileLeading = true;
    else if (name === 'cert-lifetime' && arg !== undefined && (parseDuration(arg) ?? 0) > 0) hooks.certLifetimeMs = parseDuration(arg);
    else if (name === 'hold-backup-upload' && arg !== undefined && arg !== '') hooks.holdBackupUpload = arg;
    else throw new UserError(`--test-hook ${JSON.stringify(value)}: want stop-before-fence, hang-while-leading, cert-lifetime=<duration> or hold-backup-upload=<reason> (test-only)`, ExitCode.Usage);
  }
  return hooks;
}
