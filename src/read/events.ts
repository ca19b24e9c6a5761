// The query stage: GET /events and GET /events/:id, their routes and their SQL.
// - Keyset pagination on (time, id): a cursor page costs the same at page 1 and page 1,000. Offset
//   pages (page/pageSize, the MVP's) still work and also return a next_cursor to switch over.
// - Filters: services, time range, metadata containment or key=value, case-insensitive substring
//   of the message. Every value is a bound parameter; only the SHAPE of the statement varies, with
//   the filters present, so each shape is prepared once and planned with the filters it really has.
// - Totals never scan millions of rows by default (count=auto): exact up to 10,000 matches; beyond,
//   from the aggregates for service and time filters (exact once they are final for the range), the
//   planner's estimate for the others, and the reply says which.
import { Hono } from 'hono';
import type { Config, ServiceScope } from '../config';
import type { Fallbacks } from '../fallbacks';
import { ApiError } from '../errors';
import { assertReady, type ServiceState } from '../state';
import type { Engine } from '../store/engine';
import type { MemoryBudget } from '../protect/budget';
import { requestEngine } from './deadline';
import { encodeCursor, queryParsers, type ListQuery } from './params';
import { sendJson } from './send';
import { likeAny, narrow, readScope, type Scoped } from './scope';
import { eachSlice, RangeStats, type Span } from './slices';

const EXACT_COUNT_LIMIT = 10_000;
const SMALL_COUNT = 1_000; // counted outright: cheaper than the aggregates' few statements
// The event's time as text to the microsecond (OTLP and Loki timestamps keep them; a JS Date would
// not): in replies, and in cursors, where a millisecond would skip or repeat events.
const COLUMNS = `id, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time_text, service, message, metadata, ingested_at`;

interface EventRow {
  id: string;
  time_text: string; // 2024-01-15T10:30:00.123456Z
  service: string;
  message: string;
  metadata: Record<string, unknown>;
  ingested_at: Date;
}

/** The MVP's event shape: id and eventId are the same value; createdAt is when it was stored. */
export function toApiEvent(r: EventRow) {
  const ingestedAt = new Date(r.ingested_at).toISOString();
  return {
    id: r.id,
    eventId: r.id,
    timestamp: r.time_text.endsWith('000Z') ? `${r.time_text.slice(0, -4)}Z` : r.time_text, // milliseconds unless there is more
    service: r.service,
    message: r.message,
    metadata: r.metadata,
    ingestedAt,
    createdAt: ingestedAt,
  };
}

/** LIKE pattern for a literal substring: %, _ and \ in the search text match themselves. */
const likeSubstring = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** WHERE clause and parameters for the filters (not the cursor). */
function filters(q: Scoped<ListQuery>) {
  const where: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  if (q.service?.length === 1) where.push(`service = ${p(q.service[0])}`);
  else if (q.service?.length) where.push(`service = ANY(${p(q.service)}::text[])`);
  if (q.scopeLike) where.push(likeAny(p(q.scopeLike)));
  if (q.from) where.push(`time >= ${p(q.from)}::timestamptz`);
  if (q.to) where.push(`time <= ${p(q.to)}::timestamptz`);
  if (q.q) where.push(`message ILIKE ${p(likeSubstring(q.q))} ESCAPE '\\'`);
  // ::text::jsonb, not ::jsonb: postgres.js would JSON-encode a string bound to a jsonb parameter.
  if (q.metadata) where.push(`metadata @> ${p(q.metadata)}::text::jsonb`);
  for (const [param, value] of Object.entries(q.metaEq)) where.push(`metadata #>> ${p(param.split('.').slice(1))}::text[] = ${p(value)}`);
  return { where, params };
}

