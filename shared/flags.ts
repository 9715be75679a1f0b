// The daemons' flag parser (etcd-manager, protokube): one table per agent
// drives parsing, `--help` and the environment names, so the three can never
// disagree. `--flag=value`, `-flag=value` and `--flag value` all work (kOps
// and Go's flag package write them so); every flag can also come from the
// process environment or an env file as <PREFIX><FLAG> (upper case, '-' → '_').
// Precedence: command line, then process environment, then env file, then default.
// A <PREFIX>* name that is no flag's is refused, so a typo cannot pass silently.
import { readFileSync } from 'node:fs';
import { ExitCode, UserError } from './errors.js';

export type FlagKind = 'string' | 'int' | 'bool' | 'duration' | 'list';

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
  /** How a message names a setting: the flag, or its environment name and where that came from. */
  settingName(flag: string, source: FlagSource | undefined): string;
  parse(argv: string[], env?: NodeJS.ProcessEnv): ParsedFlags<N>;
  /** The flag lines of --help, aligned. */
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

export function createFlagParser<N extends string>(spec: FlagParserSpec): FlagParser<N> {
  const byName = new Map<string, FlagDef>(spec.flags.map((f) => [f.name, f]));
  const envName = (flag: string) => `${spec.prefix}${flag.toUpperCase().replace(/-/g, '_')}`;
  const envNames = new Set<string>(spec.flags.map((f) => envName(f.name)));
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
    if (def.kind === 'duration') {
      const ms = parseDuration(raw);
      if (ms === undefined) throw usage(`${where}: ${JSON.stringify(raw)} is not a duration like 90s, 15m or 1h30m`);
      if (def.range) {
        const [min, max] = def.range.map((d) => parseDuration(d) as number);
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
      else if (env[key] !== undefined) { raw = env[key]; source = 'env'; }
      else if (fileEnv.has(key)) { raw = fileEnv.get(key); source = 'env-file'; }
      else { raw = def.default; source = 'default'; }
      if (raw === undefined) continue;
      if (def.kind === 'list' && typeof raw === 'string') raw = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (typeof raw === 'string') validate(def, raw, source);
      values.set(name, raw);
      sources.set(name, source);
    }
    return { values, sources, positional, help, version };
  };

  const helpLines = (): string[] => {
    const width = Math.max(...spec.flags.map((f) => f.name.length + (f.kind === 'bool' ? 0 : 8)));
    return spec.flags.map((f) => {
      const left = `--${f.name}${f.kind === 'bool' ? '' : '=<' + (f.kind === 'list' ? 'value' : f.kind) + '>'}`;
      const notes = [
        ...(f.default !== undefined && f.default !== '' ? [`default ${f.default}`] : []),
        ...(f.range ? [`${f.range[0]} to ${f.range[1]}`] : []),
      ];
      const dflt = notes.length > 0 ? ` (${notes.join('; ')})` : '';
      return `  ${left.padEnd(width + 4)} ${f.help}${dflt}`;
    });
  };

  return { envName, settingName, parse, helpLines };
}
