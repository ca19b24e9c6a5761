// The read side's query parameters, validated once at the edge: GET /events (filters, paging,
// cursors, totals) and GET /metrics/events (services, range, bucket). Unknown parameters are ignored,
// as the MVP did. Handlers receive typed values; a bad parameter is named in the 400.
import { z } from 'zod';
import type { Config } from '../config';
import { ApiError, zodErrors } from '../errors';
import { METADATA_DEPTH_RULE, nestsDeeper, parseTimestamp, SERVICE_RE, SERVICE_RULE, UUID_RE } from '../event';

type Limits = Config['limits'];

// metadata.<key> filters are keyed by the whole parameter name: a bare key "__proto__" would be
// dropped by an object literal's setter and by zod's record, and the filter silently ignored.
const META_PARAM_RE = /^metadata\.[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9_-]{1,64}){0,4}$/;

// PostgreSQL text holds no NUL and jsonb no unpaired UTF-16 surrogate: a filter holding one would be
// a database error (22021, 22P05), and no stored event holds either (ingest refuses them): a 400.
const storable = (s: string) => !s.includes('\0') && s.isWellFormed();
const UNSTORABLE = 'must not contain NUL (U+0000) or unpaired UTF-16 surrogates: no event holds them';
function storableJson(v: unknown): boolean {
  if (typeof v === 'string') return storable(v);
  if (v !== null && typeof v === 'object') return Object.entries(v).every(([k, x]) => storable(k) && storableJson(x));
  return true;
}

export interface Cursor {
  t: string; // time of the last event returned (ISO, to the microsecond)
  i: string; // its id
  o: 'asc' | 'desc';
}

/** Cursors are opaque to clients: base64url of the position (time, id) and the order it was made for. */
export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(s: string): Cursor | null {
  try {
    const c = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Partial<Cursor>;
    if (typeof c.t !== 'string' || parseTimestamp(c.t) === null) return null;
    if (typeof c.i !== 'string' || !UUID_RE.test(c.i)) return null;
    if (c.o !== 'asc' && c.o !== 'desc') return null;
    return { t: c.t, i: c.i, o: c.o };
  } catch {
    return null;
  }
}

/** A query parameter holding an instant: ISO-8601 with an offset, normalized to UTC ISO. */
const timeParam = z
  .string()
  .transform((s, ctx) => {
    const t = parseTimestamp(s);
    if (!t) ctx.addIssue({ code: 'custom', message: 'must be an ISO-8601 date-time with offset' });
    return t ?? '';
  })
  .optional();

/** Services to filter on (repeated or comma-separated in the URL), named as events name them. */
const serviceFilter = (limits: Limits) =>
  z.array(z.string().min(1, 'must not be empty').max(limits.serviceMaxLength).regex(SERVICE_RE, SERVICE_RULE)).max(100, 'at most 100 services').optional();

export function listQuerySchema(limits: Limits) {
  return z
    .object({
      service: serviceFilter(limits),
      from: timeParam,
      to: timeParam,
      order: z.enum(['desc', 'asc'], 'must be desc or asc').default('desc'),
      page: z.coerce.number().int('must be an integer').min(1, 'must be >= 1').max(1_000_000).optional(),
      pageSize: z.coerce
        .number()
        .int('must be an integer')
        .min(1, 'must be >= 1')
        .max(limits.maxQueryLimit, `must be <= ${limits.maxQueryLimit}`)
        .default(limits.defaultQueryLimit),
      cursor: z
        .string()
        .max(512)
        .transform((s, ctx) => {
          const c = decodeCursor(s);
          if (!c) ctx.addIssue({ code: 'custom', message: 'is not a cursor this service issued' });
          return c as Cursor;
        })
        .optional(),
      q: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters').refine(storable, UNSTORABLE).optional(),
      metadata: z
        .string()
        .max(4096)
        .transform((s, ctx) => {
          let v: unknown;
          try {
            v = JSON.parse(s);
          } catch {
            v = undefined;
          }
          if (v === null || typeof v !== 'object' || Array.isArray(v)) {
            ctx.addIssue({ code: 'custom', message: 'must be a JSON object the events\' metadata must contain, e.g. {"user_id":"12345"}' });
            return '{}';
          }
          if (nestsDeeper(v)) ctx.addIssue({ code: 'custom', message: METADATA_DEPTH_RULE });
          else if (!storableJson(v)) ctx.addIssue({ code: 'custom', message: UNSTORABLE });
          return JSON.stringify(v);
        })
        .optional(),
      metaEq: z
        .record(
          z.string().regex(META_PARAM_RE, 'metadata.<key> filters take keys of letters, digits, _ and -, up to 5 levels'),
          z.string().max(1000).refine(storable, UNSTORABLE),
        )
        .default({}),
      count: z.enum(['auto', 'exact', 'estimate', 'none'], 'must be auto, exact, estimate or none').default('auto'),
    })
    .superRefine((q, ctx) => {
      if (q.from && q.to && q.from > q.to) ctx.addIssue({ code: 'custom', path: ['from'], message: 'must not be after to' });
      if (q.cursor && q.page !== undefined) ctx.addIssue({ code: 'custom', path: ['page'], message: 'cannot be combined with cursor' });
      if (q.cursor && q.cursor.o !== q.order) ctx.addIssue({ code: 'custom', path: ['cursor'], message: `was made for order=${q.cursor.o}` });
    });
}

