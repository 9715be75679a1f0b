// Where the CLI writes. Tests pass their own sinks so commands run in-process.
import { writeStderr, writeStdout } from '../../shared/stdio.js';

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
