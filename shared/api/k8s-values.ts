// Kubernetes' value formats as kOps writes them on a command line: Go durations
// (metav1.Duration, printed by Go's time.Duration.String: 1m0s, 1h0m0s, 500ms)
// and resource quantities (printed as kOps' flag builder does, as the decimal of
// resource.Quantity.AsDec(): 3140m → 3.140, 100Mi → 104857600). Exact integer
// arithmetic (bigint), so what is printed is what Go would print.

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n,
  'μs': 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** Go's time.ParseDuration: "300ms", "-1.5h", "2h45m", "0". Nanoseconds, or an Error saying why not. */
export function parseGoDuration(text: string): bigint {
  const bad = () => new Error(`invalid duration ${JSON.stringify(text)} (want e.g. 30s, 1m0s, 1h30m, 500ms)`);
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return 0n;
  if (rest === '') throw bad();
  let total = 0n;
  while (rest !== '') {
    // µ (micro sign) and μ (Greek mu) escaped: the built bundles stay ASCII (scripts/build-binaries.mjs).
    const m = /^(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/.exec(rest);
    if (!m || (m[1] === '' && (m[2] ?? '') === '')) throw bad();
    const unit = UNIT_NS[m[3]];
    const whole = BigInt(m[1] === '' ? '0' : m[1]);
    const fraction = m[2] ?? '';
    let value = whole * unit;
    if (fraction !== '') value += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
    total += value;
    rest = rest.slice(m[0].length);
  }
  if (total > 2n ** 63n - 1n) throw bad();
  return negative ? -total : total;
}

function fraction(value: bigint, precision: number): { text: string; rest: bigint } {
  let digits = '';
  let v = value;
  let printing = false;
  for (let i = 0; i < precision; i++) {
    const digit = v % 10n;
    printing ||= digit !== 0n;
    if (printing) digits = String(digit) + digits;
    v /= 10n;
  }
  return { text: digits === '' ? '' : `.${digits}`, rest: v };
}

/** Go's time.Duration.String for a number of nanoseconds. */
export function formatGoDuration(ns: bigint): string {
  const negative = ns < 0n;
  let u = negative ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    if (u === 0n) return '0s';
    let unit: string;
    let precision: number;
    if (u < 1_000n) [unit, precision] = ['ns', 0];
    else if (u < 1_000_000n) [unit, precision] = ['µs', 3];
    else [unit, precision] = ['ms', 6];
    const f = fraction(u, precision);
    out = `${f.rest}${f.text}${unit}`;
  } else {
    const f = fraction(u, 9);
    u = f.rest;
    out = `${u % 60n}${f.text}s`;
    u /= 60n;
    if (u > 0n) {
      out = `${u % 60n}m${out}`;
      u /= 60n;
      if (u > 0n) out = `${u}h${out}`;
    }
  }
  return negative ? `-${out}` : out;
}

/** A duration as kOps puts it on a command line (Go's String form). */
export function durationFlagValue(text: string): string {
  return formatGoDuration(parseGoDuration(text));
}

const DECIMAL_SUFFIX: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_SUFFIX: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

/** A decimal: unscaled × 10^-scale (inf.Dec's representation), and the format its suffix chose. */
interface Decimal {
  unscaled: bigint;
  scale: number;
  format?: 'DecimalSI' | 'BinarySI' | 'DecimalExponent';
}