export async function listEvents(engine: Engine, q: Scoped<ListQuery>, stats = new RangeStats(), fallbacks: Fallbacks | null = null) {
  const { where, params } = filters(q);
  const rowWhere = [...where];
  const rowParams = [...params];
  const dir = q.order === 'asc' ? 'ASC' : 'DESC';
  if (q.cursor) {
    // time <= t first (chunk exclusion and the index range), then the tie-break on id.
    const cmp = q.order === 'asc' ? '>' : '<';
    const t = `$${rowParams.push(q.cursor.t)}::timestamptz`;
    const i = `$${rowParams.push(q.cursor.i)}::uuid`;
    rowWhere.push(`time ${cmp}= ${t} AND (time ${cmp} ${t} OR id ${cmp} ${i})`);
  }
  const limit = q.pageSize;
  const offset = q.cursor ? 0 : ((q.page ?? 1) - 1) * limit;
  const rowsSql =
    `SELECT ${COLUMNS} FROM events ${rowWhere.length ? `WHERE ${rowWhere.join(' AND ')}` : ''} ` +
    `ORDER BY time ${dir}, id ${dir} LIMIT $${rowParams.length + 1}${offset ? ` OFFSET $${rowParams.length + 2}` : ''}`;
  // Service and time filters only, on the server: the count starts beside the page (another pooled
  // connection), so the answer waits for the slower of the two rather than their sum (bench:query:
  // a month of one service). Its cost is bounded (the aggregates, and counts stopped at a limit) even
  // when the page turns out to know the total itself; message and metadata filters are not, and wait.
  const early =
    engine.kind === 'server' && q.count === 'auto' && !q.q && !q.metadata && !Object.keys(q.metaEq).length
      ? countEvents(engine, q, where, params, stats, fallbacks)
      : null;
  early?.catch(() => {}); // awaited below, or not needed
  const rows = scansInSlices(engine, q)
    ? await slicedRows(engine, q, rowWhere, rowParams, limit + 1, offset, stats)
    : await engine.query<EventRow>(rowsSql, offset ? [...rowParams, limit + 1, offset] : [...rowParams, limit + 1]);
  const hasMore = rows.length > limit;
  // A last page that holds everything from its start already knows the total: counting would scan
  // the same rows again (the slow case: a filter that matches little in a big range).
  const knownTotal = !hasMore && !q.cursor && (offset === 0 || rows.length > 0) && q.count !== 'none' && q.count !== 'estimate';
  const total = knownTotal
    ? { value: offset + rows.length, exact: true, mode: 'exact' as const }
    : await (early ?? countEvents(engine, q, where, params, stats, fallbacks));
  const page = hasMore ? rows.slice(0, limit) : rows;
  const last = page.at(-1);
  return {
    events: page.map(toApiEvent),
    pagination: {
      total: total.value,
      total_is_exact: total.exact,
      count: total.mode,
      limit,
      offset,
      has_more: hasMore,
      next_cursor: hasMore && last ? encodeCursor({ t: last.time_text, i: last.id, o: q.order }) : null,
    },
  };
}

/** Filters no index holds, on the embedded engine: read in time slices (read/slices.ts). */
const scansInSlices = (engine: Engine, q: ListQuery) => engine.kind === 'embedded' && !!(q.q || q.metadata || Object.keys(q.metaEq).length);

/** The span a sliced read covers: the query's range, narrowed by its cursor. */
function spanOf(q: ListQuery): Span {
  const t = q.cursor?.t;
  if (!t) return { order: q.order, from: q.from, to: q.to };
  return q.order === 'desc'
    ? { order: q.order, from: q.from, to: q.to && q.to < t ? q.to : t }
    : { order: q.order, from: q.from && q.from > t ? q.from : t, to: q.to };
}

