// The receive stage for events: POST /events (one) and POST /events/batch (JSON array or NDJSON).
// Read (decompress, cap) -> parse -> validate each event -> append to the queue -> acknowledge:
// 202 "queued" by default, or 201 "committed" once the database has committed it (?wait=true or
// `Prefer: wait`), sharing a batch commit with every other waiting client.
import { Hono, type Context } from 'hono';
import type { Batcher, CommitOutcome } from './batcher';
import { readBody } from './body';
import type { Config } from './config';
import { ApiError, queueFull, type FieldError } from './errors';
import type { EventQueue } from './queue';
import type { ServiceState } from './app';
import { makeEventValidator } from './validate';
import { SECURITY_HEADERS } from './observe';

interface IngestDeps {
  config: Config;
  queue: EventQueue;
  batcher: Batcher;
  state: ServiceState;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const NDJSON_TYPE = /^application\/(?:x-ndjson|ndjson|jsonl|x-jsonlines)\s*(?:;|$)/i;
const QUEUED_HEADERS = { 'content-type': 'application/json', 'x-ingest-ack': 'queued', ...SECURITY_HEADERS };
const PREFER_WAIT = /(?:^|[\s,;])wait(?:\s*=\s*\d+)?\s*(?:[,;]|$)/i;

export function ingestRoutes({ config, queue, batcher, state }: IngestDeps) {
  const app = new Hono();
  const validateEvent = makeEventValidator(config.limits, { maxAgeDays: config.retention.rawDays });

  /** Seconds until there is likely room: half the queue at the current drain rate, within 1..60. */
  function retryAfter() {
    if (batcher.breaker !== 'closed') return Math.max(config.retryAfterSeconds, Math.ceil(batcher.breakerRemainingMs / 1000));
    if (batcher.drainRate < 1) return config.retryAfterSeconds;
    return Math.min(60, Math.max(1, Math.ceil(queue.depth / 2 / batcher.drainRate)));
  }

  function refuseFull(): never {
    state.rejectedQueueFull++;
    const seconds = retryAfter();
    if (batcher.breaker !== 'closed') {
      throw new ApiError('database_unavailable', 'The database is unavailable and the queue is full; retry later', { retryAfter: seconds });
    }
    throw queueFull(seconds);
  }

  function wantsWait(c: Context): boolean {
    // Most requests have no query string: skip Hono's query parsing for them (hot path).
    const q = c.req.url.includes('?') ? c.req.query('wait') : undefined;
    if (q !== undefined) {
      if (q === 'true' || q === '1' || q === '') return true;
      if (q === 'false' || q === '0') return false;
      throw new ApiError('validation_failed', 'Query parameters are invalid', { errors: [{ field: 'wait', message: 'must be true or false' }] });
    }
    const prefer = c.req.raw.headers.get('prefer');
    return prefer !== null && PREFER_WAIT.test(prefer);
  }

  /** The commit outcome, or null when WAIT_TIMEOUT_MS passes first (the events stay queued). */
  async function committed(from: number, to: number): Promise<CommitOutcome | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((res) => (timer = setTimeout(() => res(null), config.waitTimeoutMs)));
    const outcome = await Promise.race([batcher.waitFor(from, to), timeout]);
    clearTimeout(timer);
    return outcome;
  }

  function guard(c: Context) {
    if (state.draining) throw new ApiError('shutting_down', 'The service is shutting down; retry against another instance', { retryAfter: config.retryAfterSeconds });
    const type = c.req.raw.headers.get('content-type') ?? '';
    const ndjson = NDJSON_TYPE.test(type);
    if (!ndjson && !JSON_TYPE.test(type)) {
      throw new ApiError('unsupported_media_type', `Content-Type must be application/json${c.req.path.endsWith('/batch') ? ' or application/x-ndjson' : ''}`);
    }
    return ndjson;
  }

