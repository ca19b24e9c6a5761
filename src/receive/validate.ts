// Validation at the edge: everything past this file is trusted and typed.
// The result of validating an event is its queue record: the JSON text a writer hands to the
// database unchanged (json_to_recordset), so the pipeline never parses or serializes it again.
import { z } from 'zod';
import type { Config } from './config';
import type { FieldError } from './errors';

type Limits = Config['limits'];

const SERVICE_RE = /^[A-Za-z0-9._:-]+$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// ISO-8601 date-time with a mandatory offset: without one the instant is ambiguous.
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|([+-])(\d{2}):?(\d{2}))$/;

/** Normalizes an ISO-8601 timestamp with offset to UTC ISO (ms precision); null when invalid. */
export function parseTimestamp(s: string): string | null {
  const m = ISO_RE.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number, number];
  const sec = m[6] ? Number(m[6]) : 0;
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return null;
  if (new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return null; // 2024-02-30
  let off = 0;
  if (m[9]) {
    const oh = Number(m[10]), om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    off = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const t = Date.UTC(y, mo - 1, d, h, mi, sec, ms) - off * 60_000;
  const date = new Date(t);
  // Stay inside what both JS and PostgreSQL represent unambiguously as 4-digit years.
  if (Number.isNaN(t) || date.getUTCFullYear() < 1000 || date.getUTCFullYear() > 9999) return null;
  return date.toISOString();
}

// Text PostgreSQL cannot store (NUL, unpaired UTF-16 surrogates) and control characters that make no
// sense in log text (all C0 controls but tab, newline and carriage return), found in the JSON that
// JSON.stringify wrote: it escapes controls as \u00XX (\b and \f as short escapes) and writes valid
// surrogate pairs raw, so any \udXXX escape it emits is a lone surrogate. An escape counts only when
// not itself escaped (an even number of backslashes before it). Accepting NUL or a lone surrogate
// would turn a 202 into a row the database refuses.
const UNSTORABLE_RE = /(?<!\\)(?:\\\\)*\\(?:u(?:00[01][0-9a-f]|d[89a-f][0-9a-f]{2})|[bf])/i;
// The lookbehind makes that regex slow (~1.5 us on 200 bytes): run it only when an escape is there.
const unstorable = (json: string) => (json.includes('\\u') || json.includes('\\b') || json.includes('\\f')) && UNSTORABLE_RE.test(json);
const UNSTORABLE_MSG = 'must not contain control characters (other than tab, newline, carriage return) or unpaired UTF-16 surrogates';

export function eventSchema(limits: Limits) {
  const id = z.string().regex(UUID_RE, 'must be a UUID, e.g. 0193b7a4-5c2e-7d3f-9a1b-2c3d4e5f6a7b').optional();
  return z.object({
    id,
    eventId: id, // the MVP's name for it; either may be sent
    timestamp: z.string().optional(),
    service: z
      .string()
      .min(1, 'must not be empty')
      .max(limits.serviceMaxLength, `must be at most ${limits.serviceMaxLength} characters`)
      .regex(SERVICE_RE, 'may contain only letters, digits, and . _ : -'),
    message: z.string().max(limits.messageMaxLength, `must be at most ${limits.messageMaxLength} characters`),
    metadata: z.record(z.string(), z.unknown(), 'must be a JSON object').optional(),
  });
}

export type EventInput = z.infer<ReturnType<typeof eventSchema>>;

/** Field errors from zod issues; `input` tells a missing field ("is required") from a wrong one. */
export function zodErrors(error: z.ZodError, input: unknown, prefix = ''): FieldError[] {
  return error.issues.map((i) => {
    const field = prefix + (i.path.length ? i.path.join('.') : '(body)');
    let value = input;
    for (const k of i.path) value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[k] : undefined;
    const missing = i.code === 'invalid_type' && value === undefined;
    return { field, message: missing ? 'is required' : i.message };
  });
}

export interface ValidEvent {
  id: string;
  time: string;
  record: string; // JSON object text, the queue record
}

/**
 * Validates one parsed JSON value as an event; returns the queue record or the field errors.
 * `maxAgeDays` (RETENTION_DAYS): an event older than that is refused rather than accepted and then
 * deleted by the next retention run (a 202 promises the event is kept).
 */
export function makeEventValidator(limits: Limits, opts: { maxAgeDays?: number } = {}) {
  const schema = eventSchema(limits);
  const maxAgeMs = opts.maxAgeDays ? opts.maxAgeDays * 86_400_000 : 0;
  const tooOld = `is older than RETENTION_DAYS (${opts.maxAgeDays} days): retention would delete it within the hour; raise RETENTION_DAYS to keep older events`;
  return function validateEvent(body: unknown, now: () => string = () => new Date().toISOString()): ValidEvent | FieldError[] {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return [{ field: '(body)', message: 'must be a JSON object' }];
    }
    const r = schema.safeParse(body);
    const errors = r.success ? [] : zodErrors(r.error, body);
    const bad = new Set(r.success ? undefined : errors.map((e) => e.field));
    const raw = body as { timestamp?: unknown; message?: unknown; metadata?: unknown };

    let time: string | null = null;
    if (raw.timestamp === undefined || raw.timestamp === null) time = now();
    else if (typeof raw.timestamp === 'string') time = parseTimestamp(raw.timestamp);
    if (!time) {
      if (!bad.has('timestamp')) errors.push({ field: 'timestamp', message: 'must be an ISO-8601 date-time with offset, e.g. 2024-01-15T10:30:00.000Z' });
    } else if (maxAgeMs && Date.parse(time) < Date.now() - maxAgeMs) {
      errors.push({ field: 'timestamp', message: tooOld });
      time = null;
    }

    // Checks zod cannot express, on each field whose type is right, so one reply names every problem.
    let message = '';
    if (!bad.has('message') && typeof raw.message === 'string') {
      message = JSON.stringify(raw.message);
      if (unstorable(message)) errors.push({ field: 'message', message: UNSTORABLE_MSG });
    }
    let metadata = '{}';
    if (!bad.has('metadata') && raw.metadata !== undefined) {
      metadata = JSON.stringify(raw.metadata);
      if (Buffer.byteLength(metadata) > limits.metadataMaxBytes) {
        errors.push({ field: 'metadata', message: `must be at most ${limits.metadataMaxBytes} bytes when serialized` });
      } else if (unstorable(metadata)) {
        errors.push({ field: 'metadata', message: UNSTORABLE_MSG });
      }
    }
    if (r.success && r.data.id && r.data.eventId && r.data.id.toLowerCase() !== r.data.eventId.toLowerCase()) {
      errors.push({ field: 'eventId', message: 'must equal id when both are sent' });
    }
    if (!r.success || errors.length || !time) return errors;
    const ev = r.data;
    // The client's id makes a resend idempotent (same id and timestamp: one row); otherwise a UUIDv7,
    // time-ordered like the events themselves.
    const id = (ev.id ?? ev.eventId)?.toLowerCase() ?? Bun.randomUUIDv7();
    // Column names match the json_to_recordset definition in workers/writer.ts.
    const record = `{"id":"${id}","time":"${time}","service":"${ev.service}","message":${message},"metadata":${metadata}}`;
    return { id, time, record };
  };
}

