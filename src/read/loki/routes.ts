// The Loki query API (Loki 3.x's HTTP API, what Grafana's Loki data source and logcli call), over
// the same rows as GET /events, with its keys, scopes, rate budget, REQUEST_TIMEOUT_MS (the
// statements stop with the request: read/deadline.ts) and READ_BUDGET_BYTES (read/send.ts).
// Answers {"status":"success","data":...}; errors {"status":"error","errorType":..,"error":..} (400
// bad_data for a query this service will not answer, naming why).
import { type Context, Hono } from 'hono';
import type { Config } from '../../config';
import { ApiError, type WireErrors } from '../../errors';
import type { MemoryBudget } from '../../protect/budget';
import { assertReady, type ServiceState } from '../../state';
import type { Engine } from '../../store/engine';
import { requestEngine } from '../deadline';
import { readScope } from '../scope';
import { sendJson } from '../send';
import type { LogQuery } from './ast';
import { eachEntry, logStreams } from './logs';
import { evaluate } from './metric';
import type { Value } from './values';
import { parseDuration, parseQuery } from './parse';
import { detectedFields, labelNames, labelValues, type LookupArgs, seriesOf, volume } from './lookups';

export const LOKI_VERSION = '3.5.0';
/** Loki's own limits: points per series of a range query, and entries per query. */
export const MAX_POINTS = 11_000;
export const MAX_ENTRIES = 5000;
const HOUR_MS = 3_600_000;

/** The query API's errors in Loki's shape (and `message`, which Grafana shows). */
export const lokiQueryErrors: WireErrors = {
  prefix: '/loki/',
  render(c, e) {
    const type =
      e.status === 400
        ? 'bad_data'
        : e.status === 401 || e.status === 403
          ? 'unauthorized'
          : e.code === 'request_timeout'
            ? 'timeout'
            : e.status === 429
              ? 'too_many_requests'
              : e.status === 503
                ? 'unavailable'
                : 'internal';
    const detail = e.opts.errors?.length ? `: ${e.opts.errors.map((x) => `${x.field} ${x.message}`).join('; ')}` : '';
    if (e.opts.retryAfter !== undefined) c.header('Retry-After', String(e.opts.retryAfter));
    return c.json({ status: 'error', errorType: type, error: `${e.message}${detail}`, message: `${e.message}${detail}` }, e.status);
  },
};

const bad = (message: string) => new ApiError('validation_failed', message);

const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** A Loki timestamp: nanoseconds (or seconds, up to 10 digits), float seconds, or RFC 3339. In ms. */
export function parseTime(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (/^\d+$/.test(value)) return value.length <= 10 ? Number(value) * 1000 : Number(BigInt(value) / 1_000_000n) + Number(BigInt(value) % 1_000_000n) / 1e6;
  if (/^\d+\.\d*$/.test(value)) return Number(value) * 1000;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw bad(`invalid ${name}: ${JSON.stringify(value.slice(0, 40))} (nanoseconds, seconds or RFC 3339)`);
  return t;
}

/** A step: float seconds ("15", "0.5") or a duration ("15s", "100ms"). In ms. */
function parseStep(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const ms = /^\d+(\.\d+)?$/.test(value)
    ? Number(value) * 1000
    : (() => {
        try {
          return parseDuration(value);
        } catch {
          throw bad(`invalid step: ${JSON.stringify(value.slice(0, 40))}`);
        }
      })();
  if (!(ms > 0)) throw bad('step must be positive');
  return ms;
}

/** The request's parameters, from the query string and, for POST, a form body. */
async function params(c: Context): Promise<Record<string, string>> {
  const out: Record<string, string> = { ...c.req.query() };
  if (c.req.method === 'POST') {
    const form = await c.req.parseBody().catch(() => ({}));
    for (const [k, v] of Object.entries(form)) if (typeof v === 'string') out[k] = v;
  }
  return out;
}

function limitOf(p: Record<string, string>) {
  const limit = p.limit === undefined || p.limit === '' ? 100 : Number(p.limit);
  if (!Number.isInteger(limit) || limit <= 0) throw bad(`invalid limit: ${JSON.stringify(p.limit)} (a positive integer)`);
  if (limit > MAX_ENTRIES) throw bad(`max entries limit per query exceeded, limit > max_entries_limit (${limit} > ${MAX_ENTRIES})`);
  return limit;
}

function directionOf(p: Record<string, string>): 'forward' | 'backward' {
  const d = (p.direction ?? '').toLowerCase();
  if (d === '' || d === 'backward') return 'backward';
  if (d === 'forward') return 'forward';
  throw bad(`invalid direction: ${JSON.stringify(p.direction)} (forward or backward)`);
}

