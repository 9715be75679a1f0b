// Structured logging for every agent: a readable line by default, JSON when
// MOORING_LOG_FORMAT=json (or setLogFormat). Fields whose names look secret are masked,
// so a careless call cannot leak a private key into a journal.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /(private|secret|password|token|key(?!set|pair)|credential)/i;

interface LogSettings {
  level: LogLevel;
  format: LogFormat;
  write: (line: string) => void;
}

const settings: LogSettings = {
  level: parseLevel(process.env.MOORING_LOG_LEVEL) ?? 'info',
  format: process.env.MOORING_LOG_FORMAT === 'json' ? 'json' : 'text',
  write: (line) => process.stderr.write(line + '\n'),
};

function parseLevel(value: string | undefined): LogLevel | undefined {
  return value && value in LEVELS ? (value as LogLevel) : undefined;
}

export function configureLogging(options: Partial<LogSettings>): void {
  Object.assign(settings, options);
}

export function maskSecrets(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [name, value] of Object.entries(fields)) {
    out[name] = SECRET_FIELD.test(name) && value !== undefined ? '***' : value;
  }
  return out;
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s="]/.test(text ?? '') ? JSON.stringify(text) : String(text);
}

export class Logger {
  constructor(readonly component: string, private readonly base: LogFields = {}) {}

  child(fields: LogFields): Logger {
    return new Logger(this.component, { ...this.base, ...fields });
  }

  debug(msg: string, fields: LogFields = {}): void { this.log('debug', msg, fields); }
  info(msg: string, fields: LogFields = {}): void { this.log('info', msg, fields); }
  warn(msg: string, fields: LogFields = {}): void { this.log('warn', msg, fields); }
  error(msg: string, fields: LogFields = {}): void { this.log('error', msg, fields); }

  private log(level: LogLevel, msg: string, fields: LogFields): void {
    if (LEVELS[level] < LEVELS[settings.level]) return;
    const all = maskSecrets({ ...this.base, ...fields });
    const time = new Date().toISOString();
    if (settings.format === 'json') {
      settings.write(JSON.stringify({ time, level, component: this.component, msg, ...all }, (_k, v: unknown) => (v instanceof Error ? v.message : v)));
      return;
    }
    const tail = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ');
    settings.write(`${time} ${level.toUpperCase().padEnd(5)} ${this.component}: ${msg}${tail ? ' ' + tail : ''}`);
  }
}

export function logger(component: string): Logger {
  return new Logger(component);
}

/**
 * Node's process warnings as log lines instead of bare stderr text. Library
 * deprecations we cannot fix (grpc-js sets the TLS server name to an IP, which
 * is how etcd is addressed: DEP0123) go to debug; everything else is a warning.
 */
export function routeProcessWarnings(log: Logger, quiet: readonly string[] = ['DEP0123']): void {
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    const fields = { code: w.code, warning: w.name, detail: w.message };
    if (w.code && quiet.includes(w.code)) log.debug('node warning from a library', fields);
    else log.warn('node warning', fields);
  });
}