/** `want` rows of the page after the first `skip` matches (offset pages), slice after slice. */
async function slicedRows(engine: Engine, q: ListQuery, where: string[], params: unknown[], want: number, skip: number, stats: RangeStats) {
  const dir = q.order === 'asc' ? 'ASC' : 'DESC';
  const rows: EventRow[] = [];
  await eachSlice(
    engine,
    spanOf(q),
    params.length + 2,
    async (slice, sliceParams) => {
      const filter = `WHERE ${[...where, slice].join(' AND ')}`;
      const taken = [...params, 0, 0, ...sliceParams];
      if (skip > 0) {
        // A slice that holds no more matches than are still to skip is counted, not read.
        taken[params.length] = skip + 1;
        const [c] = await engine.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM (SELECT 1 FROM events ${filter} LIMIT $${params.length + 1} OFFSET $${params.length + 2}) s`,
          taken,
        );
        if ((c?.n ?? 0) <= skip) {
          skip -= c?.n ?? 0;
          return 'more';
        }
      }
      taken[params.length] = want - rows.length;
      taken[params.length + 1] = skip;
      rows.push(
        ...(await engine.query<EventRow>(
          `SELECT ${COLUMNS} FROM events ${filter} ORDER BY time ${dir}, id ${dir} LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
          taken,
        )),
      );
      skip = 0;
      return rows.length >= want ? 'done' : 'more';
    },
    stats,
  );
  return rows;
}

/** Matches counted up to `limit` + 1 (Infinity: all), slice after slice. Totals ignore the cursor. */
async function slicedCount(engine: Engine, q: ListQuery, where: string[], params: unknown[], limit: number, stats: RangeStats) {
  let n = 0;
  await eachSlice(
    engine,
    { order: q.order, from: q.from, to: q.to },
    params.length,
    async (slice, sliceParams) => {
      const filter = `WHERE ${[...where, slice].join(' AND ')}`;
      const sql =
        limit === Infinity
          ? `SELECT count(*)::float8 AS n FROM events ${filter}`
          : `SELECT count(*)::int AS n FROM (SELECT 1 FROM events ${filter} LIMIT ${limit - n + 1}) s`;
      const [r] = await engine.query<{ n: number }>(sql, [...params, ...sliceParams]);
      n += r?.n ?? 0;
      return n > limit ? 'done' : 'more';
    },
    stats,
  );
  return n;
}

async function countEvents(engine: Engine, q: Scoped<ListQuery>, whereList: string[], params: unknown[], stats: RangeStats, fallbacks: Fallbacks | null) {
  const where = whereList.length ? `WHERE ${whereList.join(' AND ')}` : '';
  const sliced = scansInSlices(engine, q);
  const bounded = (limit: number) => (sliced ? slicedCount(engine, q, whereList, params, limit, stats) : boundedCount(engine, where, params, limit));
  const mode = q.count;
  if (mode === 'none') return { value: null, exact: false, mode: 'none' as const };
  if (mode === 'exact') {
    // Counting a wide range outright is the longest statement a read makes: sliced on the embedded engine.
    if (engine.kind === 'embedded') return { value: await slicedCount(engine, q, whereList, params, Infinity, stats), exact: true, mode: 'exact' as const };
    const [r] = await engine.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM events ${where}`, params);
    return { value: r?.n ?? 0, exact: true, mode: 'exact' as const };
  }
  if (mode === 'estimate') return { value: await estimate(engine, where, params), exact: false, mode: 'estimate' as const };
  // auto: a small count is cheapest counted (the first thousand matches); past that, for service and
  // time filters, the aggregates answer in a few ms whatever the range holds and say whether that is
  // exact; when they cannot, a count bounded at EXACT_COUNT_LIMIT may still be.
  const small = await bounded(SMALL_COUNT);
  if (small <= SMALL_COUNT) return { value: small, exact: true, mode: 'exact' as const };
  const fromAggregates = await aggregateTotal(engine, q, fallbacks);
  if (fromAggregates?.exact) return fromAggregates;
  const n = await bounded(EXACT_COUNT_LIMIT);
  if (n <= EXACT_COUNT_LIMIT) return { value: n, exact: true, mode: 'exact' as const };
  // Both are lower bounds: what the aggregates had counted, and the bounded count.
  if (fromAggregates) return { ...fromAggregates, value: Math.max(n, fromAggregates.value) };
  return { value: Math.max(n, await estimate(engine, where, params)), exact: false, mode: 'estimate' as const };
}

/** Matches counted up to `limit` + 1: a bounded cost whatever the range. */
async function boundedCount(engine: Engine, where: string, params: unknown[], limit: number) {
  const [r] = await engine.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT 1 FROM events ${where} LIMIT ${limit + 1}) s`, params);
  return r?.n ?? 0;
}

