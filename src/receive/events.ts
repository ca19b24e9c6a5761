// The native receiver: POST /events (one event) and POST /events/batch (a JSON array or NDJSON).
// Read (decompress, cap) -> parse -> validate each event -> queue (accept.ts) -> acknowledge:
// 202 "queued" by default, or 201 "committed" once the database has committed it (?wait=true or
// `Prefer: wait`), sharing a batch commit with every other waiting client.
import { Hono } from 'hono';
import type { Config } from '../config';
import { ApiError, type FieldError } from '../errors';
import { SECURITY_HEADERS } from '../protect/headers';
import { writeRateLimitHeaders } from '../protect/limits';
import type { ServiceState } from '../state';
import type { CommitOutcome } from '../store/batcher';
import { acknowledge, outOfScope, type Acceptor, type WriteScope } from './accept';
import type { BodyReader } from './body';
import { makeEventValidator } from './validate';

interface EventsDeps {
  config: Config;
  state: ServiceState;
  accept: Acceptor;
  bodies: BodyReader;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const NDJSON_TYPE = /^application\/(?:x-ndjson|ndjson|jsonl|x-jsonlines)\s*(?:;|$)/i;
// One Headers value every 202 copies (the Response takes its own copy): cheaper than converting an
// object's eleven entries per request.
const QUEUED_HEADERS = new Headers({ 'content-type': 'application/json', 'x-ingest-ack': 'queued', ...SECURITY_HEADERS });
const MAX_ERRORS = 1000; // per reply: a 10,000-event batch of garbage must not answer 10,000 errors

type Item = { value?: unknown; error?: string };

function parseJson(text: string): unknown {
  if (!text.trim()) throw new ApiError('empty_body', 'Request body is empty');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError('invalid_json', `Request body is not valid JSON: ${(e as Error).message}`);
  }
}

/** A batch body as items, each a parsed value or the reason it could not be parsed (NDJSON: per line). */
export function batchItems(text: string, ndjson: boolean, max: number): Item[] {
  const tooMany = (n: number) => new ApiError('payload_too_large', `A batch holds at most ${max} events (BATCH_MAX_EVENTS); this one has ${n}`);
  let items: Item[];
  if (ndjson) {
    if (!text.trim()) throw new ApiError('empty_body', 'Request body is empty');
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    if (lines.length > max) throw tooMany(lines.length);
    items = lines.map((l) => {
      try {
        return { value: JSON.parse(l) };
      } catch (e) {
        return { error: `line is not valid JSON: ${(e as Error).message}` };
      }
    });
  } else {
    const body = parseJson(text);
    if (!Array.isArray(body))
      throw new ApiError('validation_failed', 'Body must be a JSON array of events', { errors: [{ field: '(body)', message: 'must be a JSON array' }] });
    if (body.length > max) throw tooMany(body.length);
    items = body.map((value) => ({ value }));
  }
  if (items.length === 0) throw new ApiError('empty_body', 'The batch holds no events');
  return items;
}

