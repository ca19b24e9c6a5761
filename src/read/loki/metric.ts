// Metric queries, evaluated at each step t: range aggregations over the window (t - range, t] of
// each series, vector aggregations, and arithmetic and comparisons between vectors and scalars.
// Range aggregations read the raw rows (sql.ts, pipeline.ts) unless the query is a service volume
// (aggregates.ts answers those from the continuous aggregates). A sum over an additive range
// aggregation is counted straight into its groups: a per-event label (a trace id in the structured
// metadata) would otherwise make one series per event before the sum.
import type { BinOp, Grouping, MetricQuery, VectorOp } from './ast';
import { fromAggregates } from './aggregates';
import type { EvalContext, Series, Value } from './values';
import { eachEntry } from './logs';
import type { Entry } from './model';
import { LogqlError, parseBytes, parseDuration } from './parse';
import { labelOf } from './pipeline';

export const labelsKey = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

export function group(labels: Record<string, string>, g: Grouping | undefined): Record<string, string> {
  if (!g) return labels;
  if (g.without) return Object.fromEntries(Object.entries(labels).filter(([k]) => !g.labels.includes(k)));
  return Object.fromEntries(g.labels.filter((k) => labels[k] !== undefined && labels[k] !== '').map((k) => [k, labels[k]!]));
}

const ADDITIVE = new Set(['count_over_time', 'rate', 'bytes_over_time', 'bytes_rate']);

interface Samples {
  labels: Record<string, string>;
  us: number[];
  v: number[];
}

