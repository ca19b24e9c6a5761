// The metrics read side: GET /health/business (the MVP's shape) and GET /metrics/events, their routes
// and their SQL, answered from the aggregates in the analytics schema, never from a scan of raw
// events. The same SQL serves every edition: continuous aggregates (real-time) or the Apache
// edition's rollup tables share names and columns (sql/003_aggregates.*.sql).
import { Hono } from 'hono';
import type { Config, ServiceScope } from '../config';
import { assertReady, type ServiceState } from '../state';
import type { Engine } from '../store/engine';
import { ApiError } from '../errors';
import type { MemoryBudget } from '../protect/budget';
import { requestEngine } from './deadline';
import { liveFrom, type ServiceHistory } from './history';
import { BUCKETS, queryParsers, type SeriesQuery } from './params';
import { likeAny, narrow, readScope, type Scoped } from './scope';
import { sendJson } from './send';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const TOP_SERVICES = 10;

interface Row {
  t: number; // bucket start, ms since the epoch
  service: string;
  events: number;
}

// Bucket starts as epoch milliseconds: independent of the session's TimeZone and DateStyle.
const T = `(extract(epoch FROM bucket) * 1000)::float8 AS t`;

/** 'YYYY-MM-DD HH:00', UTC: the MVP's eventsByHour label. */
const hourLabel = (t: number) => `${new Date(t).toISOString().slice(0, 13).replace('T', ' ')}:00`;
const iso = (t: number) => new Date(t).toISOString();

/**
 * Business metrics, correct to the minute. "Last hour" is the current minute and the 59 before it;
 * "last 24 hours" the current minute and the 1,439 before it: whole hours from the hourly aggregate
 * and the ragged edges from the per-minute one, so the cost does not grow with the window. Totals
 * cover the kept history (the daily aggregate, AGGREGATE_DAY_RETENTION_DAYS): the days before
 * yesterday from `history` (read once per refresh period), yesterday and today live.
 */
export async function businessMetrics(engine: Engine, history: ServiceHistory, now = Date.now(), scope: ServiceScope | null = null) {
  const minute = Math.floor(now / MINUTE) * MINUTE;
  const hour = Math.floor(now / HOUR) * HOUR;
  const dayStart = minute - 1439 * MINUTE;
  const firstFullHour = hour - 23 * HOUR; // the first whole hour after dayStart, always
  const hourStart = minute - 59 * MINUTE;
  const live = liveFrom(now);
  // A key's services (read/scope.ts): the same statements with one more condition, its last parameter.
  const only = (n: number) => (scope ? ` AND ${likeAny(`$${n}`)}` : '');
  const withScope = (params: unknown[]) => (scope ? [...params, scope.like] : params);
  const [before, recent, minutes, hours] = await Promise.all([
    history(live, now),
    engine.query<{ service: string; events: number }>(
      `SELECT service, sum(events)::float8 AS events FROM analytics.events_per_day WHERE bucket >= $1::text::timestamptz${only(2)} GROUP BY service`,
      withScope([iso(live)]),
    ),
    // Two plain ranges (an OR of them would not use the bucket index).
    engine.query<{ t: number; events: number }>(
      `SELECT ${T}, sum(events)::float8 AS events FROM analytics.events_per_minute
       WHERE bucket >= $1::text::timestamptz AND bucket < $2::text::timestamptz${only(4)} GROUP BY bucket
       UNION ALL
       SELECT ${T}, sum(events)::float8 AS events FROM analytics.events_per_minute
       WHERE bucket >= $3::text::timestamptz${only(4)} GROUP BY bucket`,
      withScope([iso(dayStart), iso(firstFullHour), iso(hourStart)]),
    ),
    engine.query<{ t: number; events: number }>(
      `SELECT ${T}, sum(events)::float8 AS events FROM analytics.events_per_hour
       WHERE bucket >= $1::text::timestamptz AND bucket < $2::text::timestamptz${only(3)} GROUP BY bucket`,
      withScope([iso(firstFullHour), iso(hour)]),
    ),
  ]);
  const totals = new Map(scope ? [...before].filter(([service]) => scope.test(service)) : before);
  for (const r of recent) totals.set(r.service, (totals.get(r.service) ?? 0) + r.events);
  const byService = [...totals].map(([service, events]) => ({ service, events }));
  const perHour = new Map<number, number>();
  let last24 = 0;
  for (const h of hours) {
    perHour.set(h.t, h.events);
    last24 += h.events;
  }
  let lastHour = 0;
  let currentHour = 0;
  for (const m of minutes) {
    if (m.t < firstFullHour || m.t >= hour) last24 += m.events;
    if (m.t >= hour) currentHour += m.events;
    if (m.t >= hourStart) lastHour += m.events;
  }
  perHour.set(hour, currentHour);
  byService.sort((a, b) => b.events - a.events || (a.service < b.service ? -1 : 1));
  // fromEntries defines each key: "__proto__" is a valid service name, and an assignment would
  // take it for the prototype.
  const eventsByService = Object.fromEntries(byService.map((s) => [s.service, s.events]));
  const totalEvents = byService.reduce((sum, s) => sum + s.events, 0);
  return {
    totalEvents,
    eventsByService,
    eventsLast24Hours: last24,
    eventsLastHour: lastHour,
    averageEventsPerMinute: Math.round((last24 / 1440) * 100) / 100,
    topServices: byService.slice(0, TOP_SERVICES).map((s) => ({ service: s.service, count: s.events })),
    // The last 24 hours, oldest first, zeros included (the last one is the current, partial hour).
    eventsByHour: Array.from({ length: 24 }, (_, i) => {
      const t = hour - (23 - i) * HOUR;
      return { hour: hourLabel(t), count: perHour.get(t) ?? 0 };
    }),
    generatedAt: iso(now),
  };
}