/**
 * Filters of services and time only (the common case): the total from the aggregates, exact when
 * they are final for the range (sql/007_count_events.sql). Null for other filters (message search,
 * metadata: the aggregates do not know them) or when the aggregates cannot answer.
 */
async function aggregateTotal(engine: Engine, q: Scoped<ListQuery>, fallbacks: Fallbacks | null) {
  // The aggregates know services by name: a scope's patterns are counted the bounded way.
  if (q.q || q.metadata || Object.keys(q.metaEq).length || q.scopeLike) return null;
  try {
    const [r] = await engine.query<{ total: number; exact: boolean }>(
      `SELECT total::float8 AS total, exact FROM aurore_count_events($1::text[], $2::text::timestamptz, $3::text::timestamptz)`,
      [q.service ?? null, q.from ?? null, q.to ?? null],
    );
    if (!r) return null;
    return { value: r.total, exact: r.exact, mode: r.exact ? ('exact' as const) : ('estimate' as const) };
  } catch (err) {
    if (err instanceof ApiError) throw err; // the request's own end (REQUEST_TIMEOUT_MS, the client gone), not a fault
    // The planner's estimate still answers, flagged total_is_exact: false; never silently.
    fallbacks?.report('exact_total', err, 'totals from the aggregates failed: GET /events answers an estimate');
    return null;
  }
}

/** The planner's row estimate for the filters: instant, from the statistics ANALYZE keeps. */
async function estimate(engine: Engine, where: string, params: unknown[]) {
  const [r] = await engine.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM events ${where}`, params);
  const plan = r?.['QUERY PLAN'];
  const parsed = (typeof plan === 'string' ? JSON.parse(plan) : plan) as [{ Plan: { 'Plan Rows': number } }];
  return Math.round(parsed[0].Plan['Plan Rows']);
}

export async function getEvent(engine: Engine, id: string, scope: ServiceScope | null = null) {
  // An id sent with two timestamps is two events; the newest is returned. Another key's: not found.
  const [row] = scope
    ? await engine.query<EventRow>(`SELECT ${COLUMNS} FROM events WHERE id = $1::uuid AND ${likeAny('$2')} ORDER BY time DESC LIMIT 1`, [id, scope.like])
    : await engine.query<EventRow>(`SELECT ${COLUMNS} FROM events WHERE id = $1::uuid ORDER BY time DESC LIMIT 1`, [id]);
  return row ? toApiEvent(row) : null;
}

/** GET /events and GET /events/:id. */
export function eventRoutes({ config, reader: engine, state, answers }: { config: Config; reader: Engine; state: ServiceState; answers: MemoryBudget }) {
  const app = new Hono();
  const parse = queryParsers(config.limits);
  const retryAfter = config.retryAfterSeconds;
  const sliceStats = new RangeStats(); // embedded reads in time slices: their sizes, kept a minute
  app.get('/events', async (c) => {
    const q = narrow(parse.list(c.req.queries()), readScope(c));
    assertReady(state, retryAfter);
    return sendJson(c, await listEvents(requestEngine(c, engine, config.requestTimeoutMs), q, sliceStats, state.fallbacks), answers);
  });
  app.get('/events/:id', async (c) => {
    const id = parse.eventId(c.req.param('id'));
    assertReady(state, retryAfter);
    const ev = await getEvent(requestEngine(c, engine, config.requestTimeoutMs), id.toLowerCase(), readScope(c));
    if (!ev) throw new ApiError('not_found', `No event with id ${id}`);
    return c.json(ev);
  });
  return app;
}
