// Where the CLI writes. Tests pass their own sinks so commands run in-process.
import type { OutputConfiguration } from 'commander';
import { terminalColumns, terminalHasColors, writeStderr, writeStdout } from '../../shared/stdio.js';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

export const processIO: CliIO = {
  out: writeStdout,
  err: writeStderr,
  env: process.env,
};

export function line(text: string): string {
  return text.endsWith('\n') ? text : text + '\n';
}

/**
 * Commander's output settings for the CLI. Its defaults ask process.stdout whether it is a
 * terminal, which loads Node's stream modules on every `--help` (about 6 ms of the start);
 * these ask the descriptor first. Colour is forced or refused by the environment as commander does.
 */
export function commanderOutput(io: CliIO): OutputConfiguration {
  const forced = (): boolean | undefined => {
    const force = io.env.FORCE_COLOR;
    if (io.env.NO_COLOR || force === '0' || force === 'false') return false;
    if (force || io.env.CLICOLOR_FORCE !== undefined) return true;
    return undefined;
  };
  return {
    writeOut: (s) => io.out(s),
    writeErr: (s) => io.err(s),
    getOutHelpWidth: () => terminalColumns(1) ?? 80, // commander's own width when it is not a terminal
    getErrHelpWidth: () => terminalColumns(2) ?? 80,
    getOutHasColors: () => forced() ?? terminalHasColors(1),
    getErrHasColors: () => forced() ?? terminalHasColors(2),
  };
}
