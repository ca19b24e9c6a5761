// The Loki query API's lookups over a time range (default: the last 6 hours, as Loki): label names,
// one label's values, the series (stream label sets) of selectors, index volume, and the fields
// Grafana's Logs Drilldown detects. Without a selector, names and service values come from SQL
// (service values: the hourly aggregate's candidates, each confirmed on the raw rows of the range
// through the (service, time) index); with one, from the entries themselves (logs.ts), so that the
// whole selector applies exactly.
import type { ServiceScope } from '../../config';
import type { Engine } from '../../store/engine';
import type { LogQuery } from './ast';
import { eachEntry } from './logs';
import { type Entry, labelName, RESOURCE_LABELS } from './model';
import { scopeSql, usIso, type Where } from './sql';

export interface LookupArgs {
  win: { startUs: bigint; endUs: bigint };
  selector?: LogQuery;
  selectors?: LogQuery[];
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Every entry of the range (one selector, or a match of any), handed to `take`. */
async function each(engine: Engine, scope: ServiceScope | null, a: LookupArgs, take: (e: Entry) => void) {
  const selectors: LogQuery[] = a.selectors ?? (a.selector ? [a.selector] : [{ selector: [{ name: 'service_name', op: '=~', value: '.+' }], stages: [] }]);
  for (const q of selectors)
    await eachEntry(engine, q, scope, a.win, 'desc', (e) => {
      take(e);
      return true;
    });
}

function rangeWhere(a: LookupArgs, scope: ServiceScope | null): Where {
  const w: Where = { sql: ['time >= $1::text::timestamptz', 'time < $2::text::timestamptz'], params: [usIso(a.win.startUs), usIso(a.win.endUs)] };
  scopeSql(w, scope);
  return w;
}

async function services(engine: Engine, scope: ServiceScope | null, a: LookupArgs): Promise<string[]> {
  const w = rangeWhere(a, scope);
  const rows = await engine.query<{ service: string }>(
    `SELECT s.service FROM (SELECT DISTINCT service FROM analytics.events_per_hour
                            WHERE bucket >= date_trunc('hour', $1::text::timestamptz) AND bucket < $2::text::timestamptz) s
     WHERE EXISTS (SELECT 1 FROM events WHERE service = s.service AND ${w.sql.join(' AND ')}) ORDER BY 1`,
    w.params,
  );
  return rows.map((r) => r.service);
}

export async function labelNames(engine: Engine, scope: ServiceScope | null, a: LookupArgs): Promise<string[]> {
  const names = new Set<string>();
  if (a.selector) {
    await each(engine, scope, a, (e) => {
      for (const k of Object.keys(e.stream)) names.add(k);
    });
    return [...names].sort(byName);
  }
  const w = rangeWhere(a, scope);
  const rows = await engine.query<{ k: string }>(
    `SELECT DISTINCT k FROM (
       SELECT jsonb_object_keys(metadata->'labels') AS k FROM events WHERE ${w.sql.join(' AND ')} AND jsonb_typeof(metadata->'labels') = 'object'
       UNION ALL
       SELECT jsonb_object_keys(metadata->'resource') AS k FROM events WHERE ${w.sql.join(' AND ')} AND jsonb_typeof(metadata->'resource') = 'object'
     ) x`,
    w.params,
  );
  const promoted = new Set(RESOURCE_LABELS);
  for (const r of rows) if (promoted.has(r.k) || !r.k.includes('.')) names.add(labelName(r.k));
  // a resource attribute that is not promoted is structured metadata, not a label
  for (const r of rows) if (r.k.includes('.') && !promoted.has(r.k)) names.delete(labelName(r.k));
  if ((await services(engine, scope, a)).length) names.add('service_name');
  return [...names].filter((n) => n !== 'service_name' || true).sort(byName);
}

export async function labelValues(engine: Engine, scope: ServiceScope | null, name: string, a: LookupArgs): Promise<string[]> {
  if (name === 'service_name' && !a.selector) return services(engine, scope, a);
  const values = new Set<string>();
  await each(engine, scope, a, (e) => {
    const v = e.stream[name];
    if (v !== undefined && v !== '') values.add(v);
  });
  return [...values].sort(byName);
}

export async function seriesOf(engine: Engine, scope: ServiceScope | null, a: LookupArgs): Promise<Record<string, string>[]> {
  const seen = new Map<string, Record<string, string>>();
  await each(engine, scope, a, (e) => {
    const key = JSON.stringify(Object.entries(e.stream).sort(([x], [y]) => byName(x, y)));
    if (!seen.has(key)) seen.set(key, e.stream);
  });
  return [...seen.values()];
}

/** GET /loki/api/v1/index/volume(_range): bytes per series of the target labels (default: the selector's), as Loki's volume. */
export async function volume(engine: Engine, scope: ServiceScope | null, a: LookupArgs, p: Record<string, string>, range = false) {
  const targets = p.targetLabels
    ? p.targetLabels
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [...new Set(a.selector!.selector.map((m) => m.name))];
  const limit = Math.max(1, Math.min(Number(p.limit) || 100, 10_000));
  const step = range ? Math.max(1000, Number(p.step) ? Number(p.step) * 1000 : 60_000) : 0;
  const groups = new Map<string, { metric: Record<string, string>; total: number; points: Map<number, number> }>();
  const startMs = Number(a.win.startUs / 1000n);
  await each(engine, scope, a, (e) => {
    const labels = { ...e.stream, ...e.meta };
    const metric = Object.fromEntries(targets.filter((t) => labels[t] !== undefined).map((t) => [t, labels[t]!]));
    const key = JSON.stringify(metric);
    const g = groups.get(key) ?? { metric, total: 0, points: new Map<number, number>() };
    const bytes = Buffer.byteLength(e.line);
    g.total += bytes;
    if (range) {
      const t = startMs + Math.floor((Number(BigInt(e.ns) / 1_000_000n) - startMs) / step) * step;
      g.points.set(t, (g.points.get(t) ?? 0) + bytes);
    }
    groups.set(key, g);
  });
  const top = [...groups.values()].sort((x, y) => y.total - x.total).slice(0, limit);
  const endS = Number(a.win.endUs / 1000n) / 1000;
  if (!range) return { resultType: 'vector', result: top.map((g) => ({ metric: g.metric, value: [endS, String(g.total)] })) };
  return {
    resultType: 'matrix',
    result: top.map((g) => ({ metric: g.metric, values: [...g.points].sort(([x], [y]) => x - y).map(([t, v]) => [t / 1000, String(v)]) })),
  };
}

/** Fields of the entries (structured metadata, and json or logfmt keys of the lines), with their cardinality; or one field's values. */
export async function detectedFields(engine: Engine, scope: ServiceScope | null, a: LookupArgs, only?: string) {
  const fields = new Map<string, { values: Set<string>; parsers: Set<string>; numeric: boolean }>();
  const add = (name: string, value: string, parser: string | null) => {
    const f = fields.get(name) ?? { values: new Set<string>(), parsers: new Set<string>(), numeric: true };
    if (f.values.size < 1000) f.values.add(value);
    if (parser) f.parsers.add(parser);
    if (value === '' || Number.isNaN(Number(value))) f.numeric = false;
    fields.set(name, f);
  };
  let seen = 0;
  await each(engine, scope, a, (e) => {
    if (++seen > 10_000) return; // a sample, as Loki's detection reads one
    for (const [k, v] of Object.entries(e.meta)) add(k, v, null);
    if (e.line.startsWith('{')) {
      try {
        for (const [k, v] of Object.entries(JSON.parse(e.line) as Record<string, unknown>))
          if (v === null || typeof v !== 'object') add(labelName(k), String(v), 'json');
      } catch {}
    }
  });
  if (only !== undefined) return { values: [...(fields.get(only)?.values ?? [])].sort(byName) };
  return {
    fields: [...fields].map(([label, f]) => ({
      label,
      type: f.numeric ? 'float' : 'string',
      cardinality: f.values.size,
      parsers: f.parsers.size ? [...f.parsers] : null,
    })),
    limit: 1000,
  };
}
