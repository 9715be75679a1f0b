// protokube's /metrics: a handful of counters and gauges in Prometheus' text
// format (0.0.4), written by hand rather than with prom-client, because the
// worker daemon must stay small (a few KiB here against prom-client's module
// graph) and needs nothing but numbers with labels.

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  value: number;
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  series: Map<string, Series>;
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

/** Label values escaped as the text format wants: backslash, double quote, newline. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export class Metrics {
  private readonly families = new Map<string, Family>();

  private family(name: string, help: string, type: Family['type']): Family {
    let family = this.families.get(name);
    if (!family) {
      family = { name, help, type, series: new Map() };
      this.families.set(name, family);
    }
    return family;
  }

  /** Declares a metric so it shows (at 0 when unlabelled) before its first change. */
  declare(name: string, help: string, type: Family['type']): void {
    const family = this.family(name, help, type);
    if (family.series.size === 0) family.series.set(labelKey({}), { labels: {}, value: 0 });
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const family = this.family(name, help, 'counter');
    family.series.delete(labelKey({})); // a declared placeholder gives way to labelled series
    const key = labelKey(labels);
    const series = family.series.get(key) ?? { labels, value: 0 };
    series.value += by;
    family.series.set(key, series);
  }

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    const family = this.family(name, help, 'gauge');
    if (Object.keys(labels).length > 0) family.series.delete(labelKey({}));
    family.series.set(labelKey(labels), { labels, value });
  }

  /** Drops one labelled series (an addon that left its channel). */
  forget(name: string, labels: Labels): void {
    this.families.get(name)?.series.delete(labelKey(labels));
  }

  render(): string {
    const out: string[] = [];
    for (const family of [...this.families.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
      for (const { labels, value } of family.series.values()) {
        const text = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
        out.push(`${family.name}${text ? `{${text}}` : ''} ${Number.isFinite(value) ? value : 0}`);
      }
    }
    return out.join('\n') + '\n';
  }
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