/**
 * A 400 when an answer would hold more than `max` points (services x buckets): 1,000 services over
 * a week of minutes was 10 million points, a 457 MB answer and 5.5 s of the main thread (ingestion
 * stalled with it), and a few thousand took the process past its memory.
 */
function assertPoints(
  services: number,
  buckets: number,
  max: number,
  named: boolean,
  held = `${services.toLocaleString('en')} services x ${buckets.toLocaleString('en')} buckets hold`,
) {
  if (services * buckets <= max) return;
  const message = `${held} more than ${max.toLocaleString('en')} points (SERIES_MAX_POINTS): name fewer services, use a wider bucket or a shorter range`;
  throw new ApiError('validation_failed', `The answer would be too large: ${message}`, { errors: [{ field: named ? 'bucket' : 'service', message }] });
}

/** Counts per bucket per service, every bucket present (zeros included) from `from` up to `to`. */
export async function eventSeries(engine: Engine, q: Scoped<SeriesQuery>, maxPoints: number) {
  const { view, ms } = BUCKETS[q.bucket];
  const buckets = Math.ceil((q.to - q.from) / ms);
  if (q.service) assertPoints(q.service.length, buckets, maxPoints, true);
  const params: unknown[] = [new Date(q.from).toISOString(), new Date(q.to).toISOString()];
  const byService = q.service ? ` AND service = ANY($3::text[])` : q.scopeLike ? ` AND ${likeAny('$3')}` : '';
  if (q.service) params.push(q.service);
  else if (q.scopeLike) params.push(q.scopeLike);
  // Each row is a point of the answer: more rows than points allowed is an answer refused anyway,
  // and fetching them all first is what must not happen.
  const rows = await engine.query<Row>(
    `SELECT ${T}, service, events::float8 AS events FROM analytics.${view}
     WHERE bucket >= $1::text::timestamptz AND bucket < $2::text::timestamptz${byService} LIMIT ${maxPoints + 1}`,
    params,
  );
  if (rows.length > maxPoints) assertPoints(rows.length, 1, maxPoints, !!q.service, 'the range holds');
  const counts = new Map<string, Map<number, number>>();
  for (const s of q.service ?? []) counts.set(s, new Map());
  for (const r of rows) {
    let m = counts.get(r.service);
    if (!m) counts.set(r.service, (m = new Map()));
    m.set(r.t, r.events);
  }
  assertPoints(counts.size, buckets, maxPoints, !!q.service);
  const times: number[] = [];
  const labels: string[] = []; // one string per bucket, shared by every service's points
  for (let t = q.from; t < q.to; t += ms) {
    times.push(t);
    labels.push(iso(t));
  }
  const series = [...counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([service, m]) => {
      let total = 0;
      const points = times.map((t, i) => {
        const count = m.get(t) ?? 0;
        total += count;
        return { time: labels[i]!, count };
      });
      return { service, total, points };
    });
  return { bucket: q.bucket, from: iso(q.from), to: iso(q.to), series };
}

/** GET /metrics/events and GET /health/business. */
export function metricsRoutes({
  config,
  reader: engine,
  state,
  answers,
  history,
}: {
  config: Config;
  reader: Engine;
  state: ServiceState;
  answers: MemoryBudget;
  history: ServiceHistory;
}) {
  const app = new Hono();
  const parse = queryParsers(config.limits);
  app.get('/metrics/events', async (c) => {
    const q = narrow(parse.series(c.req.queries()), readScope(c));
    assertReady(state, config.retryAfterSeconds);
    return sendJson(c, await eventSeries(requestEngine(c, engine, config.requestTimeoutMs), q, config.limits.seriesMaxPoints), answers);
  });
  // The MVP's business metrics, from the aggregates.
  app.get('/health/business', async (c) => {
    assertReady(state, config.retryAfterSeconds);
    // Its eventsByService names every service: 3,000 of them are ~110 KB, held while it is sent.
    return sendJson(c, await businessMetrics(requestEngine(c, engine, config.requestTimeoutMs), history, Date.now(), readScope(c)), answers);
  });
  return app;
}
