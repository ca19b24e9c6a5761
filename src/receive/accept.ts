// What every receiver shares below its wire format: refusing while shutting down, the client's wait
// preference, appending a request's events to the queue whole or not at all (429/503 with
// Retry-After when they do not fit), and waiting for their commit. A receiver decodes and maps; the
// limits, the queueing and the acknowledgement come from here, so a fix here fixes every way in.
import type { Context } from 'hono';
import type { Config, ServiceScope } from '../config';
import { ApiError, queueFull } from '../errors';
import type { ServiceState } from '../state';
import type { Batcher, CommitOutcome } from '../store/batcher';
import type { EventQueue } from '../store/queue';

export interface AcceptDeps {
  config: Config;
  queue: EventQueue;
  batcher: Batcher;
  state: ServiceState;
}

const PREFER_WAIT = /(?:^|[\s,;])wait(?:\s*=\s*\d+)?\s*(?:[,;]|$)/i;

export type Acceptor = ReturnType<typeof createAcceptor>;

/** The services the request's API key may write (a key with `services=`), or null: any. */
export interface WriteScope {
  key: string;
  services: ServiceScope;
}

function writeScope(c: Context): WriteScope | null {
  const services = c.get('services');
  return services ? { key: c.get('keyName'), services } : null;
}

/** Why an item for another service is refused: named, with the key (never stored under that service). */
export function outOfScope(scope: WriteScope, service: string): string {
  return `service '${service}' is not one the API key '${scope.key}' may write`;
}

/** ?wait=true (or 1, or empty) or `Prefer: wait`: answer once the events are committed. */
export function wantsWait(c: Context): boolean {
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

/** The acknowledgement every receiver answers with: what was promised, and that the wait was honoured. */
export function acknowledge(c: Context, committed: boolean) {
  c.header('X-Ingest-Ack', committed ? 'committed' : 'queued');
  if (committed) c.header('Preference-Applied', 'wait');
}

/** The body's type: the first of `types` its Content-Type matches, else 415 saying `expected`. */
function bodyType<K extends string>(c: Context, types: Record<K, RegExp>, expected: string): K {
  const header = c.req.raw.headers.get('content-type') ?? '';
  for (const k in types) if (types[k].test(header)) return k;
  throw new ApiError('unsupported_media_type', `Content-Type must be ${expected}`);
}

/** A protocol request's records to queue (the same event twice in it is one row), and those for services the key may not write. */
function admissible(items: readonly { id: string; time: string; service: string; record: string }[], scope: WriteScope | null) {
  const seen = new Set<string>();
  const records: string[] = [];
  const forbidden: string[] = [];
  for (const it of items) {
    if (scope && !scope.services.test(it.service)) {
      forbidden.push(outOfScope(scope, it.service));
      continue;
    }
    const key = it.id + it.time;
    if (seen.has(key)) continue;
    seen.add(key);
    records.push(it.record);
  }
  return { records, forbidden };
}

/**
 * The commit outcome of sequence range [from, to), or null when WAIT_TIMEOUT_MS passes first (the
 * events stay queued). A REQUEST_TIMEOUT_MS shorter than that ends the wait as 503 request_timeout
 * (the events still stay queued): POST /events has no timeout middleware, which would put a timer
 * on every single event, waiting or not.
 */
async function waitForCommit(config: Config, batcher: Batcher, from: number, to: number): Promise<CommitOutcome | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const cut = config.requestTimeoutMs < config.waitTimeoutMs;
  const timeout = new Promise<null>((res) => (timer = setTimeout(() => res(null), cut ? config.requestTimeoutMs : config.waitTimeoutMs)));
  const outcome = await Promise.race([batcher.waitFor(from, to), timeout]);
  clearTimeout(timer);
  if (!outcome && cut) throw new ApiError('request_timeout', `The request took longer than ${config.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS)`);
  return outcome;
}

export function createAcceptor({ config, queue, batcher, state }: AcceptDeps) {
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

  return {
    retryAfter,

    /**
     * The steps before a receiver decodes its body: 503 while shutting down, the body's type (one of
     * `types`, tried in order; else 415 saying `expected`), the client's wait preference, and, for
     * bodies that may hold many events (`room`), a 429 before reading one the queue cannot take.
     */
    intake<K extends string>(
      c: Context,
      types: Record<K, RegExp>,
      expected: string,
      { room = true } = {},
    ): { type: K; wait: boolean; scope: WriteScope | null } {
      this.assertOpen();
      const type = bodyType(c, types, expected);
      const wait = wantsWait(c);
      if (room) this.assertRoom(c.req.raw);
      return { type, wait, scope: writeScope(c) };
    },

    /** 503 while shutting down: the client should go to another instance. */
    assertOpen() {
      if (state.draining)
        throw new ApiError('shutting_down', 'The service is shutting down; retry against another instance', { retryAfter: config.retryAfterSeconds });
    },

    /**
     * 429 before the body is read when the queue surely cannot take it: under overload, parsing
     * requests only to refuse them took half the main thread (bench, 2 cores), CPU the writers and
     * the database needed. The estimate errs towards reading the body: a record is larger than its
     * NDJSON line (an id and a time added) and than its share of a compressed or protobuf body.
     */
    assertRoom(req: Request) {
      const length = Number(req.headers.get('content-length'));
      if (!(length > 0) || queue.depth === 0) return;
      const events = Math.floor(length / (queue.usedBytes / queue.depth));
      if (queue.depth + events > queue.maxEvents || queue.usedBytes + length / 2 > queue.maxBytes) refuseFull();
    },

    /** Queues one record (the single-event hot path); returns its sequence number. */
    one(record: string): number {
      const seq = queue.appendedSeq;
      if (!queue.push(record)) refuseFull();
      state.accepted++;
      batcher.notify();
      return seq;
    },

    /**
     * Queues a request's records all or nothing (a client retrying after 429 must not create a
     * half-stored request); returns the sequence number of the first.
     */
    all(records: readonly string[]): number {
      if (records.length > queue.maxEvents) {
        throw new ApiError('payload_too_large', `The request holds more events than the whole queue (QUEUE_MAX_EVENTS=${queue.maxEvents})`);
      }
      const mark = queue.mark();
      for (const r of records) {
        if (!queue.push(r)) {
          queue.rollback(mark);
          refuseFull();
        }
      }
      state.accepted += records.length;
      batcher.notify();
      return mark.appended;
    },

    /**
     * A protocol receiver's records (OTLP, Loki push): the same event twice in the request is one
     * row, the rest is queued whole or refused, and with `wait` the answer waits for the commit.
     * Resolves with what a reply reports: queued, duplicates, the records the database refused, and
     * those for services the key may not write (refused, the others stored).
     */
    async submit(items: readonly { id: string; time: string; service: string; record: string }[], wait: boolean, scope: WriteScope | null) {
      const { records, forbidden } = admissible(items, scope);
      let duplicates = items.length - records.length - forbidden.length;
      if (!records.length) return { queued: 0, duplicates, refused: [] as string[], forbidden, committed: false };
      const from = this.all(records);
      const outcome = wait ? await this.committed(from, from + records.length) : null;
      duplicates += outcome?.duplicates.length ?? 0;
      const refused = outcome?.rejected.map((r) => r.message) ?? [];
      return {
        queued: records.length - (outcome ? outcome.duplicates.length + refused.length : 0),
        duplicates,
        refused,
        forbidden,
        committed: outcome !== null,
      };
    },

    /** The commit outcome of [from, to) (waitForCommit). */
    committed: (from: number, to: number) => waitForCommit(config, batcher, from, to),
  };
}
