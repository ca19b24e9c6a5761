// The k6-compatible runner's metrics: samples with tags, the four k6 metric types, and thresholds
// ('p(95)<50', 'count==0', 'rate>0.99', 'max<2000' ...) on a metric or a submetric
// ('http_req_duration{name:ingest}', 'checks{check:committed (201)}'), evaluated as k6 does.
export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';

export interface Sample {
  metric: string;
  type: MetricType;
  value: number;
  tags: Record<string, string>;
}

export class Registry {
  readonly samples = new Map<string, { type: MetricType; list: { value: number; tags: Record<string, string> }[] }>();
  declare(metric: string, type: MetricType) {
    if (!this.samples.has(metric)) this.samples.set(metric, { type, list: [] });
  }
  add(s: Sample) {
    let m = this.samples.get(s.metric);
    if (!m) this.samples.set(s.metric, (m = { type: s.type, list: [] }));
    m.list.push({ value: s.value, tags: s.tags });
  }
  /** The values of `metric` whose tags include every tag of `filter`. */
  values(metric: string, filter: Record<string, string> = {}) {
    const m = this.samples.get(metric);
    if (!m) return { type: undefined, values: [] as number[] };
    const keys = Object.entries(filter);
    return { type: m.type, values: m.list.filter((s) => keys.every(([k, v]) => s.tags[k] === v)).map((s) => s.value) };
  }
}

/** 'http_req_duration{name:ingest,method:POST}' -> the metric name and its tag filter. */
export function parseMetricKey(key: string): { metric: string; filter: Record<string, string> } {
  const m = /^([\w.-]+)(?:\{(.*)\})?$/.exec(key.trim());
  if (!m) throw new Error(`threshold metric '${key}' is not a metric name with an optional {tag:value} filter`);
  const filter: Record<string, string> = {};
  if (m[2]) {
    for (const part of m[2].split(',')) {
      const i = part.indexOf(':');
      if (i < 0) throw new Error(`threshold metric '${key}': tag filter '${part}' is not tag:value`);
      filter[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
  }
  return { metric: m[1]!, filter };
}

/** An aggregation of the values, as k6 names them for each metric type. */
export function aggregate(type: MetricType | undefined, values: number[], agg: string, seconds: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = values.reduce((a, b) => a + b, 0);
  const pct = (p: number) => {
    if (!sorted.length) return 0;
    // k6: linear interpolation between the closest ranks
    const rank = (p / 100) * (sorted.length - 1);
    const lo = Math.floor(rank);
    return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (rank - lo);
  };
  const p = /^p\((\d+(?:\.\d+)?)\)$/.exec(agg);
  if (type === 'trend' || type === undefined) {
    if (p) return pct(Number(p[1]));
    if (agg === 'avg') return values.length ? sum / values.length : 0;
    if (agg === 'min') return sorted[0] ?? 0;
    if (agg === 'max') return sorted.at(-1) ?? 0;
    if (agg === 'med') return pct(50);
    if (agg === 'count') return values.length;
  }
  if (type === 'counter' || type === undefined) {
    if (agg === 'count') return sum;
    if (agg === 'rate') return seconds > 0 ? sum / seconds : 0;
  }
  if (type === 'rate' || type === undefined) {
    // k6 (since v0.38) evaluates every threshold; a Rate without samples is NaN, which fails any comparison.
    if (agg === 'rate') return values.length ? values.filter((v) => v !== 0).length / values.length : NaN;
  }
  if (type === 'gauge' || type === undefined) {
    if (agg === 'value') return values.at(-1) ?? 0;
  }
  throw new Error(`'${agg}' is not an aggregation of a ${type} metric`);
}

const OPS: Record<string, (a: number, b: number) => boolean> = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '==': (a, b) => a === b,
  '===': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

export interface ThresholdResult {
  key: string;
  expression: string;
  value: number;
  ok: boolean;
}

/** Evaluates every threshold of options.thresholds against the samples. */
export function evaluateThresholds(thresholds: Record<string, (string | { threshold: string })[]>, registry: Registry, seconds: number): ThresholdResult[] {
  const out: ThresholdResult[] = [];
  for (const [key, list] of Object.entries(thresholds)) {
    const { metric, filter } = parseMetricKey(key);
    const { type, values } = registry.values(metric, filter);
    for (const t of list) {
      const expression = typeof t === 'string' ? t : t.threshold;
      const m = /^\s*([\w().]+)\s*(<=|>=|===|==|!=|<|>)\s*(-?[\d.]+)\s*$/.exec(expression);
      if (!m) throw new Error(`threshold '${expression}' on ${key} is not '<aggregation> <op> <number>'`);
      // A metric that never got a sample: counters and trends give 0, rates NaN (as in k6).
      const value = aggregate(type, values, m[1]!, seconds);
      out.push({ key, expression, value, ok: OPS[m[2]!]!(value, Number(m[3])) });
    }
  }
  return out;
}
