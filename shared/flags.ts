// The daemons' flag parser (etcd-manager, protokube): one table per agent
// drives parsing, `--help` and the environment names, so the three can never
// disagree. `--flag=value`, `-flag=value` and `--flag value` all work (kOps
// and Go's flag package write them so); every flag can also come from the
// process environment or an env file as <PREFIX><FLAG> (upper case, '-' → '_').
// Precedence: command line, then process environment, then env file, then default.
// A <PREFIX>* name that is no flag's is refused, so a typo cannot pass silently.
import { readFileSync } from 'node:fs';
import { ExitCode, UserError } from './errors.js';

/** `age`: a length of time that never becomes a timer (retention): days (d) and years (y, 365 d) allowed, as in kOps. */
export type FlagKind = 'string' | 'int' | 'bool' | 'duration' | 'age' | 'list';

export interface FlagDef {
  name: string;
  kind: FlagKind;
  help: string;
  default?: string;
  /**
   * Durations: the smallest and largest value allowed. Every duration becomes a
   * Node timer, and Node runs a timer longer than 2^31-1 ms (24.8 days) after
   * 1 ms instead, so an unbounded value would make a loop spin.
   */
  range?: readonly [string, string];
  /** Left out of --help (test-only flags; the agent's README names them). */
  hidden?: boolean;
  /** A one-letter form (`-o json`). */
  short?: string;
  /**
   * A flag of an agent's operator commands, not of its daemon: the daemon's
   * --help leaves it out (etcd-manager: `run` refuses it on the command line;
   * each operator command lists the flags it takes).
   */
  operator?: boolean;
  /**
   * Taken from the command line only, never as <PREFIX><NAME>: an operator's
   * choice (--yes, -o) must not come from an environment or env file left
   * behind on a node.
   */
  commandLineOnly?: boolean;
}

export type FlagSource = 'flag' | 'env' | 'env-file' | 'default';

export interface ParsedFlags<N extends string = string> {
  values: Map<N, string | string[]>;
  /** Where each value came from, for the startup log. */
  sources: Map<N, FlagSource>;
  /** Positional arguments (the subcommand). */
  positional: string[];
  help: boolean;
  version: boolean;
}

export interface FlagParserSpec {
  /** Environment prefix, e.g. `ETCD_MANAGER_`. */
  prefix: string;
  flags: readonly FlagDef[];
  /** The flag naming an env file to read (when the agent has one). */
  envFileFlag?: string;
  /** <PREFIX>* names refused with their own message (settings of another implementation). */
  foreignEnv?: ReadonlyMap<string, string>;
  /** What a refused name is said not to be, e.g. `an etcd-manager setting`. */
  settingNoun: string;
}

export interface FlagParser<N extends string> {
  envName(flag: string): string;
  /** The definition of a flag by its name or one-letter form. */
  flagDef(name: string): FlagDef | undefined;
  /** How a message names a setting: the flag, or its environment name and where that came from. */
  settingName(flag: string, source: FlagSource | undefined): string;
  parse(argv: string[], env?: NodeJS.ProcessEnv): ParsedFlags<N>;
  /** The daemon's flag lines of --help, aligned (hidden and operator flags left out; --help and --version added). */
  helpLines(): string[];
}

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

/** KEY=VALUE lines; `export ` prefix, blank lines and # comments allowed; values may be quoted. */
export function parseEnvFile(text: string, source: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw usage(`${source}:${index + 1}: not a KEY=VALUE line`);
    let value = m[2];
    const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
    if (quoted) value = quoted[1];
    out.set(m[1], value);
  });
  return out;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations (`1h30m`, `15m`, `500ms`) in milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]];
  return total;
}

const DAY_MS = 24 * UNIT_MS.h;
const AGE_UNIT_MS: Record<string, number> = { ...UNIT_MS, d: DAY_MS, y: 365 * DAY_MS };

/** Ages (retention): Go durations plus `d` (24 h) and `y` (365 d), kOps' ParseHumanDuration units (`7d`, `1y`, `2d12h`). */
export function parseAge(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|y))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|y)/g)) total += Number(m[1]) * AGE_UNIT_MS[m[2]];
  return total;
}

export const HELP_FLAG: FlagDef = { name: 'help', short: 'h', kind: 'bool', help: 'print this help and exit' };
export const VERSION_FLAG: FlagDef = { name: 'version', kind: 'bool', help: 'print the version and exit' };

/** Aligned `--flag=<kind>  help (default …)` lines. */
export function flagLines(defs: readonly FlagDef[]): string[] {
  const left = (f: FlagDef) => `${f.short ? `-${f.short}, ` : ''}--${f.name}${f.kind === 'bool' ? '' : '=<' + (f.kind === 'list' ? 'value' : f.kind === 'age' ? 'duration' : f.kind) + '>'}`;
  const width = Math.max(22, ...defs.map((f) => left(f).length));
  return defs.map((f) => {
    const notes = [
      ...(f.default !== undefined && f.default !== '' && !(f.kind === 'bool' && f.default === 'false') ? [`default ${f.default}`] : []),
      ...(f.range ? [`${f.range[0]} to ${f.range[1]}`] : []),
    ];
    const dflt = notes.length > 0 ? ` (${notes.join('; ')})` : '';
    return `  ${left(f).padEnd(width + 1)} ${f.help}${dflt}`;
  });
}