/** resource.ParseQuantity, down to the representation AsDec() returns; an Error for a malformed quantity. */
export function parseQuantity(text: string): Decimal {
  const bad = () => new Error(`invalid quantity ${JSON.stringify(text)} (want e.g. 100m, 0.5, 128Mi, 1G)`);
  if (text === '0') return { unscaled: 0n, scale: 0, format: 'DecimalSI' };
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(.*)$/.exec(text);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw bad();
  const positive = m[1] !== '-';
  const num = m[2].replace(/^0+(?=\d)/, '');
  const denom = m[3] ?? '';
  const suffix = m[4];
  let base: 2 | 10;
  let exponent: number;
  let binary = false;
  if (Object.hasOwn(DECIMAL_SUFFIX, suffix)) [base, exponent] = [10, DECIMAL_SUFFIX[suffix]];
  else if (Object.hasOwn(BINARY_SUFFIX, suffix)) [base, exponent, binary] = [2, BINARY_SUFFIX[suffix], true];
  else if (/^[eE][+-]?\d+$/.test(suffix)) [base, exponent] = [10, Number(suffix.slice(1))];
  else throw bad();
  const format = binary ? 'BinarySI' : Object.hasOwn(DECIMAL_SUFFIX, suffix) ? 'DecimalSI' : 'DecimalExponent';

  // The fast path: an int64 with a decimal scale, as resource.ParseQuantity takes it.
  let precision: number;
  let scale = 0;
  let mantissa = 1n;
  if (!binary) {
    scale = exponent;
    precision = 18 - (num.length + denom.length);
  } else if (exponent >= 0 && denom.length === 0) {
    mantissa = 1n << BigInt(exponent);
    precision = 15 - num.length - Math.trunc(Math.fround(exponent * 3) / 10) - 1;
  } else {
    precision = -1;
  }
  if (precision >= 0) {
    scale -= denom.length;
    if (scale >= -9) {
      const value = BigInt(`${num}${denom}` || '0');
      const result = value * mantissa;
      if (result <= 2n ** 63n - 1n) return { unscaled: positive ? result : -result, scale: -scale, format };
    }
  }
  // The slow path: an arbitrary decimal, rounded up to nano units.
  let unscaled = BigInt(`${num}${denom}` || '0');
  let decScale = denom.length;
  if (base === 10) decScale -= exponent;
  else unscaled *= 1n << BigInt(exponent);
  if (unscaled !== 0n) {
    if (decScale > 9) {
      const divisor = 10n ** BigInt(decScale - 9);
      unscaled = (unscaled + divisor - 1n) / divisor;
    } else {
      unscaled *= 10n ** BigInt(9 - decScale);
    }
    decScale = 9;
  }
  const max = 2n ** 63n - 1n;
  if (binary && unscaled > max * 10n ** BigInt(decScale)) unscaled = max * 10n ** BigInt(decScale);
  // kOps' resource.Quantity: a fraction of a binary unit is shown in decimal.
  const belowOne = unscaled !== 0n && unscaled < 10n ** BigInt(decScale);
  return { unscaled: positive ? unscaled : -unscaled, scale: decScale, format: binary && belowOne ? 'DecimalSI' : format };
}

/** inf.Dec's String: exactly `scale` digits after the point; a negative scale appends zeros. */
function decimalString(d: Decimal): string {
  const negative = d.unscaled < 0n;
  const digits = (negative ? -d.unscaled : d.unscaled).toString();
  let out: string;
  if (d.scale <= 0) out = d.unscaled === 0n ? '0' : digits + '0'.repeat(-d.scale);
  else {
    const padded = digits.padStart(d.scale + 1, '0');
    out = `${padded.slice(0, -d.scale)}.${padded.slice(-d.scale)}`;
  }
  return negative ? `-${out}` : out;
}

/** A quantity as kOps' flag builder prints it: its decimal value (3140m → 3.140, 3.14 → 3.14). */
export function quantityFlagValue(text: string): string {
  return decimalString(parseQuantity(text));
}

const DECIMAL_SI_SUFFIX: Record<number, string> = { [-9]: 'n', [-6]: 'u', [-3]: 'm', 0: '', 3: 'k', 6: 'M', 9: 'G', 12: 'T', 15: 'P', 18: 'E' };
const BINARY_SI_SUFFIX: Record<number, string> = { 0: '', 10: 'Ki', 20: 'Mi', 30: 'Gi', 40: 'Ti', 50: 'Pi', 60: 'Ei' };

/**
 * A quantity as Kubernetes (and so kOps' completed spec) writes it: resource.Quantity's
 * canonical form (3.14 → 3140m, 0.5 → 500m, 1.5Gi → 1536Mi, 100Mi stays 100Mi).
 */
export function canonicalQuantity(text: string): string {
  const q = parseQuantity(text);
  if (q.unscaled === 0n) return '0';
  const negative = q.unscaled < 0n;
  const abs = negative ? -q.unscaled : q.unscaled;
  const sign = negative ? '-' : '';
  let format = q.format ?? 'DecimalSI';
  if (format === 'BinarySI') {
    const exact = abs % 10n ** BigInt(q.scale) === 0n;
    const whole = abs / 10n ** BigInt(q.scale);
    if (whole < 1024n || !exact) format = 'DecimalSI';
    else {
      let n = whole;
      let exponent = 0;
      while (n % 1024n === 0n && exponent < 60) {
        n /= 1024n;
        exponent += 10;
      }
      return `${sign}${n}${BINARY_SI_SUFFIX[exponent]}`;
    }
  }
  let mantissa = abs;
  let exponent = -q.scale;
  while (mantissa % 10n === 0n) {
    mantissa /= 10n;
    exponent++;
  }
  const rest = ((exponent % 3) + 3) % 3;
  mantissa *= 10n ** BigInt(rest);
  exponent -= rest;
  if (format === 'DecimalExponent') return `${sign}${mantissa}${exponent === 0 ? '' : `e${exponent}`}`;
  const suffix = DECIMAL_SI_SUFFIX[exponent];
  return suffix === undefined ? `${sign}${mantissa}e${exponent}` : `${sign}${mantissa}${suffix}`;
}