/** The time range of a request: end (default now), start (default end - since, or 1 hour). */
export function rangeOf(p: Record<string, string>, now = Date.now()) {
  const end = parseTime(p.end, 'end', now);
  const since = p.since ? parseStep(p.since, HOUR_MS) : HOUR_MS;
  // Before 1970 nothing is stored; past year 9999 no timestamp is valid.
  const start = Math.max(parseTime(p.start, 'start', end - since), 0);
  if (!(end <= MAX_TIME_MS)) throw bad('end is past the year 9999');
  if (end < start) throw bad('the end timestamp must not be before the start time');
  return { start, end };
}

const query = (p: Record<string, string>) => {
  if (!p.query) throw bad('query is required');
  return parseQuery(p.query);
};

const format = (v: number) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));

function matrix(v: Value, steps: number[]) {
  if (v.kind === 'scalar') return { resultType: 'matrix', result: [{ metric: {}, values: steps.map((t) => [t / 1000, format(v.value)]) }] };
  const result = v.series
    .map((s) => ({ metric: s.labels, values: steps.flatMap((t, i) => (s.values[i] === undefined ? [] : [[t / 1000, format(s.values[i]!)]])) }))
    .filter((s) => s.values.length);
  return { resultType: 'matrix', result: result.sort((a, b) => (JSON.stringify(a.metric) < JSON.stringify(b.metric) ? -1 : 1)) };
}

function vector(v: Value, t: number, sortOp?: string) {
  if (v.kind === 'scalar') return { resultType: 'scalar', result: [t / 1000, format(v.value)] };
  const result = v.series.filter((s) => s.values[0] !== undefined).map((s) => ({ metric: s.labels, value: [t / 1000, format(s.values[0]!)] }));
  if (sortOp === 'sort' || sortOp === 'sort_desc') result.sort((a, b) => (Number(a.value[1]) - Number(b.value[1])) * (sortOp === 'sort' ? 1 : -1));
  return { resultType: 'vector', result };
}

export interface LokiDeps {
  config: Config;
  reader: Engine;
  state: ServiceState;
  answers: MemoryBudget;
}

const stats = (lines: number, bytes: number, started: number) => {
  const s = Math.max((performance.now() - started) / 1000, 1e-6);
  return {
    summary: {
      bytesProcessedPerSecond: Math.round(bytes / s),
      linesProcessedPerSecond: Math.round(lines / s),
      totalBytesProcessed: bytes,
      totalLinesProcessed: lines,
      execTime: s,
    },
  };
};

