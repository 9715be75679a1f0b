// `etcd-manager`: the manager of one etcd cluster on a control-plane instance
// (`etcd-manager run [flags]`, or plain `etcd-manager [flags]` as kOps starts
// it), and the operator commands (`backup`, `list-backups`, … : subcommands.ts).
// One flag parser (flags.ts) reads every flag; each command takes on the
// command line only the flags it lists, and loads only what it needs.
import { setTimeout as sleepFor } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { ExitCode, UserError } from '../../shared/errors.js';
import { versionLine } from '../../shared/version.js';
import { helpText, parseFlags, type ParsedFlags } from './flags.js';
import { exitCodeOf } from './cli/exit-codes.js';
import { findSubcommand, SUBCOMMANDS } from './subcommands.js';
import type { CommandDeps, SubcommandModule } from './cli/types.js';
import { randomIntBelow } from '../../shared/lazy-crypto.js';
import { writeStderr, writeStdout } from '../../shared/stdio.js';

const PROGRAM = 'etcd-manager';

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

/** Refuses flags given on the command line that this command does not take, and a wrong number of arguments. */
function checkInvocation(name: string, module: SubcommandModule, flags: ParsedFlags, args: string[]): void {
  const takes = new Set<string>(module.flags);
  for (const [flag, source] of flags.sources) {
    if (source === 'flag' && !takes.has(flag)) {
      throw usage(name === 'run' ? `--${flag} is a flag of the operator commands, not of the manager (see ${PROGRAM} --help)` : `${name}: --${flag} is not a flag of this command (see ${PROGRAM} ${name} --help)`);
    }
  }
  const max = module.args.length;
  const min = max - (module.optionalArgs ?? 0);
  if (args.length < min) throw usage(`${name}: missing ${module.args.slice(args.length, min).join(' ')} (usage: ${PROGRAM} ${[name, ...module.args].join(' ')})`);
  if (args.length > max) {
    throw usage(max === 0 ? `${name} takes no arguments (got ${JSON.stringify(args.join(' '))})` : `${name}: too many arguments (usage: ${PROGRAM} ${[name, ...module.args].join(' ')})`);
  }
}

function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return hostname();
  }
}

/**
 * Ctrl-C (or SIGTERM) aborts the returned signal, for a command that stops
 * waiting and says what it leaves behind; a second one, or the first for a
 * command that does not watch it, exits at once (130).
 */
function interruptSignal(watched: boolean): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (!watched || controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export function processDeps(interrupted: AbortSignal): CommandDeps {
  return {
    io: { out: writeStdout, err: writeStderr, errIsTTY: process.stderr.isTTY === true },
    env: process.env,
    now: Date.now,
    sleep: (ms, signal) => sleepFor(ms, undefined, signal ? { signal } : undefined).catch(() => undefined),
    randomInt: (below) => randomIntBelow(below),
    interrupted,
    readLeaderStatus: async (store, commandId) => (await import('./cli/leader-status.js')).readLeaderStatus(store, commandId),
    requestedBy: whoAmI(),
    fileExists: existsSync,
  };
}

/**
 * Parses, dispatches and runs one invocation; returns the exit code. `deps`
 * is injected by tests; the binary passes none and gets the process's own.
 */
export async function main(argv: string[], deps?: CommandDeps): Promise<number> {
  const err = deps?.io.err ?? writeStderr;
  const out = deps?.io.out ?? writeStdout;
  let interrupt: { signal: AbortSignal; release(): void } | undefined;
  try {
    const flags = parseFlags(argv, deps?.env);
    if (flags.version) {
      out(versionLine(PROGRAM));
      return ExitCode.OK;
    }
    const [name = 'run', ...args] = flags.positional;
    const sub = findSubcommand(name);
    if (!sub) throw usage(`unknown command ${JSON.stringify(name)} (commands: ${SUBCOMMANDS.map((c) => c.name).join(', ')}; see --help)`);
    if (flags.help && sub.name === 'run') {
      out(helpText(PROGRAM, SUBCOMMANDS.filter((c) => c.name !== 'run')));
      return ExitCode.OK;
    }
    const { command } = await sub.load();
    if (flags.help) {
      const { subcommandHelp } = await import('./cli/help.js');
      out(subcommandHelp(PROGRAM, sub.name, sub.summary, command));
      return ExitCode.OK;
    }
    checkInvocation(sub.name, command, flags, args);
    if (sub.name !== 'run' && !deps) interrupt = interruptSignal(command.handlesInterrupt === true);
    const commandDeps = deps ?? processDeps(interrupt?.signal ?? new AbortController().signal);
    return await command.run({ program: PROGRAM, name: sub.name, flags, args, deps: commandDeps });
  } catch (e) {
    err(`${PROGRAM}: ${(e as Error).message}\n`);
    return exitCodeOf(e);
  } finally {
    interrupt?.release();
  }
}