  function parseJson(text: string): unknown {
    if (!text.trim()) throw new ApiError('empty_body', 'Request body is empty');
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError('invalid_json', `Request body is not valid JSON: ${(e as Error).message}`);
    }
  }

  app.post('/events', async (c) => {
    const ndjson = guard(c);
    if (ndjson) throw new ApiError('unsupported_media_type', 'POST /events takes one JSON event; send NDJSON to POST /events/batch');
    const wait = wantsWait(c);
    const body = parseJson(await readBody(c.req.raw, config.limits.bodyMaxBytes, 'BODY_MAX_BYTES'));
    state.received++;
    const ev = validateEvent(body);
    if (Array.isArray(ev)) {
      state.invalid++;
      throw new ApiError('validation_failed', 'Event is invalid', { errors: ev });
    }
    const seq = queue.appendedSeq;
    if (!queue.push(ev.record)) refuseFull();
    state.accepted++;
    batcher.notify();
    if (wait) {
      const outcome = await committed(seq, seq + 1);
      if (outcome) {
        c.header('X-Ingest-Ack', 'committed');
        c.header('Preference-Applied', 'wait');
        const refused = outcome.rejected[0];
        if (refused) throw new ApiError('rejected_by_database', `The database refused the event (kept in events_rejected): ${refused.message}`);
        return c.json({ statusCode: 201, message: 'Event stored', eventId: ev.id, duplicate: outcome.duplicates.length > 0 }, 201);
      }
    }
    // The hot path: a pre-shaped body and one header object (request id and security headers
    // included, see observe.ts) cost far less than c.json + c.header + later header sets.
    return new Response(`{"statusCode":202,"message":"Event accepted","eventId":"${ev.id}"}`, {
      status: 202,
      headers: { ...QUEUED_HEADERS, 'x-request-id': c.get('requestId' as never) as string },
    });
  });

  app.post('/events/batch', async (c) => {
    const ndjson = guard(c);
    const wait = wantsWait(c);
    const max = config.limits.batchMaxEvents;
    const text = await readBody(c.req.raw, config.limits.batchMaxBytes, 'BATCH_MAX_BYTES');
    const tooMany = (n: number) => new ApiError('payload_too_large', `A batch holds at most ${max} events (BATCH_MAX_EVENTS); this one has ${n}`);

    // Items, each a parsed value or the reason it could not be parsed (NDJSON: per line).
    let items: { value?: unknown; error?: string }[];
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
      if (!Array.isArray(body)) throw new ApiError('validation_failed', 'Body must be a JSON array of events', { errors: [{ field: '(body)', message: 'must be a JSON array' }] });
      if (body.length > max) throw tooMany(body.length);
      items = body.map((value) => ({ value }));
    }
    if (items.length === 0) throw new ApiError('empty_body', 'The batch holds no events');
    state.received += items.length;

    const errors: (FieldError & { index: number })[] = [];
    const records: string[] = [];
    const indexOf: number[] = []; // request index of each queued record
    const seen = new Set<string>();
    let duplicates = 0;
    let rejected = 0;
    items.forEach((item, index) => {
      const ev = item.error === undefined ? validateEvent(item.value) : [{ field: '(line)', message: item.error }];
      if (Array.isArray(ev)) {
        rejected++;
        for (const e of ev) errors.push({ index, ...e });
        return;
      }
      const key = ev.id + ev.time;
      if (seen.has(key)) return void duplicates++; // the same event twice in one request: one row
      seen.add(key);
      records.push(ev.record);
      indexOf.push(index);
    });
    state.invalid += rejected;
    if (records.length === 0) {
      throw new ApiError('validation_failed', 'No event in the batch is valid', { errors: errors.slice(0, 1000), extra: { accepted: 0, duplicates, rejected } });
    }
    if (records.length > queue.maxEvents) {
      throw new ApiError('payload_too_large', `The batch is larger than the whole queue (QUEUE_MAX_EVENTS=${queue.maxEvents})`);
    }
    // All or nothing: a client retrying after 429 must not create a half-stored batch.
    const mark = queue.mark();
    for (const r of records) {
      if (!queue.push(r)) {
        queue.rollback(mark);
        refuseFull();
      }
    }
    const from = mark.appended;
    state.accepted += records.length;
    batcher.notify();

    let accepted = records.length;
    let status: 201 | 202 = 202;
    if (wait) {
      const outcome = await committed(from, from + records.length);
      if (outcome) {
        status = 201;
        c.header('Preference-Applied', 'wait');
        duplicates += outcome.duplicates.length;
        accepted -= outcome.duplicates.length + outcome.rejected.length;
        rejected += outcome.rejected.length;
        for (const r of outcome.rejected) errors.push({ index: indexOf[r.seq - from]!, field: '(database)', message: `refused by the database (kept in events_rejected): ${r.message}` });
      }
    }
    c.header('X-Ingest-Ack', status === 201 ? 'committed' : 'queued');
    const truncated = errors.length > 1000;
    return c.json(
      {
        statusCode: status,
        message: status === 201 ? 'Events stored' : 'Events accepted',
        accepted,
        duplicates,
        rejected,
        errors: truncated ? errors.slice(0, 1000) : errors,
        ...(truncated ? { errors_truncated: true } : {}),
      },
      status,
    );
  });

  return app;
}