function sampleValue(m: Extract<MetricQuery, { kind: 'range' }>, e: Entry): number | undefined {
  if (m.op === 'bytes_over_time' || m.op === 'bytes_rate') return Buffer.byteLength(e.line);
  if (!m.unwrap) return 1;
  const raw = labelOf(e, m.unwrap.name);
  try {
    if (m.unwrap.conv === 'duration') return parseDuration(raw) / 1000;
    if (m.unwrap.conv === 'bytes') return parseBytes(raw);
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Reads the samples of a range aggregation; `into`: the grouping of a sum pushed down into it. */
async function samples(m: Extract<MetricQuery, { kind: 'range' }>, ctx: EvalContext, into?: Grouping): Promise<Map<string, Samples>> {
  const first = Math.max(ctx.steps[0]! - m.rangeMs - m.offsetMs, -1); // nothing is stored before 1970
  const last = ctx.steps[ctx.steps.length - 1]! - m.offsetMs;
  const out = new Map<string, Samples>();
  let rows = 0;
  // (first, last] in microseconds: [first + 1 us, last + 1 us)
  const win = { startUs: BigInt(Math.round(first * 1000)) + 1n, endUs: BigInt(Math.round(last * 1000)) + 1n };
  await eachEntry(ctx.engine, m.log, ctx.scope, win, 'asc', (e) => {
    if (++rows > ctx.maxRows)
      throw new LogqlError(`the query reads more than ${ctx.maxRows} events (LOKI_QUERY_MAX_EVENTS): narrow the selector or the time range`);
    const v = sampleValue(m, e);
    if (v === undefined) return true;
    let labels = { ...e.stream, ...e.meta, ...e.parsed };
    if (m.unwrap) delete labels[m.unwrap.name];
    labels = group(group(labels, m.grouping), into);
    const key = labelsKey(labels);
    let s = out.get(key);
    if (!s) out.set(key, (s = { labels, us: [], v: [] }));
    s.us.push(Number(e.ns.slice(0, -3)));
    s.v.push(v);
    return true;
  });
  return out;
}

function windowValue(op: string, vals: number[], rangeS: number): number | undefined {
  if (!vals.length) return undefined;
  switch (op) {
    case 'count_over_time':
      return vals.length;
    case 'rate':
      return vals.length / rangeS;
    case 'bytes_over_time':
    case 'sum_over_time':
      return vals.reduce((a, b) => a + b, 0);
    case 'bytes_rate':
      return vals.reduce((a, b) => a + b, 0) / rangeS;
    case 'avg_over_time':
      return vals.reduce((a, b) => a + b, 0) / vals.length;
    case 'min_over_time':
      return Math.min(...vals);
    case 'max_over_time':
      return Math.max(...vals);
    case 'first_over_time':
      return vals[0];
    case 'last_over_time':
      return vals[vals.length - 1];
  }
  return undefined;
}

async function rangeAgg(m: Extract<MetricQuery, { kind: 'range' }>, ctx: EvalContext, into?: Grouping): Promise<Value> {
  const quick = await fromAggregates(m, ctx, into);
  if (quick) return { kind: 'vector', series: quick };
  const all = await samples(m, ctx, into);
  const rangeS = m.rangeMs / 1000;
  if (m.op === 'absent_over_time') {
    const labels = Object.fromEntries(m.log.selector.filter((x) => x.op === '=').map((x) => [x.name, x.value]));
    const values = ctx.steps.map((t) => {
      const lo = (t - m.rangeMs - m.offsetMs) * 1000;
      const hi = (t - m.offsetMs) * 1000;
      return [...all.values()].some((s) => s.us.some((u) => u > lo && u <= hi)) ? undefined : 1;
    });
    return { kind: 'vector', series: values.some((v) => v !== undefined) ? [{ labels, values }] : [] };
  }
  const series: Series[] = [];
  for (const s of all.values()) {
    let a = 0;
    let b = 0;
    const values = ctx.steps.map((t) => {
      const lo = (t - m.rangeMs - m.offsetMs) * 1000;
      const hi = (t - m.offsetMs) * 1000;
      while (a < s.us.length && s.us[a]! <= lo) a++;
      while (b < s.us.length && s.us[b]! <= hi) b++;
      return windowValue(m.op, s.v.slice(a, b), rangeS);
    });
    series.push({ labels: s.labels, values });
  }
  return { kind: 'vector', series };
}

function aggregate(op: VectorOp, vals: number[]): number {
  switch (op) {
    case 'sum':
      return vals.reduce((a, b) => a + b, 0);
    case 'avg':
      return vals.reduce((a, b) => a + b, 0) / vals.length;
    case 'min':
      return Math.min(...vals);
    case 'max':
      return Math.max(...vals);
    default:
      return vals.length; // count
  }
}

function vectorAgg(m: Extract<MetricQuery, { kind: 'vector_agg' }>, inner: Series[], steps: number): Series[] {
  if (m.op === 'sort' || m.op === 'sort_desc') return inner;
  if (m.op === 'topk' || m.op === 'bottomk') {
    const out = inner.map((s) => ({ labels: s.labels, values: new Array<number | undefined>(steps).fill(undefined) }));
    for (let i = 0; i < steps; i++) {
      const groups = new Map<string, number[]>();
      inner.forEach((s, j) => {
        if (s.values[i] === undefined) return;
        const key = labelsKey(group(s.labels, m.grouping ?? { without: false, labels: [] }));
        groups.set(key, [...(groups.get(key) ?? []), j]);
      });
      for (const idx of groups.values()) {
        idx.sort((x, y) => (m.op === 'topk' ? inner[y]!.values[i]! - inner[x]!.values[i]! : inner[x]!.values[i]! - inner[y]!.values[i]!));
        for (const j of idx.slice(0, m.k)) out[j]!.values[i] = inner[j]!.values[i];
      }
    }
    return out.filter((s) => s.values.some((v) => v !== undefined));
  }
  const groups = new Map<string, { labels: Record<string, string>; members: Series[] }>();
  for (const s of inner) {
    const labels = group(s.labels, m.grouping ?? { without: false, labels: [] });
    const key = labelsKey(labels);
    const g = groups.get(key) ?? { labels, members: [] };
    g.members.push(s);
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({
    labels: g.labels,
    values: Array.from({ length: steps }, (_, i) => {
      const vals = g.members.map((s) => s.values[i]).filter((v): v is number => v !== undefined);
      return vals.length ? aggregate(m.op, vals) : undefined;
    }),
  }));
}

const ARITH: Record<string, (a: number, b: number) => number> = {
  '+': (a, b) => a + b,
  '-': (a, b) => a - b,
  '*': (a, b) => a * b,
  '/': (a, b) => a / b,
  '%': (a, b) => a % b,
  '^': (a, b) => a ** b,
};
const CMP: Record<string, (a: number, b: number) => boolean> = {
  '==': (a, b) => a === b,
  '!=': (a, b) => a !== b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
};

/** One binary operation on two values at a step: undefined drops the sample (a false comparison). */
function apply(op: BinOp, bool: boolean, a: number, b: number, keep: number): number | undefined {
  if (ARITH[op]) return ARITH[op](a, b);
  const ok = CMP[op]!(a, b);
  if (bool) return ok ? 1 : 0;
  return ok ? keep : undefined;
}

function binary(m: Extract<MetricQuery, { kind: 'binary' }>, l: Value, r: Value, steps: number): Value {
  if (l.kind === 'scalar' && r.kind === 'scalar') {
    if (!ARITH[m.op] && !m.bool) throw new LogqlError('comparisons between scalars need the bool modifier');
    return { kind: 'scalar', value: apply(m.op, true, l.value, r.value, l.value)! };
  }
  if (l.kind === 'vector' && r.kind === 'scalar')
    return {
      kind: 'vector',
      series: l.series.map((s) => ({ labels: s.labels, values: s.values.map((v) => (v === undefined ? v : apply(m.op, m.bool, v, r.value, v))) })),
    };
  if (l.kind === 'scalar' && r.kind === 'vector')
    return {
      kind: 'vector',
      series: r.series.map((s) => ({ labels: s.labels, values: s.values.map((v) => (v === undefined ? v : apply(m.op, m.bool, l.value, v, v))) })),
    };
  const right = new Map((r as Extract<Value, { kind: 'vector' }>).series.map((s) => [labelsKey(s.labels), s]));
  const series: Series[] = [];
  for (const s of (l as Extract<Value, { kind: 'vector' }>).series) {
    const o = right.get(labelsKey(s.labels));
    if (!o) continue;
    series.push({
      labels: s.labels,
      values: Array.from({ length: steps }, (_, i) =>
        s.values[i] === undefined || o.values[i] === undefined ? undefined : apply(m.op, m.bool, s.values[i]!, o.values[i]!, s.values[i]!),
      ),
    });
  }
  return { kind: 'vector', series };
}

export async function evaluate(m: MetricQuery, ctx: EvalContext): Promise<Value> {
  const steps = ctx.steps.length;
  switch (m.kind) {
    case 'number':
      return { kind: 'scalar', value: m.value };
    case 'vector':
      return { kind: 'vector', series: [{ labels: {}, values: new Array(steps).fill(m.value) }] };
    case 'range':
      return rangeAgg(m, ctx);
    case 'vector_agg': {
      const pushed = m.op === 'sum' && m.inner.kind === 'range' && ADDITIVE.has(m.inner.op);
      const inner = pushed
        ? await rangeAgg(m.inner as Extract<MetricQuery, { kind: 'range' }>, ctx, m.grouping ?? { without: false, labels: [] })
        : await evaluate(m.inner, ctx);
      if (inner.kind !== 'vector') throw new LogqlError(`${m.op} needs a vector, not a scalar`);
      return { kind: 'vector', series: vectorAgg(m, inner.series, steps) };
    }
    case 'binary':
      return binary(m, await evaluate(m.left, ctx), await evaluate(m.right, ctx), steps);
  }
}
