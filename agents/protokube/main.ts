// `protokube`: keeps the API server's internal name in the hosts file on every
// node, and on the control plane applies addon channels and labels its node.
// `protokube [run]` is the daemon (SIGTERM/SIGINT stop it cleanly, exit 0);
// `protokube status` prints its last status; `protokube channels apply` does
// one channel pass by hand. Only the flag parser loads before a command runs,
// so --help and --version stay light.
import { ExitCode, UserError } from '../../shared/errors.js';
import { versionLine } from '../../shared/version.js';
import { helpText, parseFlags, type ParsedFlags } from './flags.js';
import { writeStderr, writeStdout } from '../../shared/stdio.js';

const PROGRAM = 'protokube';

export async function main(argv: string[]): Promise<number> {
  let flags: ParsedFlags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    writeStderr(`${PROGRAM}: ${(err as Error).message}\n`);
    return err instanceof UserError ? err.exitCode : ExitCode.Failure;
  }
  if (flags.help) {
    writeStdout(helpText(PROGRAM));
    return ExitCode.OK;
  }
  if (flags.version) {
    writeStdout(versionLine(PROGRAM));
    return ExitCode.OK;
  }
  const [command, ...rest] = flags.positional;
  try {
    if (command === undefined || command === 'run') {
      if (rest.length > 0) throw new UserError(`run takes no arguments (got ${JSON.stringify(rest.join(' '))})`, ExitCode.Usage);
      return await (await import('./commands.js')).runDaemon(flags);
    }
    if (command === 'status') {
      if (rest.length > 0) throw new UserError(`status takes no arguments (got ${JSON.stringify(rest.join(' '))})`, ExitCode.Usage);
      return await (await import('./commands.js')).printStatus(flags);
    }
    if (command === 'channels') {
      const [verb, location, ...extra] = rest;
      if (verb !== 'apply') throw new UserError(`unknown command "channels ${verb ?? ''}" (want: channels apply FILE|URL)`, ExitCode.Usage);
      if (location === undefined) throw new UserError('channels apply needs the channel: a file or a URL', ExitCode.Usage);
      if (extra.length > 0) throw new UserError(`channels apply takes one channel (got also ${JSON.stringify(extra.join(' '))})`, ExitCode.Usage);
      return await (await import('./commands.js')).applyChannelByHand(flags, location);
    }
    throw new UserError(`unknown command ${JSON.stringify(command)} (this build has: run, status, channels apply)`, ExitCode.Usage);
  } catch (err) {
    writeStderr(`${PROGRAM}: ${(err as Error).message}\n`);
    return err instanceof UserError ? err.exitCode : ExitCode.Failure;
  }
}