// GET /events query string. Unknown parameters are ignored, as the MVP did.
const META_KEY_RE = /^[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9_-]{1,64}){0,4}$/;

export interface Cursor {
  t: string; // time of the last event returned (ISO, ms)
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
  z.array(z.string().min(1, 'must not be empty').max(limits.serviceMaxLength).regex(SERVICE_RE, 'may contain only letters, digits, and . _ : -')).max(100, 'at most 100 services').optional();

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
      q: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters').optional(),
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
          return JSON.stringify(v);
        })
        .optional(),
      metaEq: z.record(z.string().regex(META_KEY_RE, 'metadata.<key> filters take keys of letters, digits, _ and -, up to 5 levels'), z.string().max(1000)).default({}),
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
  for (const [k, v] of Object.entries(all)) if (k.startsWith('metadata.')) metaEq[k.slice('metadata.'.length)] = v[0] ?? '';
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
        ctx.addIssue({ code: 'custom', path: ['bucket'], message: `the range holds more than ${MAX_SERIES_BUCKETS} buckets of ${q.bucket}: use a wider bucket or a shorter range` });
      }
      return { service: q.service ? [...new Set(q.service)].sort() : undefined, from, to, bucket: q.bucket };
    });
}
export type SeriesQuery = z.infer<ReturnType<typeof seriesQuerySchema>>;
