// Where the CLI writes. Tests pass their own sinks so commands run in-process.
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

export const processIO: CliIO = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  env: process.env,
};

export function line(text: string): string {
  return text.endsWith('\n') ? text : text + '\n';
}