/** Collects GET /events parameters from a URL's query: repeated or comma-separated services, metadata.<key>=value. */
export function listQueryInput(all: Record<string, string[]>) {
  const one = (k: string) => all[k]?.[0];
  const metaEq: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) if (k.startsWith('metadata.')) metaEq[k] = v[0] ?? '';
  return {
    service: all.service?.flatMap((s) => s.split(',')),
    from: one('from'),
    to: one('to'),
    order: one('order'),
    page: one('page'),
    pageSize: one('pageSize'),
    cursor: one('cursor'),
    q: one('q'),
    metadata: one('metadata'),
    metaEq,
    count: one('count'),
  };
}

export type ListQuery = z.infer<ReturnType<typeof listQuerySchema>>;

export const eventIdSchema = z.string().regex(UUID_RE, 'must be a UUID');

/** Bucket widths of GET /metrics/events: the aggregate each reads and its length in ms. */
export const BUCKETS = {
  '1m': { view: 'events_per_minute', ms: 60_000 },
  '1h': { view: 'events_per_hour', ms: 3_600_000 },
  '1d': { view: 'events_per_day', ms: 86_400_000 },
} as const;
export const MAX_SERIES_BUCKETS = 10_000;

/** GET /metrics/events: services (repeated or comma-separated), a range (default: the last 24 hours), a bucket width. */
export function seriesQuerySchema(limits: Limits) {
  return z
    .object({
      service: serviceFilter(limits),
      from: timeParam,
      to: timeParam,
      bucket: z.enum(['1m', '1h', '1d'], 'must be 1m, 1h or 1d').default('1h'),
    })
    .transform((q, ctx) => {
      const to = q.to ? Date.parse(q.to) : Date.now();
      const width = BUCKETS[q.bucket].ms;
      // Buckets are aligned to UTC; `from` is rounded down to the start of its bucket.
      const from = Math.floor((q.from ? Date.parse(q.from) : to - 86_400_000) / width) * width;
      if (from >= to) ctx.addIssue({ code: 'custom', path: ['from'], message: 'must be before to' });
      else if ((to - from) / width > MAX_SERIES_BUCKETS) {
        ctx.addIssue({
          code: 'custom',
          path: ['bucket'],
          message: `the range holds more than ${MAX_SERIES_BUCKETS} buckets of ${q.bucket}: use a wider bucket or a shorter range`,
        });
      }
      return { service: q.service ? [...new Set(q.service)].sort() : undefined, from, to, bucket: q.bucket };
    });
}
export type SeriesQuery = z.infer<ReturnType<typeof seriesQuerySchema>>;

/** A 400 naming each bad parameter as the client sent it (metadata.<key>, service). */
function invalid(error: z.ZodError, params: unknown): ApiError {
  const errors = zodErrors(error, params).map((e) => ({ ...e, field: e.field.replace(/^metaEq\./, '').replace(/^service\.\d+$/, 'service') }));
  return new ApiError('validation_failed', 'Query parameters are invalid', { errors });
}

/** Parsers bound to the configured limits: URL query -> typed query, or a 400. */
export function queryParsers(limits: Limits) {
  const list = listQuerySchema(limits);
  const series = seriesQuerySchema(limits);
  return {
    list(all: Record<string, string[]>): ListQuery {
      const params = listQueryInput(all);
      const q = list.safeParse(params);
      if (!q.success) throw invalid(q.error, params);
      return q.data;
    },
    series(all: Record<string, string[]>): SeriesQuery {
      const params = { service: all.service?.flatMap((s) => s.split(',')), from: all.from?.[0], to: all.to?.[0], bucket: all.bucket?.[0] };
      const q = series.safeParse(params);
      if (!q.success) throw invalid(q.error, params);
      return q.data;
    },
    eventId(raw: string): string {
      const id = eventIdSchema.safeParse(raw);
      if (!id.success) throw new ApiError('validation_failed', 'The event id is invalid', { errors: [{ field: 'id', message: 'must be a UUID' }] });
      return id.data;
    },
  };
}