export function eventsReceiver({ config, state, accept, bodies }: EventsDeps) {
  const app = new Hono();
  const validateEvent = makeEventValidator(config.limits, { maxAgeDays: config.retention.rawDays });
  const { windowMs } = config.rateLimit;

  const BODY_TYPES = { json: JSON_TYPE, ndjson: NDJSON_TYPE };

  /** Validates each item; the queue records of the valid ones (one per id and time) and every error. */
  function validateItems(items: Item[], scope: WriteScope | null) {
    // One arrival time for a request's events without a timestamp: one clock read, not one per event.
    const arrived = new Date().toISOString();
    const now = () => arrived;
    const errors: (FieldError & { index: number })[] = [];
    const records: string[] = [];
    const indexOf: number[] = []; // request index of each queued record
    const seen = new Set<string>();
    let duplicates = 0;
    let rejected = 0;
    items.forEach((item, index) => {
      const ev = item.error === undefined ? validateEvent(item.value, now) : [{ field: '(line)', message: item.error }];
      if (Array.isArray(ev)) {
        rejected++;
        for (const e of ev) errors.push({ index, ...e });
        return;
      }
      if (scope && !scope.services.test(ev.service)) {
        rejected++;
        errors.push({ index, field: 'service', message: outOfScope(scope, ev.service) });
        return;
      }
      const key = ev.id + ev.time;
      if (seen.has(key)) {
        duplicates++; // the same event twice in one request: one row
        return;
      }
      seen.add(key);
      records.push(ev.record);
      indexOf.push(index);
    });
    state.invalid += rejected;
    return { errors, records, indexOf, duplicates, rejected };
  }

  app.post('/events', async (c) => {
    const { type, wait, scope } = accept.intake(c, BODY_TYPES, 'application/json', { room: false });
    if (type === 'ndjson') throw new ApiError('unsupported_media_type', 'POST /events takes one JSON event; send NDJSON to POST /events/batch');
    const body = parseJson(await bodies.text(c.req.raw, config.limits.bodyMaxBytes, 'BODY_MAX_BYTES'));
    state.received++;
    const ev = validateEvent(body);
    if (Array.isArray(ev)) {
      state.invalid++;
      throw new ApiError('validation_failed', 'Event is invalid', { errors: ev });
    }
    if (scope && !scope.services.test(ev.service)) {
      state.invalid++;
      throw new ApiError('validation_failed', 'Event is invalid', { errors: [{ field: 'service', message: outOfScope(scope, ev.service) }] });
    }
    const seq = accept.one(ev.record);
    const outcome = wait ? await accept.committed(seq, seq + 1) : null;
    if (outcome) {
      acknowledge(c, true);
      const refused = outcome.rejected[0];
      if (refused) throw new ApiError('rejected_by_database', `The database refused the event (kept in events_rejected): ${refused.message}`);
      return c.json({ statusCode: 201, message: 'Event stored', eventId: ev.id, duplicate: outcome.duplicates.length > 0 }, 201);
    }
    // The hot path: a pre-shaped body and its headers complete (request id, security and rate-limit
    // headers, see observe/requests.ts) cost far less than c.json + c.header + later header sets.
    const res = new Response(`{"statusCode":202,"message":"Event accepted","eventId":"${ev.id}"}`, { status: 202, headers: QUEUED_HEADERS });
    res.headers.set('x-request-id', c.get('requestId'));
    writeRateLimitHeaders(res.headers, c, windowMs);
    return res;
  });

  app.post('/events/batch', async (c) => {
    const { type, wait, scope } = accept.intake(c, BODY_TYPES, 'application/json or application/x-ndjson');
    const ndjson = type === 'ndjson';
    const text = await bodies.text(c.req.raw, config.limits.batchMaxBytes, 'BATCH_MAX_BYTES');
    const items = batchItems(text, ndjson, config.limits.batchMaxEvents);
    state.received += items.length;
    const v = validateItems(items, scope);
    let { duplicates, rejected } = v;
    if (v.records.length === 0) {
      throw new ApiError('validation_failed', 'No event in the batch is valid', {
        errors: v.errors.slice(0, MAX_ERRORS),
        extra: { accepted: 0, duplicates, rejected },
      });
    }
    const from = accept.all(v.records);
    let accepted = v.records.length;
    const outcome: CommitOutcome | null = wait ? await accept.committed(from, from + accepted) : null;
    if (outcome) {
      duplicates += outcome.duplicates.length;
      accepted -= outcome.duplicates.length + outcome.rejected.length;
      rejected += outcome.rejected.length;
      for (const r of outcome.rejected)
        v.errors.push({ index: v.indexOf[r.seq - from]!, field: '(database)', message: `refused by the database (kept in events_rejected): ${r.message}` });
    }
    const status = outcome ? 201 : 202;
    acknowledge(c, outcome !== null);
    const truncated = v.errors.length > MAX_ERRORS;
    return c.json(
      {
        statusCode: status,
        message: outcome ? 'Events stored' : 'Events accepted',
        accepted,
        duplicates,
        rejected,
        errors: truncated ? v.errors.slice(0, MAX_ERRORS) : v.errors,
        ...(truncated ? { errors_truncated: true } : {}),
      },
      status,
    );
  });

  return app;
}