export function lokiQueryRoutes(deps: LokiDeps) {
  const { config, state } = deps;
  const app = new Hono();
  const engineOf = (c: Context) => {
    assertReady(state, 1);
    return requestEngine(c, deps.reader, config.requestTimeoutMs);
  };
  const ok = (c: Context, data: unknown) => sendJson(c, { status: 'success', data }, deps.answers);
  const ctxOf = (c: Context, steps: number[]) => ({ engine: engineOf(c), scope: readScope(c), steps, maxRows: config.limits.lokiQueryMaxEvents });
  const categorize = (c: Context) =>
    (c.req.header('x-loki-response-encoding-flags') ?? '')
      .split(',')
      .map((s) => s.trim())
      .includes('categorize-labels');

  async function logs(c: Context, p: Record<string, string>, log: LogQuery, start: number, end: number) {
    const started = performance.now();
    const cat = categorize(c);
    const win = { startUs: BigInt(Math.round(start * 1000)), endUs: BigInt(Math.round(end * 1000)) };
    const r = await logStreams(engineOf(c), log, readScope(c), win, { limit: limitOf(p), direction: directionOf(p), categorize: cat });
    return ok(c, {
      resultType: 'streams',
      result: r.streams,
      stats: stats(r.lines, r.bytes, started),
      ...(cat ? { encodingFlags: ['categorize-labels'] } : {}),
    });
  }

  app.on(['GET', 'POST'], '/loki/api/v1/query_range', async (c) => {
    const p = await params(c);
    const q = query(p);
    const { start, end } = rangeOf(p);
    directionOf(p);
    limitOf(p);
    if (q.kind === 'log') return logs(c, p, q.log, start, end);
    const step = parseStep(p.step, Math.max(1000, Math.floor((end - start) / 250 / 1000) * 1000));
    const points = Math.floor((end - start) / step) + 1;
    if (points > MAX_POINTS) throw bad(`exceeded maximum resolution of ${MAX_POINTS} points per timeseries. Try increasing the value of the step parameter`);
    const steps = Array.from({ length: points }, (_, i) => start + i * step);
    const started = performance.now();
    const v = await evaluate(q.metric, ctxOf(c, steps));
    return ok(c, { ...matrix(v, steps), stats: stats(0, 0, started) });
  });

  app.on(['GET', 'POST'], '/loki/api/v1/query', async (c) => {
    const p = await params(c);
    const q = query(p);
    const t = parseTime(p.time, 'time', Date.now());
    if (!(t >= 0 && t <= MAX_TIME_MS)) throw bad('time must be between 1970 and the year 9999');
    limitOf(p);
    directionOf(p);
    if (q.kind === 'log') throw bad('log queries are not supported as an instant query type, please change your query to a range query type');
    const started = performance.now();
    const v = await evaluate(q.metric, ctxOf(c, [t]));
    return ok(c, { ...vector(v, t, q.metric.kind === 'vector_agg' ? q.metric.op : undefined), stats: stats(0, 0, started) });
  });

  app.get('/loki/api/v1/labels', async (c) => ok(c, await labelNames(engineOf(c), readScope(c), await lookupArgs(c))));
  app.get('/loki/api/v1/label/:name/values', async (c) => ok(c, await labelValues(engineOf(c), readScope(c), c.req.param('name'), await lookupArgs(c))));
  app.on(['GET', 'POST'], '/loki/api/v1/series', async (c) => ok(c, await seriesOf(engineOf(c), readScope(c), await lookupArgs(c, true))));
  app.get('/loki/api/v1/index/stats', async (c) => {
    const a = await lookupArgs(c, false, true);
    let streams = new Set<string>();
    let entries = 0;
    let bytes = 0;
    await eachEntry(engineOf(c), a.selector!, readScope(c), a.win, 'asc', (e) => {
      streams.add(JSON.stringify(e.stream));
      entries++;
      bytes += Buffer.byteLength(e.line);
      return true;
    });
    const n = streams.size;
    streams = new Set();
    return c.json({ streams: n, chunks: n, entries, bytes });
  });
  app.get('/loki/api/v1/index/volume', async (c) => ok(c, await volume(engineOf(c), readScope(c), await lookupArgs(c, false, true), c.req.query())));
  app.get('/loki/api/v1/index/volume_range', async (c) =>
    ok(c, await volume(engineOf(c), readScope(c), await lookupArgs(c, false, true), c.req.query(), true)),
  );
  app.get('/loki/api/v1/detected_labels', async (c) => {
    const a = await lookupArgs(c);
    const names = await labelNames(engineOf(c), readScope(c), a);
    const out = [];
    for (const n of names) out.push({ label: n, cardinality: (await labelValues(engineOf(c), readScope(c), n, a)).length });
    return c.json({ detectedLabels: out });
  });
  app.get('/loki/api/v1/detected_fields', async (c) => c.json(await detectedFields(engineOf(c), readScope(c), await lookupArgs(c, false, true))));
  app.get('/loki/api/v1/detected_field/:name/values', async (c) => {
    const f = await detectedFields(engineOf(c), readScope(c), await lookupArgs(c, false, true), c.req.param('name'));
    return c.json({ values: f.values ?? [] });
  });
  app.get('/loki/api/v1/patterns', (c) => c.json({ status: 'success', data: [] }));
  app.get('/loki/api/v1/status/buildinfo', (c) =>
    c.json({ version: LOKI_VERSION, revision: 'aurore-events', branch: 'main', buildUser: '', buildDate: '', goVersion: '' }),
  );
  app.get('/loki/api/v1/format_query', (c) => {
    const p = c.req.query();
    query(p);
    return c.json({ status: 'success', data: p.query!.trim() });
  });
  return app;
}

/** Range and selector of the lookup routes (labels, values, series, stats, volume, fields): Loki's default range is 6 hours. */
async function lookupArgs(c: Context, series = false, required = false): Promise<LookupArgs> {
  const p = await params(c);
  const { start, end } = rangeOf({ ...p, since: p.since ?? '6h' });
  const win = { startUs: BigInt(Math.round(start * 1000)), endUs: BigInt(Math.round(end * 1000)) + 1n };
  const asLog = (text: string): LogQuery => {
    const q = query({ query: text });
    if (q.kind !== 'log') throw bad(`${text.slice(0, 60)}: expected a stream selector`);
    return q.log;
  };
  if (series) {
    // Grafana sends match[]; logcli sends match.
    const search = new URL(c.req.url).searchParams;
    const all = [...search.getAll('match[]'), ...search.getAll('match')];
    const body: Record<string, unknown> = c.req.method === 'POST' ? await c.req.parseBody({ all: true }).catch(() => ({})) : {};
    const form = [body['match[]'], body.match].flat();
    const list = [...all, ...(form.filter((x) => typeof x === 'string') as string[])];
    if (!list.length) throw bad('match[] (or match) is required: a stream selector');
    return { win, selectors: list.map(asLog) };
  }
  const text = p.query;
  if (!text) {
    if (required) throw bad('query is required');
    return { win };
  }
  return { win, selector: asLog(text) };
}
