// Validation at the edge: everything past this file is trusted and typed.
// The result of validating an event is its queue record (store/record.ts): the JSON text a writer hands to the
// database unchanged (json_to_recordset), so the pipeline never parses or serializes it again.
import { z } from 'zod';
import type { Config } from '../config';
import { zodErrors, type FieldError } from '../errors';
import { isoNow, METADATA_DEPTH_RULE, nestsDeeper, parseTimestamp, SERVICE_RE, SERVICE_RULE, UUID_RE } from '../event';
import { queueRecord, recordBody } from '../store/record';

type Limits = Config['limits'];

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

const NO_FIELDS: ReadonlySet<string> = new Set();

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
      .regex(SERVICE_RE, SERVICE_RULE),
    message: z.string().max(limits.messageMaxLength, `must be at most ${limits.messageMaxLength} characters`),
    // Any JSON object: z.record checks each key and value and took a third of the event's
    // validation time (1 us of 1.75); a loose object checks the shape alone (0.35-0.65 us).
    metadata: z.looseObject({}, 'must be a JSON object').optional(),
  });
}

export type EventInput = z.infer<ReturnType<typeof eventSchema>>;

export interface ValidEvent {
  id: string;
  time: string;
  service: string;
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
  return function validateEvent(body: unknown, now: () => string = isoNow): ValidEvent | FieldError[] {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return [{ field: '(body)', message: 'must be a JSON object' }];
    }
    const r = schema.safeParse(body);
    const errors = r.success ? [] : zodErrors(r.error, body);
    const bad: ReadonlySet<string> = r.success ? NO_FIELDS : new Set(errors.map((e) => e.field));
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
      if (nestsDeeper(raw.metadata)) errors.push({ field: 'metadata', message: METADATA_DEPTH_RULE });
      else {
        metadata = JSON.stringify(raw.metadata);
        // At most 3 UTF-8 bytes per UTF-16 unit: most metadata is under the limit without counting.
        if (metadata.length * 3 > limits.metadataMaxBytes && Buffer.byteLength(metadata) > limits.metadataMaxBytes) {
          errors.push({ field: 'metadata', message: `must be at most ${limits.metadataMaxBytes} bytes when serialized` });
        } else if (unstorable(metadata)) {
          errors.push({ field: 'metadata', message: UNSTORABLE_MSG });
        }
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
    const record = queueRecord(id, recordBody(time, ev.service, message, metadata));
    return { id, time, service: ev.service, record };
  };
}
