// The one place nodeup turns values into systemd syntax: ExecStart= command
// lines (systemd.service, "Command lines") and EnvironmentFile= files
// (systemd.exec). Every value comes out as exactly the one argument or the one
// variable it was, whatever it contains: it can never split into a second flag,
// a second assignment, a specifier (%n) or an environment expansion ($VAR).
// Validation (shared/api/k8s-syntax.ts) keeps such values out in the first
// place; this is the second, independent layer. Checked against systemd itself
// by test/e2e/systemd-syntax.test.ts.

/** A reference to a variable of the unit's environment, expanded by systemd as one argument: `${NAME}`. */
export interface EnvRef {
  env: string;
}

/** One argument: a literal, a variable, or literals and variables run together (`--flag=${VALUE}`). */
export type ExecWord = string | EnvRef | ReadonlyArray<string | EnvRef>;

export class SystemdSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SystemdSyntaxError';
  }
}

export function envRef(name: string): EnvRef {
  checkEnvName(name);
  return { env: name };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkEnvName(name: string): void {
  if (!ENV_NAME.test(name)) throw new SystemdSyntaxError(`${JSON.stringify(name)} is not an environment variable name`);
}

/** Characters that mean nothing to systemd's command-line or environment-file parser, nor to a shell. */
const PLAIN = /^[A-Za-z0-9_@+=:,./-]+$/;

/**
 * A command line for ExecStart= and friends. Words that need it are
 * double-quoted; inside, '\' and '"' are escaped, '$' and '%' doubled (no
 * expansion, no specifier), and control characters written as C escapes,
 * which systemd unescapes.
 *
 * argv[0] follows systemd's rules for the program: an absolute path (a leading
 * '-', '@', '+', '!' or ':' would be a flag of systemd's own), never expanded
 * (a '$' stays as it is; only '%' is doubled), and without quotes, backslashes
 * or control characters, which systemd refuses there.
 */
export function execCommand(words: readonly ExecWord[]): string {
  const [program, ...args] = words;
  if (typeof program !== 'string' || !program.startsWith('/')) {
    throw new SystemdSyntaxError(`a command must start with an absolute path, not ${JSON.stringify(program)}`);
  }
  return [execProgram(program), ...args.map(execWord)].join(' ');
}

function execProgram(path: string): string {
  if (/["'\\\p{Cc}]/u.test(path)) {
    throw new SystemdSyntaxError(`${JSON.stringify(path)}: systemd refuses a program path with quotes, backslashes or control characters`);
  }
  if (PLAIN.test(path)) return path;
  const escaped = path.replace(/%/g, '%%');
  return /\s/.test(path) ? `"${escaped}"` : escaped;
}

function execWord(word: ExecWord): string {
  const parts = typeof word === 'string' || !Array.isArray(word) ? [word as string | EnvRef] : (word as ReadonlyArray<string | EnvRef>);
  if (parts.length === 1 && typeof parts[0] === 'string' && PLAIN.test(parts[0])) return parts[0];
  let quoted = '"';
  for (const part of parts) {
    if (typeof part === 'string') quoted += escapeExecLiteral(part);
    else {
      checkEnvName(part.env);
      quoted += `\${${part.env}}`;
    }
  }
  return `${quoted}"`;
}

function escapeExecLiteral(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '$') out += '$$';
    else if (ch === '%') out += '%%';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (code === 0) throw new SystemdSyntaxError('an argument cannot contain a NUL byte');
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

/**
 * An EnvironmentFile=: one `NAME=value` line per variable, under a comment.
 * Values that need it are double-quoted with '\', '"', '`' and '$' escaped, the
 * only escapes systemd (and a shell) undo there; a newline stays a newline.
 * Other control characters make systemd drop the assignment, so they are refused.
 */
export function environmentFile(comment: string, variables: Record<string, string | number>): string {
  const lines = comment.split('\n').map((line) => `# ${line}`.trimEnd());
  for (const [name, raw] of Object.entries(variables)) {
    checkEnvName(name);
    lines.push(`${name}=${envValue(String(raw), name)}`);
  }
  return `${lines.join('\n')}\n`;
}

function envValue(value: string, name: string): string {
  if (PLAIN.test(value)) return value;
  if (/[\0-\x08\x0b-\x1f\x7f]/.test(value)) {
    throw new SystemdSyntaxError(`${name}: a control character cannot be carried by an environment file`);
  }
  return `"${value.replace(/[\\"`$]/g, (ch) => `\\${ch}`)}"`;
}
