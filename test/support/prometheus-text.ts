/**
 * A small, strict reader of the Prometheus text format (0.0.4) for tests:
 * every line must be a comment, a blank, or a well-formed sample, and every
 * sample must belong to a family declared by `# TYPE`; anything else throws.
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromText {
  samples: PromSample[];
  /** Family name → type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+-?\\d+)?$`);
const LABEL = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/;
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created'];

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.trim() !== '') {
    const match = LABEL.exec(rest);
    if (!match) throw new Error(`bad labels in line: ${line}`);
    const [whole, name, value] = match as unknown as [string, string, string];
    if (name in labels) throw new Error(`label ${name} twice in line: ${line}`);
    labels[name] = unescapeLabel(value);
    rest = rest.slice(whole.length);
  }
  return labels;
}

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  // Prometheus reads values with Go's ParseFloat: NaN in any case (prom-client writes `Nan`).
  if (text.toLowerCase() === 'nan') return Number.NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`bad value in line: ${line}`);
  return value;
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const suffix = SUFFIXES.find((s) => name.endsWith(s));
  if (suffix === undefined) return undefined;
  const family = name.slice(0, -suffix.length);
  return types.has(family) ? family : undefined;
}

export function parsePrometheusText(text: string): PromText {
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type) {
        if (types.has(type[1] as string)) throw new Error(`family ${type[1]} declared twice`);
        types.set(type[1] as string, type[2] as string);
      } else if (!/^# HELP \S+ /.test(line) && !/^# HELP \S+$/.test(line)) {
        throw new Error(`bad comment line: ${line}`);
      }
      continue;
    }
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`bad sample line: ${line}`);
    const name = match[1] as string;
    if (familyOf(name, types) === undefined) throw new Error(`sample of an undeclared family: ${line}`);
    const labels = parseLabels(match[2] ?? '', line);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`duplicate series: ${line}`);
    seen.add(key);
    samples.push({ name, labels, value: parseValue(match[3] as string, line) });
  }
  return { samples, types };
}

function matches(sample: PromSample, name: string, labels: Record<string, string>): boolean {
  return (
    sample.name === name &&
    Object.keys(sample.labels).length === Object.keys(labels).length &&
    Object.entries(labels).every(([k, v]) => sample.labels[k] === v)
  );
}

/** The value of the series with exactly these labels; undefined when there is none. */
export function sampleValue(
  parsed: PromText,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return parsed.samples.find((s) => matches(s, name, labels))?.value;
}

/** Every series of one metric name, as `labels → value` with labels in `a=x,b=y` order of `keys`. */
export function seriesOf(parsed: PromText, name: string, keys: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of parsed.samples) {
    if (s.name !== name) continue;
    out.set(keys.map((k) => `${k}=${s.labels[k] ?? ''}`).join(','), s.value);
  }
  return out;
}