export function createFlagParser<N extends string>(spec: FlagParserSpec): FlagParser<N> {
  const byName = new Map<string, FlagDef>(spec.flags.flatMap((f) => [[f.name, f] as const, ...(f.short ? [[f.short, f] as const] : [])]));
  const envName = (flag: string) => `${spec.prefix}${flag.toUpperCase().replace(/-/g, '_')}`;
  const envNames = new Set<string>(spec.flags.filter((f) => !f.commandLineOnly).map((f) => envName(f.name)));
  const settingName = (flag: string, source: FlagSource | undefined) =>
    source === 'flag' || source === undefined || source === 'default' ? `--${flag}` : `${envName(flag)} (${source})`;

  const checkSettingNames = (keys: Iterable<string>, where: string): void => {
    for (const key of keys) {
      if (!key.startsWith(spec.prefix) || envNames.has(key)) continue;
      const foreign = spec.foreignEnv?.get(key);
      if (foreign !== undefined) throw usage(`${where}: ${key} ${foreign}`);
      throw usage(`${where}: ${key} is not ${spec.settingNoun} (see --help)`);
    }
  };

  const validate = (def: FlagDef, raw: string, source: FlagSource): void => {
    const where = settingName(def.name, source);
    if (def.kind === 'int' && !/^\d+$/.test(raw)) throw usage(`${where}: ${JSON.stringify(raw)} is not a whole number`);
    if (def.kind === 'bool' && !/^(true|false|1|0)$/i.test(raw)) throw usage(`${where}: ${JSON.stringify(raw)} is not true or false`);
    if (def.kind === 'duration' || def.kind === 'age') {
      const ms = def.kind === 'age' ? parseAge(raw) : parseDuration(raw);
      if (ms === undefined) throw usage(`${where}: ${JSON.stringify(raw)} is not a duration like ${def.kind === 'age' ? '12h, 7d or 1y' : '90s, 15m or 1h30m'}`);
      if (def.range) {
        const [min, max] = def.range.map((d) => parseAge(d) as number);
        if (ms < min || ms > max) throw usage(`${where}: ${JSON.stringify(raw)} is out of range: want ${def.range[0]} to ${def.range[1]}`);
      }
    }
  };

  const parse = (argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedFlags<N> => {
    const fromArgs = new Map<N, string | string[]>();
    const positional: string[] = [];
    let help = false;
    let version = false;
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i];
      if (arg === '--help' || arg === '-h') { help = true; continue; }
      if (arg === '--version') { version = true; continue; }
      if (arg === '--') { positional.push(...argv.slice(i + 1)); break; }
      if (!arg.startsWith('-')) { positional.push(arg); continue; }
      // kOps writes --flag=value; Go's flag package also takes -flag and --flag value.
      const body = arg.replace(/^--?/, '');
      const eq = body.indexOf('=');
      const name = eq === -1 ? body : body.slice(0, eq);
      const def = byName.get(name);
      if (!def) throw usage(`unknown flag --${name} (see --help)`);
      let value: string;
      if (eq !== -1) value = body.slice(eq + 1);
      else if (def.kind === 'bool') value = 'true';
      else if (i + 1 < argv.length) value = argv[++i];
      else throw usage(`flag --${name} needs a value`);
      const key = def.name as N;
      if (def.kind === 'list') {
        const list = (fromArgs.get(key) as string[] | undefined) ?? [];
        list.push(value);
        fromArgs.set(key, list);
      } else {
        fromArgs.set(key, value);
      }
    }

    // --help and --version answer whatever the environment holds.
    if (help || version) return { values: new Map(), sources: new Map(), positional, help, version };
    checkSettingNames(Object.keys(env).filter((key) => env[key] !== undefined), 'environment');

    let fileEnv = new Map<string, string>();
    if (spec.envFileFlag !== undefined) {
      const envFilePath = (fromArgs.get(spec.envFileFlag as N) as string | undefined) ?? env[envName(spec.envFileFlag)];
      if (envFilePath) {
        let text: string;
        try {
          text = readFileSync(envFilePath, 'utf8');
        } catch (err) {
          throw usage(`--${spec.envFileFlag} ${envFilePath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        fileEnv = parseEnvFile(text, envFilePath);
        checkSettingNames(fileEnv.keys(), envFilePath);
      }
    }

    const values = new Map<N, string | string[]>();
    const sources = new Map<N, FlagSource>();
    for (const def of spec.flags) {
      const name = def.name as N;
      const key = envName(def.name);
      let raw: string | string[] | undefined;
      let source: FlagSource;
      if (fromArgs.has(name)) { raw = fromArgs.get(name); source = 'flag'; }
      else if (!def.commandLineOnly && env[key] !== undefined) { raw = env[key]; source = 'env'; }
      else if (!def.commandLineOnly && fileEnv.has(key)) { raw = fileEnv.get(key); source = 'env-file'; }
      else { raw = def.default; source = 'default'; }
      if (raw === undefined) continue;
      if (def.kind === 'list' && typeof raw === 'string') raw = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (typeof raw === 'string') validate(def, raw, source);
      values.set(name, raw);
      sources.set(name, source);
    }
    return { values, sources, positional, help, version };
  };

  const helpLines = (): string[] => flagLines([...spec.flags.filter((f) => !f.hidden && !f.operator), HELP_FLAG, VERSION_FLAG]);
  const flagDef = (name: string) => byName.get(name);

  return { envName, flagDef, settingName, parse, helpLines };
}
