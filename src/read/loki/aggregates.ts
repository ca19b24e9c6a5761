// Service volumes from the aggregates: `sum by (service_name) (count_over_time({service_name=~"..."}[R]))`
// (and rate, and a plain sum), the query of volume panels and most dashboards, answered from
// analytics.events_per_{minute,hour,day} (real-time, so exact as /metrics/events is) at any range,
// instead of reading every event. Exact only where the windows (t - R, t] fall on bucket edges: the
// coarsest level whose width divides R, the step and the first window's start (UTC) is read, and the
// events at the edges themselves are counted from the raw rows (a bucket holds [b, b + width), a
// window (t - R, t]). Any other query returns null and is read from the raw rows.
import type { Grouping, MetricQuery } from './ast';
import type { EvalContext, Series } from './values';
import { compile } from './regex';
import { scopeSql, type Where } from './sql';

const LEVELS = [
  { view: 'events_per_day', ms: 86_400_000 },
  { view: 'events_per_hour', ms: 3_600_000 },
  { view: 'events_per_minute', ms: 60_000 },
];

function eligible(m: Extract<MetricQuery, { kind: 'range' }>, into: Grouping | undefined): boolean {
  if (m.op !== 'count_over_time' && m.op !== 'rate') return false;
  if (m.offsetMs || m.unwrap || m.grouping || m.log.stages.length) return false;
  if (!into || into.without || into.labels.some((l) => l !== 'service_name')) return false;
  return m.log.selector.every((s) => s.name === 'service_name' && (s.op === '=' || s.op === '!=' || compile(s.value, true).pgExact));
}

function serviceWhere(m: Extract<MetricQuery, { kind: 'range' }>, ctx: EvalContext, w: Where) {
  const p = (v: unknown) => {
    w.params.push(v);
    return `$${w.params.length}`;
  };
  for (const s of m.log.selector) {
    if (s.op === '=' || s.op === '!=') w.sql.push(`service ${s.op === '=' ? '=' : '<>'} ${p(s.value)}::text`);
    else {
      const re = compile(s.value, true);
      w.sql.push(`service ${s.op === '!~' ? '!' : ''}${re.insensitive ? '~*' : '~'} ${p(re.pg)}::text`);
    }
  }
  scopeSql(w, ctx.scope);
}

export async function fromAggregates(m: Extract<MetricQuery, { kind: 'range' }>, ctx: EvalContext, into?: Grouping): Promise<Series[] | null> {
  if (!eligible(m, into)) return null;
  const { steps } = ctx;
  const stepMs = steps.length > 1 ? steps[1]! - steps[0]! : 0;
  const first = steps[0]! - m.rangeMs;
  if (first < 0) return null; // a window reaching before 1970: the raw rows answer it
  const level = LEVELS.find((l) => m.rangeMs % l.ms === 0 && stepMs % l.ms === 0 && first % l.ms === 0);
  if (!level) return null;
  const last = steps[steps.length - 1]!;

  const buckets: Where = {
    sql: ['bucket >= $1::text::timestamptz', 'bucket < $2::text::timestamptz'],
    params: [new Date(first).toISOString(), new Date(last).toISOString()],
  };
  serviceWhere(m, ctx, buckets);
  const rows = await ctx.engine.query<{ t: number; service: string; n: number }>(
    `SELECT (extract(epoch FROM bucket) * 1000)::float8 AS t, service, events::float8 AS n FROM analytics.${level.view} WHERE ${buckets.sql.join(' AND ')}`,
    buckets.params,
  );
  const edges = [...new Set(steps.flatMap((t) => [t, t - m.rangeMs]))].map((t) => new Date(t).toISOString());
  // A join on the edges, not `time = ANY($1)`: on compressed chunks TimescaleDB 2.2x turns that
  // into a vectorized filter and fails ("failed to evaluate runtime constant in vectorized filter").
  const exact: Where = { sql: [], params: [edges] };
  serviceWhere(m, ctx, exact);
  const atEdges = await ctx.engine.query<{ t: number; service: string; n: number }>(
    `SELECT (extract(epoch FROM e.time) * 1000)::float8 AS t, e.service, count(*)::float8 AS n
     FROM unnest($1::text[]) AS x(at) JOIN events e ON e.time = x.at::timestamptz
     ${exact.sql.length ? `WHERE ${exact.sql.join(' AND ')}` : ''} GROUP BY 1, 2`,
    exact.params,
  );
  const bySvc = into!.labels.includes('service_name');
  const perGroup = new Map<string, { bucket: Map<number, number>; edge: Map<number, number> }>();
  const groupOf = (service: string) => {
    const key = bySvc ? service : '';
    let g = perGroup.get(key);
    if (!g) perGroup.set(key, (g = { bucket: new Map(), edge: new Map() }));
    return g;
  };
  for (const r of rows) groupOf(r.service).bucket.set(r.t, (groupOf(r.service).bucket.get(r.t) ?? 0) + r.n);
  for (const r of atEdges) groupOf(r.service).edge.set(r.t, (groupOf(r.service).edge.get(r.t) ?? 0) + r.n);

  const series: Series[] = [];
  for (const [key, g] of perGroup) {
    const values = steps.map((t) => {
      let n = (g.edge.get(t) ?? 0) - (g.edge.get(t - m.rangeMs) ?? 0);
      for (let b = t - m.rangeMs; b < t; b += level.ms) n += g.bucket.get(b) ?? 0;
      if (n <= 0) return undefined;
      return m.op === 'rate' ? n / (m.rangeMs / 1000) : n;
    });
    if (values.some((v) => v !== undefined)) series.push({ labels: bySvc ? { service_name: key } : {}, values });
  }
  return series;
}
